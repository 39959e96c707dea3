"""Which channels this process can send on: the built-ins plus any installed through the
`followup.channels` entry point group (a callable taking a `ChannelContext`, returning a channel). Each
channel's capabilities are recorded by the runtime that runs it, so the contact policy and
dispatch treat a plugin as they treat a built-in."""

from __future__ import annotations

from importlib.metadata import entry_points

from followup.channels import capabilities
from followup.channels.base import Channel, ChannelContext
from followup.channels.email import SmtpChannel
from followup.channels.inapp import InAppChannel


def default_channels(context: ChannelContext) -> dict[str, Channel]:
    settings = context.settings
    channels: dict[str, Channel] = {
        capabilities.EMAIL: SmtpChannel(settings.smtp_url, sender=settings.smtp_from),
        capabilities.INAPP: InAppChannel(context.session, keys=context.keys, clock=context.clock),
    }
    for entry in entry_points(group="followup.channels"):
        channel = entry.load()(context)
        channels[channel.name] = channel
    return channels
