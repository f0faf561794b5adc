"""Worker processes that decode and map the receiver's export requests, off its GIL.

`llmdeck receive` runs the HTTP loop, the mapping and DuckDB's writer in one process; on
a few cores the decoding and mapping (about half of its CPU per span) then waits for the
GIL. `MapPool` runs `console.receiver.map_request` in `size` spawned processes, each with
its own `BatchBuilder` made from the same configuration (the same mapping, redaction and
pricing as in process): a request's body goes in, its span table and quarantine rows come
back. The writer, the group commit and the answer after the commit stay in the receiver.

The workers leave stop signals to the receiver's process and exit once it is gone however
it died (`proc_guard.guard_worker`: the kernel's parent-death signal, tied to the thread
that started them, so `start` spawns them all from the caller's thread). A worker that dies
(the OOM killer) breaks the pool: the next request starts a new one.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

from console.proc_guard import STOP_SIGNALS, guard_worker, signals_blocked, start_resource_tracker

if TYPE_CHECKING:
    from connectors.otlp_http import ExportRequest, ExportResult
    from console.cache.batching import BatchBuilder
    from console.config import Config
    from console.receiver import Mapped

__all__ = ["MapPool", "default_workers"]


def default_workers() -> int:
    """Mapping processes for `llmdeck receive`: a core for the receiver's own process, one
    process per other core, at most 2 (the writer is the limit past that)."""
    return max(1, min(2, (os.cpu_count() or 1) - 1))


_builder: BatchBuilder | None = None


def _init(config_json: str, parent: int) -> None:
    global _builder
    guard_worker(parent, STOP_SIGNALS)
    gc.disable()  # as the ingest's workers: the mapping makes many small objects, no cycles
    from console.cache.batching import BatchBuilder
    from console.config import Config

    _builder = BatchBuilder(Config.model_validate_json(config_json))


def _map(req: ExportRequest, seq: int) -> Mapped | ExportResult:
    from console.receiver import map_request

    assert _builder is not None, "_init was not called"
    return map_request(_builder, req, seq)


def _ready() -> int:
    return os.getpid()


class MapPool:
    """`size` worker processes mapping export requests; `close` stops them."""

    def __init__(self, config: Config, size: int) -> None:
        self.size = size
        self._config_json = config.model_dump_json()
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False

    def start(self) -> None:
        """Start the workers now, from this thread (which must outlive them: see the module)."""
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> ProcessPoolExecutor:
        if self._executor is None:
            start_resource_tracker()
            executor = ProcessPoolExecutor(
                max_workers=self.size, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init, initargs=(self._config_json, os.getpid()))
            with signals_blocked(STOP_SIGNALS):  # each submit spawns a worker: all of them now
                for _ in range(self.size):
                    executor.submit(_ready)
            self._executor = executor
        return self._executor

    def map(self, req: ExportRequest, seq: int) -> Mapped | ExportResult:
        """Decode and map `req` in a worker (blocks the calling thread, not the GIL)."""
        for attempt in (1, 2):
            with self._lock:
                if self._closed:
                    raise RuntimeError("the mapping processes are stopped")
                executor = self._start_locked()
                try:
                    with signals_blocked(STOP_SIGNALS):
                        future = executor.submit(_map, req, seq)
                except BrokenProcessPool:
                    future = None
            if future is not None:
                try:
                    return future.result()
                except BrokenProcessPool:
                    if attempt == 2:
                        raise
            with self._lock:  # a worker died: start a new pool for this request and the next
                if self._executor is executor:
                    self._executor = None
                    executor.shutdown(wait=False, cancel_futures=True)
        raise AssertionError("unreachable")

    def pids(self) -> list[int]:
        """The worker processes' ids (for tests and benches)."""
        with self._lock:
            executor = self._executor
        processes = getattr(executor, "_processes", None) or {}
        return [p.pid for p in list(processes.values()) if p.pid is not None]

    def close(self) -> None:
        """Stop the workers (after what they map now); later `map` calls raise."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            with contextlib.suppress(Exception):
                executor.shutdown(wait=True, cancel_futures=True)
