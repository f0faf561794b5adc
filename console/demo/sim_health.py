"""The demo simulator as a data source: live, stale or down, and the cache fault its writes met."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from console.cache.faults import CacheError, classify
from console.sources import SourceState, SourceStatus

STALE_AFTER = timedelta(seconds=10)
DOWN_AFTER = timedelta(seconds=60)


class SimHealth:
    """What the simulator's last writes did, read by the UI thread without waiting for them."""

    def __init__(self, wall: Callable[[], datetime]) -> None:
        self._wall = wall
        self._lock = threading.Lock()  # never held for long: status reads never wait
        self._last_ok: datetime | None = None
        self._error: str | None = None
        self._error_since: datetime | None = None
        self._detail = "starting"
        self._live_fault: CacheError | None = None
        self._backfill_fault: CacheError | None = None
        self._halted: CacheError | None = None

    @property
    def cache_fault(self) -> CacheError | None:
        """The fault of the cache file the writes met (disk full, unwritable, corrupt), or None:
        a live step's until the next one succeeds, the backfill's and a halt's for good."""
        with self._lock:
            return self._halted or self._live_fault or self._backfill_fault

    @property
    def backfill_fault(self) -> CacheError | None:
        """The fault that stopped the backfill, if one did."""
        with self._lock:
            return self._backfill_fault

    def status(self) -> SourceStatus:
        """Freshness of the simulator as a data source (live / stale / down)."""
        now = self._wall()
        with self._lock:
            last_ok, error, error_since, detail = (
                self._last_ok, self._error, self._error_since, self._detail)
        state: SourceState
        since: datetime | None = None
        if last_ok is None:
            state = "down" if error else "stale"
            since = error_since
            detail = error or detail
        elif error is not None:
            age = now - last_ok
            state = "down" if age > DOWN_AFTER else "stale"
            since = error_since
            detail = error
        else:
            age = now - last_ok
            if age > DOWN_AFTER:
                state, since = "down", last_ok + DOWN_AFTER
            elif age > STALE_AFTER:
                state, since = "stale", last_ok + STALE_AFTER
            else:
                state = "live"
            if state != "live":
                detail = f"no new data for {int(age.total_seconds())} s; {detail}"
        return SourceStatus(name="demo simulator", kind="otlp-files", state=state,
                            last_ok=last_ok, since=since, detail=detail)

    def succeeded(self, detail: str) -> None:
        """A write went through (ignored once halted: nothing is written any more)."""
        now = self._wall()
        with self._lock:
            if self._halted is not None:
                return
            self._last_ok = now
            self._error = None
            self._error_since = None
            self._detail = detail
            self._live_fault = None

    def failed(self, exc: BaseException, path: Path, backfill: bool = False) -> CacheError | None:
        """Record a failure; a fault of the file at `path` (the cache, or a spool file) in its
        own words. Returns that fault (None for any other error, recorded as its type and text)."""
        fault = classify(exc, path)
        if fault is not None:
            if fault is not exc:
                fault.__cause__ = exc  # DuckDB's or the OS's own words, for the toast
            with self._lock:
                if backfill:
                    self._backfill_fault = fault
                else:
                    self._live_fault = fault
        self.failed_text(str(fault) if fault is not None else text(exc))
        return fault

    def failed_text(self, message: str) -> None:
        """Record a failure said as `message` (once halted, the halt's fault stays the text)."""
        now = self._wall()
        with self._lock:
            if self._halted is not None:
                return
            if self._error is None:
                self._error_since = now
            self._error = message

    def halt(self, fault: CacheError) -> CacheError:
        """The simulator writes no more (its cache was closed under a fatal fault): every later
        status says that fault: the one an earlier write met, else `fault`. Returns it."""
        now = self._wall()
        with self._lock:
            if self._halted is None:
                self._halted = self._live_fault or self._backfill_fault or fault
                self._error_since = self._error_since if self._error is not None else now
                self._error = str(self._halted)
            return self._halted


def text(exc: BaseException) -> str:
    """`Type: message` for an error that is no fault of the cache file."""
    return f"{type(exc).__name__}: {exc}"
