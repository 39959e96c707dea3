"""Dispatch SMS: messages/s the worker sends to a loopback gateway speaking the generic protocol,
against raw `httpx` posting the same number of similar messages with the same concurrency.

Both sides send to a fresh `SmsGateway` that waits `latency_ms` before each answer, standing for a
provider's round trip; `concurrency` is the engine provider's setting (at most that many sends in
flight per worker) and the baseline's thread count. Each side reports the most requests the
gateway saw at once, so the figure shows whether the concurrency was really used.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from pydantic import SecretStr

from followup.bench.dispatch import database_url, make_followups_due, run_invite_step
from followup.bench.gateway import SmsGateway
from followup.bench.measure import Measurement, peak_rss_mb
from followup.bench.world import SMS_SIGN, bench_settings, phone_number
from followup.config import GenericSmsSettings
from followup.kernel.time import ManualClock
from followup.runtime import build_runtime
from followup.worker import Worker

PROVIDER = "bench-gw"
TOKEN = "bench-token"  # noqa: S105 - a made-up token for a gateway on 127.0.0.1
SENDER = "Wallet"
PUBLIC_URL = "http://127.0.0.1:8000"
# About what the engine composes: the body, the question with the reply hint, the link, the opt-out.
SMS_BODY = "感谢您使用钱包转账，您的体验如何？您有多大可能向朋友推荐我们？回复0-10的数字即可评分"


def run_engine(*, messages: int, workdir: str, concurrency: int, latency_ms: int) -> Measurement:
    """Follow-ups invited untimed; then the worker sends every queued SMS, timed."""
    url = database_url(workdir, "dispatch-sms")
    clock = ManualClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    with SmsGateway(token=TOKEN, latency_ms=latency_ms) as gateway:
        provider = GenericSmsSettings(
            kind="generic",
            name=PROVIDER,
            url=gateway.url,
            token=SecretStr(TOKEN),
            sender=SENDER,
            concurrency=concurrency,
        )
        settings = bench_settings(url, public_url=PUBLIC_URL, sms_providers=[provider])
        runtime = build_runtime(settings, clock=clock)
        try:
            make_followups_due(runtime, clock, count=messages, channels=["sms"], with_phone=True)
            worker = Worker(runtime)
            invite_seconds, steps = run_invite_step(worker)
            started = time.perf_counter()
            done = worker.run_until_idle(max_rounds=10 * messages + 10)
            received = gateway.counter.wait_for(messages)
            seconds = time.perf_counter() - started
        finally:
            runtime.close()
    if received != messages or done.messages != messages or gateway.counter.refused:
        raise RuntimeError(
            f"the worker delivered {received} of {messages} messages "
            f"({done.messages} sent, {gateway.counter.refused} refused by the gateway)"
        )
    extra = {
        "invite_seconds": invite_seconds,
        "steps": steps,
        "concurrency": concurrency,
        "latency_ms": latency_ms,
        "peak_in_flight": gateway.counter.peak_in_flight,
    }
    return Measurement(count=received, seconds=seconds, peak_rss_mb=peak_rss_mb(), extra=extra)


def similar_sms(number: int) -> dict[str, str]:
    """About the shape of a follow-up SMS as the generic provider posts it."""
    reference = f"followup-{number + 1}-invite-sms"  # the engine's form: unique per message, stable on retry
    link = f"{PUBLIC_URL}/r/{secrets.token_urlsafe(12)}"  # 16 characters, as the engine's short codes
    return {
        "to": phone_number(number),
        "text": f"【{SMS_SIGN}】{SMS_BODY}\n{link}\n回T退订",
        "sender": SENDER,
        "reference": reference,
        "callback_url": f"{PUBLIC_URL}/hooks/sms/{PROVIDER}/receipts?ref={reference}",
    }


def run_baseline(*, messages: int, workdir: str, concurrency: int, latency_ms: int) -> Measurement:
    """One kept-alive `httpx.Client` shared by `concurrency` threads, one POST per message; building
    each message is timed too, as the engine's composing is."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", "Accept": "application/json"}
    with SmsGateway(token=TOKEN, latency_ms=latency_ms) as gateway, httpx.Client(timeout=30.0, limits=limits) as client:

        def send(number: int) -> str:
            message = similar_sms(number)
            response = client.post(
                f"{gateway.url}/messages",
                content=json.dumps(message, ensure_ascii=False).encode(),
                headers={**headers, "Idempotency-Key": message["reference"]},
            )
            response.raise_for_status()
            return str(response.json()["id"])

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            ids = list(pool.map(send, range(messages)))
        received = gateway.counter.wait_for(messages)
        seconds = time.perf_counter() - started
    if received != messages or len(ids) != messages:
        raise RuntimeError(f"httpx delivered {received} of {messages} messages")
    extra = {"concurrency": concurrency, "latency_ms": latency_ms, "peak_in_flight": gateway.counter.peak_in_flight}
    return Measurement(count=received, seconds=seconds, peak_rss_mb=peak_rss_mb(), extra=extra)
