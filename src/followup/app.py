"""The web application: REST API under /api/v1, survey pages under /s and /u, health and metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

from followup import __version__
from followup.cases.endpoints import router as cases_router
from followup.channels.endpoints import router as inbox_router
from followup.customers.endpoints import router as customers_router
from followup.events.endpoints import router as events_router
from followup.followups.endpoints import router as followups_router
from followup.insights.endpoints import router as insights_router
from followup.kernel.errors import FollowupError
from followup.kernel.http import API_CSP, PAGE_CSP, SECURITY_HEADERS
from followup.kernel.logging import get_logger
from followup.rewards.endpoints import router as rewards_router
from followup.runtime import Runtime
from followup.strategies.endpoints import router as strategies_router
from followup.surveys.endpoints import router as surveys_router
from followup.web.hosted import router as hosted_router

log = get_logger(__name__)
REQUESTS = Counter("followup_http_requests_total", "HTTP requests answered", ["method", "status"])


def _error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message, "field": field}})


def _validation_error(exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": "invalid"}
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "header")]
    field = ".".join(loc) or None
    if first.get("type") == "json_invalid":
        return _error(400, "malformed_json", "The request body is not valid JSON.")
    if first.get("type") == "missing" and not loc:
        return _error(400, "missing_body", "This request needs a JSON body.")
    kind = str(first.get("type", "invalid"))
    code = {"missing": "missing_field", "extra_forbidden": "unknown_field"}.get(kind, "invalid_field")
    message = str(first.get("msg", "invalid value"))
    if kind == "extra_forbidden":
        message = f"'{loc[-1] if loc else ''}' is not a field this request accepts"
    elif kind == "missing":
        message = f"'{field}' is required"
    else:
        message = f"{field}: {message}" if field else message
    return _error(422, code, message, field)


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="followup",
        version=__version__,
        description="Follow-up engine for digital wallets: events in, follow-ups out, answers back.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime

    for router in (
        customers_router,
        inbox_router,
        rewards_router,
        events_router,
        surveys_router,
        strategies_router,
        followups_router,
        cases_router,
        insights_router,
    ):
        app.include_router(router, prefix="/api/v1")
    app.include_router(hosted_router)
    app.mount("/static", StaticFiles(directory=str(Path(__file__).parent / "web" / "static")), name="static")

    @app.exception_handler(FollowupError)
    async def _followup_error(_request: Request, exc: FollowupError) -> JSONResponse:
        if exc.status_code >= 500:
            log.error("request_failed", code=exc.code, message=exc.message)
        return _error(exc.status_code, exc.code, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = {404: "No such resource.", 405: "This method is not allowed here."}.get(
            exc.status_code, str(exc.detail)
        )
        return _error(exc.status_code, code, message)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", error=type(exc).__name__)
        return _error(500, "internal_error", "Something went wrong on our side; it has been logged.")

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        path = request.url.path
        is_page = path.startswith(("/s/", "/u/"))
        response.headers.setdefault("Content-Security-Policy", PAGE_CSP if is_page else API_CSP)
        if is_page or path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        REQUESTS.labels(request.method, str(response.status_code)).inc()
        return response

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, Any]:
        with runtime.read_session() as session:
            session.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    return app
