"""Normalising, validating and masking contact points, and the kinds of contact point there are.
Pure functions."""

from __future__ import annotations

import re
from enum import StrEnum

import phonenumbers

_EMAIL = re.compile(
    r"^[^@\s\"'<>,;]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$"
)
_REGION_OF_LOCALE = {"zh-CN": "CN", "en": None}


class ContactKind(StrEnum):
    """The kinds of address a channel may send to. A customer holds at most one email and one
    phone, and a device per app installation (its label: the wallet's device id)."""

    EMAIL = "email"
    PHONE = "phone"
    PUSH_DEVICE = "push_device"
    SOCIAL_ID = "social_id"


class ContactStatus(StrEnum):
    """Whether a contact point is usable: valid until a provider says it is not."""

    VALID = "valid"
    BOUNCED = "bounced"  # an email's hard bounce
    INVALID = "invalid"  # a number no carrier serves
    UNREGISTERED = "unregistered"  # a device token the platform no longer knows


class Platform(StrEnum):
    """A push device's platform, which says the provider: FCM for android, APNs for ios."""

    ANDROID = "android"
    IOS = "ios"


# The bit of `customers.reach` that says the customer holds a valid contact point of each kind.
REACH_BITS: dict[str, int] = {
    ContactKind.EMAIL: 1,
    ContactKind.PHONE: 2,
    ContactKind.PUSH_DEVICE: 4,
    ContactKind.SOCIAL_ID: 8,
}

_DEVICE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# FCM registration tokens are up to a few hundred characters of [A-Za-z0-9_:-]; APNs device
# tokens are 64 hexadecimal characters (longer in future, Apple says, so only the alphabet is held).
_PUSH_TOKEN = re.compile(r"^[A-Za-z0-9_:.\-]{16,4096}$")


def check_device_id(value: str) -> str:
    if not _DEVICE_ID.match(value):
        raise ValueError("a device id is 1 to 128 letters, digits, '.', '_', ':' or '-'")
    return value


def normalize_push_token(value: str, *, platform: str) -> str:
    text = value.strip()
    if not _PUSH_TOKEN.match(text):
        raise ValueError("not a push token: 16 to 4096 letters, digits, '_', ':', '.' or '-'")
    if platform == Platform.IOS and not re.fullmatch(r"[0-9A-Fa-f]{64,200}", text):
        raise ValueError("not an APNs device token: 64 or more hexadecimal digits")
    return text.lower() if platform == Platform.IOS else text


def mask_token(token: str) -> str:
    """A device token as staff see it: its last six characters."""
    return "…" + token[-6:]


def normalize_email(value: str) -> str:
    """Lower-cases the domain (the local part is case-sensitive by the RFC, but not in practice)."""
    text = value.strip()
    if len(text) > 254 or not _EMAIL.match(text):
        raise ValueError("not a valid email address, e.g. name@example.com")
    return text.lower()


def normalize_phone(value: str, *, locale: str | None = None) -> str:
    """E.164, e.g. +8613812341234. A number without + is read in the locale's country."""
    region = _REGION_OF_LOCALE.get(locale or "")
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("not a valid phone number; give it in E.164 form, e.g. +8613812341234") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number; give it in E.164 form, e.g. +8613812341234")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def mask_phone(e164: str) -> str:
    """Keep the first three and last four digits of the national number: 138****1234."""
    number = phonenumbers.parse(e164, None)
    national = str(number.national_number)
    if len(national) <= 7:
        return "*" * (len(national) - 2) + national[-2:]
    return national[:3] + "*" * (len(national) - 7) + national[-4:]
