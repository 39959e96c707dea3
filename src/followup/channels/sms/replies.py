"""What a customer's SMS reply means: an opt-out or help keyword, a 0–10 score, or a comment.

Pure functions, no I/O. What must stay true:

- A keyword counts only when it is the whole message (after NFKC normalisation, which folds
  full-width letters and digits to ASCII, case folding, and trimming whitespace and trailing
  punctuation): "STOP" and "ｓｔｏｐ！" opt out, "please stop the survey" is a comment a person
  reads. The keywords are the mainland carriers' (TD, T, N, 退订) and those US and EU gateways act
  on (STOP, UNSUBSCRIBE, CANCEL, END, QUIT, STOPALL), with HELP/帮助 and START/订阅.
- A score is a whole number 0–10 at the very start, in ASCII or full-width digits, optionally
  followed by 分 and any text ("9", "９", "9分", "10分，很好用"). "11", "100" and "9.5" are not
  scores: they become comments rather than a guessed rating.
- A yes or no (`read_yes_no`), for an invitation whose question is yes_no ("Was this you?"), is
  also a whole message: 1, Y, YES, 是, 是我 say yes; 2, NO, 否, 不是, 不是我 say no. "N" is not
  among them: it is the carriers' opt-out keyword, and an opt-out always wins.
- A reply is at most MAX_REPLY_CHARS characters: longer text (ten concatenated segments are about
  1,530 characters, so only a gateway's junk or an attack is longer) is cut to its first
  MAX_REPLY_CHARS before it is read, so a comment or a score's rest never exceeds that bound.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

MAX_REPLY_CHARS = 1600

KeywordKind = Literal["stop", "help", "start"]
YesNo = Literal["yes", "no"]

_KEYWORDS: dict[str, KeywordKind] = {
    **dict.fromkeys(["td", "t", "退订", "n", "stop", "unsubscribe", "cancel", "end", "quit", "stopall"], "stop"),
    "help": "help",
    "帮助": "help",
    "start": "start",
    "订阅": "start",
}
_YES_NO: dict[str, YesNo] = {
    **dict.fromkeys(["1", "y", "yes", "是", "是我", "是的"], "yes"),
    **dict.fromkeys(["2", "no", "否", "不是", "不是我"], "no"),
}
_LEADING_NUMBER = re.compile(r"[0-9０-９]+")
_DECIMAL_MARKS = frozenset(".,．，")
_POINTS = "分"


@dataclass(frozen=True)
class Keyword:
    kind: KeywordKind


@dataclass(frozen=True)
class Score:
    """A rating 0–10; `rest` is what followed it, without the 分 and the separating punctuation."""

    value: int
    rest: str


@dataclass(frozen=True)
class Comment:
    text: str


Reply = Keyword | Score | Comment


def read_reply(text: str) -> Reply:
    """Read one SMS reply (see the module's docstring for the rules)."""
    text = text[:MAX_REPLY_CHARS].strip()
    kind = _KEYWORDS.get(_keyword_form(text))
    if kind is not None:
        return Keyword(kind=kind)
    score = _score(text)
    if score is not None:
        return score
    return Comment(text=text)


def read_yes_no(text: str) -> YesNo | None:
    """The reply as an answer to a yes_no question, when the whole of it is one (see the module's
    docstring); None otherwise. Read after the keywords: a keyword is never an answer."""
    form = _keyword_form(text[:MAX_REPLY_CHARS])
    return None if form in _KEYWORDS else _YES_NO.get(form)


def _keyword_form(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold().strip()
    while folded and (_is_punctuation(folded[-1]) or folded[-1].isspace()):
        folded = folded[:-1]
    return folded


def _score(text: str) -> Score | None:
    match = _LEADING_NUMBER.match(text)
    if match is None or len(match.group()) > 2:
        return None
    value = int("".join(str(unicodedata.digit(char)) for char in match.group()))
    if value > 10:
        return None
    rest = text[match.end() :]
    if len(rest) >= 2 and rest[0] in _DECIMAL_MARKS and unicodedata.digit(rest[1], None) is not None:
        return None  # "9.5" is not a whole score
    rest = rest.lstrip()
    if rest.startswith(_POINTS):
        rest = rest[len(_POINTS) :]
    while rest and (_is_punctuation(rest[0]) or rest[0].isspace()):
        rest = rest[1:]
    return Score(value=value, rest=rest.rstrip())


def _is_punctuation(char: str) -> bool:
    return unicodedata.category(char).startswith("P")
