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
    phone today; push devices and social ids have no storage yet, so no customer holds one."""

    EMAIL = "email"
    PHONE = "phone"
    PUSH_DEVICE = "push_device"
    SOCIAL_ID = "social_id"


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
