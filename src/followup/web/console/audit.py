"""The auditor's pages: the audit log (who changed money, privacy, contact points and staff, with
the values before and after) and the consent ledger (every grant and withdrawal, its source and
the notice it was given under), newest first, paged."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from followup.customers import service as customers
from followup.kernel.http import ReadSession
from followup.privacy import service as privacy
from followup.web.console.auth import ConsoleStaff
from followup.web.console.pages import PAGE_SIZE, offset_of, page_number_of, paging, problem_page, render_page

router = APIRouter(prefix="/console", include_in_schema=False)
LOGS = ("audit", "consents")
SUBJECT_MAX = 32


@router.get("/audit", response_class=HTMLResponse)
def audit_log(
    request: Request,
    signed_in: ConsoleStaff,
    session: ReadSession,
    log: str = "audit",
    subject: str = "",
    page: str = "1",
) -> Response:
    if log not in LOGS or len(subject) > SUBJECT_MAX or (subject and not subject.replace("_", "").isalnum()):
        return problem_page(
            request,
            signed_in,
            title="No such log",
            text="Choose the audit log or the consent ledger; a subject is a word like customer or staff.",
            status_code=400,
            choices=[("audit log", "/console/audit"), ("consent ledger", "/console/audit?log=consents")],
            back="/console/audit",
        )
    number = page_number_of(request, signed_in, page)
    if isinstance(number, Response):
        return number
    context: dict[str, object] = {"title": "Audit", "nav": "audit", "log": log, "subject": subject}
    if log == "audit":
        entries, total = privacy.audit_page(
            session, subject_type=subject or None, limit=PAGE_SIZE, offset=offset_of(number)
        )
        context["entries"] = entries
        # The log names customers by followup's own id (what stays after an erasure): show the
        # wallet's id beside it while the customer has one.
        ids = {int(e.subject_id) for e in entries if e.subject_type == "customer" and e.subject_id.isdigit()}
        context["customer_names"] = {str(k): v for k, v in customers.external_ids(session, ids).items()}
    else:
        records, total = privacy.consent_ledger_page(
            session, customer_id=None, limit=PAGE_SIZE, offset=offset_of(number)
        )
        context["records"] = records
        context["customer_ids"] = customers.external_ids(session, {r.customer_id for r in records})
    return render_page(request, "audit.html", signed_in, {**context, **paging(number, total)})
