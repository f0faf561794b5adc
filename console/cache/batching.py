"""Turning decoded records into row batches, in process or in worker processes.

`BatchBuilder` maps records (OTLP export requests, flat spans, bad lines) into
a `SpanColumns` batch plus quarantine rows. For large JSON-lines files the
same builder runs in worker processes (`map_range`), which read their own
run of lines, so reading, decoding and mapping use every core while the
parent's writer thread stores finished batches.
"""

from __future__ import annotations

import gc
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from console.cache import readers
from console.cache.clock import ClockCounts, ExpectedRange
from console.cache.mapping import BadSpan, SpanColumns, SpanMapper, otlp_attributes
from console.cache.redact import Redactor
from console.config import Config
from console.pricing import PriceTable
from console.proc_guard import STOP_SIGNALS, guard_worker

QuarantineRow = tuple[str, int, str]


@dataclass
class Chunk:
    """A mapped piece of a file: its rows (as Arrow), quarantine rows and counts."""

    table: pa.Table | None
    quarantine: list[QuarantineRow] = field(default_factory=list)
    spans_read: int = 0
    duplicates: int = 0
    last_line: int = 0
    last_offset: int = -1  # just after the last line read, -1 if none
    pending_tail: bool = False  # ends in an unfinished line, left for the next run
    clock: ClockCounts = field(default_factory=ClockCounts)  # rows started outside the expected range


class BatchBuilder:
    """Maps records into the current batch; `take()` hands the batch over."""

    def __init__(self, config: Config) -> None:
        self.redactor = Redactor(config.redaction)
        self.mapper = SpanMapper(
            config.ingest, self.redactor, PriceTable.load(config.pricing.overrides)
        )
        self.cols = SpanColumns()
        self.quarantine: list[QuarantineRow] = []
        self.spans_read = 0
        self.horizon_days = config.cache.rollup_retention_days
        """Spans older than this many days (or clock.DEFAULT_HORIZON_DAYS) are counted as past."""

    def __len__(self) -> int:
        return len(self.cols)

    def mark(self) -> tuple[int, int, int]:
        """Where the batch is now (rows, duplicates, spans read), for `undo`."""
        return len(self.cols.rows), self.cols.duplicates, self.spans_read

    def undo(self, mark: tuple[int, int, int]) -> None:
        """Drop what a fast path added since `mark`, before it hands the request to the dict path."""
        n_rows, duplicates, spans_read = mark
        cols = self.cols
        for row in cols.rows[n_rows:]:
            cols.keys.discard((row[0], row[1]))
        del cols.rows[n_rows:]
        cols.duplicates, self.spans_read = duplicates, spans_read

    def take(self) -> tuple[SpanColumns, list[QuarantineRow], int]:
        """Hand over the batch, its rows started outside the expected range counted (`cols.clock`)."""
        cols, quarantine, read = self.cols, self.quarantine, self.spans_read
        cols.count_clock(ExpectedRange.now(self.horizon_days))
        self.cols, self.quarantine, self.spans_read = SpanColumns(), [], 0
        return cols, quarantine, read

    def add(self, rec: readers.Record, name: str) -> None:
        if rec.kind == "bad":
            self.reject(name, rec.line, str(rec.payload))
        elif rec.kind == "otlp":
            if type(rec.payload) is readers.TypedLine:
                self._add_typed_request(rec.payload, name, rec.line, rec.offset)
            else:
                self._add_request(rec.payload, name, rec.line)
        else:
            self._add_flat(rec.payload, name, rec.line)

    def reject(self, name: str, line: int, reason: str) -> None:
        reason, _ = self.redactor.redact(reason)
        self.quarantine.append((name, line, reason))

    def _add_request(self, req: dict[str, Any], name: str, line: int) -> None:
        source = f"{name}:{line}"
        mapper = self.mapper
        cols = self.cols
        for ri, rs in enumerate(req.get("resourceSpans") or ()):
            if not isinstance(rs, dict):
                self.reject(name, line, f"resourceSpans[{ri}] is not an object")
                continue
            try:
                res_raw = otlp_attributes((rs.get("resource") or {}).get("attributes"))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                self.reject(name, line, f"resourceSpans[{ri}].resource: bad attributes ({exc})")
                continue
            resource, res_n = mapper.resource(res_raw)
            scopes = rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or ()
            for si, ss in enumerate(scopes):
                spans = ss.get("spans") if isinstance(ss, dict) else None
                for pi, sp in enumerate(spans or ()):
                    try:
                        mapper.add_otlp_span(cols, sp, resource, res_n, source)
                    except (BadSpan, KeyError, TypeError, ValueError, AttributeError) as exc:
                        self.reject(
                            name, line,
                            f"resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}]: {_reason(exc)}",
                        )
                    else:
                        self.spans_read += 1

    def _add_typed_request(self, typed: readers.TypedLine, name: str, line: int, offset: int) -> None:
        """Map a line decoded into structs; on anything unusual, undo it and take the dict path.

        The typed path never quarantines: a span it cannot map makes the whole line go
        through `_add_request`, which rejects exactly what it always rejected, with its reasons.
        """
        cols = self.cols
        mark = self.mark()
        try:
            source = f"{name}:{line}"
            mapper = self.mapper
            for rs in typed.request.resourceSpans or ():
                res = readers.raw_json(rs.resource) if rs.resource else None
                resource, res_n = mapper.resource(otlp_attributes((res or {}).get("attributes")))
                for ss in rs.scopeSpans or rs.instrumentationLibrarySpans or ():
                    for sp in ss.spans or ():
                        mapper.add_typed_otlp_span(cols, sp, resource, res_n, source)
                        self.spans_read += 1
        except Exception:  # any failure at all: the dict path is the reference and decides
            self.undo(mark)
            self.add(readers.decode_dict_line("otlp", line, typed.raw, offset), name)

    def _add_flat(self, rec: dict[str, Any], name: str, line: int) -> None:
        try:
            self.mapper.add_flat_span(self.cols, rec, f"{name}:{line}")
        except (BadSpan, KeyError, TypeError, ValueError, AttributeError) as exc:
            self.reject(name, line, _reason(exc))
        else:
            self.spans_read += 1


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BadSpan):
        return str(exc)
    return f"unreadable span ({type(exc).__name__}: {exc})"


