"""Pages customers see: the survey behind a message's link, and one-click unsubscribe.

GET (and HEAD, which answers as GET without the body) never changes anything: mail scanners open
links on their own; every change is a POST. Unknown, used and expired links all get the same page
with status 404, so a probe cannot tell them apart — except for the customer who has just answered,
whose redirect carries a signed receipt (see `receipts`) that shows the thank-you page instead.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from followup.channels import service as inbox
from followup.config import Settings
from followup.customers import service as customers
from followup.dispatch import service as dispatch
from followup.followups import service as followups
from followup.kernel.errors import NotFound
from followup.kernel.http import AppSettings, Keys, Now, ReadSession, WriteSession, runtime_of
from followup.privacy import service as privacy
from followup.surveys import service as surveys
from followup.surveys.schemas import (
    RATING_SCALES,
    YES_NO,
    YES_NO_ANSWERS,
    AnswerProblem,
    first_rating_question,
    slot_value,
)
from followup.surveys.service import (
    AnswerInvalid,
    InterviewAlreadyBooked,
    InvitationInvalid,
    OpenInvitation,
    SlotTaken,
)
from followup.web.receipts import AnswerReceipt, issue_receipt, read_receipt

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

TEXT: dict[str, dict[str, str]] = {
    "zh-CN": {
        "rating_lead": "请选择分数后提交。",
        "submit": "提交",
        "skip": "跳过",
        "optional": "选填",
        "thanks_rating": "已收到您的评分，谢谢！",
        "details_lead": "愿意再多告诉我们一点吗？以下问题均可跳过。",
        "thanks_heading": "感谢您的反馈",
        "thanks_text": "您的意见已记录，我们会认真阅读。",
        "footer": "您的回答仅用于改进服务，并受隐私声明保护。",
        "privacy_link": "隐私声明",
        "unsubscribe_heading": "退订反馈邮件",
        "unsubscribe_lead": "确认后，我们将不再通过邮件邀请您参与回访。",
        "unsubscribe_button": "确认退订",
        "unsubscribed_heading": "已退订",
        "unsubscribed_text": "您将不会再收到回访邮件。如需恢复，可在钱包应用的隐私设置中开启。",
        "already_unsubscribed_heading": "您已退订",
        "already_unsubscribed_text": "您此前已退订回访邮件，本次无需更改。如需恢复，可在钱包应用的隐私设置中开启。",
        "reward": "感谢参与，{points} 积分已发放到您的账户。",
        "interview_minutes": "{minutes} 分钟",
        "interview_none_left": "可预约的时间已经约满，欢迎直接跳过。",
        "interview_booked": "您的访谈已预约：{when}。{where}。",
        "interview_emailed": "日历邀请已发送到您的邮箱。",
        "slot_taken": "这个时间刚刚被别人预约了，请另选一个时间。",
        "yes_no_lead": "请点击下方按钮回答。",
        "yes": "是我",
        "no": "不是我",
        "denied_heading": "我们已通知安全团队",
        "denied_text": "如果不是您本人操作，您的账户可能有风险。安全团队会尽快联系您，请立即冻结账户：",
        "confirmed_heading": "谢谢您的确认",
        "confirmed_text": "是您本人操作，无需再做任何事。",
    },
    "en": {
        "rating_lead": "Pick a score, then submit.",
        "submit": "Submit",
        "skip": "Skip",
        "optional": "optional",
        "thanks_rating": "Thank you, we have your rating!",
        "details_lead": "Would you tell us a little more? Every question here is optional.",
        "thanks_heading": "Thank you for your feedback",
        "thanks_text": "Your answers are in; we read every one.",
        "footer": "Your answers are used only to improve our service and are protected by our privacy notice.",
        "privacy_link": "Privacy notice",
        "unsubscribe_heading": "Unsubscribe from feedback emails",
        "unsubscribe_lead": "Once you confirm, we will not invite you to give feedback by email any more.",
        "unsubscribe_button": "Unsubscribe",
        "unsubscribed_heading": "You are unsubscribed",
        "unsubscribed_text": (
            "You will not get feedback emails from us. You can turn them back on in the wallet app's privacy settings."
        ),
        "already_unsubscribed_heading": "You were already unsubscribed",
        "already_unsubscribed_text": (
            "You had already unsubscribed from feedback emails, so nothing changed. "
            "You can turn them back on in the wallet app's privacy settings."
        ),
        "reward": "Thank you: {points} points have been added to your account.",
        "interview_minutes": "{minutes} minutes",
        "interview_none_left": "Every time has been booked; you may skip this question.",
        "interview_booked": "Your interview is booked: {when}. {where}.",
        "interview_emailed": "A calendar invitation is on its way to your email.",
        "slot_taken": "That time was just taken; please pick another.",
        "yes_no_lead": "Tap your answer below.",
        "yes": "Yes, it was me",
        "no": "No, it wasn't me",
        "denied_heading": "We have alerted our security team",
        "denied_text": (
            "If it was not you, your account may be at risk. Our security team will contact you soon; "
            "freeze your account right away:"
        ),
        "confirmed_heading": "Thank you for confirming",
        "confirmed_text": "It was you, so there is nothing more to do.",
    },
}
# What a bad answer means, said to the customer in their language (the API keeps its English).
PROBLEMS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "needs_answer": "请回答「{prompt}」。",
        "out_of_range": "「{prompt}」请选择 {low} 到 {high} 之间的分数。",
        "not_an_option": "「{prompt}」请从给出的选项中选择。",
        "single_choice": "「{prompt}」只能选一项。",
        "needs_text": "「{prompt}」请填写文字。",
        "too_long": "「{prompt}」最多填写 {max_length} 个字。",
        "unknown_question": "这份问卷里没有这道题，请刷新页面后再试。",
        "not_a_slot": "「{prompt}」请从列出的时间中选择。",
        "slot_past": "「{prompt}」您选的时间已经过去，请另选一个时间。",
        "not_yes_no": "「{prompt}」请选择「是我」或「不是我」。",
    },
    "en": {
        "needs_answer": "Please answer “{prompt}”.",
        "out_of_range": "For “{prompt}”, pick a score from {low} to {high}.",
        "not_an_option": "For “{prompt}”, pick one of the options shown.",
        "single_choice": "For “{prompt}”, pick only one option.",
        "needs_text": "For “{prompt}”, please type your answer.",
        "too_long": "For “{prompt}”, use at most {max_length} characters.",
        "unknown_question": "This survey has no such question; reload the page and try again.",
        "not_a_slot": "For “{prompt}”, pick one of the times shown.",
        "slot_past": "For “{prompt}”, that time has passed; please pick another.",
        "not_yes_no": "For “{prompt}”, pick “Yes, it was me” or “No, it wasn't me”.",
    },
}
SCALE_LABELS = {
    "zh-CN": {"nps": ("完全不可能", "非常可能"), "csat": ("非常不满意", "非常满意"), "ces": ("非常困难", "非常容易")},
    "en": {
        "nps": ("Not at all likely", "Extremely likely"),
        "csat": ("Very dissatisfied", "Very satisfied"),
        "ces": ("Very difficult", "Very easy"),
    },
}


async def _form(request: Request) -> dict[str, Any]:
    form = await request.form()
    data: dict[str, Any] = {}
    for key in form:
        values = [v for v in form.getlist(key) if isinstance(v, str)]
        data[key] = values if len(values) > 1 else (values[0] if values else "")
    return data


FormData = Annotated[dict[str, Any], Depends(_form)]


def privacy_url(settings: Settings, locale: str) -> str:
    """The current privacy notice's page, in the customer's language: every page and message links to it."""
    return f"{settings.public_url}/privacy?lang={locale if locale in TEXT else 'en'}"


def page(request: Request, name: str, context: dict[str, Any], *, locale: str, status_code: int = 200) -> Response:
    """A customer's page in their locale (`t` holds its shared texts, such as the footer, which
    links to the privacy notice)."""
    settings: Settings = runtime_of(request).settings
    shared = {"locale": locale, "t": TEXT.get(locale, TEXT["en"]), "privacy_url": privacy_url(settings, locale)}
    return templates.TemplateResponse(request, name, {**shared, **context}, status_code=status_code)


def invalid_link_page(request: Request) -> Response:
    return page(
        request,
        "message.html",
        {
            "page_title": "链接已失效 · Link not valid",
            "heading": "链接已失效 · This link is not valid",
            "text": "此链接不存在、已使用或已过期。 · This link does not exist, was already used, or has expired.",
        },
        locale="zh-CN",
        status_code=404,
    )


def _locale_of(session: Any, opened: OpenInvitation) -> str:
    found = customers.locale_and_external_id(session, opened.invitation.customer_id)
    return found[0] if found else "en"


def _reward_text(locale: str, points: int) -> str | None:
    return TEXT.get(locale, TEXT["en"])["reward"].format(points=points) if points > 0 else None


def _problem_text(exc: AnswerInvalid, opened: OpenInvitation, locale: str) -> str:
    problem = exc.__cause__
    if not isinstance(problem, AnswerProblem):
        return exc.message
    prompt = next((q.prompt.get(locale) for q in opened.questions if q.id == problem.question_id), problem.question_id)
    return PROBLEMS.get(locale, PROBLEMS["en"])[problem.kind].format(prompt=prompt, **problem.params)


def _rating_page(
    request: Request,
    opened: OpenInvitation,
    token: str,
    *,
    locale: str,
    selected: int | str | None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    question = first_rating_question(opened.questions)
    if question.type == YES_NO:
        return _yes_no_page(
            request, opened, token, locale=locale, selected=selected, error=error, status_code=status_code
        )
    low, high = RATING_SCALES[question.type]
    low_label, high_label = SCALE_LABELS.get(locale, SCALE_LABELS["en"])[question.type]
    title = opened.title.get(locale)
    return page(
        request,
        "rating.html",
        {
            "page_title": title,
            "title": title,
            "token": token,
            "question": question,
            "scale": range(low, high + 1),
            "selected": selected,
            "low_label": low_label,
            "high_label": high_label,
            "error": error,
        },
        locale=locale,
        status_code=status_code,
    )


def _yes_no_page(
    request: Request,
    opened: OpenInvitation,
    token: str,
    *,
    locale: str,
    selected: int | str | None,
    error: str | None,
    status_code: int,
) -> Response:
    """A yes_no question as two buttons, each of which posts the answer: one tap on the page. The
    link's `?answer=` only marks the button the customer chose in the message, as a score does."""
    title = opened.title.get(locale)
    return page(
        request,
        "yes_no.html",
        {
            "page_title": title,
            "title": title,
            "token": token,
            "question": first_rating_question(opened.questions),
            "selected": selected if selected in YES_NO_ANSWERS else None,
            "error": error,
        },
        locale=locale,
        status_code=status_code,
    )


