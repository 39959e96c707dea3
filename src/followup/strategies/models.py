from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from followup.kernel.db import Base, BigId, JSONType, UTCDateTime


class Strategy(Base):
    """A rule for when to follow up. `definition` holds the validated StrategyCreate as JSON."""

    __tablename__ = "strategies"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="active")
    survey_id: Mapped[int] = mapped_column(BigId, ForeignKey("surveys.id"))
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    version: Mapped[int] = mapped_column(default=1)
    # Periodic strategies: when the next wave is due. The worker moves it on as it claims the wave,
    # with a guarded UPDATE, so two workers never run one wave.
    next_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class StrategyVersion(Base):
    """A definition a strategy had: one row per change (definition or status), with who made it."""

    __tablename__ = "strategy_versions"

    strategy_id: Mapped[int] = mapped_column(BigId, ForeignKey("strategies.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    actor: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Wave(Base):
    """One firing of a periodic strategy, as it was planned: who was in the audience and what
    became of them. Unique per strategy and firing, the second guard against planning it twice."""

    __tablename__ = "strategy_waves"
    __table_args__ = (UniqueConstraint("strategy_id", "fired_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    strategy_id: Mapped[int] = mapped_column(BigId, ForeignKey("strategies.id", ondelete="CASCADE"))
    strategy_version: Mapped[int] = mapped_column()
    fired_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # the schedule's firing
    run_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # when a worker planned it
    missed: Mapped[int] = mapped_column(default=0)  # earlier firings this one caught up for
    audience: Mapped[int] = mapped_column(default=0)
    in_cooldown: Mapped[int] = mapped_column(default=0)
    sampled: Mapped[int] = mapped_column(default=0)
    capped: Mapped[int] = mapped_column(default=0)
    planned: Mapped[int] = mapped_column(default=0)
    suppressed: Mapped[int] = mapped_column(default=0)


class Segment(Base):
    """A named, reusable audience: a rule tree over `customer.*`, named in other trees as
    `{"segment": key}` and put in place when they are evaluated, so an edit reaches every user."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    rule: Mapped[dict[str, Any]] = mapped_column(JSONType)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
