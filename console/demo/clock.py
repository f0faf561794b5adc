"""The demo's simulated clock: wall time since start, sped up."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def naive_utc(t: datetime) -> datetime:
    """A datetime as naive UTC (aware ones are converted; naive ones are taken as UTC)."""
    if t.tzinfo is not None:
        return t.astimezone(UTC).replace(tzinfo=None)
    return t


class SimClock:
    """Naive-UTC simulated time: `start + (wall seconds elapsed x speed)`.

    `freeze()` and `set(t)` stop the clock (tests, snapshots); a frozen clock
    never moves until `set` or `advance` moves it. Thread-safe. The instance is
    callable, so it can be handed wherever a `() -> datetime` clock is expected.
    """

    def __init__(
        self, start: datetime, speed: float = 1.0, wall: Callable[[], float] = time.monotonic
    ) -> None:
        if not 0 < speed < math.inf:
            raise ValueError(f"speed must be a positive number, got {speed!r}")
        self.start = naive_utc(start)
        self.speed = float(speed)
        self._wall = wall
        self._wall0 = wall()
        self._frozen: datetime | None = None
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The simulated time, naive UTC."""
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            elapsed = self._wall() - self._wall0
        return self.start + timedelta(seconds=elapsed * self.speed)

    __call__ = now

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    def freeze(self) -> datetime:
        """Stop the clock where it is; returns that time."""
        t = self.now()
        with self._lock:
            self._frozen = t
        return t

    def set(self, t: datetime) -> None:
        """Stop the clock at `t`."""
        with self._lock:
            self._frozen = naive_utc(t)

    def advance(self, delta: timedelta) -> datetime:
        """Move a clock forward by `delta` of simulated time and stop it there."""
        t = self.now() + delta
        self.set(t)
        return t
