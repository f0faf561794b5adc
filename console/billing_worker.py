"""Billing polling inside a process that holds the cache read-write: the console, the demo.

A thread runs `console.billing_sync.sync` (the same code as `llmdeck billing sync`, through
the real connectors) for each configured billing source when it is due: every
`poll_seconds` of that source (at least 60; the demo passes its own `every`). The cache is
used only inside `gate()`, the lock this process's writers share (the receiver's, the demo
simulator's `writing`), never across an HTTP fetch. A failed fetch stores nothing: the rows
stay as they were and the source's line goes stale with the reason (down after ten polls,
or at once for a key the provider refuses). Each source is one line of the sources view
(`probes()`); when the process could not take the cache for writing (`not_polling`), the
lines say so and nothing is polled. Once the cache is released under a fault
(`release_cache`), or the gate raises (the demo simulator closed or halted), the worker
writes nothing more.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import duckdb

from console.billing_view import STALE_POLLS
from console.cache.faults import CacheError, classify, first_line
from console.sources import SourceState, SourceStatus
from console.timeutil import utc_now

if TYPE_CHECKING:
    from console.billing_sync import SyncResult
    from console.cache.store import Cache
    from console.config import BillingSource, Config

Gate = Callable[[], AbstractContextManager[object]]
"""The process's write lock: held around every use of the cache by a writer."""

FIRST_DELAY = 5.0
"""Wall seconds before the first sync: the console's start-up has the machine to itself."""
DOWN_POLLS = 10
KIND = "billing"
CLOSE_WAIT = 2.0
"""Seconds `close` waits for the polling thread before abandoning a fetch in flight."""


class WriterStopped(RuntimeError):
    """The gate refused: the cache is closed to this process's writers (shut down, or a fault)."""


@dataclass
class _Track:
    """What one source's line says: its last good sync and its current error."""

    source: BillingSource
    every: float
    due: float = 0.0
    """time.monotonic() of its next sync."""
    last_ok: datetime | None = None
    detail: str = "not synced yet"
    error: str | None = None
    error_since: datetime | None = None
    down: bool = False


