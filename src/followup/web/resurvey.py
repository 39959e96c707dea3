"""The customer's "did we solve it?" page after their case was resolved: yes or no, then, after a
yes, a CSAT from 1 to 5. "No" reopens the case for its agent. GET never changes anything (mail
scanners open links); the answers are POSTs. A spent or unknown link gets the same 404 page as
every other link."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from followup.cases import service as cases
from followup.customers import service as customers
from followup.kernel.http import Now, ReadSession, WriteSession
from followup.web.hosted import invalid_link_page, page

router = APIRouter(include_in_schema=False)

TEXT = {
    "zh-CN": {
        "heading": "问题解决了吗？",
        "lead": "我们已处理您反馈的问题（编号 {case}）。",
        "yes": "解决了",
        "no": "还没有",
        "rate_heading": "您对这次处理满意吗？",
        "rate_lead": "请选择 1 到 5 分：1 分非常不满意，5 分非常满意。",
        "submit": "提交",
        "low": "非常不满意",
        "high": "非常满意",
        "thanks_heading": "谢谢您",
        "thanks_text": "您的评价已收到。",
        "again_heading": "我们会再跟进",
        "again_text": "抱歉问题还没有解决，负责的同事会尽快再联系您。",
        "choose": "请选择 1 到 5 之间的分数。",
    },
    "en": {
        "heading": "Did we solve it?",
        "lead": "We have worked on what you told us (case {case}).",
        "yes": "Yes, it is solved",
        "no": "Not yet",
        "rate_heading": "How satisfied are you with how we handled it?",
        "rate_lead": "Pick from 1 (very dissatisfied) to 5 (very satisfied).",
        "submit": "Submit",
        "low": "Very dissatisfied",
        "high": "Very satisfied",
        "thanks_heading": "Thank you",
        "thanks_text": "We have your rating.",
        "again_heading": "We will look at it again",
        "again_text": "We are sorry it is not solved yet; the colleague looking after it will be in touch soon.",
        "choose": "Please pick a score from 1 to 5.",
    },
}


def _locale(session: Session, case: cases.CaseRow) -> str:
    customer = customers.get_by_id(session, case.customer_id)
    locale = customer.locale if customer else "en"
    return locale if locale in TEXT else "en"


def _show(request: Request, case: cases.CaseRow, token: str, locale: str, *, error: str | None = None) -> Response:
    words = TEXT[locale]
    rating = case.resurvey_solved is True
    return page(
        request,
        "resurvey.html",
        {
            "page_title": words["rate_heading" if rating else "heading"],
            "w": words,
            "case_id": case.id,
            "token": token,
            "rating": rating,
            "error": error,
        },
        locale=locale,
        status_code=422 if error else 200,
    )


def _done(request: Request, locale: str, *, again: bool) -> Response:
    words = TEXT[locale]
    prefix = "again" if again else "thanks"
    return page(
        request,
        "message.html",
        {
            "page_title": words[f"{prefix}_heading"],
            "heading": words[f"{prefix}_heading"],
            "text": words[f"{prefix}_text"],
        },
        locale=locale,
    )


@router.api_route("/c/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def show_resurvey(request: Request, token: str, session: ReadSession) -> Response:
    try:
        case = cases.open_resurvey(session, token)
    except cases.ResurveyInvalid:
        return invalid_link_page(request)
    return _show(request, case, token, _locale(session, case))


@router.post("/c/{token}", response_class=HTMLResponse)
def answer_resurvey(
    request: Request,
    token: str,
    session: WriteSession,
    now: Now,
    solved: Annotated[str, Form(max_length=3)] = "",
    csat: Annotated[str, Form(max_length=2)] = "",
) -> Response:
    try:
        case = cases.open_resurvey(session, token)
    except cases.ResurveyInvalid:
        return invalid_link_page(request)
    locale = _locale(session, case)
    if case.resurvey_solved is None and solved in ("yes", "no"):
        cases.answer_resurvey(session, case, solved=solved == "yes", now=now)
        if solved == "no":
            return _done(request, locale, again=True)
        return RedirectResponse(f"/c/{token}", status_code=303)  # the rating that follows a yes
    if case.resurvey_solved is True:
        if csat.strip() not in ("1", "2", "3", "4", "5"):
            return _show(request, case, token, locale, error=TEXT[locale]["choose"])
        cases.rate_resolution(session, case, int(csat), now=now)
        return _done(request, locale, again=False)
    return _show(request, case, token, locale)