def _answered_page(request: Request, answered: AnswerReceipt, settings: Settings) -> Response:
    """The page after a one-click answer that used the link up: after a yes_no question's "no",
    how to freeze the account (the wallet's words, in the customer's language); after its "yes",
    a short thank-you; after a rating, the usual thank-you."""
    if answered.said is None:
        return _thanks_page(request, answered.locale, reward_points=answered.points)
    text = TEXT.get(answered.locale, TEXT["en"])
    denied = answered.said == "no"
    heading = text["denied_heading" if denied else "confirmed_heading"]
    return page(
        request,
        "message.html",
        {
            "page_title": heading,
            "heading": heading,
            "text": text["denied_text" if denied else "confirmed_text"],
            "alert": settings.freeze_instructions(answered.locale) if denied else None,
            "notice": _reward_text(answered.locale, answered.points),
        },
        locale=answered.locale,
    )


def _slot_days(slots: list[dt.datetime], locale: str) -> list[dict[str, Any]]:
    """Free slots grouped by their day on the wall clock they were offered in, for the page."""
    days: list[dict[str, Any]] = []
    for slot in slots:
        day, zone = surveys.day_text(slot, locale), surveys.offset_text(slot)
        if not days or (days[-1]["day"], days[-1]["zone"]) != (day, zone):
            days.append({"day": day, "zone": zone, "slots": []})
        days[-1]["slots"].append({"value": slot_value(slot), "label": surveys.time_text(slot, locale)})
    return days


