"""Master key versions in the key store: the start-up check and the rotation (ADR 0025).

At start-up every process opens its keyring here: it finds the index root (wrapped under each
master key version that has been current, in `key_checks`), proves that the configured keys are the
ones the key store was written with, and refuses to start otherwise — a wrong key would otherwise
surface as a failed unwrap in the middle of a request, or worse, as new data keys wrapped under a
key nobody else holds. Rotation re-wraps each customer's data key under the current version in
short transactions; the data key itself never changes, so nothing sealed under it is touched and a
reader sees either wrapping, both of which open.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlalchemy.orm import Session

from followup.customers.models import KeyCheck
from followup.customers.repository import KeyStoreRepository
from followup.customers.sealing import data_key_context
from followup.kernel.crypto import DecryptionFailed, KeyProvider, Keyring, MasterKeyProvider, new_index_root
from followup.kernel.errors import ConfigurationError

INDEX_ROOT_CONTEXT = b"followup/index-root"
ROTATION_BATCH = 500


def open_keyring(session: Session, provider: MasterKeyProvider, *, now: dt.datetime) -> Keyring:
    """The process's keyring, after checking the provider's keys against the key store.

    Raises ConfigurationError, naming the setting to fix, when a configured key does not open what
    its version wrapped, or when the key store holds data keys under a version the provider lacks.
    The caller commits: the current version's check is written the first time it is current.
    """
    repo = KeyStoreRepository(session)
    if not repo.has_key_checks():
        # A database not yet migrated to key versions (`followup db upgrade` builds a runtime
        # first): every data key is version 1, and the index root is what it has always been.
        return Keyring(provider, provider.index_root_seed())
    checks = repo.key_checks()
    held = provider.versions
    root = _root_from_checks(provider, checks)
    for version in sorted(checks.keys() - held):
        if repo.a_key_under(version) is not None:
            raise _missing(provider, version)
    unchecked = held - checks.keys()
    if not checks:
        # The first start after the upgrade to key versions: the data keys are all version 1, and
        # the settings must still hold it.
        missing = sorted(repo.versions_in_use() - held)
        if missing:
            raise _missing(provider, missing[0])
    for version in sorted(unchecked):
        sample = repo.a_key_under(version)
        if sample is None:
            continue
        try:
            provider.unwrap(sample.wrapped_key, version=version, context=data_key_context(sample.customer_id))
        except DecryptionFailed as exc:
            raise _wrong(provider, version) from exc
    current = provider.current_version
    if current not in checks:
        if root is None:
            root = provider.index_root_seed() or new_index_root()
        wrapped = provider.wrap(root, version=current, context=INDEX_ROOT_CONTEXT)
        repo.add_key_check(version=current, wrapped_root=wrapped, now=now)
        # Two processes starting together may both have written; the first one's root stands.
        stored = repo.key_checks()[current]
        root = provider.unwrap(stored.wrapped_root, version=current, context=INDEX_ROOT_CONTEXT)
    return Keyring(provider, root)


def _root_from_checks(provider: MasterKeyProvider, checks: dict[int, KeyCheck]) -> bytes | None:
    root: bytes | None = None
    for version, check in sorted(checks.items()):
        if version not in provider.versions:
            continue
        try:
            opened = provider.unwrap(check.wrapped_root, version=version, context=INDEX_ROOT_CONTEXT)
        except DecryptionFailed as exc:
            raise _wrong(provider, version) from exc
        if root is not None and opened != root:
            raise ConfigurationError(
                f"the key store's checks of versions {sorted(checks)} hold different index roots: it was "
                "put together from two installations; restore the key store that belongs to this database"
            )
        root = opened
    if checks and root is None:
        raise ConfigurationError(
            f"{provider.source(provider.current_version)} holds none of the master key versions the key store "
            f"was written with ({', '.join(str(v) for v in sorted(checks))}); add one of them back beside the new key"
        )
    return root


def _wrong(provider: MasterKeyProvider, version: int) -> ConfigurationError:
    return ConfigurationError(
        f"{provider.source(version)} does not open the data keys in the key store (version {version}): it is "
        "not the key they were wrapped under; set the key this database was set up with"
    )


def _missing(provider: MasterKeyProvider, version: int) -> ConfigurationError:
    return ConfigurationError(
        f"the key store holds data keys wrapped under master key version {version}, which "
        f"{provider.source(provider.current_version)} does not hold; keep version {version} configured "
        "until `followup keys rotate` has moved every data key off it"
    )


@dataclass(frozen=True)
class KeyVersionCounts:
    current_version: int
    held_versions: tuple[int, ...]
    data_keys: dict[int, int]

    @property
    def not_current(self) -> int:
        return sum(count for version, count in self.data_keys.items() if version != self.current_version)


def count_data_keys(session: Session, *, keys: KeyProvider) -> KeyVersionCounts:
    counts = KeyStoreRepository(session).count_by_version()
    return KeyVersionCounts(
        current_version=keys.current_version, held_versions=tuple(sorted(keys.versions, reverse=True)), data_keys=counts
    )


@dataclass(frozen=True)
class RotationBatch:
    rewrapped: int
    # The last customer id looked at, where the next batch starts; None: nothing was left past it.
    next_after: int | None


def rotate_data_keys(
    session: Session, *, keys: KeyProvider, after: int = 0, limit: int = ROTATION_BATCH
) -> RotationBatch:
    """Re-wrap the next `limit` data keys not under the current version, from customer id `after`.

    Each data key is unwrapped and wrapped again; its value does not change, so what is sealed
    under it needs nothing, and a transaction that read the old wrapping still holds a valid key.
    The caller commits, one short transaction per batch.
    """
    repo = KeyStoreRepository(session)
    rows = repo.keys_to_rewrap(current=keys.current_version, after=after, limit=limit)
    rewrapped = 0
    for customer_id, version, wrapped in rows:
        context = data_key_context(customer_id)
        data_key = keys.unwrap_data_key(wrapped, version=version, context=context)
        new_version, rewrapping = keys.wrap_data_key(data_key, context=context)
        rewrapped += repo.rewrap(customer_id, old_version=version, version=new_version, wrapped_key=rewrapping)
    return RotationBatch(rewrapped=rewrapped, next_after=rows[-1][0] if rows else None)


UnitOfWork = Callable[[], AbstractContextManager[Session]]

# Passes over the key store: a pass that moved something is followed by one more, for data keys an
# erasure held locked or a process still on the old current version wrapped behind the cursor.
_PASSES = 3


def rotate_all_data_keys(
    unit_of_work: UnitOfWork,
    *,
    keys: KeyProvider,
    limit: int = ROTATION_BATCH,
    progress: Callable[[int], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> int:
    """Re-wrap every data key not under the current version, each batch in a transaction of its own
    (`unit_of_work` commits it), so running processes wait at most one batch for a key. Returns how
    many were re-wrapped. Stopping between batches (`stop`) loses nothing: running it again goes on."""
    total = 0
    for _ in range(_PASSES):
        moved = 0
        after: int | None = 0
        while after is not None:
            if stop is not None and stop():
                return total
            with unit_of_work() as session:
                batch = rotate_data_keys(session, keys=keys, after=after, limit=limit)
            after = batch.next_after
            moved += batch.rewrapped
            total += batch.rewrapped
            if progress is not None and batch.rewrapped:
                progress(batch.rewrapped)
        if moved == 0:
            break
    return total
