"""NPS, CSAT and response rate. Pure functions over plain numbers.

NPS = % promoters (9–10) − % detractors (0–6), from −100 to 100.
CSAT = % of ratings that are 4 or 5 on the 1–5 scale.
Both are None when there is nothing to compute them from, never 0, so an empty group is not
mistaken for a bad one.
"""

from __future__ import annotations

from collections.abc import Iterable


def nps(scores: Iterable[int]) -> float | None:
    values = list(scores)
    if not values:
        return None
    promoters = sum(1 for s in values if s >= 9)
    detractors = sum(1 for s in values if s <= 6)
    return round(100.0 * (promoters - detractors) / len(values), 1)


def csat(scores: Iterable[int]) -> float | None:
    values = list(scores)
    if not values:
        return None
    return round(100.0 * sum(1 for s in values if s >= 4) / len(values), 1)


def rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)
