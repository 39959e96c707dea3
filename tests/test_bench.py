"""`followup bench` end to end with tiny sizes: every figure is there, measured, with its baseline.

Speed is never asserted here; this only proves the benchmark runs and reports honestly shaped
numbers. PostgreSQL's ingest figure is included when FOLLOWUP_TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from followup.cli.main import app


@pytest.mark.timeout(300)
def test_bench_writes_every_figure_with_its_baseline_and_ratio(tmp_path: Path) -> None:
    # Given tiny sizes and, when the test database is PostgreSQL, that server too
    out = tmp_path / "bench.json"
    postgres = os.environ.get("FOLLOWUP_TEST_DATABASE_URL")
    args = ["bench", "--events", "2000", "--batch", "500", "--messages", "20", "--requests", "50", "--runs", "1"]
    args += ["--segment-customers", "3000", "--sms-concurrency", "3", "--sms-latency-ms", "5"]
    args += ["--out", str(out)]
    if postgres:
        args += ["--postgres", postgres, "--postgres-events", "2000"]

    # When the benchmark runs
    result = CliRunner().invoke(app, args, env={"FOLLOWUP_DATABASE_URL": "sqlite:///unused.db"})

    # Then it printed the table and wrote every figure, each beside its baseline
    assert result.exit_code == 0, result.output
    assert "ingest SQLite" in result.stdout
    report = json.loads(out.read_text())
    expected = {"ingest SQLite", "dispatch email", "dispatch SMS", "answer one-click", "segment preview"}
    expected |= {"wave planning"}
    expected |= {"ingest PostgreSQL", "wave planning PostgreSQL"} if postgres else set()
    assert set(report["figures"]) == expected
    sizes = {
        "ingest SQLite": 2000,
        "ingest PostgreSQL": 2000,
        "dispatch email": 20,
        "dispatch SMS": 20,
        "answer one-click": 50,
        "segment preview": 3000,
        "wave planning": 3000,
        "wave planning PostgreSQL": 3000,
    }
    for name, figure in report["figures"].items():
        assert figure["size"] == sizes[name]
        assert figure["engine"] > 0
        assert figure["baseline"] > 0
        assert figure["ratio"] > 0
        assert figure["engine_peak_rss_mb"] > 0
        assert figure["baseline_peak_rss_mb"] > 0
        assert len(figure["runs"]) == 1
        run = figure["runs"][0]
        if name.startswith("wave planning"):
            # the wave planned, past the contact policy, every row the raw INSERT … SELECT wrote
            assert run["engine"]["count"] == run["baseline"]["count"] > 0
            assert run["engine"]["extra"]["suppressed"] == 0
            continue
        # every event, message and answer was really processed, not just timed
        assert run["engine"]["count"] == sizes[name]
        assert run["baseline"]["count"] == sizes[name]
    answer = report["figures"]["answer one-click"]
    assert 0 < answer["engine_p50_ms"] <= answer["engine_p99_ms"]
    assert 0 < answer["baseline_p50_ms"] <= answer["baseline_p99_ms"]
    assert report["figures"]["ingest SQLite"]["runs"][0]["engine"]["extra"]["followups"] > 0
    # dispatch times sending only; the invite step before it is reported on its own
    email = report["figures"]["dispatch email"]["runs"][0]
    assert email["engine"]["extra"]["steps"] == 20
    assert email["engine"]["extra"]["invite_seconds"] > 0
    assert email["engine"]["extra"]["connections_opened"] >= 1
    assert email["baseline"]["extra"]["connections_opened"] == 1
    # both SMS sides ran with the chosen concurrency and latency; the baseline really used it
    sms = report["figures"]["dispatch SMS"]["runs"][0]
    assert sms["engine"]["extra"]["steps"] == 20
    for side in ("engine", "baseline"):
        assert (sms[side]["extra"]["concurrency"], sms[side]["extra"]["latency_ms"]) == (3, 5)
        assert 1 <= sms[side]["extra"]["peak_in_flight"] <= 3
    assert sms["baseline"]["extra"]["peak_in_flight"] == 3
    assert report["options"]["sms_concurrency"] == 3
    # the preview found the customers the raw count found, and showed a sample of them
    preview = report["figures"]["segment preview"]["runs"][0]
    assert preview["engine"]["extra"]["matched"] == preview["baseline"]["extra"]["matched"] > 0
    assert preview["engine"]["extra"]["sample"] == 20
    assert report["machine"]["cpus"] >= 1
    assert report["machine"]["sqlite"]
