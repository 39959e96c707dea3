"""Envelope encryption of personal data and the blind index used to look it up.

Every customer has a data key (DEK). Personal fields are sealed with AES-GCM under that DEK; the
DEK is stored wrapped by a key-encryption key derived from the master key. Destroying a customer's
wrapped DEK makes everything sealed under it unreadable (crypto-shredding), wherever copies of the
ciphertext went. Look-ups by email or phone use an HMAC of the normalised value under a separate
derived key, so the index reveals equality only to someone holding the master key.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from followup.kernel.errors import ConfigurationError, FollowupError

_FORMAT_V1 = b"\x01"
_NONCE_BYTES = 12
KEY_BYTES = 32


class DecryptionFailed(FollowupError):
    status_code = 500
    code = "decryption_failed"


class KeyProvider(Protocol):
    """Wraps data keys and computes blind indexes. A KMS-backed provider implements the same."""

    def wrap(self, data_key: bytes, *, context: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes: ...

    def blind_index(self, kind: str, normalized: str) -> str: ...

    def derive_key(self, label: str) -> bytes:
        """A 32-byte key for one purpose (e.g. signing console sessions), derived from the master key."""
        ...


@functools.lru_cache(maxsize=64)  # a handful of labels; deriving costs more than the signing it serves
def _derive(master: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=label).derive(master)


@dataclass(frozen=True)
class LocalKeyProvider:
    """Key provider holding the master key in process memory (from settings or a key file)."""

    master_key: bytes

    def __post_init__(self) -> None:
        if len(self.master_key) != KEY_BYTES:
            raise ConfigurationError("the master key must be 32 bytes (44 characters of base64)")

    @property
    def _kek(self) -> bytes:
        return _derive(self.master_key, b"followup/kek/v1")

    @property
    def _index_key(self) -> bytes:
        return _derive(self.master_key, b"followup/blind-index/v1")

    def wrap(self, data_key: bytes, *, context: bytes) -> bytes:
        return seal(self._kek, data_key, aad=b"dek|" + context)

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        return open_sealed(self._kek, wrapped, aad=b"dek|" + context)

    def blind_index(self, kind: str, normalized: str) -> str:
        digest = hmac.new(self._index_key, f"{kind}|{normalized}".encode(), hashlib.sha256)
        return digest.hexdigest()

    def derive_key(self, label: str) -> bytes:
        # A label of its own per purpose, so a key leaked from one use opens nothing else.
        return _derive(self.master_key, f"followup/{label}".encode())


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


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


def parse_master_key(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except ValueError as exc:
        raise ConfigurationError("FOLLOWUP_MASTER_KEY is not valid base64") from exc
    if len(raw) != KEY_BYTES:
        raise ConfigurationError(
            "FOLLOWUP_MASTER_KEY must decode to 32 bytes; create one with "
            "`python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())'`"
        )
    return raw


def generate_master_key_text() -> str:
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def hash_token(token: str) -> str:
    """Tokens carry 256 bits of entropy, so a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)