def _details_page(
    request: Request,
    session: Any,
    opened: OpenInvitation,
    token: str,
    *,
    locale: str,
    now: dt.datetime,
    error: str | None = None,
    status_code: int = 200,
    reward_points: int = 0,
    values: dict[str, Any] | None = None,
    alert: str | None = None,
) -> Response:
    rating = first_rating_question(opened.questions)
    title = opened.title.get(locale)
    free = surveys.free_interview_slots(session, opened, now=now)
    return page(
        request,
        "details.html",
        {
            "page_title": title,
            "title": title,
            "token": token,
            "questions": [q for q in opened.questions if q.id != rating.id],
            "scales": {kind: range(low, high + 1) for kind, (low, high) in RATING_SCALES.items()},
            "slot_days": {qid: _slot_days(slots, locale) for qid, slots in free.items()},
            "where": {q.id: surveys.where_text(q.location, locale) for q in opened.questions if q.type == "interview"},
            "error": error,
            "reward": _reward_text(locale, reward_points),
            "alert": alert,
            # What the customer posted, shown again with the error so that nothing typed is lost.
            "values": values or {},
        },
        locale=locale,
        status_code=status_code,
    )


def _thanks_page(request: Request, locale: str, *, reward_points: int = 0, notice: str | None = None) -> Response:
    text = TEXT.get(locale, TEXT["en"])
    return page(
        request,
        "message.html",
        {
            "page_title": text["thanks_heading"],
            "heading": text["thanks_heading"],
            "text": text["thanks_text"],
            "notice": notice or _reward_text(locale, reward_points),
        },
        locale=locale,
    )


