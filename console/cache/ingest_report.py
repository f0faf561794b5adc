"""What an ingest run tells its caller: the totals (`--json`), progress ticks, an early stop."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from console.cache import clock
from console.cache.clock import ClockCounts

QUARANTINE_SAMPLES = 10


class IngestStopped(Exception):
    """`Ingestor.run` ended early because a stop was requested; what it committed is kept."""


def _later(kept: str | None, ns: int | None, pick: Callable[[str, str], str]) -> str | None:
    """The report's extreme start time (ISO, to the minute) updated with `ns`, by `pick`."""
    if ns is None:
        return kept
    text = f"{clock.ns_datetime(ns):%Y-%m-%dT%H:%MZ}"
    return text if kept is None else pick(kept, text)


@dataclass
class IngestReport:
    """What one `llmdeck ingest` run did (the `--json` output)."""

    files: int = 0
    spans_read: int = 0
    spans_stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    unpriced: int = 0
    seconds: float = 0.0
    future: int = 0
    """Spans started more than clock.FUTURE_TOLERANCE_NS after the ingest's wall clock."""
    past: int = 0
    """Spans started before `past_before` (the rollup retention): outside every window of now."""
    future_latest: str | None = None
    past_earliest: str | None = None
    past_before: str | None = None
    quarantine_reasons: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pending_partial_lines: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        return data

    def count(self, spans_read: int, quarantine: list[tuple[str, int, str]], duplicates: int,
              skew: ClockCounts, lock: threading.Lock) -> None:
        """Count what the reading side mapped; `lock` guards what the writer thread adds to too."""
        with lock:
            self.duplicates += duplicates
        self.future += skew.future
        self.past += skew.past
        self.future_latest = _later(self.future_latest, skew.latest_ns, max)
        self.past_earliest = _later(self.past_earliest, skew.earliest_ns, min)
        if skew.horizon_ns is not None:
            self.past_before = f"{clock.ns_datetime(skew.horizon_ns):%Y-%m-%d}"
        self.spans_read += spans_read
        self.quarantined += len(quarantine)
        room = QUARANTINE_SAMPLES - len(self.quarantine_reasons)
        self.quarantine_reasons += [f"{n}:{ln}: {r}" for n, ln, r in quarantine[:max(room, 0)]]


@dataclass(frozen=True)
class Progress:
    """A progress tick for the terminal: where the run is."""

    file_index: int
    files: int
    path: str
    spans_read: int
    spans_stored: int
    bytes_done: int
    bytes_total: int
