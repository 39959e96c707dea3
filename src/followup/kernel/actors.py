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
    # The staff role and queues the actor acts under (`staff.roles`); None for a caller held to no
    # role: the engine itself, a customer, an API key issued for no staff member.
    role: str | None = None
    queues: tuple[str, ...] = ()
    staff_id: int | None = None  # the staff member acting, themselves or through a key issued for them

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


SYSTEM = Actor(kind="system", id="followup", label="followup engine")
