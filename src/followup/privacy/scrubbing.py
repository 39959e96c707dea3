"""Scrubbing what customers and agents type, before it is stored.

A comment, an SMS reply or an agent's note may hold a card number, its security code, a resident
ID number, a phone number or an email address: the customer pastes them to explain a payment, an
agent copies them from a call. The text is sealed under the customer's key, but staff read it in
the console, it travels to the security keyword check, and a sealed blob keeps what it was given
for as long as the customer is kept. So every domain passes free text through `scrub` before it
seals it, and what it keeps is the text with these values masked:

- a card number (12 to 19 digits, in groups split by single spaces or dashes, Luhn-valid, starting
  as a card network's numbers start: Visa, Mastercard 51–55 and 2221–2720, UnionPay 62 and 81,
  Amex, Diners, JCB, Discover, Maestro, Mir) becomes `**** **** **** 1234`, its last four kept;
- the 3 or 4 digits next to a security-code keyword (CVV, CVV2, CVC, CVN, CSC, "security
  code", 安全码, 验证码, 校验码 …, before or after it) become `***`: nothing of the code is kept,
  not even its length;
- a mainland resident ID number (18 characters, the last a digit or X, the check digit right per
  GB 11643 and a real date of birth in it) becomes fourteen stars and its last four;
- a personal phone number, as `phonenumbers` finds it (default region CN), becomes `*******` and
  its last four; a service number (400, 800, premium rate) is not personal and is kept, and a
  landline counts only when written with its trunk 0 or an international prefix, since ten bare
  digits are more often an order number than a Guangzhou line;
- an email address keeps its first character and its domain: `z***@example.com`, as the console
  shows a contact point.

Numbers that fail these checks stay as they were: amounts (¥1,234.56), dates and times, and order
numbers whose digits fail Luhn or the ID's check digit. Full-width digits and separators (１２３,
－, the ideographic space) read as their ASCII forms, so `６２２２　０２１２…` is found too.

docs/privacy.md lists every rule, what is kept and why, and where scrubbing is applied.

Pure: no database, no settings, no clock. The log scrubber (`kernel.logging.scrub`) is a different
tool: it hides every long number from a log line, where a false alarm costs nothing; stored text
must keep the customer's amounts and order numbers readable.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

import phonenumbers
from phonenumbers import PhoneNumberMatcher, PhoneNumberType
from stdnum.cn import ric
from stdnum.exceptions import ValidationError
from stdnum.luhn import is_valid as luhn_is_valid

__all__ = ["ALL_KINDS", "PAYMENT_AND_IDENTITY", "Kind", "Scrubbed", "is_card_number", "scrub", "scrub_and_count"]


class Kind(StrEnum):
    CARD = "card"
    CVV = "cvv"
    RESIDENT_ID = "resident_id"
    PHONE = "phone"
    EMAIL = "email"


ALL_KINDS = frozenset(Kind)
# What may never be kept whoever wrote it; phone numbers and emails in a reply to the customer are
# most often our own hotline and address, which the customer needs to read.
PAYMENT_AND_IDENTITY = frozenset({Kind.CARD, Kind.CVV, Kind.RESIDENT_ID})


@dataclass(frozen=True)
class Scrubbed:
    text: str
    masked: Counter[Kind]  # how many values of each kind were masked


def scrub(text: str, *, kinds: frozenset[Kind] = ALL_KINDS) -> str:
    """`text` with the card numbers, security codes, ID numbers, phones and emails in it masked."""
    return scrub_and_count(text, kinds=kinds).text


def scrub_and_count(text: str, *, kinds: frozenset[Kind] = ALL_KINDS) -> Scrubbed:
    """`scrub`, and how many values of each kind it masked."""
    if not text:
        return Scrubbed(text, Counter())
    plain = _ascii_view(text)
    found: list[_Found] = []
    # The order matters where one value could be read as two: an email's local part may be a phone
    # number, an ID number may pass Luhn. The first finder claims the characters.
    for kind, finder in _FINDERS:
        if kind in kinds:
            found.extend(finder(_blanked(plain, found)))
    found.sort(key=lambda item: item.start)
    parts: list[str] = []
    at = 0
    for item in found:
        parts.append(text[at : item.start])
        parts.append(item.mask)
        at = item.end
    parts.append(text[at:])
    return Scrubbed("".join(parts), Counter(item.kind for item in found))


@dataclass(frozen=True)
class _Found:
    start: int
    end: int
    kind: Kind
    mask: str


# Full-width forms (U+FF01–FF5E) to ASCII, the spaces people and input methods type to a plain
# space, and the dashes to "-". Each character maps to exactly one, so a span found in the view is
# the same span in the text.
_TO_ASCII = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
_TO_ASCII.update({code: ord(" ") for code in (0x00A0, 0x3000, 0x202F, *range(0x2000, 0x200B))})
_TO_ASCII.update({code: ord("-") for code in (*range(0x2010, 0x2016), 0x2212)})
_NON_ASCII_DIGIT = re.compile(r"(?![0-9])\d")
_BLANK = "\u2588"  # neither a digit, a letter nor a separator: nothing joins across a claimed span


def _ascii_view(text: str) -> str:
    view = text.translate(_TO_ASCII)
    # Any other script's decimal digits (Arabic-Indic, Devanagari …) read as their values.
    return _NON_ASCII_DIGIT.sub(lambda match: str(unicodedata.decimal(match.group())), view)


def _blanked(view: str, claimed: list[_Found]) -> str:
    for item in claimed:
        view = view[: item.start] + _BLANK * (item.end - item.start) + view[item.end :]
    return view


def _last_four(digits: str) -> str:
    return digits[-4:]


# -- emails ----------------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])([A-Za-z0-9][A-Za-z0-9._%+\-]{0,63})"  # the local part: ASCII, so 邮箱是 stays out
    r"@((?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})(?![A-Za-z0-9\-])"
)


def _emails(view: str) -> list[_Found]:
    return [
        _Found(match.start(), match.end(), Kind.EMAIL, f"{match.group(1)[:1]}***@{match.group(2)}")
        for match in _EMAIL.finditer(view)
    ]


# -- resident ID numbers ---------------------------------------------------------------------------

# 18 characters, optionally split after the place (6) and the date of birth (8) as people write it.
_RESIDENT_ID = re.compile(r"(?<![0-9])([1-9][0-9]{5})[ \-]?([0-9]{8})[ \-]?([0-9]{3}[0-9Xx])(?![0-9])")
_BIRTH_YEARS = range(1900, 2100)


def _resident_ids(view: str) -> list[_Found]:
    found = []
    for match in _RESIDENT_ID.finditer(view):
        number = "".join(match.groups()).upper()
        if _is_resident_id(number):
            found.append(_Found(match.start(), match.end(), Kind.RESIDENT_ID, "*" * 14 + _last_four(number)))
    return found


def _is_resident_id(number: str) -> bool:
    """The check digit per GB 11643 and a real date of birth. The place code is not looked up:
    python-stdnum's table of places lags the counties created after it was written, and a real
    number left in clear costs more than an order number masked."""
    if ric.calc_check_digit(number) != number[-1]:
        return False
    try:
        return ric.get_birth_date(number).year in _BIRTH_YEARS
    except ValidationError:
        return False


# -- card numbers ----------------------------------------------------------------------------------

# Digits in groups split by one space or dash ("6222 0212", "4111-1111"), touching no letter: a
# parcel's "SF6503…" or an ID number's "…X" is not a card number.
_DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z])[0-9]+(?:[ \-][0-9]+)*(?![0-9A-Za-z])")
_GROUP = re.compile(r"[0-9]+")
# A run may hold a card number and a day or a month beside it ("30 4111 1111 1111 1111", "… 1111
# 12/28"): a group this short may be left out. Leaving out more would find a card number inside
# every mistyped one often enough to mask one near miss in ten.
_LEFT_OUT = 2
# (lowest prefix, highest prefix, shortest, longest) per network; a number is a card number when
# its first digits fall in a range and its length in the range's lengths.
_NETWORKS: tuple[tuple[str, str, int, int], ...] = (
    ("2200", "2204", 16, 19),  # Mir
    ("2221", "2720", 16, 16),  # Mastercard 2-series
    ("300", "305", 14, 19),  # Diners Club
    ("3095", "3095", 14, 19),
    ("34", "34", 15, 15),  # American Express
    ("36", "36", 14, 19),  # Diners Club
    ("37", "37", 15, 15),  # American Express
    ("3528", "3589", 16, 19),  # JCB
    ("38", "39", 14, 19),  # Diners Club
    ("4", "4", 13, 19),  # Visa
    ("50", "50", 12, 19),  # Maestro
    ("51", "55", 16, 16),  # Mastercard
    ("56", "69", 12, 19),  # Maestro; Discover 6011, 64, 65; UnionPay 62; RuPay 60 inside it
    ("81", "82", 16, 19),  # UnionPay 81, RuPay 82
)
_CARD_LENGTHS = range(12, 20)


def is_card_number(digits: str) -> bool:
    """A network's prefix and length, and the Luhn check."""
    if len(digits) not in _CARD_LENGTHS or not digits.isdigit():
        return False
    for low, high, shortest, longest in _NETWORKS:
        if low <= digits[: len(low)] <= high and shortest <= len(digits) <= longest:
            return luhn_is_valid(digits)
    return False


