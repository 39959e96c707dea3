"""The customer's own privacy page, `/p/{token}`: view what is held, take it away as a zip, change
consents, ask for deletion — in their language, without an account.

The token is signed and expires (`privacy.page_links`); every message carries a fresh one. A bad,
tampered or expired token, and the token of an erased customer, all get the same plain 404 page.
GET shows and never changes anything (mail scanners open links); every change is a POST.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from followup.customers import service as customers
from followup.data_rights import service as data_rights
from followup.kernel.actors import Actor
from followup.kernel.http import AppSettings, Keys, Now, ReadSession, WriteSession
from followup.privacy import page_links
from followup.privacy import service as privacy
from followup.privacy.enums import GIVEN_BY_DEFAULT, PURPOSES
from followup.web.hosted import FormData, invalid_link_page, page

router = APIRouter(include_in_schema=False)

# The channels a customer may be asked on, in the order the page lists them.
CHANNELS = ("email", "sms", "push", "inapp", "phone")
SOURCE = "privacy_page"

TEXT: dict[str, dict[str, str]] = {
    "zh-CN": {
        "title": "我的数据与隐私",
        "lead": "这里是我们为回访保存的关于您的全部信息。您可以查看、下载、修改授权，或要求删除。",
        "contacts": "联系方式",
        "none": "无",
        "consents": "授权",
        "consents_lead": "勾选表示同意我们通过该渠道联系您。撤回立即生效，下一条消息之前就不会再发送。",
        "save": "保存授权",
        "saved": "已保存。",
        "purpose_feedback": "回访与满意度调查",
        "purpose_service": "关于您本人问题的回复",
        "purpose_research": "用户访谈与研究",
        "channel_email": "邮件",
        "channel_sms": "短信",
        "channel_push": "推送",
        "channel_inapp": "应用内消息",
        "channel_phone": "电话",
        "history": "授权记录",
        "granted": "同意",
        "withdrawn": "撤回",
        "messages": "回访与消息",
        "answers": "您的评价与留言",
        "rewards": "奖励",
        "balance": "积分余额：{balance}",
        "cases": "为您处理的问题",
        "export": "下载我的数据",
        "export_lead": "一个 zip 文件：customer.json 包含全部内容，每类记录另有一个 CSV 文件。",
        "erase": "删除我的数据",
        "erase_lead": "删除后，我们将销毁您的密钥，您的联系方式、留言和消息都将无法恢复；"
        "评分仅以匿名方式保留在统计中。",
        "erase_button": "要求删除",
        "confirm_heading": "确认删除您的数据？",
        "confirm_text": "此操作无法撤销。我们会在 {days} 天内完成删除。",
        "confirm_button": "确认删除",
        "cancel": "返回",
        "requested_heading": "已收到您的删除请求",
        "requested_text": "我们将于 {due} 开始删除，最迟在 {deadline} 前完成。",
        "pending": "您的删除请求正在处理中（最迟 {deadline} 前完成）。",
        "nothing": "暂无记录。",
        "kind_detractor": "不满意反馈",
        "kind_complaint": "投诉",
        "kind_security": "账户安全",
        "status_open": "待处理",
        "status_assigned": "处理中",
        "status_waiting": "等待您的回复",
        "status_resolved": "已解决",
        "status_closed": "已关闭",
        "status_reopened": "重新处理中",
        "expires": "此链接于 {expires} 失效；之后的任一消息都会附上新链接。",
    },
    "en": {
        "title": "My data and privacy",
        "lead": "This is everything we keep about you for follow-ups. You can see it, download it, change "
        "your consents, or ask us to delete it.",
        "contacts": "How we reach you",
        "none": "none",
        "consents": "Consents",
        "consents_lead": "A tick means you agree to hear from us that way. A withdrawal counts at once, "
        "before the next message.",
        "save": "Save consents",
        "saved": "Saved.",
        "purpose_feedback": "Follow-ups and satisfaction surveys",
        "purpose_service": "Replies about your own issues",
        "purpose_research": "Interviews and research",
        "channel_email": "Email",
        "channel_sms": "SMS",
        "channel_push": "Push",
        "channel_inapp": "In-app",
        "channel_phone": "Phone",
        "history": "Consent history",
        "granted": "given",
        "withdrawn": "withdrawn",
        "messages": "Follow-ups and messages",
        "answers": "Your ratings and comments",
        "rewards": "Rewards",
        "balance": "Points balance: {balance}",
        "cases": "Issues we handled for you",
        "export": "Download my data",
        "export_lead": "A zip file: customer.json holds everything, with one CSV file per kind of record.",
        "erase": "Delete my data",
        "erase_lead": "We destroy your key: your contact details, comments and messages cannot be recovered. "
        "Your ratings stay in our statistics, without your name.",
        "erase_button": "Ask for deletion",
        "confirm_heading": "Delete your data?",
        "confirm_text": "This cannot be undone. We complete it within {days} days.",
        "confirm_button": "Yes, delete my data",
        "cancel": "Back",
        "requested_heading": "We have your deletion request",
        "requested_text": "We start on {due} and finish by {deadline} at the latest.",
        "pending": "Your deletion request is under way (done by {deadline} at the latest).",
        "nothing": "Nothing yet.",
        "kind_detractor": "Unhappy feedback",
        "kind_complaint": "Complaint",
        "kind_security": "Account security",
        "status_open": "to do",
        "status_assigned": "in hand",
        "status_waiting": "waiting for you",
        "status_resolved": "resolved",
        "status_closed": "closed",
        "status_reopened": "in hand again",
        "expires": "This link stops working on {expires}; every later message brings a new one.",
    },
}


def _locale(request: Request, customer_locale: str) -> str:
    asked = request.query_params.get("lang")
    if asked in TEXT:
        return asked
    return customer_locale if customer_locale in TEXT else "en"


def _customer(session: Any, keys: Any, token: str, now: dt.datetime) -> Any:
    customer_id = page_links.read_token(keys, token, now=now)
    if customer_id is None:
        return None
    customer = customers.get_by_id(session, customer_id)
    if customer is None or customer.erased_at is not None:
        return None
    return customer


def _day(value: Any, locale: str) -> str:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return ""
    if not isinstance(value, dt.datetime):
        return ""
    return f"{value:%Y年%m月%d日}" if locale == "zh-CN" else f"{value:%d %b %Y}"


def _consent_grid(session: Any, customer_id: int) -> list[dict[str, Any]]:
    held = privacy.get_consents(session, customer_id)
    return [
        {
            "purpose": purpose,
            "channels": [
                {"channel": channel, "granted": held.get(purpose, {}).get(channel, purpose in GIVEN_BY_DEFAULT)}
                for channel in CHANNELS
            ],
        }
        for purpose in PURPOSES
    ]


def _case_view(row: dict[str, Any], locale: str) -> dict[str, Any]:
    """A case as the page lists it: its kind and status in words, each reply with its day."""
    text = TEXT[locale]
    replies = []
    for line in filter(None, str(row.get("replies_to_you") or "").split("\n")):
        when, _, said = line.partition(" ")
        replies.append({"day": _day(when, locale), "text": said})
    return {
        **row,
        "kind_shown": text.get(f"kind_{row['kind']}", row["kind"]),
        "status_shown": text.get(f"status_{row['status']}", row["status"]),
        "replies": replies,
    }


def _answer_view(row: dict[str, Any]) -> dict[str, Any]:
    """A response as the page lists it: its scores and what the customer wrote."""
    answers = json.loads(row.get("answers") or "{}")
    written = [(key, value) for key, value in answers.items() if isinstance(value, str) and key not in {"nps"}]
    return {**row, "answers_shown": written}


@router.api_route("/p/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def show(request: Request, token: str, session: ReadSession, keys: Keys, now: Now, settings: AppSettings) -> Response:
    customer = _customer(session, keys, token, now)
    if customer is None:
        return invalid_link_page(request)
    locale = _locale(request, customer.locale)
    data = data_rights.collect(session, customer.id, keys=keys)
    pending = [r for r in data["requests"] if r["kind"] == "erasure" and r["status"] != "done"]
    text = TEXT[locale]
    contacts = [
        {"kind": p["kind"], "value": customers.mask_contact(p["kind"], p["value"]) if p["value"] else text["none"]}
        for p in data["contact_points"]
    ]
    expires = page_links.expiry(token)
    return page(
        request,
        "privacy_page.html",
        {
            "page_title": text["title"],
            "p": text,
            "token": token,
            "lang": locale,
            "saved": request.query_params.get("saved") == "1",
            "contacts": contacts,
            "consents": _consent_grid(session, customer.id),
            "history": list(reversed(data["consent_history"]))[:50],
            "messages": list(reversed(data["messages"]))[:50],
            "responses": [_answer_view(row) for row in reversed(data["responses"][-50:])],
            "rewards": list(reversed(data["rewards"]))[:50],
            "balance": data["reward_balance"][0]["balance"] if data["reward_balance"] else 0,
            "cases": [_case_view(row, locale) for row in reversed(data["cases"][-50:])],
            "pending": pending[0] if pending else None,
            "day": lambda value: _day(value, locale),
            "expires": _day(expires, locale) if expires else "",
        },
        locale=locale,
    )


@router.post("/p/{token}/consents", response_class=HTMLResponse)
def change_consents(
    request: Request, token: str, form: FormData, session: WriteSession, keys: Keys, now: Now, settings: AppSettings
) -> Response:
    """The grid as submitted: a ticked box is consent given, an unticked one withdrawn. Only real
    changes reach the ledger."""
    customer = _customer(session, keys, token, now)
    if customer is None:
        return invalid_link_page(request)
    # Against what the page showed: a consent given by default and left ticked is not a change.
    changes: dict[str, dict[str, bool]] = {}
    for row in _consent_grid(session, customer.id):
        for cell in row["channels"]:
            ticked = form.get(f"{row['purpose']}.{cell['channel']}") == "on"
            if ticked != cell["granted"]:
                changes.setdefault(row["purpose"], {})[cell["channel"]] = ticked
    privacy.record_consents(
        session,
        customer.id,
        changes,
        subject_id=customer.external_id,
        source=SOURCE,
        built_in_notice_version=settings.privacy_notice_version,
        actor=Actor(kind="customer", id=str(customer.id)),
        now=now,
    )
    lang = _locale(request, customer.locale)
    return RedirectResponse(f"/p/{token}?saved=1&lang={lang}", status_code=303)


@router.post("/p/{token}/export")
def export(request: Request, token: str, session: WriteSession, keys: Keys, now: Now) -> Response:
    customer = _customer(session, keys, token, now)
    if customer is None:
        return invalid_link_page(request)
    body = data_rights.export_zip(
        session,
        customer.external_id,
        source=SOURCE,
        actor=Actor(kind="customer", id=str(customer.id)),
        keys=keys,
        now=now,
    )
    return Response(
        body,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="my-data-{now:%Y%m%d}.zip"'},
    )


@router.post("/p/{token}/erasure", response_class=HTMLResponse)
def erase(
    request: Request, token: str, form: FormData, session: WriteSession, keys: Keys, now: Now, settings: AppSettings
) -> Response:
    """First POST: the confirmation page. The second, with `confirm=yes`: the request, due after the
    grace period and done by the deadline."""
    customer = _customer(session, keys, token, now)
    if customer is None:
        return invalid_link_page(request)
    locale = _locale(request, customer.locale)
    text = TEXT[locale]
    if form.get("confirm") != "yes":
        return page(
            request,
            "privacy_confirm.html",
            {
                "page_title": text["confirm_heading"],
                "p": text,
                "token": token,
                "lang": locale,
                "days": settings.erasure_days,
            },
            locale=locale,
        )
    row = data_rights.request_erasure(
        session,
        customer.external_id,
        reason=None,
        source=SOURCE,
        actor=Actor(kind="customer", id=str(customer.id)),
        settings=settings,
        keys=keys,
        now=now,
    )
    return page(
        request,
        "message.html",
        {
            "page_title": text["requested_heading"],
            "heading": text["requested_heading"],
            "text": text["requested_text"].format(due=_day(row.due_at, locale), deadline=_day(row.deadline_at, locale)),
        },
        locale=locale,
    )
