"""Staff roles, decided in one place for the console and the API (`staff.roles`): each role against
every API route (a key issued for a member of that role) and a written-down matrix of console
pages; 404 where a refusal would tell that a record exists; analysts see customers by a pseudonym."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from followup.app import create_app
from followup.runtime import Runtime
from followup.staff import roles
from followup.staff import service as staff
from tests.builders.customers import make_customer
from tests.builders.events import transfer
from tests.builders.strategies import make_strategy
from tests.builders.surveys import make_survey
from tests.test_api_key_scopes import _api_routes, _concrete
from tests.test_console import make_staff, sign_in

ROLES = ("admin", "analyst", "agent", "auditor")

# What each role gets from the console, written out by hand: the table in `staff.roles` must say the same.
CONSOLE = {
    "/console": {"admin": 200, "analyst": 200, "agent": 200, "auditor": 200},
    "/console/outbox": {"admin": 200, "analyst": 403, "agent": 403, "auditor": 403},
    "/console/outbox/1": {"admin": 404, "analyst": 404, "agent": 404, "auditor": 404},  # none exists
    "/console/channels": {"admin": 200, "analyst": 403, "agent": 403, "auditor": 403},
    "/console/followups": {"admin": 200, "analyst": 200, "agent": 403, "auditor": 403},
    "/console/responses": {"admin": 200, "analyst": 200, "agent": 403, "auditor": 403},
    "/console/strategies": {"admin": 200, "analyst": 200, "agent": 403, "auditor": 403},
    "/console/strategies/-/new": {"admin": 200, "analyst": 200, "agent": 403, "auditor": 403},
    "/console/segments": {"admin": 200, "analyst": 200, "agent": 403, "auditor": 403},
    "/console/cases": {"admin": 200, "analyst": 403, "agent": 200, "auditor": 403},
    "/console/cases.csv": {"admin": 200, "analyst": 403, "agent": 200, "auditor": 403},
    "/console/cases/1": {"admin": 404, "analyst": 404, "agent": 404, "auditor": 404},
    # An agent reaches only the customers of their queues' cases and calls (c1 has none)
    "/console/customers/c1": {"admin": 200, "analyst": 404, "agent": 404, "auditor": 404},
    "/console/interviews": {"admin": 200, "analyst": 403, "agent": 200, "auditor": 403},
    "/console/webhooks": {"admin": 200, "analyst": 403, "agent": 403, "auditor": 403},
    "/console/audit": {"admin": 200, "analyst": 403, "agent": 403, "auditor": 200},
    # /console/privacy leads each role to the part it may read (the client follows the redirect)
    "/console/privacy": {"admin": 200, "analyst": 200, "agent": 200, "auditor": 200},
    "/console/privacy/notices": {"admin": 200, "analyst": 200, "agent": 200, "auditor": 200},
    "/console/privacy/notices/2026-11-01": {"admin": 200, "analyst": 200, "agent": 200, "auditor": 200},
    "/console/privacy/requests": {"admin": 200, "analyst": 403, "agent": 403, "auditor": 200},
    "/console/two-factor": {"admin": 200, "analyst": 200, "agent": 200, "auditor": 200},
}


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as client:
        yield client


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_the_console_pages_its_work_needs(runtime: Runtime, client: TestClient, role: str) -> None:
    make_customer(runtime, "c1")
    sign_in(client, f"{role}@wallet.example", make_staff(runtime, f"{role}@wallet.example", role))
    for path, expected in CONSOLE.items():
        page = client.get(path)
        assert page.status_code == expected[role], (role, path)
        if expected[role] == 403:
            assert f"Your role ({role}) does not open" in page.text
        if expected[role] == 404:
            assert "Not found" in page.text
    nav = client.get("/console").text.split("</nav>")[0]
    for path in ("/console/outbox", "/console/cases", "/console/responses", "/console/audit", "/console/webhooks"):
        assert (f'href="{path}"' in nav) == (CONSOLE[path][role] == 200), (role, path)


@pytest.mark.parametrize("role", ROLES)
def test_a_key_issued_for_a_staff_member_acts_with_their_role_on_every_route(
    runtime: Runtime, client: TestClient, role: str
) -> None:
    email = f"{role}@wallet.example"
    with runtime.session() as session:
        staff.create_staff(session, email=email, role=role, now=runtime.clock.now(), queues=["detractor"])
        _, key = staff.create_api_key(session, name=f"{role}-key", now=runtime.clock.now(), staff_email=email)
    headers = {"Authorization": f"Bearer {key}"}
    routes = [(m, p) for m, p in _api_routes(client) if not p.startswith("/api/v1/calls")]
    seen = set()
    for method, path in routes:
        access = roles.access(role, method, path.removeprefix("/api/v1"))
        seen.add(access)
        answer = client.request(method, _concrete(path), headers=headers)
        if access == "allow":
            assert answer.status_code not in (401, 403), (role, method, path, answer.text)
            assert answer.json().get("error", {}).get("message") != "There is no such record.", (role, method, path)
        elif access == "hide":
            assert answer.status_code == 404, (role, method, path)
            error = answer.json()["error"]
            assert (error["code"], error["message"]) == ("not_found", "There is no such record.")
        else:
            assert answer.status_code == 403, (role, method, path)
            assert answer.json()["error"]["code"] == "role_forbidden"
    assert seen == ({"allow"} if role == "admin" else {"allow", "hide", "forbid"})


def test_roles_keep_their_doors_whatever_the_key_holds(runtime: Runtime, client: TestClient) -> None:
    """A few decisions said outright, so a change to the table is a change someone chose."""
    assert roles.access("analyst", "GET", "/customers/{customer_id}") == "hide"
    assert roles.access("analyst", "GET", "/responses") == "allow"
    assert roles.access("analyst", "POST", "/cases/{case_id}/reply") == "hide"
    assert roles.access("agent", "POST", "/cases/{case_id}/reply") == "allow"
    assert roles.access("agent", "GET", "/responses") == "forbid"
    assert roles.access("agent", "POST", "/webhooks") == "forbid"
    assert roles.access("auditor", "GET", "/audit") == "allow"
    assert roles.access("auditor", "GET", "/cases") == "forbid"
    assert roles.access("auditor", "GET", "/a-page-nobody-wrote-down") == "forbid"
    assert roles.access("admin", "GET", "/a-page-nobody-wrote-down") == "allow"


def test_an_analyst_sees_customers_by_a_stable_pseudonym(runtime: Runtime, api: TestClient, client: TestClient) -> None:
    make_customer(runtime, "c-8841")
    make_survey(runtime)
    make_strategy(runtime)
    assert api.post("/api/v1/events", json={"events": [transfer("e1", "c-8841")]}).status_code == 200
    with runtime.session() as session:
        staff.create_staff(session, email="ana@wallet.example", role="analyst", now=runtime.clock.now())
        _, key = staff.create_api_key(session, name="ana", now=runtime.clock.now(), staff_email="ana@wallet.example")
    label = roles.pseudonym(runtime.keys.derive_key(roles.PSEUDONYM_KEY_LABEL), "c-8841")
    assert label.startswith("p-")
    assert "8841" not in label

    as_analyst = {"Authorization": f"Bearer {key}"}
    [followup] = client.get("/api/v1/followups", headers=as_analyst).json()["items"]
    assert followup["customer_id"] == label
    assert api.get("/api/v1/followups").json()["items"][0]["customer_id"] == "c-8841"  # the admin's key
    assert client.get("/api/v1/customers/c-8841", headers=as_analyst).status_code == 404

    page = sign_in(client, "ana@wallet.example", _password(runtime, "ana@wallet.example")).get("/console/followups")
    assert label in page.text
    assert "c-8841" not in page.text
    assert "/console/customers/" not in page.text


def _password(runtime: Runtime, email: str) -> str:
    with runtime.session() as session:
        return staff.set_staff_password(session, staff.access_staff_by_email(session, email))


def test_a_key_of_a_disabled_member_stops_working(runtime: Runtime, client: TestClient) -> None:
    with runtime.session() as session:
        staff.create_staff(session, email="gone@wallet.example", role="agent", now=runtime.clock.now())
        _, key = staff.create_api_key(session, name="gone", now=runtime.clock.now(), staff_email="gone@wallet.example")
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/cases", headers=headers).status_code == 200
    with runtime.session() as session:
        staff.disable_staff(
            session, staff.access_staff_by_email(session, "gone@wallet.example"), now=runtime.clock.now()
        )
    refused = client.get("/api/v1/cases", headers=headers)
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "invalid_api_key")
