"""The demo's scripted incident (which provider fails, when, how badly) and its time units."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from console.demo.clock import naive_utc

INCIDENT_PROVIDER = "anthropic"
INCIDENT_WALL_DELAY = timedelta(seconds=60)
"""The incident starts this much wall time after the start (x speed in simulated time)."""
INCIDENT_DURATION = timedelta(hours=2)
INCIDENT_FAILURE_SHARE = 0.8
INCIDENT_SLOWDOWN = 3.0
INCIDENT_BILLED_SHARE = 0.5

_EPOCH = datetime(1970, 1, 1)


def to_ns(t: datetime) -> int:
    """Naive-UTC datetime -> Unix nanoseconds (exact to the microsecond)."""
    return (naive_utc(t) - _EPOCH) // timedelta(microseconds=1) * 1000


def from_ns(t_ns: int) -> datetime:
    """Unix nanoseconds -> naive-UTC datetime (microsecond precision)."""
    return _EPOCH + timedelta(microseconds=t_ns // 1000)


@dataclass(frozen=True)
class IncidentInfo:
    """The scripted incident, for the UI's help text (times are simulated, naive UTC)."""

    provider: str
    start: datetime
    end: datetime
    failure_share: float
    slowdown: float
    models: tuple[str, ...]
    """The requested models routed to the failing provider."""

    def active(self, at: datetime) -> bool:
        return self.start <= naive_utc(at) < self.end

    def describe(self) -> str:
        return (
            f"{self.provider} fails {self.failure_share:.0%} of calls (429 rate_limit_error,"
            f" 529 overloaded_error) and answers {self.slowdown:g}x slower"
            f" from {self.start:%Y-%m-%d %H:%M:%S} to {self.end:%H:%M:%S} UTC"
            f" ({', '.join(self.models)}); the app retries, then falls back to OpenAI."
        )