def _cards(view: str) -> list[_Found]:
    found = []
    for run in _DIGIT_RUN.finditer(view):
        groups = _GROUP.findall(run.group())
        for first, last in _windows(groups):
            digits = "".join(groups[first : last + 1])
            if is_card_number(digits):
                # Separators are one character each, so the groups' offsets follow from their lengths.
                start = run.start() + sum(len(group) + 1 for group in groups[:first])
                end = start + len(digits) + last - first
                found.append(_Found(start, end, Kind.CARD, "**** **** **** " + _last_four(digits)))
                break
    return found


def _windows(groups: list[str]) -> list[tuple[int, int]]:
    """The groups of a run to try as one number, first and last: all of them, then all but a short
    first or last one."""
    windows = [(0, len(groups) - 1)]
    if len(groups) > 1 and len(groups[0]) <= _LEFT_OUT:
        windows.append((1, len(groups) - 1))
    if len(groups) > 1 and len(groups[-1]) <= _LEFT_OUT:
        windows.append((0, len(groups) - 2))
    return windows


# -- security codes --------------------------------------------------------------------------------

_CODE_WORD = (
    r"(?:cvv2|cvc2|cvn2|cvv|cvc|cvn|csc|card\s+verification\s+(?:code|value|number)|security\s+code"
    r"|卡验证码|安全验证码|安全码|验证码|校验码|校验值|cvv码)"
)
_CODE = r"(?<![0-9])([0-9]{3,4})(?![0-9])"
# What may stand between the word and the code: "CVV: 123", "CVV2 is 456", "安全码是 789", "cvv号 012".
_BETWEEN_AFTER = r"(?:\s|[:=#()（）是为号]|\bis\b|\bwas\b|\bcode\b|\bnumber\b|\bno\.?){0,5}"
# … and before it: "123 is my CVV", "456（安全码）".
_BETWEEN_BEFORE = r"(?:\s|[:=#()（）,是为]|\bis\b|\bwas\b|\bmy\b|\bthe\b|\bthat's\b|我的|的){0,5}"
_CODE_AFTER_WORD = re.compile(rf"(?<![A-Za-z]){_CODE_WORD}{_BETWEEN_AFTER}{_CODE}", re.IGNORECASE)
_CODE_BEFORE_WORD = re.compile(rf"{_CODE}{_BETWEEN_BEFORE}{_CODE_WORD}(?![A-Za-z])", re.IGNORECASE)


