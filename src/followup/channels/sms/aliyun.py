"""The `aliyun` SMS provider: Alibaba Cloud SMS `SendSms` and its HTTP batch push.

Sending is one RPC-style call (API version 2017-05-25), POSTed as a form so the number never sits
in a URL that a proxy logs, and signed as Alibaba Cloud's RPC signature version 1.0 demands:
HMAC-SHA1, keyed with the AccessKey secret + "&", over "POST&%2F&" + the percent-encoded,
name-sorted parameters. `SendSms` has no idempotency key (Alibaba Cloud says so), so this provider
is not `idempotent`.

Mainland carriers deliver only pre-approved templates under an approved sign name, so the 【sign】
and the opt-out line are the template's, not ours: `template_params` takes them off our composed
text and hands the template two variables, `text` and (when the message has one) `link`.

Alibaba Cloud's HTTP push (SmsReport, SmsUp) carries no signature at all, so our endpoint cannot
check one of Alibaba's. It accepts a push only when it proves knowledge of the provider's
`webhook_secret`, in one of two ways (docs/channels/aliyun.md says why):

- `?token=` in the push URL equal to `push_token(webhook_secret)`, compared in constant time
  (the URL configured in the Alibaba Cloud console), or
- a Standard Webhooks signature with `webhook_secret`, from a relay that signs what it forwards.

https://help.aliyun.com/en/sms/developer-reference/api-dysmsapi-2017-05-25-sendsms
https://help.aliyun.com/zh/sms/developer-reference/smsreport-2
https://help.aliyun.com/zh/sms/developer-reference/smsup-http
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Mapping
from typing import Annotated
from urllib.parse import parse_qs, quote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from followup.channels.providers import (
    AddressGoneError,
    InboundSms,
    Outgoing,
    PermanentProviderError,
    ReceiptReport,
    TransientProviderError,
    UnknownOutcomeError,
    WebhookAnswer,
    WebhookFormatError,
    WebhookRequest,
    WebhookSignatureError,
    retry_after_seconds,
)
from followup.channels.sms import webhooks
from followup.channels.sms.generic import (
    DEFAULT_TIMEOUT,
    MAX_ITEMS_PER_WEBHOOK,
    exchange,
    format_problem,
    json_object,
    open_client,
    retryable_status,
    transient_answer,
)
from followup.channels.sms.text import MAINLAND_PREFIX, OPT_OUT_LINES
from followup.config import AliyunSmsSettings
from followup.kernel.time import Clock

API_VERSION = "2017-05-25"
REGION = "cn-hangzhou"
PUSH_QUERY_NAME = "token"
# Alibaba Cloud writes the times of its pushes in China Standard Time, which has no daylight saving.
CHINA_STANDARD_TIME = dt.timezone(dt.timedelta(hours=8), "CST")

_INVALID_NUMBER = "isv.MOBILE_NUMBER_ILLEGAL"
_LIMITED = "isv.BUSINESS_LIMIT_CONTROL"  # the per-number frequency limit: a later try may pass
_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_SIGN_PREFIX = re.compile(r"^【[^】\n]{1,32}】")
_URL_LINE = re.compile(r"^https?://\S+$")
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M%S")
_ANSWER = WebhookAnswer(
    media_type="application/json", body=json.dumps({"code": 0, "msg": "接收成功"}, ensure_ascii=False).encode()
)


def percent_encode(value: str) -> str:
    """Alibaba Cloud's percent-encoding: RFC 3986 unreserved characters stay, everything else
    (space as %20, * as %2A) becomes %XY of its UTF-8 bytes."""
    return quote(value, safe="-_.~")


def rpc_signature(params: Mapping[str, str], *, secret: str, method: str = "POST") -> str:
    """The `Signature` of an RPC request with these parameters (every one but Signature itself)."""
    canonical = "&".join(
        f"{percent_encode(name)}={percent_encode(value)}"
        for name, value in sorted(params.items())
        if name != "Signature"
    )
    string_to_sign = f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def push_token(webhook_secret: str) -> str:
    """The `token` the push URLs in the Alibaba Cloud console carry, derived from the secret.

    Derived rather than the secret itself, so a URL that leaks (a console screenshot, a log) does
    not let anyone sign Standard Webhooks as a relay would. The `ap1_` prefix names the scheme and
    keeps the token one that followup's log scrubber hides.
    """
    digest = hmac.new(webhooks.secret_key(webhook_secret), b"followup aliyun push token", hashlib.sha256).digest()
    return "ap1_" + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def template_params(outgoing: Outgoing) -> dict[str, str]:
    """The template's variables for one message: `text`, and `link` when the message has one.

    The composed text's 【sign】 prefix and opt-out line are dropped (the sign name and the
    template add their own), and so is the line holding the link, which goes in `link`.
    """
    lines = outgoing.text.strip().split("\n")
    lines[0] = _SIGN_PREFIX.sub("", lines[0], count=1)
    if lines and lines[-1].strip() in OPT_OUT_LINES:
        lines.pop()
    link = outgoing.link
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index].strip()
        if (link is not None and line == link) or (link is None and _URL_LINE.match(line)):
            link = line
            del lines[index]
            break
    params = {"text": "\n".join(lines).strip()}
    if link:
        params["link"] = link
    return params


def phone_numbers(number: str) -> str:
    """`PhoneNumbers` for an E.164 number: mainland numbers without +86, others as country code and
    number without the plus (Alibaba Cloud's international form)."""
    if number.startswith(MAINLAND_PREFIX):
        return number[len(MAINLAND_PREFIX) :]
    return number.removeprefix("+")


class SmsReport(BaseModel):
    """One delivery report of Alibaba Cloud's SmsReport push."""

    model_config = ConfigDict(extra="ignore")

    biz_id: str = Field(min_length=1, max_length=128)
    success: bool
    err_code: str | None = None
    report_time: str | None = None
    out_id: str | None = None


class SmsUp(BaseModel):
    """One message a customer sent, from Alibaba Cloud's SmsUp push."""

    model_config = ConfigDict(extra="ignore")

    phone_number: str = Field(min_length=5, max_length=20)
    content: str = Field(max_length=10_000)
    send_time: str | None = None
    dest_code: str | None = Field(default=None, max_length=32)
    sequence_id: str | None = Field(default=None, max_length=64)
    sign_name: str | None = None

    @field_validator("sequence_id", "dest_code", mode="before")
    @classmethod
    def _number_as_text(cls, value: object) -> object:
        # Alibaba Cloud's samples send sequence_id as a number in one page and a string in another.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


_Reports = TypeAdapter(Annotated[list[SmsReport], Field(max_length=MAX_ITEMS_PER_WEBHOOK)] | SmsReport)
_Ups = TypeAdapter(Annotated[list[SmsUp], Field(max_length=MAX_ITEMS_PER_WEBHOOK)] | SmsUp)


class AliyunSmsProvider:
    kind = "aliyun"
    idempotent = False

    def __init__(
        self,
        settings: AliyunSmsSettings,
        *,
        clock: Clock,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = settings.name
        self.rate_per_second = settings.rate_per_second
        self.concurrency = settings.concurrency
        self._settings = settings
        self._clock = clock
        self._client = open_client(timeout=timeout, transport=transport, concurrency=settings.concurrency)

    def send(self, outgoing: Outgoing) -> str:
        settings = self._settings
        params = {
            "AccessKeyId": settings.access_key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "RegionId": REGION,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,  # a fresh nonce per request: Alibaba refuses a repeated one
            "SignatureVersion": "1.0",
            "Timestamp": self._clock.now().astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": API_VERSION,
            "PhoneNumbers": phone_numbers(outgoing.to),
            "SignName": settings.sign_name,
            "TemplateCode": settings.template_code,
            "TemplateParam": json.dumps(template_params(outgoing), ensure_ascii=False, separators=(",", ":")),
            "OutId": outgoing.reference,
        }
        params["Signature"] = rpc_signature(params, secret=settings.access_key_secret.get_secret_value())
        request = self._client.build_request(
            "POST",
            f"{settings.url}/",
            content="&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in params.items()).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        )
        response = exchange(self._client, request, provider=self.name)
        return self._read_answer(response)

    def _read_answer(self, response: httpx.Response) -> str:
        status = response.status_code
        if retryable_status(status):
            raise transient_answer(response, provider=self.name)
        body = json_object(response) or {}
        code = body.get("Code")
        if code == "OK" and 200 <= status < 300:
            biz_id = body.get("BizId")
            if not isinstance(biz_id, str) or not biz_id:
                raise UnknownOutcomeError(f"{self.name}: answered OK without a BizId", code="no_id")
            return biz_id
        if not isinstance(code, str) or not _CODE.match(code):
            if 200 <= status < 300:
                raise UnknownOutcomeError(f"{self.name}: answered {status} without a Code", code="no_code")
            raise PermanentProviderError(
                f"{self.name}: Alibaba Cloud refused the request ({status})", code=f"http_{status}"
            )
        # Alibaba Cloud's Message is not quoted: some of its messages repeat the number.
        if code == _INVALID_NUMBER:
            raise AddressGoneError(
                f"{self.name}: Alibaba Cloud says the number is invalid", code=code, status="invalid"
            )
        if code == _LIMITED or code.startswith("Throttling"):
            raise TransientProviderError(
                f"{self.name}: Alibaba Cloud is limiting the rate ({code})",
                code=code,
                retry_after=retry_after_seconds(response.headers.get("retry-after")),
            )
        raise PermanentProviderError(f"{self.name}: Alibaba Cloud refused the message ({code})", code=code)

    def read_receipts(self, request: WebhookRequest, *, now: dt.datetime) -> list[ReceiptReport]:
        self._authenticate(request, now=now)
        try:
            parsed = _Reports.validate_json(request.body)
        except ValidationError as exc:
            raise WebhookFormatError(f"the push does not read as SmsReport: {format_problem(exc)}") from None
        reports = parsed if isinstance(parsed, list) else [parsed]
        return [
            ReceiptReport(
                provider_id=report.biz_id,
                status="delivered" if report.success else "failed",
                error=None if report.success else (report.err_code or "failed")[:64],
                at=china_time(report.report_time),
            )
            for report in reports
        ]

    def read_inbound(self, request: WebhookRequest, *, now: dt.datetime) -> list[InboundSms]:
        secret = self._authenticate(request, now=now)
        try:
            parsed = _Ups.validate_json(request.body)
        except ValidationError as exc:
            raise WebhookFormatError(f"the push does not read as SmsUp: {format_problem(exc)}") from None
        ups = parsed if isinstance(parsed, list) else [parsed]
        return [
            InboundSms(
                provider_id=smsup_id(up, webhook_secret=secret),
                sender=sender_e164(up.phone_number),
                to=up.dest_code or "",
                text=up.content,
                at=china_time(up.send_time),
            )
            for up in ups
        ]

    def _authenticate(self, request: WebhookRequest, *, now: dt.datetime) -> str:
        """The provider's webhook_secret, once the request has proved it knows it."""
        secret = self._settings.webhook_secret
        if secret is None:
            raise WebhookSignatureError(f"{self.name} has no webhook_secret, so it accepts no pushes")
        value = secret.get_secret_value()
        if any(name in request.headers for name in ("webhook-id", "webhook-timestamp", "webhook-signature")):
            # A relay that signs: its signature alone decides, a token in the URL does not rescue it.
            webhooks.verify(value, request.headers, request.body, now=now)
            return value
        tokens = parse_qs(urlsplit(request.url).query, keep_blank_values=True).get(PUSH_QUERY_NAME, [])
        if len(tokens) != 1:
            raise WebhookSignatureError("the push carries neither a token in its URL nor a webhook signature")
        if not hmac.compare_digest(tokens[0].encode("utf-8"), push_token(value).encode("ascii")):
            raise WebhookSignatureError("the push URL's token is wrong")
        return value

    def answer(self) -> WebhookAnswer:
        """Alibaba Cloud counts a push delivered on 200 with a numeric `code`; anything else is pushed again."""
        return _ANSWER

    def close(self) -> None:
        self._client.close()


def china_time(value: str | None) -> dt.datetime | None:
    """A push's time (China Standard Time, "2017-01-01 00:00:00") in UTC; None when unreadable,
    since a report without a readable time is still a report."""
    if not value:
        return None
    for pattern in _TIME_FORMATS:
        try:
            local = dt.datetime.strptime(value.strip(), pattern).replace(tzinfo=CHINA_STANDARD_TIME)
        except ValueError:
            continue
        return local.astimezone(dt.UTC)
    return None


def sender_e164(phone_number: str) -> str:
    """The customer's number in E.164: SmsUp names mainland numbers without +86."""
    number = phone_number.strip()
    digits = number.removeprefix("+")
    if not digits.isascii() or not digits.isdigit():
        raise WebhookFormatError("an SmsUp phone_number holds something other than digits")
    if number.startswith("+"):
        return number
    if len(digits) == 11 and digits.startswith("1"):
        return MAINLAND_PREFIX + digits
    if len(digits) == 13 and digits.startswith("86"):
        return "+" + digits
    raise WebhookFormatError("an SmsUp phone_number is neither a mainland mobile number nor in E.164")


def smsup_id(up: SmsUp, *, webhook_secret: str) -> str:
    """A stable id for an upstream message, which SmsUp does not give: a push retried by Alibaba
    Cloud repeats every field, so it gets the same id and is recorded once.

    Keyed with the webhook secret so that the id, stored beside the message, cannot be reversed to
    the customer's number by trying every number. Rotating the secret changes the ids of pushes
    retried across the rotation (Alibaba Cloud retries within about 16 minutes).
    """
    fields = [up.sequence_id, up.send_time, up.dest_code, up.phone_number, up.content]
    key = hmac.new(webhooks.secret_key(webhook_secret), b"followup aliyun smsup id", hashlib.sha256).digest()
    digest = hmac.new(key, json.dumps(fields, ensure_ascii=False).encode(), hashlib.sha256).hexdigest()
    return f"smsup_{digest[:32]}"
