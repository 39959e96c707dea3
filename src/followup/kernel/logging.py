"""Structured logs: readable lines for people, JSON for collectors, and never personal data.

What must stay true:
- An exception is logged as fields — `error_type`, `error` (its message, scrubbed) and `stack`
  (one `file:line in function` per frame) — in both formats. Frames' local variables are never
  rendered: a worker's locals hold decrypted addresses, and rendering them is slow enough to stall
  a server's event loop.
- Every string in a log line passes through `scrub`: addresses, phone and card numbers and
  token-like strings are replaced before rendering, whoever wrote the line.
- The standard library's loggers (uvicorn, SQLAlchemy) render through the same processors.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import MutableMapping
from types import TracebackType
from typing import Any

import structlog

# Kept short on purpose: enough frames to find the bug, not a megabyte of log per request.
MAX_STACK_FRAMES = 30
MAX_ERROR_CHARS = 500

_EMAIL = re.compile(r"[^\s@<>()\[\]:;,\"']+@[^\s@<>()\[\]:;,\"']+")
# Runs of digits split by spaces, dots or dashes; `_is_long_number` decides which are numbers to hide.
_DIGITS = re.compile(r"\+?\d[\d .\-]*\d")
_SEPARATOR = re.compile(r"[ .\-]+")
# Invitation and unsubscribe tokens, API keys, session cookies: long runs of URL-safe characters.
_TOKEN = re.compile(r"[A-Za-z0-9_\-]{20,}")
# Fields written by this module or by the access log that are already safe and must stay readable.
_SAFE_KEYS = frozenset({"event", "level", "timestamp", "logger", "error_stack", "error_type", "request_id"})


# pydantic repeats the offending input in its messages ("input_value='…'"); it may be anything.
_INPUT_VALUE = re.compile(r"input_value=.*?, input_type=", re.DOTALL)


def scrub(text: str) -> str:
    """The text with anything that may identify a customer or open a door replaced by a marker."""
    text = _INPUT_VALUE.sub("input_value=<hidden>, input_type=", text)
    text = _EMAIL.sub("<email>", text)
    text = _TOKEN.sub(_hide_token, text)
    return _DIGITS.sub(_hide_number, text)


def _hide_token(match: re.Match[str]) -> str:
    # A random URL-safe token of this length has upper case, lower case and digits all but surely; a
    # name such as `plan_followups_for_events` or a folder `test_db_upgrade_0` does not.
    run = match.group()
    mixed = any(c.isdigit() for c in run) and any(c.islower() for c in run) and any(c.isupper() for c in run)
    return "<redacted>" if mixed else run


def _hide_number(match: re.Match[str]) -> str:
    """Seven digits or more are a phone, card or ID number, unless split into short groups the way
    dates and versions are (2026-11-23, 1.2.3.4)."""
    groups = _SEPARATOR.split(match.group().lstrip("+"))
    digits = sum(len(group) for group in groups)
    if digits >= 7 and all(len(group) >= 3 for group in groups[1:]):
        return "<number>"
    return match.group()


ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def _exc_info(value: Any) -> ExcInfo | None:
    if value is True:
        found = sys.exc_info()
        return None if found[1] is None else (found[0], found[1], found[2])
    if isinstance(value, BaseException):
        return (type(value), value, value.__traceback__)
    if isinstance(value, tuple) and len(value) == 3 and value[1] is not None:
        return value
    return None


def exception_fields(exc: BaseException) -> dict[str, Any]:
    """Type, scrubbed message and a short stack of an exception, without any frame's locals."""
    # No source lines are read (lookup_lines=False): this runs on a server's event loop.
    walked = list(traceback.walk_tb(exc.__traceback__))[-MAX_STACK_FRAMES:]
    frames = traceback.StackSummary.extract(iter(walked), lookup_lines=False, capture_locals=False)
    return {
        "error_type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "error": scrub(str(exc))[:MAX_ERROR_CHARS],
        "error_stack": [f"{frame.filename}:{frame.lineno} in {frame.name}" for frame in frames],
    }


def _exceptions_as_fields(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    info = _exc_info(event.pop("exc_info", None))
    if info is None and isinstance(event.get("exception"), BaseException):
        exc = event.pop("exception")
        info = (type(exc), exc, exc.__traceback__)
    if info is not None:
        event.update(exception_fields(info[1]))
    return event


def _scrub_values(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if key in _SAFE_KEYS or key.startswith("_"):  # `_record` & co. belong to the stdlib bridge
            continue
        if isinstance(value, str):
            event[key] = scrub(value)
        elif not isinstance(value, int | float | bool | type(None)):
            event[key] = scrub(str(value))
    return event


def _processors() -> list[structlog.typing.Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _exceptions_as_fields,
        _scrub_values,
    ]


def _configure_structlog(level: int, fmt: str) -> structlog.typing.Processor:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        processors=[*_processors(), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    return renderer


def configure_logging(*, level: str = "INFO", fmt: str = "console") -> None:
    """Set the process's logging from settings: structlog and the standard library's loggers."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    _route_standard_logging(numeric, _configure_structlog(numeric, fmt))


def use_safe_defaults() -> None:
    """structlog's own defaults render tracebacks with every frame's locals, slowly and with
    whatever personal data they hold. An app or worker built without `configure_logging` (in a
    test, or embedded in another program) gets these instead: the same fields, on stderr."""
    _configure_structlog(logging.INFO, "console")


def unconfigure_logging() -> None:
    """Undo `configure_logging`: back to the safe defaults, and the root logger without our handler.

    For a program that configured logging for a while (a test, an embedding host) and goes on."""
    use_safe_defaults()
    _remove_our_handler(logging.getLogger())


def _remove_our_handler(root: logging.Logger) -> None:
    for old in list(root.handlers):
        if getattr(old, "_followup", False):
            root.removeHandler(old)


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    # sys.stderr is looked up per logger, not once: a test harness or a daemon may swap it.
    return structlog.PrintLogger(sys.stderr)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes to whatever sys.stderr is at the time of the line."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _route_standard_logging(level: int, renderer: structlog.typing.Processor) -> None:
    """uvicorn's and SQLAlchemy's own lines go through the same scrubbing and format.

    uvicorn's access logger is silenced: the app writes its own access line, with tokens taken
    out of paths. SQLAlchemy is kept at WARNING so statements and parameters never reach a log.
    """
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *_processors()],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    _remove_our_handler(root)
    handler._followup = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True
    # Migrations narrate each step at INFO; an operator needs only the revision the CLI prints.
    # httpx names every URL it calls at INFO, and a provider's URL may carry a key or a token.
    # The demo's loopback SMTP sink (aiosmtpd, "mail.log") echoes every line of a message at DEBUG.
    for chatty in ("sqlalchemy", "alembic", "httpx", "httpcore", "mail.log"):
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))


# Set at import, in memory only: no logger of this package may ever run on structlog's defaults.
use_safe_defaults()


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
