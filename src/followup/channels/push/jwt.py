"""The two JSON Web Token forms the push services want, signed with `cryptography` alone.

FCM's OAuth grant takes an RS256 assertion signed with a service account's RSA key; APNs takes an
ES256 provider token signed with a team's P-256 key. Both are compact JWS (RFC 7515): three
base64url parts without padding. What must stay true:

- An ES256 signature is the raw `r || s` pair, 32 bytes each (RFC 7518 §3.4), not the DER that
  `cryptography` produces; Apple refuses DER.
- `verify` checks the header's `alg` against the one the caller expects before it checks the
  signature, so a token cannot choose its own algorithm (the classic `alg` confusion).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

Algorithm = Literal["RS256", "ES256"]

_ES256_HALF = 32  # bytes of r and of s on P-256


class InvalidTokenError(ValueError):
    """The token is malformed, signed with another algorithm, or its signature does not verify."""


def encode_rs256(claims: Mapping[str, Any], key: rsa.RSAPrivateKey, *, key_id: str | None = None) -> str:
    header: dict[str, str] = {"alg": "RS256", "typ": "JWT"}
    if key_id is not None:
        header["kid"] = key_id
    signing_input = _signing_input(header, claims)
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode('ascii')}.{_b64(signature)}"


def encode_es256(claims: Mapping[str, Any], key: ec.EllipticCurvePrivateKey, *, key_id: str) -> str:
    if not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("ES256 needs a key on the P-256 curve")
    header = {"alg": "ES256", "kid": key_id}
    signing_input = _signing_input(header, claims)
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    signature = r.to_bytes(_ES256_HALF, "big") + s.to_bytes(_ES256_HALF, "big")
    return f"{signing_input.decode('ascii')}.{_b64(signature)}"


def verify(
    token: str,
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    *,
    algorithm: Algorithm,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The token's header and claims once its signature verifies with `key` under `algorithm`.

    Only the signature is checked here: what the claims must say (issuer, audience, age) is the
    receiver's to decide.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidTokenError("a JWT has three dot-separated parts")
    header = _json_part(parts[0], "header")
    claims = _json_part(parts[1], "claims")
    if header.get("alg") != algorithm:
        raise InvalidTokenError(f"the token is not signed with {algorithm}")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    signature = _unb64(parts[2], "signature")
    try:
        if algorithm == "RS256":
            if not isinstance(key, rsa.RSAPublicKey):
                raise InvalidTokenError("RS256 needs an RSA public key")
            key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
                raise InvalidTokenError("ES256 needs a P-256 public key")
            if len(signature) != 2 * _ES256_HALF:
                raise InvalidTokenError("an ES256 signature is 64 bytes (r || s)")
            r = int.from_bytes(signature[:_ES256_HALF], "big")
            s = int.from_bytes(signature[_ES256_HALF:], "big")
            key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise InvalidTokenError("the signature does not verify") from exc
    return header, claims


def _signing_input(header: Mapping[str, Any], claims: Mapping[str, Any]) -> bytes:
    return f"{_b64(_compact_json(header))}.{_b64(_compact_json(claims))}".encode("ascii")


def _compact_json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(part: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidTokenError(f"the token's {what} is not base64url") from exc


def _json_part(part: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_unb64(part, what))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidTokenError(f"the token's {what} is not JSON") from exc
    if not isinstance(value, dict):
        raise InvalidTokenError(f"the token's {what} is not a JSON object")
    return value