# -- worker processes ---------------------------------------------------------

BACKGROUND_NICE = 10
"""How much lower the CPU priority of an ingest inside the console runs (writer and worker)."""


def lower_thread_priority(nice: int) -> None:
    """Lower the calling thread's CPU priority by `nice` (Linux schedules threads one by one)."""
    if nice <= 0:
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
    except (AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
        pass


_worker_builder: BatchBuilder | None = None


def init_worker(config_json: str, nice: int = 0, parent: int | None = None) -> None:
    """Process-pool initializer: one builder per worker, GC off (see ingest.py), and a lower
    CPU priority by `nice` for an ingest inside the console; with `parent`, the worker
    leaves stop signals to that process and exits once it is gone (`proc_guard`)."""
    global _worker_builder
    if parent is not None:
        guard_worker(parent, STOP_SIGNALS)
    gc.disable()
    lower_thread_priority(nice)
    _worker_builder = BatchBuilder(Config.model_validate_json(config_json))


def map_range(kind: readers.Kind, name: str, start: int, end: int, start_line: int) -> Chunk:
    """Read, decode and map one run of lines of `name` (see `readers.line_ranges`) in a worker."""
    builder = _worker_builder
    assert builder is not None, "init_worker was not called"
    state = readers.ReadState()
    last_line, last_offset = 0, -1
    for line_no, raw, offset in readers.iter_raw_lines(Path(name), state, start, start_line, end):
        builder.add(readers.decode_line(kind, line_no, raw, offset), name)
        last_line, last_offset = line_no, offset
    cols, quarantine, read = builder.take()
    return Chunk(cols.to_arrow() if len(cols) else None, quarantine, read, cols.duplicates,
                 last_line, last_offset, state.pending_tail, cols.clock)
