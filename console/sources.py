"""Source health: every source says live, stale since when (and why) or down (and why).

Each outside source (a Prometheus, an Alertmanager, a scraped `/metrics`, a billing
API, the demo simulator, the trace cache) owns one `SourceHealth` and reports every
poll to it; panels, the status line, `:sources` and `llmdeck sources check` read
`SourceStatus` snapshots from it. A gap stays a gap: nothing here carries old data
forward as fresh. No Textual here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from console.timeutil import utc_now

SourceState = Literal["live", "stale", "down"]
STATE_ORDER: dict[SourceState, int] = {"live": 0, "stale": 1, "down": 2}
"""Worst-first sort key and `sources check` exit code of each state."""


@dataclass(frozen=True)
class SourceStatus:
    """Freshness of one data source at one moment (immutable; crosses threads)."""

    name: str
    kind: str
    state: SourceState
    last_ok: datetime | None
    """Last successful read (wall clock, naive UTC)."""
    since: datetime | None = None
    """When the current stale/down state began."""
    detail: str = ""
    """Why stale/down (the last error), or what was read; untrusted text."""
    latency_ms: float | None = None
    """How long the last successful read took."""
    last_error: str = ""
    """The last error seen, even once the source is live again; untrusted text."""
    last_error_at: datetime | None = None


class SourceProbe(Protocol):
    """Anything that can say how fresh its data is."""

    def source_status(self) -> SourceStatus: ...


class SourceHealth:
    """The freshness record of one source, fed by its polls (thread-safe).

    - never read yet: `stale` ("not read yet"), or `down` once a read failed;
    - read before, last read failed: `stale` since the failure, `down` once the last
      success is older than `down_after` or the failure is one that waiting will not
      fix (`failed(..., down=True)`: a 401, an open circuit breaker);
    - read before, no error but nothing new for `stale_after` / `down_after`: stale / down.
    """

    def __init__(
        self,
        name: str,
        kind: str,
        *,
        stale_after: timedelta = timedelta(minutes=2),
        down_after: timedelta = timedelta(minutes=10),
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.name = name
        self.kind = kind
        self.stale_after = stale_after
        self.down_after = max(down_after, stale_after)
        self._clock = clock
        self._lock = threading.Lock()
        self._last_ok: datetime | None = None
        self._latency_ms: float | None = None
        self._detail = "not read yet"
        self._error: str | None = None
        self._error_since: datetime | None = None
        self._forced_down = False
        self._last_error = ""
        self._last_error_at: datetime | None = None

    @classmethod
    def polled_every(cls, name: str, kind: str, seconds: float) -> SourceHealth:
        """The health of a source read every `seconds`: stale after three missed reads (at
        least 30 s), down after ten (at least 2 minutes)."""
        return cls(name, kind, stale_after=timedelta(seconds=max(3 * seconds, 30)),
                   down_after=timedelta(seconds=max(10 * seconds, 120)))

    def succeeded(self, latency_seconds: float | None = None, detail: str = "") -> None:
        """A read worked: live again."""
        with self._lock:
            self._last_ok = self._clock()
            self._latency_ms = None if latency_seconds is None else latency_seconds * 1000
            self._detail = detail
            self._error = self._error_since = None
            self._forced_down = False

    def failed(self, reason: str, *, down: bool = False) -> None:
        """A read failed with `reason` (already free of secrets and control characters)."""
        with self._lock:
            now = self._clock()
            if self._error is None:
                self._error_since = now
            self._error = reason
            self._forced_down = self._forced_down or down
            self._last_error, self._last_error_at = reason, now

    def status(self) -> SourceStatus:
        """The state now."""
        now = self._clock()
        with self._lock:
            last_ok, error, since = self._last_ok, self._error, self._error_since
            forced, detail, latency = self._forced_down, self._detail, self._latency_ms
            last_error, last_error_at = self._last_error, self._last_error_at
        state: SourceState
        if error is not None:
            detail = error
            old = last_ok is None or now - last_ok > self.down_after
            state = "down" if forced or old else "stale"
        elif last_ok is None:
            state, since = "stale", None
        else:
            age = now - last_ok
            if age > self.down_after:
                state, since = "down", last_ok + self.down_after
            elif age > self.stale_after:
                state, since = "stale", last_ok + self.stale_after
            else:
                state, since = "live", None
            if state != "live":
                detail = f"nothing read for {int(age.total_seconds())} s"
        return SourceStatus(self.name, self.kind, state, last_ok, since, detail, latency,
                            last_error, last_error_at)

    def source_status(self) -> SourceStatus:
        """`SourceProbe`: the same as `status()`."""
        return self.status()


def worst_state(statuses: tuple[SourceStatus, ...] | list[SourceStatus]) -> SourceState:
    """The worst state among `statuses` ("live" when there are none)."""
    return max((s.state for s in statuses), key=STATE_ORDER.__getitem__, default="live")
