"""What each channel is, as the contact policy, dispatch and planning need to know it.

A channel declares its capabilities: the kind of contact point it sends to (none for the in-app
inbox, which reaches every customer of the wallet), how a customer opts out of it, and whether a
send retried with the same idempotency key is safe. Policy, dispatch and the worker read these
instead of knowing channels by name, so a channel installed as a plugin is reached, refused and
sent like a built-in one.

The built-in channels' capabilities are known here before the channel is installed (a plan may
name `sms` in a process that cannot send it; the policy still needs to know it wants a phone);
`install` records those of the channels this process built, plugins included, and the installed
ones win.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from followup.customers.contacts import ContactKind

# The built-in channels' names, for the few places that mean one channel and no other (an
# interview's confirmation is an email; the personal channel's default candidates).
EMAIL = "email"
INAPP = "inapp"
SMS = "sms"
PUSH = "push"
PHONE = "phone"


class OptOut(StrEnum):
    """How a customer stops a channel."""

    LINK = "link"  # an unsubscribe link in every message (and List-Unsubscribe in email)
    KEYWORD = "keyword"  # a reply such as STOP or 退订
    APP_SETTING = "app_setting"  # the wallet app's own settings
    ASK = "ask"  # said to the agent during the call


@dataclass(frozen=True)
class Capabilities:
    address: ContactKind | None  # None: reaches every customer without an address
    opt_out: OptOut
    idempotent: bool  # a send retried with the same idempotency key is delivered once


BUILT_IN: dict[str, Capabilities] = {
    EMAIL: Capabilities(address=ContactKind.EMAIL, opt_out=OptOut.LINK, idempotent=False),
    INAPP: Capabilities(address=None, opt_out=OptOut.APP_SETTING, idempotent=True),
    SMS: Capabilities(address=ContactKind.PHONE, opt_out=OptOut.KEYWORD, idempotent=True),
    PUSH: Capabilities(address=ContactKind.PUSH_DEVICE, opt_out=OptOut.APP_SETTING, idempotent=True),
    PHONE: Capabilities(address=ContactKind.PHONE, opt_out=OptOut.ASK, idempotent=True),
}

_installed: dict[str, Capabilities] = {}


def install(name: str, capabilities: Capabilities) -> None:
    """Record the capabilities of a channel this process built (see `registry`)."""
    _installed[name] = capabilities


def lookup(channel: str) -> Capabilities | None:
    """The channel's capabilities; None for a channel this process knows nothing of."""
    return _installed.get(channel) or BUILT_IN.get(channel)