def _booked_text(session: Any, interview_id: int | None, *, emailed: bool, locale: str) -> str | None:
    interview = surveys.describe_booking(session, interview_id) if interview_id is not None else None
    if interview is None:
        return None
    text = TEXT.get(locale, TEXT["en"])
    booked = text["interview_booked"].format(
        when=surveys.when_text(interview.starts_at, interview.ends_at, locale),
        where=surveys.where_text(interview.location, locale),
    )
    return f"{booked} {text['interview_emailed']}" if emailed else booked


@router.api_route("/s/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def show_survey(
    request: Request,
    token: str,
    session: WriteSession,
    now: Now,
    keys: Keys,
    settings: AppSettings,
    score: str | None = None,
    answer: str | None = None,
    receipt: str | None = None,
) -> Response:
    # The receipt of the rating just given: the reward is shown on the first page after it, and only
    # while the receipt lasts; a later visit gets the plain pages.
    answered = read_receipt(keys, token, receipt, now=now)
    try:
        opened = surveys.open_invitation(session, token, now=now)
    except InvitationInvalid:
        if answered is not None:
            return _answered_page(request, answered, settings)
        return invalid_link_page(request)
    if request.method == "GET":  # a HEAD (a link checker's) is no click
        dispatch.mark_clicked(session, opened.invitation.followup_id, channel=opened.invitation.channel, now=now)
    locale = _locale_of(session, opened)
    points = answered.points if answered is not None else 0
    if opened.state == "details":
        if not [q for q in opened.questions if q.id != first_rating_question(opened.questions).id]:
            if answered is not None:
                return _answered_page(request, answered, settings)
            return _thanks_page(request, locale, reward_points=points)
        # After a "no", how to freeze the account comes before any optional question.
        alert = settings.freeze_instructions(locale) if answered is not None and answered.said == "no" else None
        return _details_page(request, session, opened, token, locale=locale, now=now, reward_points=points, alert=alert)
    # Only ASCII 0-9 selects a score: "²" passes str.isdigit() but int() cannot read it.
    selected: int | str | None = None
    if score is not None and re.fullmatch(r"[0-9]{1,2}", score.strip()):
        selected = int(score)
    if answer is not None and answer.strip().lower() in YES_NO_ANSWERS:
        selected = answer.strip().lower()
    return _rating_page(request, opened, token, locale=locale, selected=selected)


