"""`followup serve` says where it serves: one line once the port is bound."""

from __future__ import annotations

import socket

import uvicorn

from followup.config import Settings
from followup.kernel.db import describe_database
from followup.kernel.logging import get_logger

log = get_logger("followup.serve")


class AnnouncingServer(uvicorn.Server):
    """uvicorn's server, logging one line once it listens: the address, the kind of database and
    where it is (never its user or password), and the public URL that links in messages point to —
    a public URL customers cannot reach is the usual reason links do not open."""

    def __init__(self, config: uvicorn.Config, *, settings: Settings) -> None:
        super().__init__(config)
        self.settings = settings

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            log.info(
                "serving",
                address=f"http://{_url_host(self.config.host)}:{self.config.port}",
                database=describe_database(self.settings.database_url),
                public_url=self.settings.public_url,
            )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