def _security_codes(view: str) -> list[_Found]:
    spans: dict[int, int] = {}
    for pattern in (_CODE_AFTER_WORD, _CODE_BEFORE_WORD):
        for match in pattern.finditer(view):
            spans[match.start(1)] = match.end(1)
    return [_Found(start, end, Kind.CVV, "***") for start, end in sorted(spans.items())]


# -- phone numbers ---------------------------------------------------------------------------------

_REGION = "CN"
# Numbers a person answers. Toll-free, shared-cost, premium and "universal access" (400) numbers
# belong to businesses: the wallet's own hotline stays readable.
_PERSONAL = {
    PhoneNumberType.MOBILE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.PAGER,
    PhoneNumberType.VOIP,
    PhoneNumberType.UNKNOWN,
}


def _phones(view: str) -> list[_Found]:
    found = []
    for match in PhoneNumberMatcher(view, _REGION, leniency=phonenumbers.Leniency.VALID):
        number_type = phonenumbers.number_type(match.number)
        raw = match.raw_string.lstrip("(（ ")
        prefixed = raw.startswith(("+", "0"))
        if number_type in _PERSONAL or (number_type == PhoneNumberType.FIXED_LINE and prefixed):
            digits = "".join(c for c in match.raw_string if c.isdigit())
            found.append(_Found(match.start, match.end, Kind.PHONE, "*******" + _last_four(digits)))
    return found


_FINDERS = (
    (Kind.EMAIL, _emails),
    (Kind.RESIDENT_ID, _resident_ids),
    (Kind.CARD, _cards),
    (Kind.CVV, _security_codes),
    (Kind.PHONE, _phones),
)
