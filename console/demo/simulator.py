"""The embedded simulator behind `llmdeck demo`.

It makes realistic traffic (console/demo/traffic.py) and stores it the two ways
llmdeck takes traces:

* the history (a week by default, before the clock's start) is written as
  OpenTelemetry Collector file-exporter JSON lines into a spool directory and
  ingested newest first through the real ingest path (`Ingestor`), exactly as
  `llmdeck ingest` would (console/demo/backfill.py): `start_backfill()` does
  it on a thread of its own while the console is already showing the newest
  parts (the source status says how far it got), `backfill()` does it at once;
* `step()` generates every complete chunk of simulated time since the last
  step and sends it as OTLP/HTTP protobuf (console/demo/otlp_encode.py,
  console/demo/live_link.py) to the receiver `send_live_to()` named: the
  console's own, in the same process (console/writers.py), which writes under
  this simulator's lock (`writing()`), so a backfill part and a live commit
  never write at once. Until a receiver is named, the live chunks wait;
* a scripted incident: a minute (of wall time, at `--speed`) after the start,
  `anthropic` starts failing for the models routed to it: 429
  rate_limit_error / 529 overloaded_error on most calls, 3x slower answers.
  The application retries (same trace) and finally falls back to an OpenAI
  model (`llmdeck.fallback=true`); half of the failed calls were overloaded
  mid-stream and bill their input and partial output tokens, so retries cost
  real money in the data;
* levers (`levers`, console/demo/levers.py): the demo gateway's admin API
  (console/demo/endpoints.py, gateway_world.py) moves them when a runbook action
  throttles a tenant, routes a failing provider's model groups to fallbacks or
  changes a deployment, and every chunk generated from then on follows them.

Traffic is a pure function of (seed, chunk index), see console/demo/generate.py:
the cache holds the same spans however often `step()` is called.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import httpx

from console.cache.faults import CacheError
from console.cache.ingest import Ingestor, IngestReport, IngestStopped
from console.cache.store import Cache
from console.config import Config
from console.demo import generate
from console.demo.backfill import BackfillProgress, Part, PartFiles, plan_parts
from console.demo.clock import SimClock, naive_utc
from console.demo.incident import (
    INCIDENT_BILLED_SHARE,
    INCIDENT_DURATION,
    INCIDENT_FAILURE_SHARE,
    INCIDENT_PROVIDER,
    INCIDENT_SLOWDOWN,
    INCIDENT_WALL_DELAY,
    IncidentInfo,
    from_ns,
    to_ns,
)
from console.demo.levers import Levers
from console.demo.live_link import LiveLink, LiveRefused
from console.demo.otlp_encode import encode
from console.demo.sim_health import SimHealth, text
from console.demo.traffic import MODELS, Incident
from console.sources import SourceStatus

_T = TypeVar("_T")

DEFAULT_RATE = 0.2
"""Mean user requests per second over a day (trough 0.08/s, peak 0.32/s): ~121k spans a week."""
DEFAULT_BACKFILL = timedelta(days=7)
HOLD_SECONDS = 3.0
"""The longest a background backfill waits after its first part for `start_backfill(hold=)`."""

__all__ = ["DEFAULT_BACKFILL", "DEFAULT_RATE", "IncidentInfo", "Simulator", "from_ns", "to_ns"]


@dataclass
class LiveReport:
    """What one live step sent: requests, spans, and spans the receiver rejected (quarantined)."""

    requests: int = 0
    spans_sent: int = 0
    rejected: int = 0


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Simulator:
    """Generates demo traffic: the history through files in `spool_dir` into `cache`, the live
    traffic over OTLP/HTTP to the receiver named by `send_live_to` (which stores it in `cache`).

    The spool directory belongs to the caller; the simulator only adds its own
    files there (`demo-backfill-*.jsonl`) and never deletes anything. `step()`
    may run on a worker thread; calls are serialised.
    """

    def __init__(
        self,
        cache: Cache,
        config: Config,
        spool_dir: Path,
        *,
        seed: int = 7,
        clock: SimClock,
        backfill: timedelta = DEFAULT_BACKFILL,
        incident_delay: timedelta | None = None,
        incident_duration: timedelta = INCIDENT_DURATION,
        rate: float = DEFAULT_RATE,
        workers: int | None = None,
        wall: Callable[[], datetime] = _utcnow,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate!r}")
        if backfill < timedelta(0):
            raise ValueError(f"backfill must not be negative, got {backfill}")
        delay = INCIDENT_WALL_DELAY * clock.speed if incident_delay is None else incident_delay
        if delay < timedelta(0):
            raise ValueError(f"incident_delay must not be negative, got {delay}")
        self.cache = cache
        self.config = config
        self.spool_dir = Path(spool_dir)
        self.seed = seed
        self.clock = clock
        self.start = clock.start
        self.backfill_span = backfill
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        inc_start = self.start + delay
        inc_end = inc_start + incident_duration
        self._incident = IncidentInfo(
            INCIDENT_PROVIDER, inc_start, inc_end, INCIDENT_FAILURE_SHARE, INCIDENT_SLOWDOWN,
            tuple(m[1] for m in MODELS if m[0] == INCIDENT_PROVIDER),
        )
        self.levers = Levers()
        """Moved by the demo gateway's admin API (console/demo/gateway.py): throttles, routes,
        deployments; every reader of `plan` (live steps, the endpoints' figures) sees them."""
        self.plan = generate.TrafficPlan(
            seed=seed,
            rate=rate,
            incident=Incident(INCIDENT_PROVIDER, to_ns(inc_start), to_ns(inc_end),
                              INCIDENT_FAILURE_SHARE, INCIDENT_SLOWDOWN, INCIDENT_BILLED_SHARE),
            levers=self.levers,
        )
        start_ns = to_ns(self.start)
        self._live_first = generate.chunk_of(start_ns)
        self._backfill_first = min(-(-to_ns(self.start - backfill) // generate.CHUNK_NS), self._live_first)
        self._next = self._live_first
        self._lock = threading.Lock()  # the write lock: one backfill part or receiver commit at a time
        self._live_lock = threading.Lock()  # one live step at a time (it never holds `_lock`: the
        # receiver takes that to store what a step sends)
        self._link: LiveLink | None = None
        self._before_release: Callable[[CacheError], None] | None = None
        self._closed = False
        self._halted: CacheError | None = None
        """Set by `release_cache`: the cache was closed under this fault; nothing is written."""
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self.spans_stored = 0
        self._health = SimHealth(wall)
        self._backfill_note: str | None = None
        """While a background backfill runs: how far it got (shown before the live detail)."""
        self._backfill_thread: threading.Thread | None = None
        self._backfill_done = threading.Event()
        self._stop = threading.Event()
        self._hold: threading.Event | None = None

    # -- public -------------------------------------------------------------

    @property
    def incident(self) -> IncidentInfo:
        """The scripted incident: provider, start, end (simulated time)."""
        return self._incident

    @property
    def generated_until(self) -> datetime:
        """Simulated time up to which traffic has been generated (a chunk boundary)."""
        return from_ns(generate.chunk_start_ns(self._next))

    @property
    def backfill_start(self) -> datetime:
        """Where the backfilled history begins."""
        return from_ns(generate.chunk_start_ns(self._backfill_first))

    @property
    def backfill_done(self) -> bool:
        """Whether every part of the history is in the cache."""
        return self._backfill_done.is_set()

    def backfill(self, progress: Callable[[BackfillProgress], None] | None = None) -> IngestReport:
        """Write and ingest the history [start - backfill, start) now; returns the combined report.

        Newest part first (console/demo/backfill.py); the files are written in a
        worker process while the previous part is ingested. A file already in the
        spool is reused rather than rewritten; anything already in the cache is
        skipped by ingest. Raises on the first part that fails.
        """
        with self._lock:
            self._check_open()
        return self._backfill(progress, live=False)

    def start_backfill(self, progress: Callable[[BackfillProgress], None] | None = None,
                       hold: threading.Event | None = None) -> None:
        """Backfill on a thread of its own and return at once; `close()` stops it between parts.

        Each part is ingested under the step lock, then the live data is caught up
        in the same hold, so live steps keep going while the older days arrive.
        `progress` is called on that thread after each part. With `hold`, the
        thread waits after the first part until `hold` is set (at most HOLD_SECONDS):
        the console's start-up then has the machine to itself. A failure is
        recorded in `source_status()` and ends the backfill.
        """
        with self._lock:
            self._check_open()
            if self._backfill_thread is not None:
                raise RuntimeError("the backfill has already started")
            self._backfill_note = "backfilling history, newest first"
            self._hold = hold
            self._backfill_thread = threading.Thread(
                target=self._background_backfill, args=(progress,), name="demo-backfill",
                daemon=True)
        self._backfill_thread.start()

    def wait_backfill(self, timeout: float | None = None) -> bool:
        """Wait until the backfill has finished (or `timeout` seconds); whether it has."""
        return self._backfill_done.wait(timeout)

    def send_live_to(self, url: str, before_release: Callable[[CacheError], None] | None = None) -> None:
        """Send the live traffic to the OTLP/HTTP receiver at `url` (its `/v1/traces`) from now on.

        `before_release`: called first when the cache is released under a fault (the receiver
        writing under this simulator's lock stops before the lock refuses it)."""
        with self._live_lock:
            if self._link is not None:
                self._link.close()
            self._link = LiveLink(url)
            self._before_release = before_release

    def step(self, until: datetime | None = None) -> LiveReport | None:
        """Send every complete chunk up to `until` (default: the clock's now) to the receiver.

        Returns None when there was nothing new (or no receiver yet); once it returns, the
        receiver has stored what it acknowledged. A failure (the receiver refused, or cannot
        be reached) is recorded for `source_status()` and raised; the next step sends again
        from the first chunk not acknowledged (the receiver drops what it already has).
        """
        with self._live_lock:
            self._check_open()
            return self._step_live(until)

    def exclusive(self, work: Callable[[], _T]) -> _T:
        """`work()` holding the write lock (no backfill part or receiver commit meanwhile).
        Raises like `step()` once closed or halted."""
        with self.writing():
            return work()

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """The write lock as the demo process's write gate (console/writers.py): the billing
        poller and the receiver write only inside it, never while a backfill part ingests.
        Raises like `step()` once closed or halted."""
        with self._lock:
            self._check_open()
            yield

    def source_status(self) -> SourceStatus:
        """Freshness of the simulator as a data source (live / stale / down)."""
        return self._health.status()

    @property
    def cache_fault(self) -> CacheError | None:
        """The fault of the cache file the last write met (disk full, unwritable, corrupt), or
        None: a live step's until the next one succeeds, the backfill's for good (it stopped)."""
        return self._health.cache_fault

    def release_cache(self, fault: CacheError) -> None:
        """Write no more: the cache is about to be closed under `fault` (DuckDB invalidated it).

        Stops the backfill and any ingest between two batches, then waits for the step lock, so
        no call of this simulator uses the cache once this returns; every later step raises the
        fault (the one its own write met first, if any) and the source status keeps saying it.
        """
        self._stop.set()
        if self._hold is not None:
            self._hold.set()
        if self._before_release is not None:
            self._before_release(fault)
        with self._lock:
            self._halted = self._health.halt(fault)

    def adopt_cache(self, cache: Cache) -> None:
        """The cache opened again read-only in place of the invalidated one: not for writing,
        so the simulator keeps writing nothing (its status keeps the fault)."""

    def close(self) -> None:
        """Stop stepping and backfilling (an ingest running stops after the batch it commits).

        Deletes nothing: the spool directory and the cache are the caller's.
        """
        self._stop.set()
        if self._hold is not None:
            self._hold.set()
        thread = self._backfill_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._lock:
            self._closed = True
        with self._live_lock:
            if self._link is not None:
                self._link.close()

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the simulator is closed")
        if self._halted is not None:
            raise self._halted

    def _step_live(self, until: datetime | None) -> LiveReport | None:
        target = naive_utc(until) if until is not None else self.clock.now()
        last = generate.chunk_of(to_ns(target))
        link = self._link
        if link is None:
            self._succeeded("live traffic waits for the receiver")
            return None
        if last <= self._next:
            self._succeeded("live")
            return None
        report = LiveReport()
        try:
            for request, spans, upto in generate.export_batches(self.plan, self._next, last):
                if self._stop.is_set():  # closing: what was acknowledged stays
                    return report
                rejected = link.send(encode(request))
                report.requests += 1
                report.spans_sent += spans
                report.rejected += rejected
                self.spans_stored += spans - rejected
                self._next = upto
            self._next = last
        except LiveRefused as exc:
            self._failed_text(f"the receiver did not store live traffic ({exc}); sent again at"
                              " the next step")
            raise
        except httpx.HTTPError as exc:
            self._failed_text(f"cannot send live traffic to {link.url} ({type(exc).__name__}:"
                              f" {text(exc)}); sent again at the next step")
            raise
        self._succeeded("live")
        return report

    def _background_backfill(self, progress: Callable[[BackfillProgress], None] | None) -> None:
        try:
            self._backfill(progress, live=True)
        except IngestStopped:
            pass
        except Exception as exc:  # recorded in the source status; kept in its detail too
            fault = self._health.backfill_fault or self._halted
            self._backfill_note = f"backfill stopped: {fault if fault is not None else text(exc)}"

    def _backfill(self, progress: Callable[[BackfillProgress], None] | None,
                  live: bool) -> IngestReport:
        """Ingest the parts newest first, one per hold of the lock (then the live data if `live`)."""
        parts = plan_parts(self.plan, self._backfill_first, self._live_first, self.spool_dir)
        total_depth = parts[-1].depth if parts else timedelta(0)
        total = IngestReport()
        started = time.perf_counter()
        files = PartFiles(self.plan, parts, self.workers)
        try:
            for i, part in enumerate(parts):
                if self._stop.is_set():
                    break
                tick = self._ingest_part(files, i, part, total, total_depth, started)
                if live:
                    with contextlib.suppress(Exception):  # recorded; the next step retries
                        self.step()
                if progress is not None:
                    progress(tick)
                if i == 0 and live and self._hold is not None:
                    self._hold.wait(HOLD_SECONDS)
            else:
                self._backfill_note = None
                self._backfill_done.set()
        finally:
            files.close()
        total.seconds = time.perf_counter() - started  # generating and ingesting
        return total

    def _ingest_part(self, files: PartFiles, index: int, part: Part, total: IngestReport,
                     total_depth: timedelta, started: float) -> BackfillProgress:
        try:
            path = files.ready(index)  # outside the lock: live steps go on meanwhile
        except Exception as exc:
            self._failed(exc, backfill=True)
            raise
        with self._lock:
            self._check_open()
            try:
                report = Ingestor(self.cache, self.config, workers=1,
                                  stop_event=self._stop).run([path])
            except IngestStopped:  # closing: stopped between two batches, both kept whole
                raise
            except Exception as exc:
                self._failed(exc, backfill=True)
                raise
            _merge(total, report)
            if report.errors:
                self._failed_text("; ".join(report.errors))
                raise RuntimeError("; ".join(report.errors))
            self.spans_stored += report.spans_stored
            tick = BackfillProgress(index + 1, len(files.parts), total.spans_stored, part.start,
                                    part.depth, total_depth, time.perf_counter() - started)
            self._backfill_note = None if tick.done else f"backfilling, newest first: {tick.describe()}"
            self._succeeded("backfilled" if tick.done else "backfilling")
        return tick

    def _succeeded(self, what: str) -> None:
        self._health.succeeded(
            f"{self._backfill_note or what}: {self.spans_stored:,} spans ingested; simulated time"
            f" {self.generated_until:%Y-%m-%d %H:%M:%S}"
        )

    def _failed(self, exc: BaseException, backfill: bool = False) -> None:
        """Record a failure, a fault named after the file it is in: a spool file or the cache."""
        filename = exc.filename if isinstance(exc, OSError) else None
        path = Path(os.fsdecode(filename)) if isinstance(filename, (str, bytes)) else self.cache.path
        self._health.failed(exc, path, backfill)

    def _failed_text(self, message: str) -> None:
        self._health.failed_text(message)


def _merge(total: IngestReport, report: IngestReport) -> None:
    total.files += report.files
    total.spans_read += report.spans_read
    total.spans_stored += report.spans_stored
    total.duplicates += report.duplicates
    total.quarantined += report.quarantined
    total.unpriced += report.unpriced
    total.quarantine_reasons += report.quarantine_reasons
    total.errors += report.errors
    total.pending_partial_lines += report.pending_partial_lines
