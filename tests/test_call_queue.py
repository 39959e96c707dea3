"""The call queue (the `phone` channel): a follow-up's phone step becomes a call due inside the
customer's calling hours; agents claim calls of their queues for 15 minutes, read the script,
reveal the number with a reason (audited) and record the outcome: answered (the one answer path:
reward, case), not answered (tried again at other hours, then the next channel), wrong number,
do-not-call. Fifty agents claiming at once never get the same call."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from followup.app import create_app
from followup.calls import service as calls
from followup.customers import service as customers
from followup.followups import call_work
from followup.kernel.actors import Actor
from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.staff import service as staff
from followup.worker import Worker
from tests.builders.customers import make_customer
from tests.builders.events import transfer
from tests.builders.strategies import make_strategy
from tests.builders.surveys import make_survey
from tests.conftest import SmtpSink
from tests.test_console import csrf_of, make_staff, sign_in

SHANGHAI = ZoneInfo("Asia/Shanghai")
PHONE = "+8613812341234"


def _customer(runtime: Runtime, customer_id: str, phone: str = PHONE) -> None:
    make_customer(runtime, customer_id, phone=phone, consents={"feedback": {"phone": True, "email": True}})


def _agent_key(runtime: Runtime, email: str, queues: tuple[str, ...] = ("calls",)) -> dict[str, str]:
    with runtime.session() as session:
        staff.create_staff(session, email=email, role="agent", now=runtime.clock.now(), queues=queues)
        _, key = staff.create_api_key(
            session, name=f"key-{email}", now=runtime.clock.now(), scopes=["calls"], staff_email=email
        )
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def world(runtime: Runtime) -> Runtime:
    runtime.settings.fatigue_max_followups = 10
    make_survey(runtime)
    make_strategy(runtime, channels=["phone", "email"], delay="PT1M", max_call_attempts=3, remind_after=None)
    return runtime


def _called(runtime: Runtime, api: TestClient, clock: ManualClock, customer_id: str, event_id: str) -> None:
    event = transfer(event_id, customer_id, occurred_at=clock.now())
    assert api.post("/api/v1/events", json={"events": [event]}).status_code == 200
    clock.advance(dt.timedelta(minutes=2))
    Worker(runtime).run_until_idle()


def _local_hour(text: str) -> str:
    return dt.datetime.fromisoformat(text).astimezone(SHANGHAI).strftime("%a %H:%M")


def test_an_answered_call_goes_through_the_one_answer_path(
    world: Runtime, api: TestClient, clock: ManualClock, smtp: SmtpSink
) -> None:
    _customer(world, "c1")
    _called(world, api, clock, "c1", "e1")
    followup = api.get("/api/v1/followups", params={"customer_id": "c1"}).json()["items"][0]
    assert (followup["status"], followup["channel"]) == ("invited", "phone")
    assert smtp.wait_for(1, timeout=0.3) == [], "a phone step sends no message"

    agent = _agent_key(world, "ann@wallet.example")
    claimed = api.post("/api/v1/calls/claim", headers=agent)
    assert claimed.status_code == 200, claimed.text
    call = claimed.json()
    assert (call["customer_id"], call["locale"], call["number"], call["agent"]) == (
        "c1",
        "zh-CN",
        "138****1234",
        "ann@wallet.example",
    )
    assert call["greeting"].startswith("您好")
    assert [(q["id"], q["prompt"], q["scale"]) for q in call["questions"]] == [
        ("nps", "您有多大可能向朋友推荐我们？", [0, 10]),
        ("csat", "您对这次支付满意吗？", [1, 5]),
        ("comment", "还有什么想告诉我们？", None),
    ]
    assert call["recent"][0]["id"] == followup["id"]
    assert api.post("/api/v1/calls/claim", headers=agent).status_code == 204, "the only call is taken"

    # The number, with a reason, audited
    url = f"/api/v1/calls/{call['id']}"
    assert api.post(f"{url}/reveal", json={}, headers=agent).status_code == 422
    reason = "calling the customer now, 138 1234 1234 was busy"
    revealed = api.post(f"{url}/reveal", json={"reason": reason}, headers=agent)
    assert revealed.json() == {"number": PHONE, "call_url": f"tel:{PHONE}"}
    audit = api.get("/api/v1/audit", params={"subject_type": "customer"}).json()["items"]
    internal = str(_internal_id(world, "c1"))  # the audit log names customers by followup's own id
    assert [(a["event"], a["subject_id"], a["new"]["reason"]) for a in audit if a["event"] == "contact.revealed"] == [
        ("contact.revealed", internal, "calling the customer now, *******1234 was busy")  # the reason is scrubbed
    ]

    answered = api.post(
        f"{url}/outcome",
        json={"outcome": "answered", "answers": {"nps": 3, "comment": "转账到账太慢了"}},
        headers=agent,
    )
    assert answered.status_code == 200, answered.text
    assert (answered.json()["status"], answered.json()["history"][0]["outcome"]) == ("done", "answered")
    [response] = api.get("/api/v1/responses").json()["items"]
    assert (response["channel"], response["source"], response["nps"]) == ("phone", "agent", 3)
    assert response["answers"]["comment"] == "转账到账太慢了"
    assert api.get("/api/v1/followups", params={"customer_id": "c1"}).json()["items"][0]["status"] == "responded"
    [case] = api.get("/api/v1/cases").json()["items"]
    assert (case["kind"], case["priority"], case["response_id"]) == ("detractor", "high", response["id"])
    assert api.get("/api/v1/customers/c1/rewards").json()["balance"] == 10, "the same reward as a page answer"
    again = api.post(f"{url}/outcome", json={"outcome": "answered", "answers": {"nps": 9}}, headers=agent)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "call_not_claimed")


def test_a_call_not_answered_is_tried_at_other_hours_then_the_next_channel(
    world: Runtime, api: TestClient, clock: ManualClock, smtp: SmtpSink
) -> None:
    _customer(world, "c1")
    _called(world, api, clock, "c1", "e1")
    agent = _agent_key(world, "ann@wallet.example")
    tried = []
    for outcome in ("no_answer", "busy", "no_answer"):
        call = api.post("/api/v1/calls/claim", headers=agent).json()
        tried.append(_local_hour(clock.now().isoformat()))
        after = api.post(f"/api/v1/calls/{call['id']}/outcome", json={"outcome": outcome}, headers=agent).json()
        if after["status"] == "due":
            assert api.post("/api/v1/calls/claim", headers=agent).status_code == 204, "not before its time"
            clock.set(dt.datetime.fromisoformat(after["due_at"]))
    assert after["status"] == "failed"
    assert after["attempts"] == 3
    assert len(set(tried)) == 3, tried
    assert all("09:00" <= hour.split()[1] < "20:00" for hour in tried), tried

    # The strategy's next channel takes over: the customer gets the email invitation
    smtp.clear()
    Worker(world).run_until_idle()
    assert len(smtp.wait_for(1)) == 1
    followup = api.get("/api/v1/followups", params={"customer_id": "c1"}).json()["items"][0]
    assert (followup["status"], followup["channel"]) == ("invited", "email")


def test_calls_wait_for_the_customers_calling_hours(world: Runtime, api: TestClient, clock: ManualClock) -> None:
    _customer(world, "c1")
    clock.set(dt.datetime(2026, 11, 28, 13, 0, tzinfo=dt.UTC))  # Saturday 21:00 in Shanghai
    _called(world, api, clock, "c1", "e1")
    # Quiet hours hold the step itself until 08:00 Sunday; the call then waits for Monday 09:00
    clock.set(dt.datetime(2026, 11, 29, 0, 1, tzinfo=dt.UTC))
    Worker(world).run_until_idle()
    agent = _agent_key(world, "ann@wallet.example")
    assert api.post("/api/v1/calls/claim", headers=agent).status_code == 204
    with world.read_session() as session:
        [task] = session.query(calls.CallRow).all()
        due = task.due_at
    assert _local_hour(due.isoformat()) == "Mon 09:00", "no calls on Sunday (FOLLOWUP_CALL_DAYS=Mon-Sat)"


def test_wrong_number_call_back_and_do_not_call(world: Runtime, api: TestClient, clock: ManualClock) -> None:
    for n in (1, 2, 3):
        _customer(world, f"c{n}", phone=f"+861381234123{n}")
        _called(world, api, clock, f"c{n}", f"e{n}")
    agent = _agent_key(world, "ann@wallet.example")

    def next_call() -> dict[str, object]:
        answer = api.post("/api/v1/calls/claim", headers=agent)
        assert answer.status_code == 200
        return dict(answer.json())

    first = next_call()
    later = clock.now() + dt.timedelta(days=1, hours=2)
    backed = api.post(
        f"/api/v1/calls/{first['id']}/outcome", json={"outcome": "call_back", "at": later.isoformat()}, headers=agent
    ).json()
    assert (backed["status"], backed["attempts"], backed["due_at"]) == (
        "due",
        0,
        later.isoformat().replace("+00:00", "Z"),
    )

    wrong = next_call()
    api.post(f"/api/v1/calls/{wrong['id']}/outcome", json={"outcome": "wrong_number"}, headers=agent)
    points = api.get(f"/api/v1/customers/{wrong['customer_id']}").json()["contact_points"]
    assert [(p["kind"], p["status"]) for p in points if p["kind"] == "phone"] == [("phone", "invalid")]
    audit = api.get("/api/v1/audit", params={"subject_type": "customer"}).json()["items"]
    assert [(a["subject_id"], a["new"]["reason"]) for a in audit if a["event"] == "contact.invalidated"] == [
        (str(_internal_id(world, wrong["customer_id"])), "wrong_number")
    ]
    moved = api.get("/api/v1/followups", params={"customer_id": wrong["customer_id"]}).json()["items"][0]
    assert moved["channel"] is None or moved["reason"] is None  # moved on to email

    stop = next_call()
    api.post(f"/api/v1/calls/{stop['id']}/outcome", json={"outcome": "do_not_call"}, headers=agent)
    customer = api.get(f"/api/v1/customers/{stop['customer_id']}").json()
    assert customer["consents"]["feedback"]["phone"] is False
    latest = api.get(f"/api/v1/customers/{stop['customer_id']}/consents/history").json()["items"][0]
    assert (latest["channel"], latest["granted"], latest["source"]) == ("phone", False, "agent_call")
    ended = api.get("/api/v1/followups", params={"customer_id": stop["customer_id"]}).json()["items"][0]
    assert (ended["status"], ended["reason"]) == ("expired", "do_not_call")
    assert api.post("/api/v1/calls/claim", headers=agent).status_code == 204


def test_bad_calls_get_clear_errors(world: Runtime, api: TestClient, clock: ManualClock) -> None:
    _customer(world, "c1")
    _called(world, api, clock, "c1", "e1")
    with world.session() as session:
        _, bare = staff.create_api_key(session, name="bare", now=clock.now(), scopes=["calls"])
    refused = api.post("/api/v1/calls/claim", headers={"Authorization": f"Bearer {bare}"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "key_without_staff")
    nobody = _agent_key(world, "no-queue@wallet.example", queues=())
    assert api.post("/api/v1/calls/claim", headers=nobody).json()["error"]["code"] == "no_call_queue"
    other = _agent_key(world, "vip@wallet.example", queues=("vip-calls",))
    assert api.post("/api/v1/calls/claim", headers=other).status_code == 204

    agent = _agent_key(world, "ann@wallet.example")
    call = api.post("/api/v1/calls/claim", headers=agent).json()
    url = f"/api/v1/calls/{call['id']}"
    assert api.get(url, headers=other).status_code == 404, "a call of another queue does not exist for them"
    assert api.post(f"{url}/outcome", json={"outcome": "hung_up"}, headers=agent).status_code == 422
    assert api.post(f"{url}/outcome", json={"outcome": "busy", "answers": {"nps": 1}}, headers=agent).status_code == 422
    assert api.post(f"{url}/outcome", json={"outcome": "answered", "answers": {}}, headers=agent).status_code == 422
    bad_score = api.post(f"{url}/outcome", json={"outcome": "answered", "answers": {"nps": 11}}, headers=agent)
    assert bad_score.status_code == 422
    past = api.post(f"{url}/outcome", json={"outcome": "call_back", "at": "2020-01-01T00:00:00Z"}, headers=agent)
    assert (past.status_code, past.json()["error"]["field"]) == (422, "at")
    assert api.post(f"{url}/reveal", json={"reason": "a\nb"}, headers=agent).status_code == 422

    clock.advance(dt.timedelta(minutes=16))
    late = api.post(f"{url}/outcome", json={"outcome": "busy"}, headers=agent)
    assert (late.status_code, late.json()["error"]["code"]) == (409, "lease_expired")
    unchanged = api.get(url, headers=agent).json()
    assert (unchanged["attempts"], unchanged["history"]) == (0, [])
    assert api.get("/api/v1/responses").json()["total"] == 0


def test_fifty_agents_claiming_at_once_never_share_a_call(world: Runtime, api: TestClient, clock: ManualClock) -> None:
    for n in range(30):
        _customer(world, f"c{n}", phone=f"+86138123400{n:02d}")
    assert (
        api.post("/api/v1/events", json={"events": [transfer(f"e{n}", f"c{n}") for n in range(30)]}).status_code == 200
    )
    clock.advance(dt.timedelta(minutes=2))
    Worker(world).run_until_idle()
    actors = []
    with world.session() as session:
        for n in range(50):
            member, _ = staff.create_staff(
                session, email=f"a{n}@wallet.example", role="agent", now=clock.now(), queues=["calls"]
            )
            actors.append(Actor(kind="staff", id=member.email, role="agent", queues=("calls",), staff_id=member.id))
    got: list[int | None] = []
    errors: list[BaseException] = []
    start = threading.Barrier(50)
    lock = threading.Lock()

    def claim(actor: Actor) -> None:
        start.wait()
        try:
            for _ in range(5):  # SQLite may be busy for a moment: an agent presses the button again
                try:
                    with world.session() as session:
                        call = call_work.claim(
                            session, actor, settings=world.settings, keys=world.keys, now=clock.now()
                        )
                    break
                except Exception as exc:
                    if "locked" not in str(exc):
                        raise
            with lock:
                got.append(call.id if call else None)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(actor,)) for actor in actors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    claimed = [call_id for call_id in got if call_id is not None]
    assert len(got) == 50
    assert len(claimed) == 30
    assert len(set(claimed)) == 30, "no call went to two agents"


@pytest.fixture
def console(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as client:
        yield client


def test_an_agent_works_a_call_in_the_console_and_a_supervisor_sees_the_day(
    world: Runtime, api: TestClient, console: TestClient, clock: ManualClock
) -> None:
    _customer(world, "c1")
    _called(world, api, clock, "c1", "e1")
    with world.session() as session:
        _, password = staff.create_staff(
            session, email="ann@wallet.example", role="agent", now=clock.now(), queues=["calls"]
        )
    sign_in(console, "ann@wallet.example", password)
    page = console.get("/console/calls")
    assert page.status_code == 200
    assert 'accesskey="n"' in page.text
    claimed = console.post("/console/calls/claim", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert claimed.status_code == 303
    call_page = console.get(claimed.headers["location"])
    assert "您好，我是钱包的客户服务人员" in call_page.text
    assert "138****1234" in call_page.text
    assert PHONE not in call_page.text
    csrf = csrf_of(call_page.text)
    call_path = claimed.headers["location"]
    short = console.post(f"{call_path}/reveal", data={"csrf": csrf, "reason": "x"})
    assert short.status_code == 422
    shown = console.post(f"{call_path}/reveal", data={"csrf": csrf, "reason": "calling for the follow-up"})
    assert f'href="tel:{PHONE}"' in shown.text, shown.text[shown.text.find('class="error"') :][:300]
    assert shown.headers["cache-control"] == "no-store"
    nothing = console.post(f"{call_path}/outcome", data={"csrf": csrf, "q-nps": "9"})
    assert nothing.status_code == 422
    assert 'value="9" checked' in nothing.text, "what the agent entered is kept"
    done = console.post(
        f"{call_path}/outcome",
        data={"csrf": csrf, "outcome": "answered", "q-nps": "9", "q-comment": "都很好"},
        follow_redirects=False,
    )
    assert (done.status_code, done.headers["location"]) == (303, "/console/calls?done=answered")
    [response] = api.get("/api/v1/responses").json()["items"]
    assert (response["nps"], response["answers"]["comment"], response["source"]) == (9, "都很好", "agent")

    supervisor = TestClient(create_app(world))
    sign_in(supervisor, "lead@wallet.example", make_staff(world, "lead@wallet.example", "admin"))
    board = supervisor.get("/console/calls").text
    assert "Agents today" in board
    assert "ann@wallet.example" in board


def _internal_id(runtime: Runtime, external_id: str) -> int:
    with runtime.read_session() as session:
        return customers.access_customer(session, external_id).id
