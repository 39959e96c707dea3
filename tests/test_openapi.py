"""The OpenAPI document says what the API does: its statuses, its error shape, its authentication.

The served answers are checked against the document by schemathesis (tests/e2e/test_schemathesis.py);
here the document itself is read, and the copy in docs/api/ is held to the served one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from followup.app import create_app
from followup.runtime import Runtime

DOCUMENTED = Path(__file__).resolve().parent.parent / "docs" / "api" / "openapi.json"

# Per operation: the statuses it may answer besides its success.
STATUSES = {
    ("get", "/api/v1/cases"): {400, 401, 403, 404, 422, 500},
    ("post", "/api/v1/cases/{case_id}/close"): {400, 401, 403, 404, 409, 413, 422, 500},
    ("get", "/api/v1/cases/{case_id}"): {400, 401, 403, 404, 422, 500},
    ("get", "/api/v1/audit"): {400, 401, 403, 422, 500},
    ("get", "/api/v1/privacy/notices"): {400, 401, 403, 422, 500},
    ("get", "/api/v1/privacy/notices/current"): {400, 401, 403, 422, 500},
    ("get", "/api/v1/privacy/notices/{version}"): {400, 401, 403, 404, 422, 500},
    ("put", "/api/v1/privacy/notices/{version}"): {400, 401, 403, 409, 413, 422, 500},
    ("get", "/api/v1/customers/{customer_id}/consents/history"): {400, 401, 403, 404, 422, 500},
    ("post", "/api/v1/calls/claim"): {400, 401, 403, 409, 422, 500},
    ("get", "/api/v1/calls/{call_id}"): {400, 401, 403, 404, 422, 500},
    ("post", "/api/v1/calls/{call_id}/reveal"): {400, 401, 403, 404, 409, 413, 422, 500},
    ("post", "/api/v1/calls/{call_id}/outcome"): {400, 401, 403, 404, 409, 413, 422, 500},
    ("get", "/api/v1/audit/consents"): {400, 401, 403, 404, 422, 500},
    ("post", "/api/v1/cases/{case_id}/assign"): {400, 401, 403, 404, 409, 413, 422, 500},
    ("post", "/api/v1/cases/{case_id}/notes"): {400, 401, 403, 404, 413, 422, 500},
    ("post", "/api/v1/cases/{case_id}/reply"): {400, 401, 403, 404, 409, 413, 422, 500},
    ("post", "/api/v1/cases/{case_id}/resolve"): {400, 401, 403, 404, 409, 413, 422, 500},
    ("post", "/api/v1/cases/{case_id}/reopen"): {400, 401, 403, 404, 409, 413, 422, 500},
    ("get", "/api/v1/customers/{customer_id}"): {400, 401, 403, 404, 422, 500},
    ("get", "/api/v1/customers/{customer_id}/export"): {400, 401, 403, 404, 422, 500},
    ("post", "/api/v1/customers/{customer_id}/erasure"): {400, 401, 403, 404, 413, 422, 500},
    ("get", "/api/v1/privacy/requests"): {400, 401, 403, 422, 500},
    ("get", "/api/v1/privacy/requests/{request_id}"): {400, 401, 403, 404, 422, 500},
    ("post", "/api/v1/privacy/requests/{request_id}/hold"): {400, 401, 403, 404, 409, 413, 422, 500},
    ("post", "/api/v1/privacy/requests/{request_id}/release"): {400, 401, 403, 404, 409, 422, 500},
    ("put", "/api/v1/customers/{customer_id}"): {400, 401, 403, 413, 422, 500},
    ("get", "/api/v1/customers/{customer_id}/inbox"): {400, 401, 403, 404, 422, 500},
    ("put", "/api/v1/customers/{customer_id}/devices/{device_id}"): {400, 401, 403, 404, 413, 422, 500},
    ("delete", "/api/v1/customers/{customer_id}/devices/{device_id}"): {400, 401, 403, 404, 422, 500},
    ("post", "/api/v1/customers/{customer_id}/inbox/{item_id}/read"): {400, 401, 403, 404, 422, 500},
    ("post", "/api/v1/messages/{message_id}/opened"): {400, 401, 403, 404, 409, 422, 500},
    ("get", "/api/v1/customers/{customer_id}/rewards"): {400, 401, 403, 404, 422, 500},
    ("post", "/api/v1/events"): {400, 401, 403, 413, 422, 500},
    ("get", "/api/v1/followups"): {400, 401, 403, 404, 422, 500},
    ("get", "/api/v1/metrics/summary"): {400, 401, 403, 404, 422, 500},
    ("get", "/api/v1/metrics/funnel"): {400, 401, 403, 404, 422, 500},
    ("get", "/api/v1/responses"): {400, 401, 403, 404, 422, 500},
    ("get", "/api/v1/interviews"): {400, 401, 403, 404, 422, 500},
    ("get", "/api/v1/segments"): {400, 401, 403, 422, 500},
    ("post", "/api/v1/segments"): {400, 401, 403, 409, 413, 422, 500},
    ("get", "/api/v1/segments/{key}"): {400, 401, 403, 404, 422, 500},
    ("patch", "/api/v1/segments/{key}"): {400, 401, 403, 404, 413, 422, 500},
    ("delete", "/api/v1/segments/{key}"): {400, 401, 403, 404, 409, 422, 500},
    ("get", "/api/v1/segments/{key}/preview"): {400, 401, 403, 404, 422, 500},
    ("get", "/api/v1/strategies"): {400, 401, 403, 422, 500},
    ("post", "/api/v1/strategies"): {400, 401, 403, 404, 409, 413, 422, 500},
    ("get", "/api/v1/strategies/{key}"): {400, 401, 403, 404, 422, 500},
    ("get", "/api/v1/strategies/{key}/waves"): {400, 401, 403, 404, 422, 500},
    ("post", "/api/v1/strategies/{key}/preview-message"): {400, 401, 403, 404, 409, 413, 422, 500},
    ("post", "/api/v1/strategies/preview"): {400, 401, 403, 404, 409, 413, 422, 500},
    ("post", "/api/v1/strategies/{key}/preview"): {400, 401, 403, 404, 413, 422, 500},
    ("patch", "/api/v1/strategies/{key}"): {400, 401, 403, 404, 413, 422, 500},
    ("get", "/api/v1/surveys"): {400, 401, 403, 422, 500},
    ("post", "/api/v1/surveys"): {400, 401, 403, 409, 413, 422, 500},
    ("get", "/api/v1/surveys/{key}"): {400, 401, 403, 404, 422, 500},
    ("get", "/api/v1/webhooks"): {400, 401, 403, 422, 500},
    ("post", "/api/v1/webhooks"): {400, 401, 403, 413, 422, 500},
    ("post", "/api/v1/webhooks/deliveries/{delivery_id}/replay"): {400, 401, 403, 404, 409, 422, 500},
    ("delete", "/api/v1/webhooks/{webhook_id}"): {400, 401, 403, 404, 422, 500},
    ("get", "/api/v1/webhooks/{webhook_id}"): {400, 401, 403, 404, 422, 500},
    ("patch", "/api/v1/webhooks/{webhook_id}"): {400, 401, 403, 404, 413, 422, 500},
    ("get", "/api/v1/webhooks/{webhook_id}/deliveries"): {400, 401, 403, 404, 422, 500},
    ("post", "/api/v1/webhooks/{webhook_id}/test"): {400, 401, 403, 404, 409, 422, 500},
    ("get", "/api/v1/staff"): {400, 401, 403, 422, 500},
    ("post", "/api/v1/staff"): {400, 401, 403, 409, 413, 422, 500},
    ("patch", "/api/v1/staff/{staff_id}"): {400, 401, 403, 404, 413, 422, 500},
}


@pytest.fixture
def document(runtime: Runtime) -> dict[str, Any]:
    # Unauthenticated, as any client generator fetches it
    with TestClient(create_app(runtime)) as client:
        answer = client.get("/api/v1/openapi.json")
    assert answer.status_code == 200
    return dict(answer.json())


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method, path): op for path, ops in document["paths"].items() for method, op in ops.items()}


def test_every_operation_lists_each_status_it_may_answer(document: dict[str, Any]) -> None:
    operations = _operations(document)

    assert set(operations) == set(STATUSES), "a new operation needs its row in STATUSES"
    for key, operation in operations.items():
        errors = {int(status) for status in operation["responses"] if not status.startswith("2")}
        assert errors == STATUSES[key], key


def test_every_error_is_documented_in_the_one_error_shape_with_an_example(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    assert schemas["ErrorBody"]["required"] == ["error"]
    assert schemas["ErrorDetail"]["required"] == ["code", "message", "field"]

    for key, operation in _operations(document).items():
        for status, response in operation["responses"].items():
            if status.startswith("2"):
                continue
            content = response["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/ErrorBody"}, (key, status)
            example = content["example"]["error"]
            assert set(example) == {"code", "message", "field"}, (key, status)
            assert example["message"], (key, status)
            assert response["description"], (key, status)


def test_authentication_is_a_bearer_scheme_not_a_header_parameter(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"] == {
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "followup API key (fu_…)",
            "description": "An API key from `followup apikey create`, sent as `Authorization: Bearer <key>`.",
        }
    }
    for key, operation in _operations(document).items():
        assert operation["security"] == [{"apiKey": []}], key
        names = {parameter["name"].lower() for parameter in operation.get("parameters", [])}
        assert "authorization" not in names, key


def test_filters_that_take_a_time_say_so(document: dict[str, Any]) -> None:
    parameters = {p["name"]: p for p in document["paths"]["/api/v1/responses"]["get"]["parameters"]}

    for name in ("from", "to"):
        formats = [option.get("format") for option in parameters[name]["schema"]["anyOf"]]
        assert "date-time" in formats


def test_the_copy_in_docs_is_the_served_document(document: dict[str, Any]) -> None:
    # scripts/export_openapi.py writes it; run it after changing an endpoint or a schema
    assert json.loads(DOCUMENTED.read_text(encoding="utf-8")) == document
