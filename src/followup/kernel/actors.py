"""Who did something: recorded beside every change to money, privacy and contact."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ActorKind = Literal["api_key", "staff", "customer", "system"]


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    id: str
    label: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


SYSTEM = Actor(kind="system", id="followup", label="followup engine")
