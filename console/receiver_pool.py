"""Worker processes that decode and map the receiver's export requests, off its GIL.

`llmdeck receive` runs the HTTP loop, the mapping and DuckDB's writer in one process; on
a few cores the decoding and mapping (about half of its CPU per span) then waits for the
GIL. `MapPool` runs `map_protobuf` (the receiver's own protobuf path, see `console.receiver.
map_request`) in `size` spawned processes, each with its own `BatchBuilder` made from the same
configuration (the same mapping, redaction and pricing as in process): a protobuf body goes
in, its span table and quarantine rows come back. JSON bodies, and protobuf ones that do not
parse (the 400 and its reason), are the receiver's own. The writer, the group commit and the
answer after the commit stay in the receiver. A worker imports no DuckDB (~60 MB, not ~90).

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

import pyarrow as pa

from console.cache.batching import QuarantineRow
from console.proc_guard import STOP_SIGNALS, guard_worker, signals_blocked, start_resource_tracker

if TYPE_CHECKING:
    from console.cache.batching import BatchBuilder
    from console.cache.store import Cache
    from console.config import Config

__all__ = ["MapPool", "Mapped", "default_workers", "map_protobuf", "taken"]

Mapped = tuple[pa.Table | None, list[QuarantineRow], int]
"""A request mapped: its span table (None without spans), quarantine rows, spans in the table."""


def default_workers() -> int:
    """Mapping processes for `llmdeck receive`: a core for the receiver's own process, one
    process per other core, at most 2 (the writer is the limit past that)."""
    return max(1, min(2, (os.cpu_count() or 1) - 1))


def taken(builder: BatchBuilder) -> Mapped:
    """What `builder` mapped since the last take, as `Mapped`."""
    cols, quarantine, _ = builder.take()
    return (cols.to_arrow() if len(cols) else None), quarantine, len(cols)


def map_protobuf(builder: BatchBuilder, body: bytes, name: str, seq: int) -> Mapped | None:
    """Map a protobuf ExportTraceServiceRequest straight into columns
    (`otlp_proto.add_export_request`); None if the body does not parse."""
    from console.cache.otlp_proto import add_export_request, parse_export_request

    try:
        message = parse_export_request(body)
    except Exception:  # DecodeError, and whatever else a hostile body makes upb raise
        return None
    add_export_request(builder, message, name, seq)
    return taken(builder)


_builder: BatchBuilder | None = None


def _init(config_json: str, parent: int) -> None:
    global _builder
    guard_worker(parent, STOP_SIGNALS)
    gc.disable()  # as the ingest's workers: the mapping makes many small objects, no cycles
    from console.cache.batching import BatchBuilder
    from console.config import Config

    _builder = BatchBuilder(Config.model_validate_json(config_json))


def _map(body: bytes, name: str, seq: int) -> Mapped | None:
    assert _builder is not None, "_init was not called"
    return map_protobuf(_builder, body, name, seq)


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

    def map(self, body: bytes, name: str, seq: int) -> Mapped | None:
        """`map_protobuf` in a worker (blocks the calling thread, not the GIL)."""
        for attempt in (1, 2):
            with self._lock:
                if self._closed:
                    raise RuntimeError("the mapping processes are stopped")
                executor = self._start_locked()
                try:
                    with signals_blocked(STOP_SIGNALS):
                        future = executor.submit(_map, body, name, seq)
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


WRITER_SETTINGS = ("SET threads = 1", "SET checkpoint_threshold = '64MB'", "SET memory_limit = '128MB'")
"""DuckDB settings for a process that only receives (`llmdeck receive`). One thread: the
mapping worker has the other core, and the store step's statements are small (~15% less
CPU per span than two threads contending, measured in process). Checkpoints every 64 MB of
WAL instead of 16: each one recompresses, and they were a third of the store step's CPU
(2048-span commits: ~25 -> ~17 us per span); a WAL that size still replays in seconds.
A 128 MB buffer pool (the cache's default for writers is 512 MB): with the larger WAL the
receiver's RSS otherwise climbed past 400 MB in a minute of load (294 MB with it, measured);
what does not fit is evicted or spilled by DuckDB."""


def tune_writer(cache: Cache) -> None:
    """Apply WRITER_SETTINGS to `cache`'s database (again after each reopen: `on_reopen`)."""
    for statement in WRITER_SETTINGS:
        cache.con.execute(statement)