class BillingWorker:
    """Polls every billing source of `config` into `cache`, each when it is due."""

    def __init__(self, cache: Cache, config: Config, gate: Gate, *,
                 today: Callable[[], date] | None = None, every: float | None = None,
                 first_delay: float = FIRST_DELAY, prepare: Callable[[], None] | None = None,
                 not_polling: str | None = None, wall: Callable[[], datetime] = utc_now) -> None:
        self.cache = cache
        self.config = config
        self.gate = gate
        self.today = today or (lambda: utc_now().date())
        """The sync's "today" (the demo: the simulated clock's day)."""
        self.first_delay = first_delay
        self.prepare = prepare
        """Run before each sync, outside the gate (the demo ledger's catch-up)."""
        self.not_polling = not_polling
        """Why nothing is polled (the cache is held by another process), shown on every line."""
        self.wall = wall
        self.last_error: str | None = None
        self.syncs = 0
        self.cache_fault: CacheError | None = None
        """The fault the last store met (a full disk), until a store succeeds."""
        self._tracks = {s.name: _Track(s, every if every is not None else float(s.poll_seconds))
                        for s in config.sources.billing()}
        self._stored_syncs()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._released = False
        self._closed = False
        """Set by `close`: a store that reaches the gate after it is refused (`_held`)."""
        self._thread: threading.Thread | None = None

    # -- life ----------------------------------------------------------------

    def start(self) -> None:
        """Run on a thread of its own (if there is anything to poll); `close()` stops it."""
        if self._thread is None and self._tracks and self.not_polling is None:
            now, wall = time.monotonic(), self.wall()
            for track in self._tracks.values():
                wait = self.first_delay  # never synced: soon
                if track.last_ok is not None:  # one `every` after the stored sync, at the earliest
                    since = max((wall - track.last_ok).total_seconds(), 0.0)
                    wait = max(self.first_delay, track.every - since)
                track.due = now + wait
            self._thread = threading.Thread(target=self._run, name="llmdeck-billing", daemon=True)
            self._thread.start()

    def close(self, timeout: float = CLOSE_WAIT) -> None:
        """Stop. Waits up to `timeout` seconds for the thread; past it a fetch is still in
        flight (a slow provider: up to its deadlines), and the thread, a daemon, is abandoned
        to it: a store under way finishes first (the gate is taken once), and no later store
        gets in, so the caller may close the cache at once. Never waits on HTTP."""
        self._stop.set()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            self._closed = True
            return
        thread.join(timeout)
        self._closed = True  # before the gate: a store entering after it sees the flag
        if thread.is_alive():
            self._wait_out_store()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- backend.CacheUser ---------------------------------------------------------

    def release_cache(self, fault: CacheError) -> None:
        """Write no more: the cache is closed next under `fault`. Waits out a store under way."""
        self._stop.set()
        with self._lock:
            self._released = True
            for track in self._tracks.values():
                self._fail(track, f"not polling: {fault}", down=True)
        self._wait_out_store()

    def _wait_out_store(self) -> None:
        """Take the gate once and let it go: a store under way ends first."""
        try:
            with self.gate():
                pass
        except Exception:  # the gate is closed or halted: nothing writes through it
            pass

    def adopt_cache(self, cache: Cache) -> None:
        """Opened again read-only: nothing to write with; the lines keep the fault."""

    # -- the lines -------------------------------------------------------------------

    def probes(self) -> list[BillingProbe]:
        """One source line per billing source, in config order."""
        return [BillingProbe(self, name) for name in self._tracks]

    def status_of(self, name: str) -> SourceStatus:
        now = self.wall()
        with self._lock:
            t = self._tracks[name]
            if self.not_polling is not None and not self._released:
                return SourceStatus(name, KIND, "stale" if t.last_ok else "down", t.last_ok, None,
                                    self.not_polling)
            state: SourceState
            age = None if t.last_ok is None else now - t.last_ok
            down_after = timedelta(seconds=DOWN_POLLS * t.every)
            stale_after = timedelta(seconds=STALE_POLLS * t.every)
            since = t.error_since
            if t.error is not None:
                detail = t.error
                state = "down" if t.down or age is None or age > down_after else "stale"
            elif age is None:
                state, detail = "stale", t.detail
            elif age > stale_after:
                state, since = "stale", (t.last_ok or now) + stale_after
                detail = f"not synced for {int(age.total_seconds())} s; {t.detail}"
            else:
                state, detail = "live", t.detail
            return SourceStatus(name, KIND, state, t.last_ok, since, detail,
                                last_error=t.error or "", last_error_at=t.error_since)

    # -- syncing ---------------------------------------------------------------------

    def sync_once(self, names: list[str] | None = None) -> list[SyncResult]:
        """Sync `names` (default: every source) now, on the caller's thread; the results.

        Raises what the gate raises (the demo simulator closed or halted) and a cache fault
        of a store (`CacheError`), after recording it on the lines."""
        from console.billing_sync import sync

        if self._released:
            raise WriterStopped("the cache was released; nothing is written")
        wanted = list(self._tracks) if names is None else names
        if self.prepare is not None:
            self.prepare()
        try:
            results = sync(self.config, self.cache, names=wanted, today=self.today(), gate=self._held)
        except duckdb.Error as exc:  # a store that met a full disk and the like
            fault = classify(exc, self.cache.path) or CacheError(
                f"billing sync: {type(exc).__name__}: {first_line(exc)[:200]}")
            self.cache_fault = fault
            with self._lock:
                for name in wanted:
                    self._fail(self._tracks[name], f"not stored: {fault}")
            self.last_error = str(fault)
            raise fault from exc
        self.cache_fault = None
        self.syncs += 1
        self.last_error = "; ".join(r.error for r in results if r.error) or None
        with self._lock:
            for r in results:
                self._record(self._tracks[r.source], r)
        return results

    @contextmanager
    def _held(self) -> Iterator[None]:
        """The gate, its refusal raised as `WriterStopped` (not a fault of this sync)."""
        with ExitStack() as stack:
            try:
                stack.enter_context(self.gate())
            except Exception as exc:
                raise WriterStopped(first_line(exc)) from exc
            if self._closed:  # `close` gave up waiting for this sync: it stores nothing now
                raise WriterStopped("the billing poller is closed")
            yield

    def _stored_syncs(self) -> None:
        """Each source's last sync stored in the cache (by an earlier run, or `llmdeck billing
        sync`): its line starts from it, and its first sync here waits until it is due, so a
        restarted console never polls a provider sooner than `poll_seconds` after the last one."""
        from console.cache import billing_store

        try:
            stored = billing_store.syncs(self.cache.cursor())
        except duckdb.Error:  # the line says "not synced yet"; the first sync will say more
            return
        for record in stored:
            track = self._tracks.get(record.source)
            if track is not None and track.source.provider == record.provider:
                track.last_ok = record.fetched_at
                track.detail = (f"last synced {record.fetched_at:%Y-%m-%d %H:%M}Z, days"
                                f" {record.covered_from:%m-%d}..{record.end - timedelta(days=1):%m-%d}")

    def _record(self, track: _Track, r: SyncResult) -> None:
        if r.ok:
            track.last_ok = self.wall()
            track.error = track.error_since = None
            track.down = False
            days = f"{r.start:%m-%d}..{r.end - timedelta(days=1):%m-%d}"
            track.detail = f"synced {days} ({r.pages} pages, {r.seconds:.1f} s)"
        else:
            self._fail(track, r.error or "failed", down=r.kind in ("auth", "secret"))

    def _fail(self, track: _Track, reason: str, down: bool = False) -> None:
        if track.error is None:
            track.error_since = self.wall()
        track.error = reason
        track.down = track.down or down

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            due = [n for n, t in self._tracks.items() if t.due <= now]
            if not due:
                self._stop.wait(min(t.due for t in self._tracks.values()) - now)
                continue
            for name in due:
                self._tracks[name].due = now + self._tracks[name].every
            try:
                self.sync_once(due)
            except CacheError:  # recorded on the lines (a full disk): retried at the next turn
                pass
            except WriterStopped as exc:  # closing, or the demo simulator halted: write no more
                self.last_error = str(exc)
                with self._lock:
                    for track in self._tracks.values():
                        self._fail(track, f"not polling: {exc}")
                return
            except Exception as exc:  # never let the thread die silently: said, retried next turn
                first = str(exc).splitlines()[0][:200] if str(exc) else ""
                reason = f"billing sync: {type(exc).__name__}: {first}"
                self.last_error = reason
                with self._lock:
                    for name in due:
                        self._fail(self._tracks[name], reason)


class BillingProbe:
    """One billing source's line on the sources view (`SourceProbe`, `backend.CacheUser`)."""

    def __init__(self, worker: BillingWorker, name: str) -> None:
        self.worker = worker
        self.name = name

    def source_status(self) -> SourceStatus:
        return self.worker.status_of(self.name)

    @property
    def cache_fault(self) -> CacheError | None:
        return self.worker.cache_fault

    def release_cache(self, fault: CacheError) -> None:
        self.worker.release_cache(fault)

    def adopt_cache(self, cache: Cache) -> None:
        self.worker.adopt_cache(cache)
