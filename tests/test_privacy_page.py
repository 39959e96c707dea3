"""The customer's own privacy page, /p/{token}: what they see, what they may change, and the plain
404 that every bad link gets."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import pytest
from fastapi.testclient import TestClient

from followup.app import create_app
from followup.customers import service as customers
from followup.kernel.time import ManualClock
from followup.privacy import page_links
from followup.runtime import Runtime
from followup.worker import Worker
from tests.test_console import csrf_of, make_staff, sign_in
from tests.test_data_rights import COMMENT, EMAIL, REPLY, loop_ran  # noqa: F401 - the fixture, shared


def token_of(runtime: Runtime, external_id: str, clock: ManualClock) -> str:
    with runtime.read_session() as session:
        customer = customers.get_customer(session, external_id)
        assert customer is not None
        return page_links.make_token(runtime.keys, customer.id, now=clock.now())


@pytest.mark.usefixtures("loop_ran")
def test_the_page_shows_what_is_held_in_the_customers_language_with_contacts_masked(
    api: TestClient, runtime: Runtime, clock: ManualClock
) -> None:
    token = token_of(runtime, "c1", clock)
    shown = api.get(f"/p/{token}")
    assert shown.status_code == 200
    html = shown.text
    assert "我的数据与隐私" in html, "zh-CN, the customer's locale"
    assert "l***@example-wallet.test" in html
    assert EMAIL.lower() not in html.lower(), "the contact point is masked"
    assert "138****2222" in html
    assert COMMENT.replace("—", "&mdash;") in html or COMMENT in html
    assert REPLY in html
    assert "积分余额：10" in html
    assert shown.headers["referrer-policy"] == "no-referrer"
    assert "noindex" in html

    english = api.get(f"/p/{token}", params={"lang": "en"}).text
    assert "My data and privacy" in english
    assert "Points balance: 10" in english


@pytest.mark.usefixtures("loop_ran")
def test_consents_change_on_the_page_with_the_source_in_the_ledger(
    api: TestClient, runtime: Runtime, clock: ManualClock
) -> None:
    token = token_of(runtime, "c1", clock)
    # Everything ticked as it is now, but email for feedback unticked, research by SMS ticked
    form = {"feedback.sms": "on", "feedback.inapp": "on", "service.email": "on", "service.sms": "on"}
    form.update({"service.push": "on", "service.inapp": "on", "service.phone": "on"})
    saved = api.post(f"/p/{token}/consents", data=form, follow_redirects=False)
    assert saved.status_code == 303
    assert saved.headers["location"].startswith(f"/p/{token}?saved=1")

    consents = api.get("/api/v1/customers/c1").json()["consents"]
    assert consents["feedback"]["email"] is False
    assert consents["feedback"]["sms"] is True
    ledger = api.get("/api/v1/audit/consents", params={"customer_id": "c1"}).json()["items"]
    latest = ledger[0]
    assert (latest["purpose"], latest["channel"], latest["granted"], latest["source"]) == (
        "feedback",
        "email",
        False,
        "privacy_page",
    )
    assert "已保存" in api.get(saved.headers["location"]).text

    # The same form again changes nothing and writes nothing
    before = len(api.get("/api/v1/audit/consents", params={"customer_id": "c1"}).json()["items"])
    api.post(f"/p/{token}/consents", data=form, follow_redirects=False)
    assert len(api.get("/api/v1/audit/consents", params={"customer_id": "c1"}).json()["items"]) == before


@pytest.mark.usefixtures("loop_ran")
def test_the_customer_downloads_their_data(api: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    token = token_of(runtime, "c1", clock)
    download = api.post(f"/p/{token}/export")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        names = set(archive.namelist())
        document = json.loads(archive.read("customer.json"))
    assert {"customer.json", "responses.csv", "messages.csv", "consents.csv", "README.txt"} <= names
    assert document["customer_id"] == "c1"
    queue = api.get("/api/v1/privacy/requests", params={"kind": "export"}).json()["items"]
    assert [(r["customer_id"], r["source"], r["status"]) for r in queue] == [("c1", "privacy_page", "done")]


@pytest.mark.usefixtures("loop_ran")
def test_deletion_is_confirmed_on_the_page_then_done_by_the_worker(
    api: TestClient, runtime: Runtime, clock: ManualClock
) -> None:
    token = token_of(runtime, "c1", clock)
    confirm = api.post(f"/p/{token}/erasure", params={"lang": "en"})
    assert confirm.status_code == 200
    assert "Delete your data?" in confirm.text
    assert "within 15 days" in confirm.text
    assert api.get("/api/v1/privacy/requests").json()["total"] == 0, "nothing asked before the confirmation"

    done = api.post(f"/p/{token}/erasure", params={"lang": "en"}, data={"confirm": "yes"})
    assert done.status_code == 200
    assert "We have your deletion request" in done.text
    (request,) = api.get("/api/v1/privacy/requests").json()["items"]
    assert (request["source"], request["status"]) == ("privacy_page", "pending")
    assert "under way" in api.get(f"/p/{token}", params={"lang": "en"}).text

    Worker(runtime).run_until_idle()
    gone = api.get(f"/p/{token}")
    assert gone.status_code == 404, "an erased customer's link is dead"


@pytest.mark.usefixtures("loop_ran")
def test_tampered_expired_and_foreign_tokens_get_the_same_plain_404(
    api: TestClient, runtime: Runtime, clock: ManualClock
) -> None:
    token = token_of(runtime, "c1", clock)
    customer_id, expires, mac = token.split(".")
    other = token_of(runtime, "c2", clock).split(".")[0]
    tampered = [
        f"{other}.{expires}.{mac}",  # another customer's id under this MAC
        f"{customer_id}.{int(expires) + 86400}.{mac}",  # a later expiry
        f"{customer_id}.{expires}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",
        "nonsense",
        "1.1.x",
    ]
    answers = [api.get(f"/p/{bad}") for bad in tampered]
    for bad in tampered:
        assert api.post(f"/p/{bad}/consents", data={}).status_code == 404
        assert api.post(f"/p/{bad}/export").status_code == 404
        assert api.post(f"/p/{bad}/erasure", data={"confirm": "yes"}).status_code == 404
    clock.advance(page_links.LINK_LIFETIME + dt.timedelta(seconds=1))
    answers.append(api.get(f"/p/{token}"))
    assert {a.status_code for a in answers} == {404}
    assert len({a.text for a in answers}) == 1, "no bad link is told apart from another"
    assert api.get("/api/v1/privacy/requests").json()["total"] == 0


def test_the_console_shows_the_queue_and_an_admin_holds_and_releases_a_request(
    api: TestClient, runtime: Runtime, clock: ManualClock
) -> None:
    assert api.put("/api/v1/customers/c1", json={"locale": "en"}).status_code == 200
    request_id = api.post("/api/v1/customers/c1/erasure").json()["request_id"]
    admin = sign_in(TestClient(create_app(runtime), follow_redirects=False), "ops@wallet.example", make_staff(runtime))

    assert admin.get("/console/privacy").headers["location"] == "/console/privacy/requests"
    queue = admin.get("/console/privacy/requests")
    assert queue.status_code == 200
    assert request_id in queue.text
    assert "1</strong> open" in queue.text
    held = admin.post(
        f"/console/privacy/requests/{request_id}/hold",
        data={"csrf": csrf_of(queue.text), "reason": "legal hold: card dispute"},
    )
    assert held.status_code == 303
    shown = admin.get("/console/privacy/requests?status=held").text
    assert "legal hold: card dispute" in shown
    assert "staff:ops@wallet.example" in shown
    refused = admin.post(f"/console/privacy/requests/{request_id}/release", data={"csrf": "forged"})
    assert refused.status_code == 403
    released = admin.post(f"/console/privacy/requests/{request_id}/release", data={"csrf": csrf_of(shown)})
    assert released.status_code == 303
    assert api.get(f"/api/v1/privacy/requests/{request_id}").json()["status"] == "pending"

    assert admin.get("/console/privacy/requests?status=lost").status_code == 400
    clock.advance(dt.timedelta(days=16))  # past the deadline, and past the console session too
    auditor = TestClient(create_app(runtime), follow_redirects=False)
    sign_in(auditor, "audit@wallet.example", make_staff(runtime, "audit@wallet.example", role="auditor"))
    seen = auditor.get("/console/privacy/requests")
    assert seen.status_code == 200
    assert request_id in seen.text
    assert "/hold" not in seen.text, "an auditor reads the queue and changes nothing"
    assert request_id in auditor.get("/console/privacy/requests?overdue=1").text
    agent = TestClient(create_app(runtime), follow_redirects=False)
    sign_in(agent, "ann@wallet.example", make_staff(runtime, "ann@wallet.example", role="agent"))
    assert agent.get("/console/privacy/requests").status_code == 403
    assert agent.get("/console/privacy").headers["location"] == "/console/privacy/notices"
