"""Which channels this process can send on: the built-ins plus any installed through the
`followup.channels` entry point group (a callable taking the runtime, returning a channel). Each
channel's capabilities are recorded as it is built, so the contact policy and dispatch treat a
plugin as they treat a built-in."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from followup.channels import capabilities
from followup.channels.base import Channel
from followup.channels.email import SmtpChannel
from followup.channels.inapp import InAppChannel

if TYPE_CHECKING:
    from followup.runtime import Runtime


def default_channels(runtime: Runtime) -> dict[str, Channel]:
    settings = runtime.settings
    channels: dict[str, Channel] = {
        "email": SmtpChannel(settings.smtp_url, sender=settings.smtp_from),
        "inapp": InAppChannel(runtime.session, keys=runtime.keys, clock=runtime.clock),
    }
    for entry in entry_points(group="followup.channels"):
        channel = entry.load()(runtime)
        channels[channel.name] = channel
    for name, channel in channels.items():
        capabilities.install(name, channel.capabilities)
    return channels
