"""The web application: REST API under /api/v1, survey pages under /s and /u, health and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from followup import __version__
from followup.bootstrap import worker_tasks
from followup.cases.endpoints import router as cases_router
from followup.channels.endpoints import router as inbox_router
from followup.customers.endpoints import router as customers_router
from followup.data_rights.endpoints import router as data_rights_router
from followup.dispatch.endpoints import router as messages_router
from followup.events import service as events
from followup.events.endpoints import router as events_router
from followup.followups.call_endpoints import router as calls_router
from followup.followups.case_endpoints import router as case_work_router
from followup.followups.endpoints import router as followups_router
from followup.insights.endpoints import router as insights_router
from followup.kernel.errors import FollowupError
from followup.kernel.http import API_CSP, SECURITY_HEADERS, ResponseHeaders, known_query_only
from followup.kernel.inputs import InputGuard, refusal_page
from followup.kernel.logging import get_logger
from followup.kernel.openapi import install_openapi
from followup.kernel.requests import RequestLog
from followup.kernel.schemas import client_path
from followup.privacy.endpoints import router as privacy_router
from followup.rewards.endpoints import router as rewards_router
from followup.runtime import Runtime
from followup.staff.auth import MetricsReader
from followup.strategies.endpoints import router as strategies_router
from followup.strategies.endpoints import segments_router
from followup.surveys.endpoints import router as surveys_router
from followup.web.audit_api import router as audit_router
from followup.web.console.router import install_console
from followup.web.hooks import router as hooks_router
from followup.web.hosted import router as hosted_router
from followup.web.methods import allow_header
from followup.web.privacy_page import router as privacy_page_router
from followup.web.privacy_pages import router as privacy_pages_router
from followup.web.resurvey import router as resurvey_router
from followup.web.staff_admin import router as staff_router
from followup.web.webhooks_api import router as webhooks_router

log = get_logger(__name__)
REQUESTS = Counter("followup_http_requests_total", "HTTP requests answered", ["method", "status"])


def _error(
    status: int, code: str, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"error": {"code": code, "message": message, "field": field}}, headers=headers
    )


def _validation_problem(exc: RequestValidationError) -> tuple[int, str, str, str | None]:
    """(status, code, message, field) of the first error pydantic found."""
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": "invalid"}
    kind = str(first.get("type", "invalid"))
    raw_loc = tuple(first.get("loc", ()))
    if raw_loc[:1] == ("body",):
        loc = client_path(raw_loc[1:], exc.body, kind)
    else:
        loc = [str(part) for part in raw_loc if part not in ("query", "path", "header")]
    field = ".".join(loc) or None
    if kind == "json_invalid":
        return (400, "malformed_json", "The request body is not valid JSON.", None)
    if kind == "missing" and not loc:
        return (400, "missing_body", "This request needs a JSON body.", None)
    if not loc and kind in ("model_type", "model_attributes_type", "dict_type"):
        return (422, "invalid_body", "The request body must be a JSON object.", None)
    code = {"missing": "missing_field", "extra_forbidden": "unknown_field"}.get(kind, "invalid_field")
    # A ValueError raised by our own validators already is the sentence to show.
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        message = f"'{loc[-1] if loc else ''}' is not a field this request accepts"
    elif kind == "missing":
        message = f"'{field}' is required"
    else:
        message = f"{field}: {message}" if field else message
    return (422, code, message, field)


def _at_start(runtime: Runtime) -> None:
    """What every process does once before its first request (the worker does it too): erase again
    any customer a database restored from an older backup brought back (ADR 0024)."""
    for task in worker_tasks().at_start:
        try:
            with runtime.session() as session:
                task(
                    session,
                    now=runtime.clock.now(),
                    settings=runtime.settings,
                    keys=runtime.keys,
                    limit=0,
                    one_by_one=False,
                )
        except Exception as exc:  # noqa: BLE001 - the worker tries again; serving goes on
            log.warning("start_task_failed", error=type(exc).__name__)


def create_app(runtime: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(_at_start, runtime)
        yield

    app = FastAPI(
        lifespan=lifespan,
        title="followup",
        version=__version__,
        description="Follow-up engine for digital wallets: events in, follow-ups out, answers back.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.event_history = events.event_history  # strategy previews replay stored events through it

    # The customers' pages first: routes are matched in order, and a one-click answer should not be
    # tried against every API route before its own. Their paths share no prefix with the others.
    app.include_router(hosted_router)
    app.include_router(privacy_page_router)
    app.include_router(resurvey_router)
    app.include_router(privacy_pages_router)
    for router in (
        customers_router,
        data_rights_router,
        inbox_router,
        messages_router,
        rewards_router,
        events_router,
        surveys_router,
        strategies_router,
        segments_router,
        followups_router,
        cases_router,
        case_work_router,
        calls_router,
        insights_router,
        webhooks_router,
        staff_router,
        audit_router,
        privacy_router,
    ):
        app.include_router(router, prefix="/api/v1", dependencies=[Depends(known_query_only)])
    app.include_router(hooks_router)
    install_console(app)
    app.mount("/static", StaticFiles(directory=str(Path(__file__).parent / "web" / "static")), name="static")
    install_openapi(app)

    @app.exception_handler(FollowupError)
    async def _followup_error(_request: Request, exc: FollowupError) -> JSONResponse:
        if exc.status_code >= 500:
            log.error("request_failed", code=exc.code, message=exc.message)
        return _error(exc.status_code, exc.code, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if not request.url.path.startswith("/api/"):
            # A browser's form (console sign-in, a survey page) gets a page, never JSON.
            status, _code, message, _field = _validation_problem(exc)
            return HTMLResponse(refusal_page(f"The form could not be used: {message}"), status_code=status)
        return _error(*_validation_problem(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI answers 400 when it cannot parse a body at all (bad encoding, nesting too deep,
        # a broken multipart form on a survey page).
        if exc.status_code == 400 and not request.url.path.startswith("/api/"):
            return _error(400, "malformed_form", "The form could not be read; open the link again and resubmit.")
        code = {400: "malformed_json", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = {
            400: "The request body is not valid JSON.",
            404: "No such resource.",
            405: "This method is not allowed here.",
        }.get(exc.status_code, str(exc.detail))
        if exc.status_code == 405:
            # RFC 9110 §15.5.6: a 405 names the methods the path does answer.
            return _error(405, code, message, headers={"Allow": allow_header(request)})
        return _error(exc.status_code, code, message)

    hsts = runtime.settings.public_url.startswith("https://")  # served over TLS: tell browsers to stay on it

    app.add_middleware(
        ResponseHeaders, hsts=hsts, count=lambda method, status: REQUESTS.labels(method, str(status)).inc()
    )

    # Added last, so outermost: the guard sees every request before routing, and the request log
    # wraps everything, including the guard's refusals.
    # Their own answers (a refusal, a 500) never pass `ResponseHeaders`, so they carry the headers here.
    own_headers = {**SECURITY_HEADERS, "Content-Security-Policy": API_CSP, "Cache-Control": "no-store"}
    if hsts:
        own_headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    app.add_middleware(
        InputGuard,
        max_body_bytes=runtime.settings.max_body_bytes,
        large_bodies={"/api/v1/events": runtime.settings.max_events_body_bytes},
        batches=frozenset({"/api/v1/events"}),
        extra_headers=own_headers,
    )
    app.add_middleware(RequestLog, extra_headers=own_headers)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, Any]:
        with runtime.read_session() as session:
            session.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    @app.get("/metrics", include_in_schema=False, dependencies=[MetricsReader])
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    return app
