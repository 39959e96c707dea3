"""The console's channels page: each channel this process sends on, its providers' health (the
circuit, failures in a row, the last error), their rate limit and what they did today, and the
funnel per channel over the last 30 days."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from followup.channels import service as channels
from followup.channels.provider_channel import ProviderChannel
from followup.dispatch import service as dispatch
from followup.insights import service as insights
from followup.kernel.http import Now, ReadSession, runtime_of
from followup.web.console.auth import ConsoleStaff
from followup.web.console.pages import render_page

router = APIRouter(prefix="/console", include_in_schema=False)
FUNNEL_DAYS = 30


@dataclass(frozen=True)
class ProviderRow:
    channel: str
    provider: str
    kind: str
    rate_per_second: float | None
    circuit: str  # closed | open
    open_until: dt.datetime | None
    failures_in_row: int
    skipped: int
    today: dict[str, int]
    last_error_code: str | None
    last_error_at: dt.datetime | None
    last_success_at: dt.datetime | None


@router.get("/channels", response_class=HTMLResponse)
def channel_list(request: Request, signed_in: ConsoleStaff, session: ReadSession, now: Now) -> Response:
    installed = runtime_of(request).channels
    health = {(row.channel, row.provider): row for row in channels.provider_health(session)}
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    volume = dispatch.volume_by_provider(session, since=midnight)
    rows: list[ProviderRow] = []
    for name, channel in sorted(installed.items()):
        providers = channel.providers if isinstance(channel, ProviderChannel) else []
        named = [(p.name, p.kind, p.rate_per_second) for p in providers] or [(name, name, None)]
        for provider, kind, rate in named:
            state = health.get((name, provider))
            open_until = state.open_until if state and state.open_until and state.open_until > now else None
            rows.append(
                ProviderRow(
                    channel=name,
                    provider=provider,
                    kind=kind,
                    rate_per_second=rate,
                    circuit="open" if open_until else "closed",
                    open_until=open_until,
                    failures_in_row=state.failures_in_row if state else 0,
                    skipped=state.skipped if state else 0,
                    today=volume.get((name, provider), {}),
                    last_error_code=state.last_error_code if state else None,
                    last_error_at=state.last_error_at if state else None,
                    last_success_at=state.last_success_at if state else None,
                )
            )
    funnel = insights.funnel(session, since=now - dt.timedelta(days=FUNNEL_DAYS), until=None, group_by="channel")
    return render_page(
        request,
        "channels.html",
        signed_in,
        {"title": "Channels", "nav": "channels", "rows": rows, "funnel": funnel, "days": FUNNEL_DAYS},
    )
