"""The email channel: SMTP, with the narrowest window of unknown fate the protocol allows.

SMTP has no idempotency key. Everything up to the DATA command can fail and be retried safely;
once the message body is on the wire the server may accept it even if we never hear the reply.
So the dispatcher's `handoff()` is called after the server answers 354 to DATA and before the
body is sent: a crash before it means "not sent, retry"; a crash after it means "unknown".
"""

from __future__ import annotations

import re
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from urllib.parse import unquote, urlparse

from jinja2 import Environment, PackageLoader, select_autoescape

from followup.channels.base import (
    ChannelError,
    Delivery,
    DeliveryUnknownError,
    PermanentChannelError,
    Receipt,
    TransientChannelError,
)
from followup.channels.calendar import invitation
from followup.channels.capabilities import BUILT_IN, EMAIL
from followup.channels.schemas import MessageContent
from followup.kernel.text import control_character

_UNSUBSCRIBE_LABEL = {"zh-CN": "退订", "en": "Unsubscribe"}
_PRIVACY_LABEL = {"zh-CN": "隐私声明", "en": "Privacy notice"}
_MY_DATA_LABEL = {"zh-CN": "查看或删除我的数据", "en": "See or delete my data"}
_LINE_ENDS = re.compile(rb"\r\n|\n|\r")
_LEADING_DOT = re.compile(rb"(?m)^\.")

_templates = Environment(
    loader=PackageLoader("followup.channels", "templates"),
    autoescape=select_autoescape(["html"]),
    keep_trailing_newline=True,
    auto_reload=False,  # the templates ship with the package: no stat() per message
)


def _check_headers(delivery: Delivery, *, sender: str) -> None:
    """Refuse, for good, a message whose header text holds a control character.

    A line break in a header would end it and start another ("Bcc: …"); Python's email package
    refuses it with a ValueError. Text written before titles were checked can still carry one, so
    this edge checks again and names the header, never its value (it may be an address).
    """
    content = delivery.content
    headers = {
        "From": _from(content, sender),
        "To": delivery.address or "",
        "Subject": content.subject,
        "List-Unsubscribe": content.unsubscribe_url or "",
        "Reply-To": content.reply_to or "",
    }
    for name, value in headers.items():
        character = control_character(value)
        if character is not None:
            raise PermanentChannelError(f"the {name} header contains the control character {character}")


def _from(content: MessageContent, sender: str) -> str:
    """The From header: the configured address, with the person's name when a strategy has an
    owner (the address stays the wallet's own, so SPF and DKIM still hold; replies go to Reply-To)."""
    if not content.sender_name:
        return sender
    return formataddr((content.sender_name, parseaddr(sender)[1] or sender))


def build_email(delivery: Delivery, *, sender: str, privacy_url: str | None = None) -> EmailMessage:
    """The email of a delivery; PermanentChannelError when it cannot be composed. `privacy_url`
    (the privacy notice's page) goes into the footer of both parts, in the customer's language."""
    _check_headers(delivery, sender=sender)
    try:
        return _compose(delivery, sender=sender, privacy_url=privacy_url)
    except (ValueError, TypeError, LookupError) as exc:  # the email package's refusals
        raise PermanentChannelError(f"the email could not be composed ({type(exc).__name__})") from exc


