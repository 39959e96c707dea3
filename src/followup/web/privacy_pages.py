"""The privacy notice as customers read it: `/privacy` (the current one) and `/privacy/{version}`
(any one, so a consent's notice can be read again), in Chinese or English.

The language is `?lang=zh-CN|en`, else the browser's Accept-Language, else Chinese. The notice's
text is plain text with a little structure (a blank line between paragraphs, `# ` headings, `- `
list items), turned into blocks here and escaped by the template: nothing in it can become markup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from followup.kernel.http import AppSettings, ReadSession
from followup.privacy import service as privacy
from followup.privacy.schemas import NOTICE_LOCALES, NoticeOut
from followup.web.hosted import page

router = APIRouter(include_in_schema=False)
DEFAULT_LOCALE = "zh-CN"
VERSIONS_SHOWN = 20
_ACCEPTED_TAGS = 20  # of an Accept-Language header; a longer list names nothing more we could serve

TEXT = {
    "zh-CN": {
        "heading": "隐私声明",
        "version": "版本 {version}",
        "published": "发布于 {date}",
        "built_in": "默认版本",
        "current": "这是当前有效的版本。",
        "not_current": "这是一个早先的版本。",
        "read_current": "查看当前版本",
        "hash": "内容指纹（SHA-256）",
        "versions": "所有版本",
        "other_language": "English",
        "not_found_title": "找不到该版本",
        "not_found_text": "没有这个版本的隐私声明。",
    },
    "en": {
        "heading": "Privacy notice",
        "version": "Version {version}",
        "published": "published {date}",
        "built_in": "default version",
        "current": "This is the notice in force.",
        "not_current": "This is an earlier version.",
        "read_current": "Read the current notice",
        "hash": "Content fingerprint (SHA-256)",
        "versions": "Every version",
        "other_language": "中文",
        "not_found_title": "No such version",
        "not_found_text": "There is no privacy notice of this version.",
    },
}


@dataclass(frozen=True)
class Block:
    """A piece of a notice as a page shows it; `level` is a heading's depth (1 for `# `)."""

    kind: Literal["heading", "paragraph", "list"]
    lines: tuple[str, ...]
    level: int = 0


def notice_blocks(text: str) -> list[Block]:
    """A notice's text as headings, paragraphs (their line breaks kept) and lists."""
    blocks: list[Block] = []
    for chunk in re.split(r"\n[ \t]*\n", text.strip()):
        lines = [line.strip() for line in chunk.split("\n") if line.strip()]
        while lines and lines[0].startswith("#"):
            marks = len(lines[0]) - len(lines[0].lstrip("#"))
            blocks.append(Block("heading", (lines[0].lstrip("#").strip(),), level=min(marks, 3)))
            lines = lines[1:]
        if not lines:
            continue
        if all(line.startswith(("- ", "* ")) for line in lines):
            blocks.append(Block("list", tuple(line[2:].strip() for line in lines)))
        else:
            blocks.append(Block("paragraph", tuple(lines)))
    return blocks


def language_of(lang: str | None, accept_language: str) -> str:
    """`lang` when it names a locale we have, else the first of the browser's that we have (by its
    q value), else Chinese."""
    if lang in NOTICE_LOCALES:
        return lang
    wanted: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")[:_ACCEPTED_TAGS]):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        found = re.fullmatch(r"\s*q\s*=\s*([01](?:\.[0-9]{0,3})?)\s*", params)
        if params and found is None:
            continue
        if found is not None:
            weight = float(found.group(1))
        if weight > 0:
            wanted.append((-weight, position, tag.strip().lower()))
    for _, _, tag in sorted(wanted):
        if tag == "zh" or tag.startswith("zh-"):
            return "zh-CN"
        if tag == "en" or tag.startswith("en-"):
            return "en"
    return DEFAULT_LOCALE


def _notice_page(
    request: Request, session: ReadSession, notice: NoticeOut, *, locale: str, built_in_notice_version: str
) -> Response:
    text = TEXT[locale]
    versions, _ = privacy.list_notices(
        session, built_in_notice_version=built_in_notice_version, limit=VERSIONS_SHOWN, offset=0
    )
    other = "en" if locale == "zh-CN" else "zh-CN"
    here = "/privacy" if notice.current else f"/privacy/{notice.version}"
    return page(
        request,
        "privacy.html",
        {
            "page_title": text["heading"],
            "p": text,
            "notice": notice,
            "blocks": notice_blocks(notice.text.get(locale, "")),
            "published": notice.published_at.strftime("%Y-%m-%d") if notice.published_at else None,
            "versions": versions,
            "other_language_url": f"{here}?lang={other}",
        },
        locale=locale,
    )


def _not_found_page(request: Request, locale: str) -> Response:
    text = TEXT[locale]
    return page(
        request,
        "message.html",
        {"page_title": text["not_found_title"], "heading": text["not_found_title"], "text": text["not_found_text"]},
        locale=locale,
        status_code=404,
    )


@router.api_route("/privacy", methods=["GET", "HEAD"], response_class=HTMLResponse)
def show_current_notice(
    request: Request, session: ReadSession, settings: AppSettings, lang: str | None = None
) -> Response:
    locale = language_of(lang, request.headers.get("accept-language", ""))
    notice = privacy.current_notice(session, built_in_notice_version=settings.privacy_notice_version)
    built_in = settings.privacy_notice_version
    return _notice_page(request, session, notice, locale=locale, built_in_notice_version=built_in)


@router.api_route("/privacy/{version}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def show_notice(
    request: Request, version: str, session: ReadSession, settings: AppSettings, lang: str | None = None
) -> Response:
    locale = language_of(lang, request.headers.get("accept-language", ""))
    notice = None
    if len(version) <= 32:  # longer names no notice, and is not worth a query
        notice = privacy.get_notice(session, version, built_in_notice_version=settings.privacy_notice_version)
    if notice is None:
        return _not_found_page(request, locale)
    built_in = settings.privacy_notice_version
    return _notice_page(request, session, notice, locale=locale, built_in_notice_version=built_in)
