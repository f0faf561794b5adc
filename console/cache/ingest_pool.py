"""Worker processes that decode and map a big trace file, chunk by chunk, for the writer.

The reading thread only finds line boundaries; each worker reads and maps its own run
of lines into a span table. Mapped chunks come back in file order and go to the writer
a few to a transaction, each batch carrying the file offset its last chunk reached.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing.process import BaseProcess
from pathlib import Path

from console.cache import readers
from console.cache.batching import Chunk, init_worker, map_range
from console.cache.ingest_report import IngestReport
from console.cache.ingest_writer import WAIT_SECONDS, Batch, Writer
from console.config import Config
from console.proc_guard import (
    INTERRUPT,
    STOP_SIGNALS,
    call_interruptibly,
    signals_blocked,
    start_resource_tracker,
)

MAX_IN_FLIGHT = 2
# Chunks mapped by worker processes are stored this many to a transaction (at most one per
# worker, so a group is ready about when its last chunk is): every commit is a checkpoint
# that compresses the new rows again with their neighbours, and half as many commits cut the
# writer's time by ~20% (300k spans, 2 workers: 2.1 -> 1.7 s).
CHUNKS_PER_BATCH = 2
BYTES_PER_SPAN_GUESS = 1100


def _processes(executor: ProcessPoolExecutor) -> list[BaseProcess]:
    """The pool's worker processes (an attribute of CPython's executor: none if it changes)."""
    processes = getattr(executor, "_processes", None) or {}
    return list(processes.values())


class MappingPool:
    """`size` worker processes mapping line ranges of trace files; stopped by `stop`."""

    def __init__(self, config: Config, size: int, nice: int, stop: threading.Event,
                 report: IngestReport, lock: threading.Lock) -> None:
        start_resource_tracker()
        self.size = size
        self.executor = ProcessPoolExecutor(
            max_workers=size,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker,
            initargs=(config.model_dump_json(), nice, os.getpid()),
        )
        self.batch_spans = config.ingest.batch_spans
        self.stop = stop
        self.report = report
        self.lock = lock

    def ingest(
        self, writer: Writer, path: Path, kind: readers.Kind, state: readers.ReadState,
        offset: int, line: int, fingerprint: str, tick: Callable[[int], None],
    ) -> None:
        """Map `path` from `offset` in the workers; hand the chunks to `writer` in file order.

        `tick(offset)` is called as batches are handed over, with the byte offset reached.
        """
        name = str(path)
        chunk_bytes = max(64 * 1024, self.batch_spans * BYTES_PER_SPAN_GUESS)
        group = max(1, min(CHUNKS_PER_BATCH, self.size))
        in_flight: deque[Future[Chunk]] = deque()
        mapped: list[Chunk] = []
        for start, end, first_line in readers.line_ranges(path, offset, line, chunk_bytes):
            if self.stop.is_set():
                return
            with signals_blocked(STOP_SIGNALS | {INTERRUPT}):  # a worker may be spawned here
                in_flight.append(self.executor.submit(call_interruptibly, map_range, kind, name,
                                                      start, end, first_line))
            while len(in_flight) > MAX_IN_FLIGHT:
                chunk = self._wait(in_flight.popleft())
                if chunk is None:
                    return
                mapped.append(self._take_chunk(chunk, state))
                if len(mapped) >= group:
                    tick(self._store_chunks(writer, mapped, name, fingerprint))
                    mapped = []
            if writer.error is not None:
                return
        while in_flight:
            chunk = self._wait(in_flight.popleft())
            if chunk is None:
                return
            mapped.append(self._take_chunk(chunk, state))
            if len(mapped) >= group or not in_flight:
                self._store_chunks(writer, mapped, name, fingerprint)
                mapped = []

    def end(self) -> None:
        """Shut the worker processes down; when stopping, cut short what they map first.

        Never by a signal that ends them: a worker killed while it sends a chunk leaves
        the pool's reading thread waiting for the rest forever (and this shutdown, and
        the interpreter's exit, with it). INTERRUPT ends only the mapping
        (`proc_guard.call_interruptibly`); pending chunks are cancelled.
        """
        if self.stop.is_set():
            for proc in _processes(self.executor):
                with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
                    os.kill(proc.pid, INTERRUPT)  # type: ignore[arg-type]
        self.executor.shutdown(wait=True, cancel_futures=True)

    def kill(self) -> None:
        """Kill the worker processes now, for a process about to exit at once (see `end`
        for why nothing may wait on the pool after). Safe from a signal handler."""
        for proc in _processes(self.executor):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                proc.kill()

    def _wait(self, future: Future[Chunk]) -> Chunk | None:
        """The chunk a worker mapped, or None once a stop is requested."""
        while not self.stop.is_set():
            try:
                return future.result(timeout=WAIT_SECONDS)
            except TimeoutError:
                continue
        return None

    def _take_chunk(self, chunk: Chunk, state: readers.ReadState) -> Chunk:
        """Count a mapped chunk into the report as it arrives (in file order)."""
        self.report.count(chunk.spans_read, chunk.quarantine, chunk.duplicates, chunk.clock,
                          self.lock)
        state.pending_tail = state.pending_tail or chunk.pending_tail
        return chunk

    @staticmethod
    def _store_chunks(writer: Writer, chunks: list[Chunk], name: str, fingerprint: str) -> int:
        """Hand consecutive mapped chunks to the writer as one batch; return the offset reached."""
        last = max((c for c in chunks if c.last_offset >= 0), key=lambda c: c.last_offset,
                   default=None)
        if last is None:  # only blank lines (or an unfinished tail): nothing to store
            return -1
        tables = [c.table for c in chunks if c.table is not None]
        quarantine = [row for c in chunks for row in c.quarantine]
        writer.offer(Batch(tables, quarantine, (name, fingerprint, last.last_offset,
                                                last.last_line)))
        return last.last_offset
