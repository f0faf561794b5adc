"""Spans dated outside the range an ingest expects (a host clock may be wrong), counted per batch.

A span is "in the future" when it starts more than FUTURE_TOLERANCE after the
ingest's wall clock, and "in the past" when it starts before the horizon: the
rollup retention (`cache.rollup_retention_days`, DEFAULT_HORIZON_DAYS without
one). Every window of now reads the rollups, and rollups older than the
retention are pruned at the end of the same ingest, so such a span can never
count in any window (the widest, an SLO window, is at most 90 days); from a
live host it almost always means a wrong clock or a time in seconds or
milliseconds read as nanoseconds (1970). Such spans are stored all the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from console.timeutil import EPOCH

FUTURE_TOLERANCE_NS = 5 * 60 * 10**9
"""How far past the ingest's wall clock a span may start and still be "now" (clock drift)."""
DEFAULT_HORIZON_DAYS = 400.0
"""The horizon when rollups are kept for ever (the default rollup retention)."""
_DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class ExpectedRange:
    """Start times an ingest expects, in unix nanoseconds: [oldest, newest]."""

    oldest_ns: int
    newest_ns: int

    @classmethod
    def at(cls, now_ns: int, horizon_days: float | None) -> ExpectedRange:
        """The range around the wall clock `now_ns` (`horizon_days` None: DEFAULT_HORIZON_DAYS)."""
        days = DEFAULT_HORIZON_DAYS if horizon_days is None else horizon_days
        return cls(now_ns - int(days * _DAY_NS), now_ns + FUTURE_TOLERANCE_NS)

    @classmethod
    def now(cls, horizon_days: float | None) -> ExpectedRange:
        """The range around this host's wall clock now."""
        return cls.at(time.time_ns(), horizon_days)


@dataclass(frozen=True)
class ClockCounts:
    """How many spans of a batch started after / before the expected range, and the extremes.

    Crosses process boundaries inside a `batching.Chunk` (plain ints: picklable).
    """

    future: int = 0
    past: int = 0
    latest_ns: int | None = None
    """The latest start among the future spans."""
    earliest_ns: int | None = None
    """The earliest start among the past spans."""
    horizon_ns: int | None = None
    """The oldest start still expected (the past spans started before it)."""

    def __add__(self, other: ClockCounts) -> ClockCounts:
        return ClockCounts(
            self.future + other.future,
            self.past + other.past,
            _either(max, self.latest_ns, other.latest_ns),
            _either(min, self.earliest_ns, other.earliest_ns),
            _either(max, self.horizon_ns, other.horizon_ns),
        )


def _either(pick: Callable[[int, int], int], a: int | None, b: int | None) -> int | None:
    """`pick(a, b)`, or whichever of them is not None."""
    if a is None or b is None:
        return b if a is None else a
    return pick(a, b)


def count(starts: Iterable[int], expected: ExpectedRange) -> ClockCounts:
    """Count the start times (unix ns) outside `expected`."""
    lo, hi = expected.oldest_ns, expected.newest_ns
    future = past = 0
    latest: int | None = None
    earliest: int | None = None
    for s in starts:
        if s > hi:
            future += 1
            if latest is None or s > latest:
                latest = s
        elif s < lo:
            past += 1
            if earliest is None or s < earliest:
                earliest = s
    return ClockCounts(future, past, latest, earliest, lo)


def ns_datetime(ns: int) -> datetime:
    """Unix nanoseconds -> naive UTC (to the microsecond)."""
    return EPOCH + timedelta(microseconds=ns // 1000)


def outside_range(future: int, past: int, latest: str | None, horizon: str | None,
                  earliest: str | None = None, spans: bool = False) -> str | None:
    """`9 dated in the future (up to L), 5 older than H (from E)`, or None when both counts are 0.

    The words `llmdeck ingest` and `llmdeck cache info` both say about spans outside the
    expected range; `spans` names the unit after the first count (`9 spans dated...`)."""
    def unit(n: int) -> str:
        return f" span{'s' if n != 1 else ''}" if spans else ""

    parts = []
    if future:
        upto = f" (up to {latest})" if latest else ""
        parts.append(f"{future:,}{unit(future)} dated in the future{upto}")
    if past:
        before = f" older than {horizon}" if horizon else " dated years in the past"
        since = f" (from {earliest})" if earliest else ""
        parts.append(f"{past:,}{'' if future else unit(past)}{before}{since}")
    return ", ".join(parts) if parts else None


def describe(future: int, past: int, latest: str | None, horizon: str | None) -> str | None:
    """The one line `llmdeck ingest` prints about spans outside the expected range, or None."""
    words = outside_range(future, past, latest, horizon, spans=True)
    if words is None:
        return None
    return f"clock: {words}: stored, but outside the windows of now (a host clock may be wrong)"
