"""The SMS channel: the message as a phone shows it, a short link, and the providers in order.

The text is the body, the rating question with how to answer by reply, the short link on a line
of its own, and the opt-out line the number's carriers expect (`text.compose`); a mainland number's
text opens with the 【sign】. A reply the customer asked for (an opt-out's confirmation, help, a
thank-you) is sent as it is, with the sign. Its segment count is recorded with the message.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace

from sqlalchemy.orm import Session

from followup.channels import service
from followup.channels.base import Delivery, PermanentChannelError, Receipt
from followup.channels.capabilities import BUILT_IN, SMS
from followup.channels.health import ProviderHealth
from followup.channels.provider_channel import ProviderChannel
from followup.channels.providers import Outgoing, Provider
from followup.channels.rate_limit import RateLimiter
from followup.channels.schemas import MessageContent
from followup.channels.sms.text import check_segments, compose, is_mainland
from followup.kernel.crypto import KeyProvider
from followup.kernel.time import Clock

# How long a short link lives when the content does not say (the invitation's usual validity).
_DEFAULT_LINK_DAYS = 14
_REPLY_HINT = {"zh-CN": "回复{low}-{high}的数字即可评分", "en": "Reply with a number from {low} to {high}"}
# A question answered by name (yes_no): each answer's number and label, "回复1：是我；回复2：不是我".
_LABELLED_HINT = {"zh-CN": ("回复{score}：{label}", "；"), "en": ("Reply {score}: {label}", "; ")}


def sms_body(content: MessageContent) -> str:
    """What the SMS says before its link: the body, and the question with how to answer by reply."""
    parts = [(content.short_body or content.body).strip()]
    if content.question:
        parts.append(content.question.strip())
    if content.rating_links and all(link.label for link in content.rating_links):
        each, separator = _LABELLED_HINT.get(content.locale, _LABELLED_HINT["en"])
        parts.append(separator.join(each.format(score=link.score, label=link.label) for link in content.rating_links))
    elif content.rating_links:
        scores = [link.score for link in content.rating_links]
        hint = _REPLY_HINT.get(content.locale, _REPLY_HINT["en"])
        parts.append(hint.format(low=min(scores), high=max(scores)))
    return "\n".join(part for part in parts if part)


class SmsChannel(ProviderChannel):
    def __init__(
        self,
        providers: Sequence[Provider],
        *,
        health: ProviderHealth,
        limiter: RateLimiter,
        clock: Clock,
        keys: KeyProvider,
        session: Callable[[], AbstractContextManager[Session]],
        public_url: str,
        sign: str | None,
    ) -> None:
        # Retrying with the same key is safe only when every provider honours it.
        idempotent = all(provider.idempotent for provider in providers)
        super().__init__(
            SMS, replace(BUILT_IN[SMS], idempotent=idempotent), providers, health=health, limiter=limiter, clock=clock
        )
        self._keys = keys
        self._session = session
        self._public_url = public_url
        self._sign = sign

    def text(self, delivery: Delivery) -> str:
        content, to = delivery.content, delivery.address or ""
        link = None
        if content.link:
            link = f"{self._public_url}/r/{self._short_code(delivery)}"
        if content.transactional:
            body = content.body.strip()
            text = f"【{self._sign}】{body}" if self._sign and is_mainland(to) else body
            return f"{text}\n{link}" if link else text
        return compose(sms_body(content), link=link, locale=content.locale, to=to, sign=self._sign)

    def _short_code(self, delivery: Delivery) -> str:
        now = self._clock.now()
        expires_at = delivery.content.link_expires_at or now + dt.timedelta(days=_DEFAULT_LINK_DAYS)
        with self._session() as session:
            return service.shorten(
                session,
                customer_id=delivery.customer_id,
                idempotency_key=delivery.idempotency_key,
                target=delivery.content.link,
                expires_at=expires_at,
                keys=self._keys,
                now=now,
            )

    def outgoing(self, delivery: Delivery) -> Outgoing:
        text = self.text(delivery)
        try:
            check_segments(text)
        except ValueError as exc:
            raise PermanentChannelError(str(exc), code="sms_too_long") from exc
        return Outgoing(to=delivery.address or "", text=text, reference=delivery.idempotency_key)

    def for_provider(self, outgoing: Outgoing, provider: Provider) -> Outgoing:
        callback = f"{self._public_url}/hooks/sms/{provider.name}/receipts?ref={outgoing.reference}"
        return replace(outgoing, callback_url=callback)

    def receipt(self, delivery: Delivery, outgoing: Outgoing, provider: Provider, provider_id: str) -> Receipt:
        _, count = check_segments(outgoing.text)
        return Receipt(provider_ref=provider_id, provider=provider.name, segments=count)
