"""Rates and percentiles from two successive scrapes, the way Prometheus computes them.

- A counter's increase is the difference between the two reads; a counter that went
  down was reset (the server restarted) and its new value is the increase; a series
  that is new since the previous read counts from zero.
- A histogram quantile is taken from the bucket increases between the reads
  (cumulative `le` buckets with `+Inf`), interpolating linearly inside the bucket
  like `histogram_quantile`.
- Nothing is known from a single read: callers get None, never a guess.
No Textual, no DuckDB, no connectors: anything with `name`, `labels`, `value` will do.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

Labels = tuple[tuple[str, str], ...]
KeyOf = Callable[[dict[str, str]], str | None]
"""Which row a series belongs to (from its labels); None leaves the series out."""
UNLIMITED = 9.0e18
"""Gauges at or above this are a 'no limit' sentinel (LiteLLM sets 2**63-1); they read as infinity."""


class SampleLike(Protocol):
    """One exposed sample (connectors.scrape.ScrapeSample has this shape)."""

    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> Labels: ...
    @property
    def value(self) -> float: ...


class Metrics:
    """One scrape indexed by sample name: name -> [(labels, value)]."""

    def __init__(self, samples: Iterable[SampleLike]) -> None:
        self._by_name: dict[str, list[tuple[Labels, float]]] = defaultdict(list)
        for s in samples:
            self._by_name[s.name].append((s.labels, s.value))
        self.names = frozenset(self._by_name)

    def series(self, name: str) -> list[tuple[Labels, float]]:
        """Every series of sample `name` (empty when absent)."""
        return self._by_name.get(name, [])

    def values(self, name: str) -> dict[Labels, float]:
        """The series of sample `name` by their labels."""
        return dict(self.series(name))

    def first(self, *names: str) -> str | None:
        """The first of `names` this scrape has."""
        return next((n for n in names if n in self.names), None)

    def counter(self, base: str) -> str | None:
        """The exposed name of counter `base` (`base_total`, or bare `base` from older clients)."""
        return self.first(base + "_total", base)


@dataclass(frozen=True)
class Reads:
    """The previous read (None on the first), the current one, and the seconds between them."""

    prev: Metrics | None
    cur: Metrics
    window: float | None


def histogram(cur: Metrics, bases: tuple[str, ...]) -> str | None:
    """The first of `bases` this scrape exposes as a histogram."""
    return next((b for b in bases if b + "_bucket" in cur.names), None)


def increases(prev: Metrics | None, cur: Metrics, name: str | None, key: KeyOf,
              where: Callable[[dict[str, str]], bool] = lambda _: True) -> dict[str, float] | None:
    """Counter increase between the two reads per row; None on the first read."""
    if prev is None:
        return None
    out: dict[str, float] = defaultdict(float)
    if name is None:
        return out
    before = prev.values(name)
    for labels, value in cur.series(name):
        row = _row(labels, key, where)
        if row is None or math.isnan(value):
            continue
        old = before.get(labels)
        out[row] += value if old is None or math.isnan(old) or value < old else value - old
    return out


def resets(prev: Metrics | None, cur: Metrics, names: Iterable[str]) -> list[str]:
    """The names among `names` that have a series lower than at the previous read."""
    if prev is None:
        return []
    found = []
    for name in names:
        before = prev.values(name)
        if any(value < before.get(labels, -math.inf) for labels, value in cur.series(name)):
            found.append(name)
    return found


def totals(cur: Metrics, name: str | None, key: KeyOf) -> dict[str, float]:
    """The sum per row of the current values of `name` (a counter's total since its start)."""
    out: dict[str, float] = defaultdict(float)
    for labels, value in cur.series(name) if name else ():
        row = _row(labels, key)
        if row is not None and not math.isnan(value):
            out[row] += value
    return out


def gauges(cur: Metrics, name: str | None, key: KeyOf,
           combine: Callable[[Sequence[float]], float] = sum) -> dict[str, float]:
    """A gauge per row; several series of one row (engines, keys) combined with `combine`."""
    groups: dict[str, list[float]] = defaultdict(list)
    for labels, value in cur.series(name) if name else ():
        row = _row(labels, key)
        if row is not None and not math.isnan(value):
            groups[row].append(math.inf if value >= UNLIMITED else value)
    return {row: combine(values) for row, values in groups.items()}


def bucket_increases(prev: Metrics | None, cur: Metrics, base: str | None,
                     key: KeyOf) -> dict[str, dict[float, float]] | None:
    """Per row, the increase of each cumulative `le` bucket of histogram `base`; None on the first read."""
    if prev is None:
        return None
    out: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    if base is None:
        return out
    name = base + "_bucket"
    before = prev.values(name)
    for labels, value in cur.series(name):
        fields = dict(labels)
        row = key(fields)
        le = _bound(fields.get("le"))
        if row is None or le is None or math.isnan(value):
            continue
        old = before.get(labels)
        out[row][le] += value if old is None or value < old else value - old
    return out


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The q-quantile (0..1) of cumulative bucket counts {upper bound: count}, as Prometheus's
    `histogram_quantile` gives it; None when there are no observations or no +Inf bucket."""
    bounds = sorted(buckets)
    if not bounds or bounds[-1] != math.inf:
        return None
    counts, running = [], 0.0
    for bound in bounds:  # cumulative counts never go down (bucket increases from resets can)
        running = max(running, buckets[bound])
        counts.append(running)
    total = counts[-1]
    if total <= 0 or len(bounds) < 2:
        return None
    rank = q * total
    i = next(i for i, c in enumerate(counts) if c >= rank)
    if i == len(bounds) - 1:
        return bounds[-2]
    if i == 0 and bounds[0] <= 0:
        return bounds[0]
    start, below = (0.0, 0.0) if i == 0 else (bounds[i - 1], counts[i - 1])
    inside = counts[i] - below
    if inside <= 0:
        return bounds[i]
    return start + (bounds[i] - start) * (rank - below) / inside


def quantiles(q: float, per_row: dict[str, dict[float, float]] | None) -> dict[str, float | None]:
    """`histogram_quantile` of each row's bucket increases."""
    return {row: histogram_quantile(q, buckets) for row, buckets in (per_row or {}).items()}


def ratio(part: float | None, whole: float | None) -> float | None:
    """part / whole, or None when either is unknown or whole is zero."""
    if part is None or whole is None or whole <= 0:
        return None
    return part / whole


def per_second(increase: dict[str, float] | None, row: str, window: float | None) -> float | None:
    """A row's increase over the window as a rate; 0.0 for a row with no series; None when unknown."""
    if increase is None or not window or window <= 0:
        return None
    return increase.get(row, 0.0) / window


def _row(labels: Labels, key: KeyOf, where: Callable[[dict[str, str]], bool] = lambda _: True) -> str | None:
    fields = dict(labels)
    return key(fields) if where(fields) else None


def _bound(le: str | None) -> float | None:
    if le is None:
        return None
    try:
        return float(le)
    except ValueError:
        return None
