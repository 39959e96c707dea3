"""Dispatch: messages/s from due follow-ups to a loopback SMTP server through `Worker`, against
`smtplib` sending the same number of similar messages to the same kind of server."""

from __future__ import annotations

import datetime as dt
import smtplib
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

from followup.bench.measure import Measurement, peak_rss_mb
from followup.bench.sink import SmtpSink
from followup.bench.world import (
    bench_settings,
    create_reachable_customers,
    create_strategies,
    customer_id,
    daytime_zone,
    migrate,
    sqlite_url,
)
from followup.events import service as events
from followup.kernel.time import ManualClock
from followup.runtime import build_runtime
from followup.worker import Worker

BODY_TEXT = "您好，感谢您使用钱包转账。您有多大可能向朋友推荐我们？ 0 1 2 3 4 5 6 7 8 9 10\n" * 8


def large_transfers(count: int, *, occurred_at: dt.datetime) -> list[dict[str, object]]:
    """One large transfer per customer: each plans exactly one follow-up (the fatigue budget
    allows one per customer)."""
    return [
        {
            "event_id": f"transfer-{number:07d}",
            "type": "transfer.succeeded",
            "customer_id": customer_id(number),
            "occurred_at": occurred_at.isoformat(),
            "amount": 650_000,
            "currency": "CNY",
            "attributes": {"to": "friend"},
        }
        for number in range(count)
    ]


def run_engine(*, messages: int, workdir: str) -> Measurement:
    """Follow-ups planned by the engine and made due; then the worker sends them all, timed."""
    url = sqlite_url(Path(workdir) / f"dispatch-{uuid.uuid4().hex[:8]}.db")
    migrate(url)
    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    clock = ManualClock(start)
    with SmtpSink() as sink:
        runtime = build_runtime(bench_settings(url, smtp_port=sink.port), clock=clock)
        try:
            create_strategies(runtime, channels=["email"])
            create_reachable_customers(runtime, messages, time_zone=daytime_zone(start))
            transfers = large_transfers(messages, occurred_at=start)
            for offset in range(0, messages, 5000):
                with runtime.session() as session:
                    events.ingest_events(
                        session,
                        transfers[offset : offset + 5000],
                        now=start,
                        settings=runtime.settings,
                    )
            clock.set(start + dt.timedelta(hours=1))  # past every strategy's delay: all invitations due
            worker = Worker(runtime)
            started = time.perf_counter()
            done = worker.run_until_idle(max_rounds=10 * messages + 10)
            received = sink.handler.wait_for(messages)
            seconds = time.perf_counter() - started
        finally:
            runtime.close()
    if received != messages or done.messages != messages:
        raise RuntimeError(f"the worker delivered {received} of {messages} messages ({done.messages} sent)")
    return Measurement(count=received, seconds=seconds, peak_rss_mb=peak_rss_mb(), extra={"steps": done.steps})


def similar_message(number: int) -> EmailMessage:
    """About the shape of a follow-up invitation: a text and an HTML part, headers, a link."""
    link = f"http://127.0.0.1:8000/s/{uuid.uuid4().hex}{uuid.uuid4().hex}"
    message = EmailMessage()
    message["From"] = "feedback@wallet.example"
    message["To"] = f"{customer_id(number)}@example.com"
    message["Subject"] = "您的转账体验如何？"
    message["List-Unsubscribe"] = f"<{link}/u>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(f"{BODY_TEXT}\n{link}\n")
    message.add_alternative(f"<html><body><p>{BODY_TEXT}</p><a href='{link}'>评价</a></body></html>", subtype="html")
    return message


def run_baseline(*, messages: int, workdir: str) -> Measurement:
    """One connection per message, as the email channel does (no session reuse on either side);
    building each message is timed too, as the engine's rendering is."""
    with SmtpSink() as sink:
        started = time.perf_counter()
        for number in range(messages):
            message = similar_message(number)
            with smtplib.SMTP("127.0.0.1", sink.port, timeout=30) as client:
                client.send_message(message)
        received = sink.handler.wait_for(messages)
        seconds = time.perf_counter() - started
    if received != messages:
        raise RuntimeError(f"smtplib delivered {received} of {messages} messages")
    return Measurement(count=received, seconds=seconds, peak_rss_mb=peak_rss_mb())
