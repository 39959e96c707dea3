"""What an SMS says and what it costs: the composed text, its encoding and its segments.

Pure functions, no I/O. The rules that must stay true:

- A mainland China number (+86) gets the 【sign】 prefix (the wallet's name) and the opt-out line
  "回T退订" last: mainland carriers refuse or flag marketing SMS without both. Every other number
  ends with "Reply STOP to opt out", the keyword gateways and carriers elsewhere act on. The
  opt-out line follows the number's country, not the customer's language, because it names the
  keyword the carrier of that number honours.
- The link stands on a line of its own, so no phone joins it with the next word when it makes it
  clickable.
- Segments are counted the way handsets and carriers split concatenated SMS (3GPP TS 23.038 and
  23.040): GSM-7 when every character is in the GSM 03.38 basic set or its extension table (an
  extension character takes two septets), otherwise UCS-2 counted in UTF-16 code units. One
  segment holds 160 septets or 70 units; a concatenated one 153 or 67, since the header takes the
  rest. A two-unit character is never split across segments, so a segment may stay one short.
"""

from __future__ import annotations

OPT_OUT_MAINLAND = "回T退订"
OPT_OUT_OTHER = "Reply STOP to opt out"
OPT_OUT_LINES = frozenset({OPT_OUT_MAINLAND, OPT_OUT_OTHER})
MAINLAND_PREFIX = "+86"

# Carriers concatenate long SMS, but billing and delivery get worse with every part; a text that
# needs more than this is refused before it is sent.
MAX_SEGMENTS = 10

GSM7 = "GSM-7"
UCS2 = "UCS-2"

# GSM 03.38 default alphabet (the escape code 0x1B is not a character of its own, so it is left out).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Its extension table: each is sent as the escape code and one more septet.
_GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

_GSM_SINGLE, _GSM_CONCATENATED = 160, 153
_UCS_SINGLE, _UCS_CONCATENATED = 70, 67


def is_mainland(number: str) -> bool:
    """True for a mainland China number in E.164 (+86…)."""
    return number.startswith(MAINLAND_PREFIX)


def compose(body: str, *, link: str | None, locale: str, to: str, sign: str | None) -> str:
    """The SMS for `to`: the body, the link on its own line, the opt-out line last.

    `sign` is the wallet's name, shown as 【sign】 in front for mainland numbers (None: no prefix);
    `locale` is the customer's, accepted so callers hand over what they know, while the opt-out
    line follows the number (see the module's docstring).
    """
    mainland = is_mainland(to)
    first = body.strip()
    if mainland and sign:
        first = f"【{sign.strip()}】{first}"
    lines = [first]
    if link:
        lines.append(link.strip())
    lines.append(OPT_OUT_MAINLAND if mainland else OPT_OUT_OTHER)
    return "\n".join(lines)


def segments(text: str) -> tuple[str, int]:
    """The encoding ("GSM-7" or "UCS-2") and how many SMS segments `text` is sent as.

    An empty text still goes out, and is billed, as one segment.
    """
    if all(char in _GSM_BASIC or char in _GSM_EXTENSION for char in text):
        costs = [2 if char in _GSM_EXTENSION else 1 for char in text]
        return GSM7, _count(costs, single=_GSM_SINGLE, concatenated=_GSM_CONCATENATED)
    costs = [2 if ord(char) > 0xFFFF else 1 for char in text]  # a surrogate pair is two units
    return UCS2, _count(costs, single=_UCS_SINGLE, concatenated=_UCS_CONCATENATED)


def _count(costs: list[int], *, single: int, concatenated: int) -> int:
    if sum(costs) <= single:
        return 1
    count, room = 1, concatenated
    for cost in costs:
        if cost > room:  # a two-unit character does not straddle two segments
            count, room = count + 1, concatenated
        room -= cost
    return count


def check_segments(text: str) -> tuple[str, int]:
    """`segments(text)`, or ValueError when the text needs more than MAX_SEGMENTS.

    The message says how long the text is and what to do, never what it says.
    """
    encoding, count = segments(text)
    if count > MAX_SEGMENTS:
        limit = (_GSM_CONCATENATED if encoding == GSM7 else _UCS_CONCATENATED) * MAX_SEGMENTS
        raise ValueError(
            f"The SMS needs {count} segments ({encoding}, {len(text)} characters) and at most {MAX_SEGMENTS} "
            f"are sent; shorten the text to about {limit} {'characters' if encoding == GSM7 else 'UTF-16 units'} "
            "including the link and the opt-out line."
        )
    return encoding, count
