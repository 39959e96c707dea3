"""Which channels this process can send on: email, the inbox and the call queue always, SMS when providers are
configured (FOLLOWUP_SMS_PROVIDERS), push when FCM or APNs is (FOLLOWUP_FCM, FOLLOWUP_APNS), plus
any installed through the `followup.channels` entry point group (a callable taking a
`ChannelContext`, returning a channel). Each channel's capabilities are recorded by the runtime
that runs it, so the contact policy and dispatch treat a plugin as they treat a built-in."""

from __future__ import annotations

import datetime as dt
from importlib.metadata import entry_points

from followup.channels import capabilities
from followup.channels.base import Channel, ChannelContext
from followup.channels.email import SmtpChannel
from followup.channels.health import ProviderHealth
from followup.channels.inapp import InAppChannel
from followup.channels.phone import CallQueueChannel
from followup.channels.providers import Provider
from followup.channels.push.apns import ApnsProvider
from followup.channels.push.channel import PushChannel
from followup.channels.push.fcm import FcmProvider
from followup.channels.rate_limit import DatabaseRateLimiter, RateLimiter, RedisRateLimiter
from followup.channels.sms.aliyun import AliyunSmsProvider
from followup.channels.sms.channel import SmsChannel
from followup.channels.sms.generic import GenericSmsProvider
from followup.channels.sms.twilio import TwilioSmsProvider
from followup.config import AliyunSmsSettings, GenericSmsSettings, SmsProviderSettings
from followup.customers.contacts import Platform
from followup.kernel.errors import ConfigurationError


def default_channels(context: ChannelContext) -> dict[str, Channel]:
    settings = context.settings
    channels: dict[str, Channel] = {
        capabilities.EMAIL: SmtpChannel(
            settings.smtp_url, sender=settings.smtp_from, privacy_url=f"{settings.public_url}/privacy"
        ),
        capabilities.INAPP: InAppChannel(context.session, keys=context.keys, clock=context.clock),
        capabilities.PHONE: CallQueueChannel(),
    }
    limiter = rate_limiter(context)
    if settings.sms_providers:
        channels[capabilities.SMS] = SmsChannel(
            [sms_provider(item, context) for item in settings.sms_providers],
            health=_health(capabilities.SMS, context),
            limiter=limiter,
            clock=context.clock,
            keys=context.keys,
            session=context.session,
            public_url=settings.public_url,
            sign=settings.sms_sign,
        )
    by_platform: dict[str, Provider] = {}
    try:
        if settings.fcm is not None:
            by_platform[Platform.ANDROID] = FcmProvider(settings.fcm, clock=context.clock)
        if settings.apns is not None:
            by_platform[Platform.IOS] = ApnsProvider(settings.apns, clock=context.clock)
    except ValueError as exc:  # a key file that is missing or does not parse; the message names the setting
        raise ConfigurationError(str(exc)) from exc
    if by_platform:
        channels[capabilities.PUSH] = PushChannel(
            by_platform, health=_health(capabilities.PUSH, context), limiter=limiter, clock=context.clock
        )
    for entry in entry_points(group="followup.channels"):
        channel = entry.load()(context)
        channels[channel.name] = channel
    return channels


def sms_provider(settings: SmsProviderSettings, context: ChannelContext) -> Provider:
    if isinstance(settings, GenericSmsSettings):
        return GenericSmsProvider(settings)
    if isinstance(settings, AliyunSmsSettings):
        return AliyunSmsProvider(settings, clock=context.clock)
    return TwilioSmsProvider(settings)


def rate_limiter(context: ChannelContext) -> RateLimiter:
    if context.settings.redis_url:
        return RedisRateLimiter(context.settings.redis_url)
    return DatabaseRateLimiter(context.session)


def _health(channel: str, context: ChannelContext) -> ProviderHealth:
    return ProviderHealth(
        channel,
        context.session,
        clock=context.clock,
        threshold=context.settings.provider_failure_threshold,
        cooldown=dt.timedelta(seconds=context.settings.provider_cooldown_seconds),
    )
