"""Envelope encryption of personal data and the blind index used to look it up.

Every customer has a data key (DEK). Personal fields are sealed with AES-GCM under that DEK; the
DEK is stored wrapped by a master key, and every wrapped DEK records the version of the master key
it is wrapped under, so that a new master key can take over while the old one still unwraps what it
wrapped (`followup keys rotate` moves every DEK across; ADR 0025). Destroying a customer's wrapped
DEK makes everything sealed under it unreadable (crypto-shredding), wherever copies went.

Look-ups by email or phone use an HMAC of the normalised value; console sessions, pseudonyms and a
few secrets of our own use keys derived for one purpose each. None of these may change when the
master key does (every stored index and every session would break), so they come from the *index
root*: a secret kept in the key store, wrapped under the master key like a DEK, whose value for an
installation that began with one master key is that key itself — what they were derived from
before master keys had versions.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from followup.kernel.errors import ConfigurationError, FollowupError

_FORMAT_V1 = b"\x01"
_NONCE_BYTES = 12
KEY_BYTES = 32
# Master key versions are small positive integers; the bound keeps a typo from naming version 10^18.
MAX_KEY_VERSION = 9999


class DecryptionFailed(FollowupError):
    status_code = 500
    code = "decryption_failed"


class MasterKeyProvider(Protocol):
    """Master keys by version, used the way a KMS is used: it wraps and unwraps small secrets (data
    keys, the index root) under a key id and never has to hand its keys out.

    The local and environment providers below hold their keys in memory; a cloud KMS implements the
    same six members with its encrypt/decrypt calls (the version naming one of its key versions, the
    context going as additional authenticated data / encryption context) and returns None from
    `index_root_seed`. docs/privacy.md (## Keys) describes the protocol for implementers.
    """

    @property
    def current_version(self) -> int:
        """The version new data keys are wrapped under."""
        ...

    @property
    def versions(self) -> frozenset[int]:
        """Every version this provider can unwrap, the current one included."""
        ...

    def wrap(self, plaintext: bytes, *, version: int, context: bytes) -> bytes:
        """Seal a small secret under master key `version`; `context` binds it to its owner."""
        ...

    def unwrap(self, wrapped: bytes, *, version: int, context: bytes) -> bytes:
        """Open what `wrap` sealed; DecryptionFailed for a wrong key, version or context."""
        ...

    def source(self, version: int) -> str:
        """Where an operator sets master key `version` (a setting's name), for start-up messages."""
        ...

    def index_root_seed(self) -> bytes | None:
        """The index root a key store without one starts with: the version-1 master key when this
        provider holds key material (so indexes and derived keys made before versions existed stay
        valid), None when it cannot export any (a random root is made)."""
        ...


class KeyProvider(Protocol):
    """What the domains hold as `keys` (the runtime builds a `Keyring`): data keys wrapped under the
    current master key version, and the index root's blind indexes, derived keys and secrets."""

    @property
    def current_version(self) -> int: ...

    @property
    def versions(self) -> frozenset[int]:
        """Every master key version data keys may be unwrapped from."""
        ...

    def wrap_data_key(self, data_key: bytes, *, context: bytes) -> tuple[int, bytes]:
        """(version, wrapped): the data key wrapped under the current master key version."""
        ...

    def unwrap_data_key(self, wrapped: bytes, *, version: int, context: bytes) -> bytes: ...

    def wrap(self, secret: bytes, *, context: bytes) -> bytes:
        """A secret of our own (a webhook signing secret, a two-factor seed) sealed under the index
        root: it outlives master key rotations untouched."""
        ...

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes: ...

    def blind_index(self, kind: str, normalized: str) -> str: ...

    def derive_key(self, label: str) -> bytes:
        """A 32-byte key for one purpose (e.g. signing console sessions), derived from the index root."""
        ...


@functools.lru_cache(maxsize=64)  # a handful of labels; deriving costs more than the signing it serves
def _derive(master: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=label).derive(master)


# The key-encryption key's label under any master key version and under the index root. Version 1
# of the master key wraps exactly as the single master key did before versions existed.
_KEK_LABEL = b"followup/kek/v1"


def _wrap_under(master: bytes, plaintext: bytes, context: bytes) -> bytes:
    return seal(_derive(master, _KEK_LABEL), plaintext, aad=b"dek|" + context)


def _unwrap_under(master: bytes, wrapped: bytes, context: bytes) -> bytes:
    return open_sealed(_derive(master, _KEK_LABEL), wrapped, aad=b"dek|" + context)


@dataclass(frozen=True)
class LocalKeyProvider:
    """Master keys held in process memory, read from settings (FOLLOWUP_MASTER_KEY,
    FOLLOWUP_MASTER_KEYS) or from the key file beside a SQLite database."""

    keys: Mapping[int, bytes] = field(repr=False)
    current_version: int
    # Where each version was set, named in start-up messages; a version not named here: `origin`.
    origin: str = "FOLLOWUP_MASTER_KEY"
    sources: Mapping[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_keys(self.keys, self.current_version, self.origin)

    @classmethod
    def single(cls, master_key: bytes, *, origin: str = "FOLLOWUP_MASTER_KEY") -> LocalKeyProvider:
        """One master key, version 1: how every installation began."""
        return cls({1: master_key}, 1, origin=origin)

    @property
    def versions(self) -> frozenset[int]:
        return frozenset(self.keys)

    def wrap(self, plaintext: bytes, *, version: int, context: bytes) -> bytes:
        return _wrap_under(self._key(version), plaintext, context)

    def unwrap(self, wrapped: bytes, *, version: int, context: bytes) -> bytes:
        return _unwrap_under(self._key(version), wrapped, context)

    def source(self, version: int) -> str:
        return self.sources.get(version, self.origin)

    def index_root_seed(self) -> bytes | None:
        return self.keys.get(1)

    def _key(self, version: int) -> bytes:
        try:
            return self.keys[version]
        except KeyError:
            raise DecryptionFailed(f"no master key of version {version} is configured") from None


ENV_KEY_PREFIX = "FOLLOWUP_MASTER_KEY_V"
ENV_CURRENT = "FOLLOWUP_MASTER_KEY_CURRENT"
_ENV_NAME = re.compile(re.escape(ENV_KEY_PREFIX) + r"([1-9][0-9]{0,3})")


class EnvKeyProvider:
    """Master keys read from environment variables, one per version (FOLLOWUP_MASTER_KEY_V1,
    FOLLOWUP_MASTER_KEY_V2, …), the current one FOLLOWUP_MASTER_KEY_CURRENT or else the highest.

    Shaped like a KMS client: each call names the key id it wants, and the key material stays inside
    the provider. It suits secret stores that inject one variable per secret (a Kubernetes Secret
    per key version), and it is the template for a cloud KMS provider.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        keys: dict[int, bytes] = {}
        for name, value in environ.items():
            match = _ENV_NAME.fullmatch(name)
            if match:
                keys[int(match.group(1))] = parse_master_key(value, setting=name)
        if not keys:
            raise ConfigurationError(
                f"FOLLOWUP_KEY_PROVIDER=env needs at least one master key in {ENV_KEY_PREFIX}1, "
                f"{ENV_KEY_PREFIX}2, …; generate one with `followup keys generate`"
            )
        chosen = environ.get(ENV_CURRENT, "").strip()
        current = parse_key_version(chosen, setting=ENV_CURRENT) if chosen else max(keys)
        _check_keys(keys, current, ENV_CURRENT)
        self._keys = dict(keys)
        self._current = current

    @property
    def current_version(self) -> int:
        return self._current

    @property
    def versions(self) -> frozenset[int]:
        return frozenset(self._keys)

    def wrap(self, plaintext: bytes, *, version: int, context: bytes) -> bytes:
        return _wrap_under(self._key(version), plaintext, context)

    def unwrap(self, wrapped: bytes, *, version: int, context: bytes) -> bytes:
        return _unwrap_under(self._key(version), wrapped, context)

    def source(self, version: int) -> str:
        return f"{ENV_KEY_PREFIX}{version}"

    def index_root_seed(self) -> bytes | None:
        return self._keys.get(1)

    def _key(self, version: int) -> bytes:
        try:
            return self._keys[version]
        except KeyError:
            raise DecryptionFailed(f"no master key of version {version} is configured") from None


def _check_keys(keys: Mapping[int, bytes], current: int, setting: str) -> None:
    for version, key in keys.items():
        if not 1 <= version <= MAX_KEY_VERSION:
            raise ConfigurationError(f"master key versions run from 1 to {MAX_KEY_VERSION}; {version} is not one")
        if len(key) != KEY_BYTES:
            raise ConfigurationError("the master key must be 32 bytes (44 characters of base64)")
    if current not in keys:
        raise ConfigurationError(f"{setting}: the current master key version {current} has no key")


@dataclass(frozen=True)
class Keyring:
    """The process's keys (the runtime's `keys`): a master key provider and the index root.

    `index_root` is None only before the key store has a schema (`followup db upgrade` builds a
    runtime too); anything that needs it then says so instead of deriving from a guess.
    """

    provider: MasterKeyProvider
    index_root: bytes | None = field(repr=False)

    @property
    def current_version(self) -> int:
        return self.provider.current_version

    @property
    def versions(self) -> frozenset[int]:
        return self.provider.versions

    def wrap_data_key(self, data_key: bytes, *, context: bytes) -> tuple[int, bytes]:
        version = self.provider.current_version
        return version, self.provider.wrap(data_key, version=version, context=context)

    def unwrap_data_key(self, wrapped: bytes, *, version: int, context: bytes) -> bytes:
        return self.provider.unwrap(wrapped, version=version, context=context)

    def wrap(self, secret: bytes, *, context: bytes) -> bytes:
        return _wrap_under(self._root, secret, context)

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        return _unwrap_under(self._root, wrapped, context)

    def blind_index(self, kind: str, normalized: str) -> str:
        digest = hmac.new(
            _derive(self._root, b"followup/blind-index/v1"), f"{kind}|{normalized}".encode(), hashlib.sha256
        )
        return digest.hexdigest()

    def derive_key(self, label: str) -> bytes:
        # A label of its own per purpose, so a key leaked from one use opens nothing else.
        return _derive(self._root, f"followup/{label}".encode())

    @property
    def _root(self) -> bytes:
        if self.index_root is None:
            raise ConfigurationError("the key store has no schema yet; run `followup db upgrade` first")
        return self.index_root


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def new_index_root() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def seal(key: bytes, plaintext: bytes, *, aad: bytes = b"") -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    return _FORMAT_V1 + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, *, aad: bytes = b"") -> bytes:
    if not blob or blob[:1] != _FORMAT_V1 or len(blob) < 1 + _NONCE_BYTES + 16:
        raise DecryptionFailed("ciphertext has an unknown format")
    nonce = blob[1 : 1 + _NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, blob[1 + _NONCE_BYTES :], aad)
    except InvalidTag as exc:
        raise DecryptionFailed("ciphertext failed authentication (wrong key or tampered data)") from exc


def parse_master_key(text: str, *, setting: str = "FOLLOWUP_MASTER_KEY") -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except ValueError as exc:
        raise ConfigurationError(f"{setting} is not valid base64") from exc
    if len(raw) != KEY_BYTES:
        raise ConfigurationError(f"{setting} must decode to 32 bytes; create one with `followup keys generate`")
    return raw


def parse_key_version(text: str, *, setting: str) -> int:
    value = text.strip()
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_KEY_VERSION:
        raise ConfigurationError(f"{setting}: a master key version is a whole number from 1 to {MAX_KEY_VERSION}")
    return int(value)


def parse_versioned_keys(entries: list[str], *, setting: str) -> tuple[dict[int, bytes], int]:
    """`VERSION:BASE64` entries, the first the current version → (version → key, current version).

    An entry without `VERSION:` is version 1 (a key file written before versions existed).
    """
    keys: dict[int, bytes] = {}
    current = 0
    for entry in entries:
        version_text, colon, key_text = entry.strip().rpartition(":")
        version = parse_key_version(version_text, setting=setting) if colon else 1
        if version in keys:
            raise ConfigurationError(f"{setting}: master key version {version} is given twice")
        keys[version] = parse_master_key(key_text, setting=f"{setting} (version {version})")
        current = current or version
    if not keys:
        raise ConfigurationError(f"{setting} holds no key; write VERSION:KEY entries, the current one first")
    return keys, current


def generate_master_key_text() -> str:
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def hash_token(token: str) -> str:
    """Tokens carry 256 bits of entropy, so a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)
