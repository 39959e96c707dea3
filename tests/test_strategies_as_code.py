"""Strategies as code: `followup strategies apply` makes the database hold what the files say,
idempotently, with a diff shown first; every change is a new version, and a follow-up records the
version that planned it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from followup.kernel.actors import SYSTEM
from followup.runtime import Runtime
from followup.strategies import as_code
from tests.builders.events import transfer
from tests.builders.strategies import strategy_body
from tests.builders.surveys import survey_body
from tests.test_cli import Cli, one_line

PROGRAMME = Path(__file__).resolve().parents[1] / "examples" / "programme.yaml"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def _versions(cli: Cli) -> list[tuple[object, ...]]:
    return cli.rows(
        "SELECT s.key, v.version FROM strategy_versions v JOIN strategies s ON s.id = v.strategy_id ORDER BY 1, 2"
    )


def test_apply_shows_the_diff_asks_and_a_second_apply_changes_nothing(cli: Cli, tmp_path: Path) -> None:
    assert cli("db", "upgrade").returncode == 0
    # Without a terminal and without --yes, nothing is applied
    asked = cli("strategies", "apply", str(PROGRAMME))
    assert asked.returncode == 2
    assert "create strategy monthly-nps" in asked.stderr
    assert "run again with --yes" in one_line(asked.stderr)
    assert cli.rows("SELECT COUNT(*) FROM strategies") == [(0,)]
    # With --yes, the six bodies are stored, one version each
    applied = cli("strategies", "apply", str(PROGRAMME), "--yes")
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.strip() == "applied 6 changes"
    assert _versions(cli) == [("first-qr-payment", 1), ("monthly-nps", 1), ("top-tier-care", 1)]
    # Applying the same file again changes nothing and makes no new version
    again = cli("strategies", "apply", str(PROGRAMME), "--yes")
    assert (again.returncode, again.stdout.strip()) == (0, "nothing to change")
    assert _versions(cli) == [("first-qr-payment", 1), ("monthly-nps", 1), ("top-tier-care", 1)]
    # A changed sample rate is shown as a diff and becomes version 2
    document = yaml.safe_load(PROGRAMME.read_text(encoding="utf-8"))
    document["strategies"][0]["sample_rate"] = 0.1
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    result = cli("strategies", "apply", str(changed), "--yes")
    assert result.returncode == 0, result.stderr
    assert "change strategy monthly-nps" in result.stderr
    assert '-  "sample_rate": 0.05,' in result.stderr
    assert '+  "sample_rate": 0.1,' in result.stderr
    assert result.stdout.strip() == "applied 1 change"
    assert ("monthly-nps", 2) in _versions(cli)
    # And the export, applied back, changes nothing
    exported = cli("strategies", "export")
    assert exported.returncode == 0, exported.stderr
    (tmp_path / "export.yaml").write_text(exported.stdout, encoding="utf-8")
    assert cli("strategies", "apply", str(tmp_path / "export.yaml")).stdout.strip() == "nothing to change"


def test_list_show_pause_resume_and_preview(cli: Cli) -> None:
    assert cli("db", "upgrade").returncode == 0
    assert cli("strategies", "apply", str(PROGRAMME), "--yes").returncode == 0
    listed = cli("strategies", "list")
    assert listed.returncode == 0
    assert "monthly-nps" in listed.stdout
    assert "periodic" in listed.stdout
    assert cli("strategies", "pause", "monthly-nps").stdout.strip() == "monthly-nps: paused (version 2)"
    assert cli("strategies", "resume", "monthly-nps").stdout.strip() == "monthly-nps: active (version 3)"
    shown = cli("strategies", "show", "monthly-nps")
    assert shown.returncode == 0
    assert yaml.safe_load(shown.stdout.split("versions:")[0])["schedule"]["cron"] == "0 10 1 * *"
    assert [line.split()[1] for line in shown.stdout.split("versions:")[1].strip().splitlines()] == ["3", "2", "1"]
    preview = cli("strategies", "preview", "top-tier-care")
    assert preview.returncode == 0, preview.stderr
    assert '"would_contact": 0' in preview.stdout
    missing = cli("strategies", "show", "nothing")
    assert (missing.returncode, one_line(missing.stderr)) == (2, "error: No strategy with key 'nothing'.")


def test_bad_files_are_one_line_errors_and_nothing_is_applied(cli: Cli, tmp_path: Path) -> None:
    assert cli("db", "upgrade").returncode == 0
    cases: list[tuple[str, str]] = [
        ("surveys: [\n  - {key: x", "not valid YAML (line"),
        ("teams: []", "'teams' is not a list this file may hold"),
        ("strategies: [{key: s, kind: event}]", "strategies[0]: channels: Field required."),
        (
            yaml.safe_dump({"surveys": [survey_body()], "strategies": [strategy_body(channels=["wechat"])]}),
            "strategies 'after-large-transfer': channel 'wechat' is not configured here; "
            "available: email, inapp, phone.",
        ),
        (yaml.safe_dump({"surveys": [survey_body(), survey_body()]}), "key 'payment-csat' is also given in"),
    ]
    for number, (text, words) in enumerate(cases):
        path = tmp_path / f"bad-{number}.yaml"
        path.write_text(text, encoding="utf-8")
        result = cli("strategies", "apply", str(path), "--yes")
        assert result.returncode == 2, (text, result.stdout)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert words in result.stderr, result.stderr
    assert cli.rows("SELECT COUNT(*) FROM surveys") == [(0,)]
    assert cli("strategies", "apply", str(tmp_path / "nowhere.yaml")).returncode == 2


def _bundle(**strategy: Any) -> as_code.Bundle:
    body = strategy_body(audience=None, delay="PT0S", **strategy)
    return as_code.read_documents([("inline", {"surveys": [survey_body()], "strategies": [body]})])


def test_a_followup_records_the_version_that_planned_it(api: TestClient, runtime: Runtime) -> None:
    assert api.put("/api/v1/customers/c1", json={"email": "c1@example.com"}).status_code == 200

    def apply(bundle: as_code.Bundle) -> list[as_code.Change]:
        with runtime.session() as session:
            return as_code.apply(
                session,
                bundle,
                available_channels=set(runtime.channels),
                limits=runtime.settings.input_limits,
                actor=SYSTEM,
                now=runtime.clock.now(),
            )

    assert [c.action for c in apply(_bundle())] == ["create", "create"]
    assert api.post("/api/v1/events", json={"events": [transfer("e1", "c1")]}).json()["accepted"] == 1
    assert [c.action for c in apply(_bundle(recontact_days=0))] == ["change"]
    assert apply(_bundle(recontact_days=0)) == []
    assert api.post("/api/v1/events", json={"events": [transfer("e2", "c1")]}).json()["accepted"] == 1
    followups = api.get("/api/v1/followups", params={"customer_id": "c1"}).json()["items"]
    assert sorted((f["event_id"], f["strategy_version"]) for f in followups) == [("e1", 1), ("e2", 2)]
    assert api.get("/api/v1/strategies/after-large-transfer").json()["version"] == 2
