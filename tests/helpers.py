"""Small test helpers that read what a customer would see."""

from __future__ import annotations

import json
import re
import subprocess
from email.message import EmailMessage
from pathlib import Path

from followup.models import metadata
from followup.runtime import Runtime

_LINK = re.compile(r"https?://[^\s/]+(/s/[A-Za-z0-9_-]+)")
_UNSUBSCRIBE = re.compile(r"<https?://[^\s/]+(/u/[A-Za-z0-9_-]+)>")


def text_body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def survey_path(message: EmailMessage) -> str:
    """The /s/{token} path of the survey link in an email's text part."""
    match = _LINK.search(text_body(message))
    assert match, "no survey link in the email"
    return match.group(1)


def unsubscribe_path(message: EmailMessage) -> str:
    match = _UNSUBSCRIBE.search(str(message["List-Unsubscribe"]))
    assert match, "no List-Unsubscribe header"
    return match.group(1)


def every_stored_value(runtime: Runtime) -> bytes:
    """Every value of every row of every table (the key store's too), as the driver hands it over:
    sealed blobs as their bytes. What a search for personal data in clear reads."""
    dump = bytearray()
    with runtime.read_session() as session:
        for table in metadata.sorted_tables:
            for row in session.execute(table.select()):
                for value in row:
                    if isinstance(value, bytes):
                        dump += value
                    elif isinstance(value, str):
                        dump += value.encode()
                    else:
                        dump += json.dumps(value, default=str, ensure_ascii=False).encode()
                    dump += b"\n"
    return bytes(dump)


def file_bytes(*paths: Path) -> bytes:
    """The bytes of database files, read by another process. Opening and closing a file SQLite has
    open in this process would drop this process's POSIX locks on it (a close releases every lock
    the process holds on the file), and a `followup` command run next could then take itself for
    the last user and delete the write-ahead log under this process's connections."""
    existing = [str(path) for path in paths if path.exists()]
    if not existing:
        return b""
    return subprocess.run(["cat", *existing], capture_output=True, check=True).stdout
