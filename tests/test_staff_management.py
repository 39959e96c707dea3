"""Staff accounts managed from the CLI and the API alike: invited with a role and queues and a
generated password shown once, their role and queues changed, disabled, given a new password —
each change in the audit log, with who made it.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from followup.privacy import service as privacy
from followup.runtime import Runtime
from tests.test_cli import Cli


def _audit(runtime: Runtime, email: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    with runtime.read_session() as session:
        rows = privacy.list_audit(session, subject_type="staff", subject_id=email)
        return [(row.event, row.actor, row.new) for row in rows]


def test_the_api_invites_changes_and_disables_staff_and_audits_each_change(runtime: Runtime, api: TestClient) -> None:
    made = api.post(
        "/api/v1/staff", json={"email": "Li.Na@Wallet.Example", "role": "agent", "queues": ["calls", "vip"]}
    )
    assert made.status_code == 201, made.text
    member = made.json()
    assert (member["email"], member["role"], member["queues"]) == ("li.na@wallet.example", "agent", ["calls", "vip"])
    assert len(member["password"]) >= 16
    staff_id = member["id"]
    # The password signs in to the console
    with TestClient(api.app) as console:  # type: ignore[arg-type]
        page = console.get("/console/login")
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        signed_in = console.post(
            "/console/login",
            data={"email": "li.na@wallet.example", "password": member["password"], "csrf": csrf},
            follow_redirects=False,
        )
        assert signed_in.status_code == 303, signed_in.text
    # Listing shows no password
    listed = api.get("/api/v1/staff").json()
    assert listed["total"] == 1
    assert "password" not in listed["items"][0]

    changed = api.patch(f"/api/v1/staff/{staff_id}", json={"role": "analyst", "queues": ["calls"]})
    assert (changed.json()["role"], changed.json()["queues"], changed.json()["password"]) == (
        "analyst",
        ["calls"],
        None,
    )
    reset = api.patch(f"/api/v1/staff/{staff_id}", json={"reset_password": True}).json()
    assert reset["password"]
    assert reset["password"] != member["password"]
    disabled = api.patch(f"/api/v1/staff/{staff_id}", json={"disabled": True}).json()
    assert disabled["disabled_at"] is not None

    events = _audit(runtime, "li.na@wallet.example")
    assert [event for event, _, _ in events] == [
        "staff.invited",
        "staff.role_changed",
        "staff.queues_changed",
        "staff.password_reset",
        "staff.disabled",
    ]
    assert all(actor.startswith("api_key:") for _, actor, _ in events)
    assert events[1][2] == {"old": "agent", "role": "analyst"}
    assert all(member["password"] not in str(new) for _, _, new in events)


def test_bad_staff_input_is_refused_with_the_field_named(api: TestClient) -> None:
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"email": "not-an-address", "role": "agent"}, 422, "email"),
        ({"email": "a@wallet.example", "role": "boss"}, 422, "role"),
        ({"email": "a@wallet.example", "role": "agent", "queues": ["Calls Now"]}, 422, "queues"),
    ]
    for body, status, field in cases:
        answer = api.post("/api/v1/staff", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert field in str(answer.json()["error"]["field"]), answer.text
    assert api.post("/api/v1/staff", json={"email": "a@wallet.example", "role": "agent"}).status_code == 201
    again = api.post("/api/v1/staff", json={"email": "A@wallet.example", "role": "agent"})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "staff_exists")
    missing = api.patch("/api/v1/staff/999", json={"role": "agent"})
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "staff_not_found")
    assert api.get("/api/v1/staff").json()["total"] == 1


def test_the_cli_invites_sets_roles_resets_and_disables(tmp_path: Any) -> None:
    cli = Cli(tmp_path)
    assert cli("db", "upgrade").returncode == 0
    invited = cli("staff", "invite", "--email", "wang.wu@wallet.example", "--role", "agent", "--queue", "calls")
    assert invited.returncode == 0, invited.stderr
    password = invited.stdout.strip()
    assert len(password) >= 16
    assert cli.rows("SELECT role, queues FROM staff") == [("agent", "calls")]
    assert str(password) not in cli.database.read_bytes().decode(errors="ignore")

    assert cli("staff", "set-role", "--email", "wang.wu@wallet.example", "--role", "auditor").stdout == (
        "wang.wu@wallet.example is now auditor\n"
    )
    reset = cli("staff", "reset-password", "--email", "wang.wu@wallet.example")
    assert reset.returncode == 0
    assert reset.stdout.strip() not in ("", password)
    two_factor_off = cli("staff", "reset-two-factor", "--email", "wang.wu@wallet.example")
    assert two_factor_off.stdout == (
        "two-factor is off for wang.wu@wallet.example; it is set up again at the next sign-in\n"
    )
    assert cli("staff", "disable", "--email", "wang.wu@wallet.example").returncode == 0
    events = cli.rows("SELECT event, actor FROM audit_log WHERE subject_type = 'staff' ORDER BY id")
    assert events == [
        ("staff.invited", "system:cli"),
        ("staff.role_changed", "system:cli"),
        ("staff.password_reset", "system:cli"),
        ("staff.two_factor_reset", "system:cli"),
        ("staff.disabled", "system:cli"),
    ]

    wrong_role = cli("staff", "set-role", "--email", "wang.wu@wallet.example", "--role", "boss")
    assert wrong_role.returncode != 0
    assert "role must be one of admin, analyst, agent, auditor" in wrong_role.stderr
    wrong_queue = cli("staff", "invite", "--email", "x@wallet.example", "--role", "agent", "--queue", "Calls!")
    assert wrong_queue.returncode != 0
    assert "is not a queue name" in wrong_queue.stderr
    nobody = cli("staff", "reset-password", "--email", "nobody@wallet.example")
    assert nobody.returncode != 0
    assert "There is no staff account for nobody@wallet.example" in nobody.stderr
