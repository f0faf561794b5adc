"""The demo's history in parts, newest first, with their files written ahead of ingest.

The overview needs the newest data first: its 5m and 1h burn rates, its 6 h
charts and today's spend. So the history is cut at 1 h, 6 h and 1 day before
the start, then into 12 h parts going back; the console shows populated
panels once the first part is in, while the older days keep arriving.

A part's file is named by a digest of everything its spans depend on, so a
file already in the spool (same seed, rate, range, generator version) is
reused. Files are written by `PartFiles`: the two newest parts in the
calling thread (they are small, and a worker process takes longer to start
than it takes to generate them; on a busy machine it would only compete with
the first part), the others in one worker process started once the first part
is in, in order, while the caller ingests what is ready.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing import get_context
from multiprocessing.process import BaseProcess
from pathlib import Path

from console.demo import generate
from console.proc_guard import (
    TERMINAL_SIGNALS,
    guard_worker,
    signals_blocked,
    start_resource_tracker,
)

RECENT_DEPTHS: tuple[timedelta, ...] = (timedelta(hours=1), timedelta(hours=6), timedelta(days=1))
"""Where the first parts end, going back from the start (5m/1h windows, 6 h charts, today)."""
PART = timedelta(hours=12)
"""Beyond the recent parts, the history is written and ingested 12 h at a time: a part is
ingested whole, so this bounds how long closing the demo waits (~0.6 s). A week took
6.4-7.2 s in 12 h parts, 6.7-7.1 s in day parts, 7.4-8.5 s in 6 h parts (load ~2)."""

_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class Part:
    """Chunks [first, last) of the history, written to `path` and ingested as one file."""

    first: int
    last: int
    path: Path
    depth: timedelta
    """How far back the history reaches once this part and every newer one are in."""

    @property
    def start(self) -> datetime:
        """The simulated time this part begins at (naive UTC)."""
        return _EPOCH + timedelta(microseconds=generate.chunk_start_ns(self.first) // 1000)


@dataclass(frozen=True)
class BackfillProgress:
    """A progress tick of the backfill: parts of the history written and ingested, newest first."""

    parts_done: int
    parts: int
    spans_stored: int
    """Spans the backfill stored so far."""
    oldest: datetime
    """Simulated time the ingested history reaches back to."""
    depth: timedelta
    """How much history is in: start - oldest."""
    total: timedelta
    """How much history there will be."""
    seconds: float
    """Since the backfill began."""

    @property
    def done(self) -> bool:
        return self.parts_done == self.parts

    def describe(self) -> str:
        """`last 6 h of 7 days loaded`, `day 3/7 loaded`, `2 days 6 h of 7 days loaded`."""
        days = self.total / timedelta(days=1)
        whole, rest = divmod(self.depth, timedelta(days=1))
        hours = rest / timedelta(hours=1)
        if not whole:
            return f"last {hours:g} h of {days:g} days loaded"
        if not rest:
            return f"day {whole}/{days:g} loaded"
        return f"{whole} day{'s' if whole > 1 else ''} {hours:g} h of {days:g} days loaded"



def plan_parts(traffic: generate.TrafficPlan, first: int, live_first: int,
               spool_dir: Path) -> list[Part]:
    """The parts covering chunks [first, live_first), newest first."""
    depths = [*RECENT_DEPTHS]
    total = (live_first - first) * generate.CHUNK_SECONDS
    while depths[-1].total_seconds() < total:
        depths.append(depths[-1] + PART)
    parts: list[Part] = []
    last = live_first
    for depth in depths:
        start = max(first, live_first - int(depth.total_seconds()) // generate.CHUNK_SECONDS)
        if start >= last:
            continue
        reached = timedelta(seconds=(live_first - start) * generate.CHUNK_SECONDS)
        parts.append(Part(start, last, spool_dir / _file_name(traffic, start, last), reached))
        last = start
    return parts


def _file_name(traffic: generate.TrafficPlan, first: int, last: int) -> str:
    key = repr((generate.GENERATOR_VERSION, traffic, first, last)).encode()
    digest = hashlib.blake2b(key, digest_size=8).hexdigest()
    stamp = _EPOCH + timedelta(microseconds=generate.chunk_start_ns(first) // 1000)
    return f"demo-backfill-{stamp:%Y%m%dT%H%M%S}-{last - first}-{digest}.jsonl"


IN_THREAD = 2
"""The newest parts written by the caller; the worker process starts when the last is asked for."""
POLL_SECONDS = 0.02


class PartFiles:
    """Writes the parts' files ahead of their ingest: the newest here, the rest in a worker process.

    The worker writes the older parts in order, each to a temporary name renamed
    when complete, so a part is ready once its file exists. `close()` terminates
    the worker at once (a quitting console never waits for it).
    """

    def __init__(self, traffic: generate.TrafficPlan, parts: list[Part], workers: int) -> None:
        self.traffic = traffic
        self.parts = parts
        self.workers = workers
        self._worker: BaseProcess | None = None
        self._ahead: set[int] = set()
        if workers > 1:
            start_resource_tracker()  # quiet, and never raises

    def _write_ahead(self) -> None:
        ahead = [i for i in range(IN_THREAD, len(self.parts)) if not self.parts[i].path.exists()]
        if not ahead or self.workers < 2:
            return
        ranges = [(self.parts[i].first, self.parts[i].last, self.parts[i].path) for i in ahead]
        try:
            worker = get_context("spawn").Process(target=_write_ahead_worker,
                                                  args=(self.traffic, ranges, os.getpid()),
                                                  name="llmdeck-demo-backfill", daemon=True)
            with signals_blocked(TERMINAL_SIGNALS):  # until the worker ignores them itself
                worker.start()
        except (OSError, RuntimeError, ValueError):  # no processes: everything is written here
            return
        self._worker, self._ahead = worker, set(ahead)

    def ready(self, index: int) -> Path:
        """Part `index`'s file, written (or waited for) now if it is not there yet."""
        part = self.parts[index]
        if index == min(IN_THREAD, len(self.parts)) - 1 and self._worker is None:
            self._write_ahead()
        if index in self._ahead and self._worker is not None:
            while not part.path.exists() and self._worker.is_alive():
                time.sleep(POLL_SECONDS)
        if not part.path.exists():  # not written ahead, or the worker died: write it here
            generate.write_chunks(self.traffic, part.first, part.last, part.path)
        return part.path

    def close(self) -> None:
        """Stop writing ahead now: the worker is terminated, its unfinished file removed."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        if worker.is_alive():
            worker.terminate()
        worker.join(timeout=5)
        for i in self._ahead:
            self.parts[i].path.with_name(self.parts[i].path.name + ".tmp").unlink(missing_ok=True)


def _write_ahead_worker(traffic: generate.TrafficPlan, ranges: list[tuple[int, int, Path]],
                        parent: int) -> None:
    """The worker process: writes the parts' files, and exits soon after `parent` dies."""
    guard_worker(parent, TERMINAL_SIGNALS)  # close() terminates it: SIGTERM still ends it
    try:
        generate.write_all(traffic, ranges, parent)
    except OSError:  # a full disk, say: `PartFiles.ready` writes the part itself and reports it
        return

