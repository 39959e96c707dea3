"""The API's OpenAPI document, true to what the API answers.

FastAPI's own document lists 200 and a 422 shaped `{"detail": [...]}`, and shows authentication as
an optional header. The API answers every error as `{"error": {"code", "message", "field"}}`, with
the statuses below, and authenticates with a bearer key. Here the generated document is mended once,
on first request, so that a client generated from it, or a fuzzer checking answers against it,
meets what the server does.

Which statuses an operation may answer:
- every operation: 400 (a body that is not JSON, a control character anywhere in the request),
  422 (a field or parameter out of its bounds), 500 (a bug; its message names the request id);
- an operation behind a key: 401, and 403 for a key without the scope the route needs;
- an operation with a request body: 413 (a body over the size limit);
- whatever the route declares itself with `may_answer(...)`: 404 when the path, a filter or the
  body names something that does not exist, 409 on a duplicate key or a closed case.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

DESCRIPTIONS = {
    400: "The body is not JSON, or the request holds a control character (in the path, the query string or the body).",
    401: "No API key, or a key that is not valid or was revoked.",
    403: "The API key lacks the scope this operation needs; the message names it.",
    404: "Nothing with that id or key.",
    409: "The request conflicts with what is stored (the key is taken, the case is closed).",
    413: "The body is larger than this endpoint accepts.",
    422: "A field or parameter is missing, unknown, or out of its bounds; `field` names it.",
    500: "Something went wrong on the server; the message names the request id it was logged under.",
}

EXAMPLES: dict[int, tuple[str, str, str | None]] = {
    400: (
        "invalid_character",
        "The query string contains a control character (U+0000); remove it and send the request again.",
        None,
    ),
    401: ("invalid_api_key", "This API key is not valid or was revoked.", None),
    403: (
        "scope_missing",
        "This API key may not do this: it needs the scope 'customers:write' and holds read. "
        "Create a key with that scope (`followup apikey create --scope`).",
        None,
    ),
    404: ("not_found", "No strategy with key 'refund-csat'.", "strategy"),
    409: ("survey_exists", "A survey with key 'payment-csat' already exists.", "key"),
    413: ("body_too_large", "The request body is larger than 1,048,576 bytes, the most this endpoint accepts.", None),
    422: ("invalid_field", "limit: Input should be less than or equal to 500", "limit"),
    500: ("internal_error", "Something went wrong on our side; it has been logged as request 3f2a9c0d1e4b5a69.", None),
}


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable reason, e.g. `invalid_field`, `survey_exists`.")
    message: str = Field(description="A sentence a person can act on.")
    field: str | None = Field(description="The field or parameter at fault, dotted for nested fields, or null.")


class ErrorBody(BaseModel):
    """Every error the API answers, whatever its status."""

    error: ErrorDetail


def may_answer(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that answers an error the rules above do not infer."""
    return {status: {"description": DESCRIPTIONS[status]} for status in statuses}


_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_FIELDS = ("code", "message", "field")


def _error_response(status: int) -> dict[str, Any]:
    return {
        "description": DESCRIPTIONS[status],
        "content": {
            "application/json": {
                "schema": _ERROR_REF,
                "example": {"error": dict(zip(_FIELDS, EXAMPLES[status], strict=True))},
            }
        },
    }


def _mend_operation(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    statuses = {400, 422, 500}
    if operation.get("security"):
        statuses.update((401, 403))
    if "requestBody" in operation:
        statuses.add(413)
    statuses.update(int(status) for status in responses if str(status).startswith(("4", "5")))
    for status in sorted(statuses):
        responses[str(status)] = _error_response(status)


def build_document(app: FastAPI, *, prefix: str) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    for path, operations in document.get("paths", {}).items():
        if not path.startswith(prefix):
            continue
        for operation in operations.values():
            _mend_operation(operation)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    # FastAPI's validation shape is never answered here.
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["ErrorDetail"] = ErrorDetail.model_json_schema()
    schemas["ErrorBody"] = {
        **ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}"),
        "title": "ErrorBody",
    }
    schemas["ErrorBody"].pop("$defs", None)
    return document


def install_openapi(app: FastAPI, *, prefix: str = "/api/v1") -> None:
    """Serve the mended document at the app's `openapi_url` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_document(app, prefix=prefix)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
