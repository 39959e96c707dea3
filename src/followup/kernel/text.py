"""Checks on text a person wrote that the engine passes on: control characters and length.

A one-line text (a survey title, a choice label, a strategy name) can end up in an email header,
where a line break ends the header: it either fails every send or adds a header of its own
("Bcc:"). So one-line text holds no control character at all. A text that may span lines (a
question prompt) keeps "\\n" and nothing else of the kind.
"""

from __future__ import annotations

import re

# C0 and C1 control characters (tab, line feed and carriage return among them), DEL, and the
# Unicode line and paragraph separators, which some mail and chat clients also break lines on.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def control_character(text: str, *, multiline: bool = False) -> str | None:
    """The first control character in `text` as U+XXXX, or None; "\\n" is allowed when multiline."""
    found = (_CONTROL_BUT_NEWLINE if multiline else _CONTROL).search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def text_problem(text: str, *, max_chars: int, multiline: bool = False) -> tuple[str, str] | None:
    """Why `text` may not be stored, as (code, sentence), or None when it may.

    The codes are the API's: `invalid_character` and `limit_exceeded`.
    """
    character = control_character(text, multiline=multiline)
    if character is not None:
        kind = "line breaks are allowed, no other control character" if multiline else "one line, no control character"
        return "invalid_character", f"contains the control character {character} ({kind})"
    if len(text) > max_chars:
        return "limit_exceeded", f"may hold at most {max_chars} characters; this one has {len(text)}"
    return None


def plain_text(text: str) -> str:
    """What a customer wrote elsewhere (an SMS reply), made safe to keep and show: every control
    character but the line break becomes a space. Such text is read, never refused: refusing it
    would lose the customer's words, since the provider only retries the same bytes."""
    return _CONTROL_BUT_NEWLINE.sub(" ", text.replace("\r\n", "\n"))