@router.api_route("/r/{code}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def follow_short_link(code: str, request: Request, session: ReadSession, keys: Keys, now: Now) -> Response:
    """An SMS's short link: a redirect to the survey link it stands for, while its invitation may
    be answered; the same 404 page as an unknown link otherwise."""
    target = inbox.resolve_short_link(session, code, keys=keys, now=now) if len(code) <= 64 else None
    if target is None:
        return invalid_link_page(request)
    return RedirectResponse(target, status_code=302, headers={"Cache-Control": "no-store"})


@router.post("/s/{token}", response_class=HTMLResponse)
def answer_survey(
    request: Request, token: str, form: FormData, session: WriteSession, now: Now, keys: Keys, settings: AppSettings
) -> Response:
    try:
        opened = surveys.open_invitation(session, token, now=now)
    except InvitationInvalid:
        return invalid_link_page(request)
    locale = _locale_of(session, opened)
    step = form.get("step") or opened.state
    answers = {k: v for k, v in form.items() if k not in ("step", "skip")}
    try:
        if step == "rating":
            outcome = followups.record_rating(
                session, token, answers, now=now, keys=keys, slas=settings.case_sla, opened=opened
            )
            # Committed here rather than on the way out: SQLite's write lock, which every other
            # answer waits for, is let go before the receipt is made.
            session.commit()
            # POST/redirect/GET: a reload does not post the rating again. The GET after the redirect
            # shows the optional questions, or — when the rating used the link up — the thank-you page,
            # which only the receipt can open.
            page_locale = locale if locale in TEXT else "en"
            signed = issue_receipt(
                keys, token, points=outcome.reward_points, locale=page_locale, now=now, said=outcome.said
            )
            return RedirectResponse(f"/s/{token}?receipt={quote(signed)}", status_code=303)
        if step == "details":
            outcome = followups.record_details(
                session, token, {} if form.get("skip") else answers, now=now, keys=keys, slas=settings.case_sla
            )
            booked = _booked_text(session, outcome.interview_id, emailed=outcome.confirmation_queued, locale=locale)
            return _thanks_page(request, locale, notice=booked)
    except InvitationInvalid:
        session.rollback()
        return invalid_link_page(request)
    except AnswerInvalid as exc:
        session.rollback()
        error = _problem_text(exc, opened, locale)
        if opened.state == "rating":
            return _rating_page(request, opened, token, locale=locale, selected=None, error=error, status_code=422)
        return _details_page(
            request, session, opened, token, locale=locale, now=now, error=error, status_code=422, values=answers
        )
    except (SlotTaken, InterviewAlreadyBooked):
        # Nothing of this step was kept: the customer picks another time on the same link, the
        # slot just taken no longer offered.
        session.rollback()
        error = TEXT.get(locale, TEXT["en"])["slot_taken"]
        return _details_page(
            request, session, opened, token, locale=locale, now=now, error=error, status_code=409, values=answers
        )
    return invalid_link_page(request)


@router.api_route("/u/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def show_unsubscribe(request: Request, token: str, session: ReadSession) -> Response:
    try:
        link = privacy.access_unsubscribe_link(session, token)
    except NotFound:
        return invalid_link_page(request)
    customer = customers.get_by_id(session, link.customer_id)
    locale = customer.locale if customer else "en"
    text = TEXT.get(locale, TEXT["en"])
    return page(request, "unsubscribe.html", {"page_title": text["unsubscribe_heading"], "token": token}, locale=locale)


@router.post("/u/{token}", response_class=HTMLResponse)
def unsubscribe(request: Request, token: str, session: WriteSession, now: Now, settings: AppSettings) -> Response:
    """RFC 8058 one-click: a mail client POSTs `List-Unsubscribe=One-Click` here; the page's button too.

    Every use withdraws the consent again (it may have been given back since), and the page says
    whether this use changed anything.
    """
    try:
        link = privacy.access_unsubscribe_link(session, token)
    except NotFound:
        return invalid_link_page(request)
    external = customers.external_ids(session, [link.customer_id])
    withdrawn = privacy.unsubscribe(
        session, token, subject_id_of=external, built_in_notice_version=settings.privacy_notice_version, now=now
    )
    customer = customers.get_by_id(session, link.customer_id)
    locale = customer.locale if customer else "en"
    text = TEXT.get(locale, TEXT["en"])
    prefix = "unsubscribed" if withdrawn else "already_unsubscribed"
    return page(
        request,
        "message.html",
        {
            "page_title": text[f"{prefix}_heading"],
            "heading": text[f"{prefix}_heading"],
            "text": text[f"{prefix}_text"],
        },
        locale=locale,
    )
