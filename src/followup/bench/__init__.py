"""`followup bench`: the engine's speed, each figure beside a raw baseline measured in the same run.

Every measurement runs in a fresh spawned process, so its peak memory is its own and nothing one
benchmark left behind (caches, open files, threads) flatters or burdens the next.
"""
