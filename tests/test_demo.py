"""`followup demo`: a small wallet world played through the real engine.

The month runs on the shared test database (SQLite, or PostgreSQL when FOLLOWUP_TEST_DATABASE_URL
is set); the summary it prints is checked against what the API reports.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from followup.app import create_app
from followup.config import Settings
from followup.demo.simulate import STRATEGY_KEYS, DemoRun, demo_settings, play_month
from followup.demo.summary import CASCADE_REASONS, SYNTHETIC, DemoSummary, collect_summary
from followup.demo.world import build_world
from followup.dispatch import service as dispatch
from followup.staff import service as staff
from tests.conftest import MASTER_KEY, wipe

FOLLOWUP = Path(sys.prefix) / "bin" / "followup"
SEED, CUSTOMERS, DAYS = 16, 150, 6


def _settings(settings: Settings) -> Settings:
    return demo_settings(settings.database_url, public_url="http://testserver", master_key=SecretStr(MASTER_KEY))


@pytest.fixture
def played(settings: Settings) -> Iterator[tuple[DemoRun, DemoSummary]]:
    """The small month played twice on an emptied database; the second run is kept for the test."""
    world = build_world(seed=SEED, customers=CUSTOMERS, days=DAYS)
    first = play_month(_settings(settings), world)
    first_summary = collect_summary(first.runtime, STRATEGY_KEYS)
    wipe(first.runtime.engine)
    first.runtime.close()
    second = play_month(_settings(settings), build_world(seed=SEED, customers=CUSTOMERS, days=DAYS))
    second_summary = collect_summary(second.runtime, STRATEGY_KEYS)
    try:
        assert second_summary == first_summary
        yield second, second_summary
    finally:
        wipe(second.runtime.engine)
        second.runtime.close()


def _all(client: TestClient, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = client.get(path, params={**params, "limit": 500, "offset": len(items)}).json()
        items.extend(page["items"])
        if len(items) >= page["total"]:
            return items


def test_the_same_seed_gives_the_same_month_and_the_engine_did_its_whole_loop(
    played: tuple[DemoRun, DemoSummary],
) -> None:
    run, summary = played
    # Given the world of one seed (asserted equal twice by the fixture), when its month is played:
    assert summary.events == len(run.world.events)
    assert summary.events_by_type["payment.failed"] > 0
    assert summary.events_by_type["feature.first_used"] > 0
    assert summary.planned > 0
    assert summary.sent > 0
    assert summary.followups_by_status["responded"] == run.answers.ratings > 0
    assert summary.deferred_for_quiet_hours > 0
    # Refused follow-ups carry their reason; the demo's customers without consent show up there.
    assert summary.refusals_by_reason["no_consent"] > 0
    assert summary.refusals_by_reason["not_sampled"] > 0
    assert "unknown" not in summary.refusals_by_reason
    assert summary.rewards_granted > 0
    assert summary.points_granted == 20 * summary.rewards_granted
    assert summary.followups_by_status["expired"] > 0
    # A comment about a hacked account opened a security case, which then held a later follow-up.
    assert summary.cases[("security", "security")] >= 1
    assert summary.cases[("normal", "detractor")] > 0
    assert summary.refusals_by_reason["open_security_case"] >= 1
    assert run.answers.security_comments >= 1
    # Every message went out on one of the demo's channels; none was lost or left unknown.
    channels = {channel for channel, _, _ in summary.messages}
    assert channels == {"email", "inapp", "sms", "push"}
    assert {status for _, _, status in summary.messages} <= {"sent", "failed", "queued", "suppressed"}
    # Customers answered by SMS reply; carriers' receipts came back, some for numbers out of service
    assert run.answers.sms_replies > 0
    assert ("sms", "reply", "sent") in summary.messages  # the thank-yous
    # What customers did on their privacy page is what the operator's queue lists.
    kinds = [request.kind for request in summary.privacy_requests]
    assert (kinds.count("export"), kinds.count("erasure")) == (run.answers.exports, run.answers.erasures_asked)
    funnel = {stage.key: stage for stage in summary.funnel}
    assert 0 < funnel["sms"].delivered <= funnel["sms"].accepted <= funnel["sms"].queued
    assert funnel["push"].opened > 0
    assert summary.cascaded_by_reason["not_opened"] > 0
    # People in the loop: the agents worked their cases to a re-survey (this small world's few
    # top-tier customers give the call queue little to do; tests/test_call_queue.py covers it), and
    # the risk team's endpoint heard every security concern, each signature good
    people = run.people.stats
    assert people.replies > 0
    assert people.resolved > 0
    assert people.resurvey_yes + people.resurvey_no > 0
    security_cases = sum(count for (priority, _), count in summary.cases.items() if priority == "security")
    assert run.people.desk.heard.by_type.get("security.concern", 0) == security_cases
    assert run.people.desk.heard.bad_signatures == 0


def test_the_summary_agrees_with_the_api(played: tuple[DemoRun, DemoSummary]) -> None:
    run, summary = played
    with run.runtime.session() as session:
        _, key = staff.create_api_key(session, name="demo-test", now=run.clock.now())
    with TestClient(create_app(run.runtime), headers={"Authorization": f"Bearer {key}"}) as api:
        followups = _all(api, "/api/v1/followups")
        assert len(followups) == summary.followups
        assert Counter(f["status"] for f in followups) == Counter(summary.followups_by_status)
        refused = Counter(f["reason"] for f in followups if f["status"] in ("suppressed", "failed"))
        assert refused == Counter(summary.refusals_by_reason)
        sent = sum(1 for f in followups if any(m["step"] == "invite" and m["status"] == "sent" for m in f["messages"]))
        assert sent == summary.sent
        messages = Counter((m["channel"], m["step"], m["status"]) for f in followups for m in f["messages"])
        assert messages == Counter(summary.messages)

        for metrics in summary.metrics:
            body = api.get(
                "/api/v1/metrics/summary", params={"strategy": metrics.strategy, "group_by": "channel"}
            ).json()
            assert body["total"] == metrics.total.model_dump(mode="json")
            assert body["groups"] == [group.model_dump(mode="json") for group in metrics.by_channel]

        responses = _all(api, "/api/v1/responses")
        assert len(responses) == summary.followups_by_status["responded"]
        rewarded = {r["customer_id"] for r in responses if r["survey"] == "transfer-nps"}
        points = sum(api.get(f"/api/v1/customers/{customer}/rewards").json()["balance"] for customer in rewarded)
        assert points == summary.points_granted

        cases = _all(api, "/api/v1/cases")
        assert Counter((c["priority"], c["kind"]) for c in cases) == Counter(summary.cases)
        # Every "not me" to "Was this you?" opened a security case of its own
        denials = [c for c in cases if c["summary"].startswith('The customer answered "not me"')]
        assert len(denials) == run.answers.not_me
        assert any(r["survey"] == "was-this-you" for r in responses)  # the checks were answered at all
        assert {(c["kind"], c["priority"]) for c in denials} <= {("security", "security")}

        # Moves to the next channel, by reason, are the follow-ups' own history entries
        cascades = Counter(h["reason"] for f in followups for h in f["history"] if h["action"] == "cascaded")
        assert {reason: count for reason, count in summary.cascaded_by_reason.items() if count} == dict(cascades)
        assert summary.cascaded == sum(cascades.values())
        # Which strategies reward is what the strategies say
        rewards = {
            s["key"]: (s["reward"] or {}).get("points", 0) for s in api.get("/api/v1/strategies").json()["items"]
        }
        assert (
            summary.reward_points
            == rewards
            == {
                "after-failed-payment": 0,
                "after-first-use": 0,
                "after-large-transfer": 20,
                "first-qr-payment": 0,
                "monthly-panel": 0,
                "top-tier-care": 0,
                "was-this-you": 0,
            }
        )
        # The first QR payment: at most one follow-up per customer, and some were planned
        first_qr = Counter(f["customer_id"] for f in followups if f["strategy"] == "first-qr-payment")
        assert first_qr
        assert set(first_qr.values()) == {1}
        # The proactive strategy reached exactly the platinum customers whose slot in its 30-day
        # period fell inside the played days (the slot computed here from its documented formula)
        expected = set()
        for person in run.world.customers:
            digest = hashlib.sha256(f"proactive|top-tier-care|{person.customer_id}".encode()).digest()
            if person.tier == "platinum" and int.from_bytes(digest[:8], "big") / 2**64 * 30 <= DAYS:
                expected.add(person.customer_id)
        assert expected
        assert {f["customer_id"] for f in followups if f["strategy"] == "top-tier-care"} == expected
    # And their messages are the personal spending summary, in each customer's own numbers
    proactive_ids = {f["id"] for f in followups if f["strategy"] == "top-tier-care"}
    with run.runtime.read_session() as session:
        outbox, _ = dispatch.list_outbox(session, customer_id=None, limit=10_000, offset=0, keys=run.runtime.keys)
    summaries = [m.content for m in outbox if m.followup_id in proactive_ids and m.content is not None]
    assert summaries
    for content in summaries:
        assert content.subject.startswith(("Your month with the wallet", "您的钱包月报："))
        assert ("you moved CN¥" in content.body) or ("本月你用钱包支付了 ¥" in content.body)


def test_the_command_plays_a_small_month_and_stops_with_no_serve(tmp_path: Path) -> None:
    database = tmp_path / "demo.db"
    (tmp_path / "demo.db-wal").write_bytes(b"left over from an earlier run")
    env = {name: value for name, value in os.environ.items() if not name.startswith("FOLLOWUP_")}
    env["COLUMNS"] = "120"

    result = subprocess.run(
        [str(FOLLOWUP), "demo", "--no-serve", "--db", str(database), "--customers", "60", "--days", "2"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for title in ("Events", "Follow-ups", "Not contacted, and why", "Messages", "Answers per strategy", "Rewards"):
        assert title in result.stdout
    output = " ".join(result.stdout.split())
    # The figures are said to be synthetic, before any of them
    assert output.index(" ".join(SYNTHETIC.split())) < output.index("Events (")
    # Moves to the next channel are broken down by reason, each reason on its own row
    assert "moved on to the next channel, because of" in output
    for words in CASCADE_REASONS.values():
        assert re.search(rf"{re.escape(words)} +[0-9,]+", output), words
    # Which strategies reward, and with what
    assert re.search(r"after-large-transfer: points per answer +20", output)
    assert re.search(r"after-failed-payment: points per answer +no reward", output)
    # "Too late" is explained and split by cause, and the parts add up
    late = re.search(
        r"Ratings that came too late, turned away as a real customer's would be: ([0-9,]+) — ([0-9,]+) after the "
        r"follow-up had expired, ([0-9,]+) through a second message \(a reminder, or another channel\) of a "
        r"follow-up already answered\.",
        output,
    )
    assert late, output
    assert int(late[1]) == int(late[2]) + int(late[3])
    assert "/console" not in result.stdout  # --no-serve: nothing is served, so no address is printed
    assert database.exists()
    assert (tmp_path / "demo.db.key").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--customers", "5"], "--customers"),
        (["--seed", "-1"], "--seed"),
        (["--port", "70000"], "--port"),
        (["--days", "abc"], "--days"),
    ],
)
def test_bad_options_get_a_clear_error_and_no_traceback(tmp_path: Path, arguments: list[str], message: str) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("FOLLOWUP_")}
    env["COLUMNS"] = "200"
    result = subprocess.run(
        [str(FOLLOWUP), "demo", "--no-serve", "--db", str(tmp_path / "demo.db"), *arguments],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "demo.db").exists()


def test_a_directory_as_database_is_refused(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("FOLLOWUP_")}
    env["COLUMNS"] = "200"
    result = subprocess.run(
        [str(FOLLOWUP), "demo", "--no-serve", "--db", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "is a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_busy_port_is_refused_before_the_month_is_played(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("FOLLOWUP_")}
    env["COLUMNS"] = "200"
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = subprocess.run(
            [str(FOLLOWUP), "demo", "--db", str(tmp_path / "demo.db"), "--port", str(port)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "demo.db").exists()
