"""Demo traffic as a pure function of (seed, chunk index).

Time is cut into fixed chunks of CHUNK_SECONDS of simulated time, counted from
the Unix epoch. The requests of chunk k come from an RNG seeded by (seed, k)
alone: their number is Poisson(rate x diurnal load x chunk length), their times
uniform inside the chunk. So the data never depends on how often, or in what
pieces, the simulator asks for it, and a chunk can be generated in any process.

This module imports only the traffic model (no DuckDB, no pyarrow) so that the
backfill can generate in a worker process cheaply.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from console.demo.levers import Levers
from console.demo.traffic import (
    SERVICE_WEIGHTS,
    SERVICES,
    Incident,
    TrafficModel,
    diurnal_rate,
    export_request,
)

CHUNK_SECONDS = 10
CHUNK_NS = CHUNK_SECONDS * 1_000_000_000
GENERATOR_VERSION = 1
"""Bumped whenever the same (seed, chunk) would produce different spans."""

SPANS_PER_LINE = 500


@dataclass(frozen=True)
class TrafficPlan:
    """Everything the spans depend on besides the chunk index. Picklable."""

    seed: int
    rate: float
    """Mean user requests per second over a day (the diurnal curve averages 1.0)."""
    incident: Incident | None = None
    rate_limit_share: float = 0.0008
    error_share: float = 0.001
    fallback_share: float = 0.002
    max_retries: int = 2
    levers: Levers | None = field(default=None, compare=False)
    """What the demo gateway's admin actions changed (shared by every reader of this plan; the
    spans of a chunk depend on the levers' state at its times, console/demo/levers.py)."""

    def model(self) -> TrafficModel:
        return TrafficModel(
            seed=self.seed,
            incidents=[] if self.incident is None else [self.incident],
            rate_limit_share=self.rate_limit_share,
            error_share=self.error_share,
            fallback_share=self.fallback_share,
            max_retries=self.max_retries,
            levers=self.levers,
        )


def chunk_start_ns(index: int) -> int:
    return index * CHUNK_NS


def chunk_of(t_ns: int) -> int:
    """The chunk holding time t (chunks are [k * CHUNK, (k + 1) * CHUNK))."""
    return t_ns // CHUNK_NS


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw (Knuth below 30, a rounded normal above: both deterministic)."""
    if lam <= 0:
        return 0
    if lam >= 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit = math.exp(-lam)
    n, p = 0, rng.random()
    while p > limit:
        n += 1
        p *= rng.random()
    return n


def chunk_spans(plan: TrafficPlan, model: TrafficModel, index: int) -> list[tuple[int, dict[str, Any]]]:
    """(service index, span) for every span of chunk `index`, in request order."""
    rng = random.Random(f"llmdeck-demo/{GENERATOR_VERSION}/{plan.seed}/{index}")
    model.rng = rng
    start = chunk_start_ns(index)
    lam = plan.rate * diurnal_rate(start + CHUNK_NS // 2) * CHUNK_SECONDS
    count = poisson(rng, lam)
    times = sorted(start + int(rng.random() * CHUNK_NS) for _ in range(count))
    out: list[tuple[int, dict[str, Any]]] = []
    for t in times:
        svc = _service(rng.random())
        for span in model.request(t, svc):
            out.append((svc, span))
    return out


def _service(u: float) -> int:
    acc = 0.0
    for i, w in enumerate(SERVICE_WEIGHTS):
        acc += w
        if u < acc:
            return i
    return len(SERVICE_WEIGHTS) - 1


def export_batches(plan: TrafficPlan, first: int, last: int) -> Iterator[tuple[dict[str, Any], int, int]]:
    """ExportTraceServiceRequests (OTLP/JSON dicts) for chunks [first, last), whole chunks each,
    about SPANS_PER_LINE spans: (request, its span count, the chunk after its last one)."""
    model = plan.model()
    batch: list[list[dict[str, Any]]] = [[] for _ in SERVICES]
    n = 0
    for index in range(first, last):
        for svc, span in chunk_spans(plan, model, index):
            batch[svc].append(span)
            n += 1
        if n >= SPANS_PER_LINE:
            yield export_request(batch), n, index + 1
            batch = [[] for _ in SERVICES]
            n = 0
    if n:
        yield export_request(batch), n, last


def export_lines(plan: TrafficPlan, first: int, last: int) -> Iterator[tuple[bytes, int]]:
    """Collector file-exporter lines (with their span counts) for chunks [first, last)."""
    for request, n, _ in export_batches(plan, first, last):
        yield orjson.dumps(request) + b"\n", n


def write_chunks(plan: TrafficPlan, first: int, last: int, path: Path) -> int:
    """Write chunks [first, last) to a new file at `path` atomically; the number of spans."""
    tmp = path.with_name(path.name + ".tmp")
    spans = 0
    with open(tmp, "wb") as f:
        for line, n in export_lines(plan, first, last):
            f.write(line)
            spans += n
    tmp.replace(path)
    return spans


def append_chunks(plan: TrafficPlan, first: int, last: int, path: Path) -> int:
    """Append chunks [first, last) to `path` (whole lines only); the number of spans."""
    data = bytearray()
    spans = 0
    for line, n in export_lines(plan, first, last):
        data += line
        spans += n
    if data:
        with open(path, "ab") as f:
            f.write(data)
    return spans


def write_all(plan: TrafficPlan, ranges: list[tuple[int, int, Path]], parent: int | None = None) -> None:
    """`write_chunks` for each (first, last, path) in order (the backfill's worker process).

    Stops before the next file once the process `parent` is gone (a demo killed by a
    signal never terminates its worker).
    """
    for first, last, path in ranges:
        if parent is not None and os.getppid() != parent:
            return
        if not path.exists():
            write_chunks(plan, first, last, path)