def _compose(delivery: Delivery, *, sender: str, privacy_url: str | None) -> EmailMessage:
    content = delivery.content
    label = _UNSUBSCRIBE_LABEL.get(content.locale, "Unsubscribe")
    privacy = None
    if privacy_url:
        locale = content.locale if content.locale in _PRIVACY_LABEL else "en"
        privacy = {"url": f"{privacy_url}?lang={locale}", "label": _PRIVACY_LABEL[locale]}
    message = EmailMessage()
    message["From"] = _from(content, sender)
    if content.reply_to:
        message["Reply-To"] = content.reply_to
    message["To"] = delivery.address or ""
    message["Subject"] = content.subject
    message["Date"] = formatdate(localtime=False)
    domain = sender.rpartition("@")[2] or "followup.local"
    message["Message-ID"] = make_msgid(idstring=delivery.idempotency_key, domain=domain)
    if content.unsubscribe_url:
        # RFC 8058 one-click: mail clients POST "List-Unsubscribe=One-Click" to this URL.
        message["List-Unsubscribe"] = f"<{content.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    my_data = None
    if content.my_data_url:
        my_data = {"url": content.my_data_url, "label": _MY_DATA_LABEL.get(content.locale, _MY_DATA_LABEL["en"])}
    parts = {"c": content, "unsubscribe_label": label, "privacy": privacy, "my_data": my_data}
    message.set_content(_templates.get_template("email.txt").render(**parts))
    message.add_alternative(_templates.get_template("email.html").render(**parts), subtype="html")
    if content.event is not None:
        # The appointment as an invitation the mail client offers to add to the calendar.
        organizer = parseaddr(sender)[1] or sender
        calendar = invitation(
            content.event,
            organizer=organizer,
            attendee=delivery.address or "",
            domain=organizer.rpartition("@")[2] or "followup.local",
        )
        message.add_attachment(
            calendar,
            maintype="text",
            subtype="calendar",
            params={"method": "REQUEST", "charset": "utf-8"},
            filename="invite.ics",
        )
    return message


def _dot_stuffed(data: bytes) -> bytes:
    data = _LEADING_DOT.sub(b"..", _LINE_ENDS.sub(b"\r\n", data))
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


class _Connection:
    """An open SMTP session and how much it has carried."""

    def __init__(self, client: smtplib.SMTP) -> None:
        self.client = client
        self.sent = 0
        self.used_at = time.monotonic()


