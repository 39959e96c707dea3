"""Webhooks providers call: SMS receipts and replies, email bounces.

They sit at the root (`/hooks/…`, beside `/s/`), not under `/api/v1`: providers, not the wallet,
call them, and they authenticate by the provider's own signature, never by our API keys. A
request whose signature is missing, wrong or too old gets 401 and changes nothing; one that is
signed but does not read as the provider's format gets 422. Each webhook is applied in one
transaction, and applying it twice (a provider retrying, a replay) changes nothing more.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from sqlalchemy.exc import IntegrityError

from followup.channels import capabilities
from followup.channels.providers import SmsProvider, WebhookFormatError, WebhookRequest, WebhookSignatureError
from followup.channels.sms import webhooks as standard_webhooks
from followup.channels.sms.channel import SmsChannel
from followup.dispatch import receipts
from followup.followups import inbound
from followup.kernel.errors import InvalidInput, NotFound, Unauthorized
from followup.kernel.http import runtime_of
from followup.kernel.logging import get_logger

router = APIRouter(include_in_schema=False)
log = get_logger(__name__)


class ProviderNotFound(NotFound):
    code = "provider_not_found"


class WebhookUnsigned(Unauthorized):
    code = "webhook_signature_invalid"


class WebhookInvalid(InvalidInput):
    code = "webhook_invalid"


async def _webhook(request: Request) -> WebhookRequest:
    """The request as the provider signed it: the public URL it called (with its query), the
    headers with lower-case names, the body's exact bytes."""
    settings = runtime_of(request).settings
    url = settings.public_url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    headers = {name.lower(): value for name, value in request.headers.items()}
    return WebhookRequest(method=request.method, url=url, headers=headers, body=await request.body())


def _sms_provider(request: Request, name: str) -> SmsProvider:
    channel = runtime_of(request).channels.get(capabilities.SMS)
    if isinstance(channel, SmsChannel):
        for provider in channel.providers:
            if provider.name == name:
                return cast(SmsProvider, provider)
    raise ProviderNotFound(f"There is no SMS provider named '{name[:32]}' in FOLLOWUP_SMS_PROVIDERS.")


def _read(read: Any) -> Any:
    try:
        return read()
    except WebhookSignatureError as exc:
        raise WebhookUnsigned("The webhook's signature is missing, wrong or too old.") from exc
    except WebhookFormatError as exc:
        raise WebhookInvalid(f"The webhook could not be read: {exc}") from exc


def _answer(provider: SmsProvider) -> Response:
    answer = provider.answer()
    return Response(content=answer.body, media_type=answer.media_type)


@router.post("/hooks/sms/{provider}/receipts")
async def sms_receipts(provider: str, request: Request) -> Response:
    """Delivery receipts: each moves its message to delivered or failed (and settles an unknown one)."""
    source = _sms_provider(request, provider)
    webhook = await _webhook(request)
    runtime = runtime_of(request)
    now = runtime.clock.now()
    reports = _read(lambda: source.read_receipts(webhook, now=now))
    # The reference our callback URL carries names the message when the provider's id cannot
    # (its send never heard back); it only speaks for a webhook of one receipt.
    reference = request.query_params.get("ref") if len(reports) == 1 else None
    with runtime.session() as session:
        for report in reports:
            receipts.apply_receipt(
                session,
                provider=source.name,
                provider_id=report.provider_id,
                status=report.status,
                error=report.error,
                at=report.at,
                reference=reference,
                now=now,
            )
    return _answer(source)


@router.post("/hooks/sms/{provider}/inbound")
async def sms_inbound(provider: str, request: Request) -> Response:
    """Messages customers sent: opt-outs, help, scores, comments."""
    source = _sms_provider(request, provider)
    webhook = await _webhook(request)
    runtime = runtime_of(request)
    now = runtime.clock.now()
    messages = _read(lambda: source.read_inbound(webhook, now=now))
    for message in messages:  # each in its own transaction: one customer's reply never undoes another's
        try:
            with runtime.session() as session:
                outcome = inbound.receive_sms(
                    session, source.name, message, settings=runtime.settings, keys=runtime.keys, now=now
                )
        except IntegrityError:
            # The same webhook racing itself: the other delivery took the message first.
            log.info("inbound_sms_raced", provider=source.name)
            continue
        log.info("inbound_sms", provider=source.name, kind=outcome.kind)
    return _answer(source)


class Bounce(BaseModel):
    """One email bounce report, as any mail system (or a bridge from it) posts it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: str = Field(pattern="^(hard|soft|complaint)$")
    email: str = Field(min_length=3, max_length=254)
    message_id: str | None = Field(default=None, max_length=255)  # the bounced email's Message-ID
    at: dt.datetime | None = None


_BOUNCES = TypeAdapter(list[Bounce] | Bounce)
MAX_BOUNCES = 1000


@router.post("/hooks/email/bounces")
async def email_bounces(request: Request) -> Response:
    """Email bounces in the Standard Webhooks form, signed with FOLLOWUP_EMAIL_WEBHOOK_SECRET: a hard
    bounce marks the address bounced (the policy then stops emailing it), a complaint withdraws the
    customer's email consent."""
    runtime = runtime_of(request)
    settings = runtime.settings
    webhook = await _webhook(request)
    now = runtime.clock.now()
    secret = settings.email_webhook_secret
    try:
        if secret is None:
            raise WebhookSignatureError("no FOLLOWUP_EMAIL_WEBHOOK_SECRET")
        standard_webhooks.verify(secret.get_secret_value(), webhook.headers, webhook.body, now=now)
    except WebhookSignatureError as exc:
        raise WebhookUnsigned("The webhook's signature is missing, wrong or too old.") from exc
    try:
        parsed = _BOUNCES.validate_json(webhook.body)
    except ValidationError as exc:
        raise WebhookInvalid(f"The bounce report could not be read: {_problem(exc)}") from exc
    bounces = parsed if isinstance(parsed, list) else [parsed]
    if len(bounces) > MAX_BOUNCES:
        raise WebhookInvalid(f"A webhook carries at most {MAX_BOUNCES} bounces.")
    marked = 0
    with runtime.session() as session:
        for bounce in bounces:
            marked += receipts.apply_bounce(
                session,
                address=bounce.email,
                kind=bounce.type,
                message_ref=bounce.message_id,
                keys=runtime.keys,
                built_in_notice_version=settings.privacy_notice_version,
                now=now,
            )
    return Response(content=f'{{"ok":true,"marked":{marked}}}', media_type="application/json")


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"
