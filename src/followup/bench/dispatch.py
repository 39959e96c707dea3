"""Dispatch email: messages/s the worker sends to a loopback SMTP server once its follow-ups have
been invited, against raw `smtplib` sending the same number of similar messages over one connection.

The timed part is sending only. Inviting (the follow-up timer that runs the contact policy and
queues each message) runs before the clock starts; its own seconds are reported beside the figure
in `extra`, so the whole path from due follow-up to sent message can still be shown.

The world set up here (`make_followups_due`, `run_invite_step`) is shared with the SMS figure.
"""

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
from followup.channels.email import SmtpChannel
from followup.events import service as events
from followup.kernel.time import ManualClock
from followup.runtime import Runtime, build_runtime
from followup.worker import Worker

BODY_TEXT = "您好，感谢您使用钱包转账。您有多大可能向朋友推荐我们？ 0 1 2 3 4 5 6 7 8 9 10\n" * 8
INGEST_BATCH = 5000


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


def database_url(workdir: str, name: str) -> str:
    url = sqlite_url(Path(workdir) / f"{name}-{uuid.uuid4().hex[:8]}.db")
    migrate(url)
    return url


def make_followups_due(
    runtime: Runtime, clock: ManualClock, *, count: int, channels: list[str], with_phone: bool = False
) -> None:
    """`count` reachable customers, strategies over `channels`, one large transfer each; then the
    clock moves past every strategy's delay, so `count` follow-ups are due to be invited."""
    start = clock.now()
    create_strategies(runtime, channels=channels)
    create_reachable_customers(runtime, count, time_zone=daytime_zone(start), with_phone=with_phone)
    transfers = large_transfers(count, occurred_at=start)
    for offset in range(0, count, INGEST_BATCH):
        with runtime.session() as session:
            events.ingest_events(
                session, transfers[offset : offset + INGEST_BATCH], now=start, settings=runtime.settings
            )
    clock.set(start + dt.timedelta(hours=1))


def run_invite_step(worker: Worker) -> tuple[float, int]:
    """Run the worker's timers until none has work left: every due follow-up is invited and its
    message queued, none sent. Returns (seconds, steps)."""
    started = time.perf_counter()
    steps = 0
    while done := worker.run_timers():
        steps += done
    return time.perf_counter() - started, steps


def run_engine(*, messages: int, workdir: str) -> Measurement:
    """Follow-ups invited untimed; then the worker sends every queued email, timed."""
    url = database_url(workdir, "dispatch-email")
    clock = ManualClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    with SmtpSink() as sink:
        runtime = build_runtime(bench_settings(url, smtp_port=sink.port), clock=clock)
        try:
            make_followups_due(runtime, clock, count=messages, channels=["email"])
            worker = Worker(runtime)
            invite_seconds, steps = run_invite_step(worker)
            started = time.perf_counter()
            done = worker.run_until_idle(max_rounds=10 * messages + 10)
            received = sink.handler.wait_for(messages)
            seconds = time.perf_counter() - started
            channel = runtime.channels["email"]
            opened = channel.connections_opened if isinstance(channel, SmtpChannel) else None
        finally:
            runtime.close()
    if received != messages or done.messages != messages:
        raise RuntimeError(f"the worker delivered {received} of {messages} messages ({done.messages} sent)")
    extra = {"invite_seconds": invite_seconds, "steps": steps, "connections_opened": opened}
    return Measurement(count=received, seconds=seconds, peak_rss_mb=peak_rss_mb(), extra=extra)


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
    """Every message over one connection, as a hand-written sender would do it; building each
    message is timed too, as the engine's rendering is."""
    with SmtpSink() as sink:
        started = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=30) as client:
            for number in range(messages):
                client.send_message(similar_message(number))
        received = sink.handler.wait_for(messages)
        seconds = time.perf_counter() - started
    if received != messages:
        raise RuntimeError(f"smtplib delivered {received} of {messages} messages")
    return Measurement(count=received, seconds=seconds, peak_rss_mb=peak_rss_mb(), extra={"connections_opened": 1})