class _Refused(Exception):
    """The server refused a step. The session is still good (the next message RSETs it) unless
    the server said it is closing it (421)."""

    def __init__(self, error: ChannelError, *, reusable: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.reusable = reusable


class SmtpChannel:
    """Sends over one SMTP session per thread, kept open across messages.

    Before each reuse the session is RSET, which also proves it alive; a session that fails that,
    has been idle longer than `idle_seconds` or has carried `max_per_connection` messages is closed
    and a fresh one opened. A session whose conversation broke is never reused.
    """

    name = EMAIL
    capabilities = BUILT_IN[EMAIL]

    def __init__(
        self,
        url: str,
        *,
        sender: str,
        timeout: float = 30.0,
        idle_seconds: float = 30.0,
        max_per_connection: int = 100,
        privacy_url: str | None = None,
    ) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("smtp", "smtps", "smtp+starttls") or not parsed.hostname:
            raise ValueError(
                "FOLLOWUP_SMTP_URL must look like smtp://host:port, smtps://host:port or smtp+starttls://host:port"
            )
        self.scheme = parsed.scheme
        self.host = parsed.hostname
        self.port = parsed.port or (465 if parsed.scheme == "smtps" else 25)
        self.username = unquote(parsed.username) if parsed.username else None
        self.password = unquote(parsed.password) if parsed.password else None
        self.sender = sender
        self.privacy_url = privacy_url  # FOLLOWUP_PUBLIC_URL/privacy: every email's footer links to it
        self.timeout = timeout
        self.idle_seconds = idle_seconds
        self.max_per_connection = max_per_connection
        self.connections_opened = 0  # how many sessions this channel has opened (the bench reads it)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[_Connection] = set()

    def _connect(self) -> _Connection:
        try:
            if self.scheme == "smtps":
                context = ssl.create_default_context()
                client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                client.ehlo()
                if self.scheme == "smtp+starttls":
                    client.starttls(context=ssl.create_default_context())
                    client.ehlo()
            if self.username and self.password:
                client.login(self.username, self.password)
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientChannelError(f"cannot reach the mail server: {exc}") from exc
        connection = _Connection(client)
        with self._lock:
            self._open.add(connection)
            self.connections_opened += 1
        return connection

    def _take(self) -> _Connection:
        """This thread's session, RSET and ready; or a new one."""
        connection: _Connection | None = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            fresh_enough = time.monotonic() - connection.used_at < self.idle_seconds
            if fresh_enough and connection.sent < self.max_per_connection and _reset(connection.client):
                return connection
            self._drop(connection, polite=True)
        return self._connect()

    def _keep(self, connection: _Connection) -> None:
        connection.used_at = time.monotonic()
        self._local.connection = connection

    def _drop(self, connection: _Connection, *, polite: bool) -> None:
        """Close a session: with QUIT when it is between messages, else by closing the socket (a
        QUIT sent in the middle of DATA would be read as part of the message)."""
        with self._lock:
            self._open.discard(connection)
        try:
            if polite:
                connection.client.quit()
            else:
                connection.client.close()
        except (OSError, smtplib.SMTPException):
            connection.client.close()

    def close(self) -> None:
        with self._lock:
            connections = list(self._open)
        for connection in connections:
            self._drop(connection, polite=True)

    def send(self, delivery: Delivery, *, handoff: Callable[[], None]) -> Receipt:
        if not delivery.address:
            raise PermanentChannelError("no email address")
        message = build_email(delivery, sender=self.sender, privacy_url=self.privacy_url)
        try:
            body = _dot_stuffed(message.as_bytes(policy=SMTP_POLICY))
        except (ValueError, TypeError, LookupError) as exc:
            raise PermanentChannelError(f"the email could not be composed ({type(exc).__name__})") from exc
        connection = self._take()
        handed_over = False
        client = connection.client
        try:
            _expect(client.mail(self.sender), "MAIL FROM")
            _expect(client.rcpt(delivery.address), "RCPT TO")
            _expect(client.docmd("DATA"), "DATA", ok=354)
            handoff()
            handed_over = True
            client.send(body)
            code, reply = client.getreply()
            if code != 250:
                _expect((code, reply), "message body")
        except _Refused as refused:
            # The server answered, so the message was not taken, whatever step refused it.
            if refused.reusable:
                self._keep(connection)
            else:
                self._drop(connection, polite=False)
            raise refused.error from None
        except (OSError, smtplib.SMTPException) as exc:
            self._drop(connection, polite=False)
            if handed_over:
                raise DeliveryUnknownError(f"connection lost after the message was handed over: {exc}") from exc
            raise TransientChannelError(f"mail server conversation failed: {exc}") from exc
        except BaseException:
            self._drop(connection, polite=False)  # the hand-over refused, or the worker stops
            raise
        connection.sent += 1
        self._keep(connection)
        return Receipt(provider_ref=str(message["Message-ID"]))

    def send_notice(self, to: str, subject: str, text: str) -> None:
        """A plain email to a staff member (a breached deadline), over a session of its own;
        TransientChannelError when it could not be handed over."""
        if control_character(to) or control_character(subject):
            raise PermanentChannelError("a staff notice's address or subject holds a control character")
        message = EmailMessage(policy=SMTP_POLICY)
        message["From"], message["To"], message["Subject"] = self.sender, to, subject
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or "localhost")
        message.set_content(text)
        connection = self._connect()
        try:
            connection.client.send_message(message, from_addr=self.sender, to_addrs=[to])
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientChannelError(f"the staff notice was not taken: {exc}") from exc
        finally:
            self._drop(connection, polite=True)


def _reset(client: smtplib.SMTP) -> bool:
    """RSET between messages: clears what a refused message left and proves the session alive."""
    try:
        code, _ = client.rset()
    except (OSError, smtplib.SMTPException):
        return False
    return code == 250


def _expect(result: tuple[int, bytes], step: str, *, ok: int = 250) -> None:
    code, reply = result
    if code == ok or (ok == 250 and code == 251):
        return
    text = f"{step} refused: {code} {reply.decode(errors='replace')}"
    if 500 <= code < 600:
        raise _Refused(PermanentChannelError(text), reusable=True)
    # 421: the server is closing the session, which then carries no further message.
    raise _Refused(TransientChannelError(text), reusable=code != 421)
