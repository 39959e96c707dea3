"""What every measurement returns, and how a child process reports its own peak memory."""

from __future__ import annotations

import resource
import sys
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Measurement:
    """One run of one side (engine or baseline) of one benchmark, measured in its own process."""

    count: int
    seconds: float
    peak_rss_mb: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory of this process (or its waited-for children), in MiB."""
    kilobytes = resource.getrusage(who).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return kilobytes / 1024 / (1024 if sys.platform == "darwin" else 1)
