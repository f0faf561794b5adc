"""Read-side queries over the rollups: their cost does not grow with span count.

A window [start, end) is read from hour rollups for the whole hours inside it
and from minute rollups for the ragged edges.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import duckdb

from console.cache import clock
from console.cache.clock import FUTURE_TOLERANCE_NS, ExpectedRange, ns_datetime
from console.cache.rollups import quantile
from console.timeutil import ceil_to, floor_to, naive_utc

STATUS_WINDOWS: tuple[tuple[str, timedelta], ...] = (
    ("5m", timedelta(minutes=5)),
    ("1h", timedelta(hours=1)),
    ("6h", timedelta(hours=6)),
    ("24h", timedelta(hours=24)),
)

_MINUTE = timedelta(minutes=1)
_HOUR = timedelta(hours=1)


def window_end(at: datetime) -> datetime:
    """The minute boundary a window ending at `at` reads up to (the current minute counts)."""
    return ceil_to(at.replace(tzinfo=None), _MINUTE)


def window_parts(
    start: datetime, end: datetime
) -> tuple[tuple[datetime, datetime] | None, list[tuple[datetime, datetime]]]:
    """Split [start, end) into an hour-rollup range and minute-rollup ranges."""
    h_lo, h_hi = ceil_to(start, _HOUR), floor_to(end, _HOUR)
    if h_lo >= h_hi:
        return None, [(start, end)]
    minutes = [(a, b) for a, b in ((start, h_lo), (h_hi, end)) if a < b]
    return (h_lo, h_hi), minutes


def labelled_source(
    windows: Sequence[tuple[int, datetime, datetime]],
    hour_table: str,
    minute_table: str,
    columns: str,
    where: str = "",
    where_params: Sequence[object] = (),
    tables: Literal["both", "hour", "minute"] = "both",
) -> tuple[str, list[object]]:
    """SQL reading `columns` of each labelled window [start, end) with its label as `win`.

    `windows` must not be empty and must not overlap (for nested windows pass the
    rings between them and add up). Whole hours come from `hour_table`, ragged
    edges from `minute_table`, and each table is scanned once, a CASE on `ts`
    labelling its rows: a UNION ALL of one scan per window cost ~1 ms per part.
    `where` is extra ` AND ...` conditions with `where_params`. `tables` reads only
    the whole-hour or only the minute parts; "" when that part is empty.
    """
    hour_ranges: list[tuple[int, datetime, datetime]] = []
    minute_ranges: list[tuple[int, datetime, datetime]] = []
    for label, start, end in windows:
        hours, minutes = window_parts(start, end)
        if hours:
            hour_ranges.append((int(label), *hours))
        minute_ranges += [(int(label), a, b) for a, b in minutes]
    ordered = sorted((a, b) for _, a, b in hour_ranges + minute_ranges)
    if any(nxt[0] < prev[1] for prev, nxt in zip(ordered, ordered[1:], strict=False)):
        raise ValueError("overlapping windows; pass the disjoint rings between them")
    selects: list[str] = []
    params: list[object] = []
    for table, ranges in ((hour_table, hour_ranges), (minute_table, minute_ranges)):
        if not ranges or tables not in ("both", "hour" if table == hour_table else "minute"):
            continue
        lo, hi = min(a for _, a, _ in ranges), max(b for _, _, b in ranges)
        if len(ranges) == 1:
            selects.append(f"SELECT {ranges[0][0]} AS win, {columns} FROM {table}"
                           f" WHERE ts >= ? AND ts < ?{where}")
            params += [lo, hi, *where_params]
            continue
        case = " ".join(f"WHEN ts >= ? AND ts < ? THEN {label}" for label, _, _ in ranges)
        selects.append(
            f"SELECT * FROM (SELECT CASE {case} END AS win, {columns} FROM {table}"
            f" WHERE ts >= ? AND ts < ?{where}) WHERE win IS NOT NULL"
        )
        params += [t for _, a, b in ranges for t in (a, b)] + [lo, hi, *where_params]
    return " UNION ALL ".join(selects), params


def rings(widths: Sequence[timedelta], end: datetime) -> list[tuple[int, datetime, datetime]]:
    """The disjoint rings between nested windows of `widths` (ascending) ending at `end`."""
    out, inner = [], timedelta(0)
    for label, width in enumerate(widths):
        out.append((label, end - width, end - inner))
        inner = width
    return out


@dataclass(frozen=True, slots=True)
class GroupStats:
    """One (window, provider, model) row of `llmdeck status`."""

    window: str
    provider: str | None
    model: str | None
    requests: int
    errors: int
    error_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    ttft_p95_ms: float | None
    input_tokens: int
    output_tokens: int
    cost_usd: float
    unpriced: int

    def as_json(self) -> dict[str, object]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 3)

        return {
            "window": self.window,
            "provider": self.provider,
            "model": self.model,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": None if self.error_rate is None else round(self.error_rate, 6),
            "latency_ms": {"p50": r(self.latency_p50_ms), "p95": r(self.latency_p95_ms),
                           "p99": r(self.latency_p99_ms)},
            "ttft_ms_p95": r(self.ttft_p95_ms),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "unpriced": self.unpriced,
        }


def status_groups(
    cur: duckdb.DuckDBPyConnection,
    at: datetime,
    windows: tuple[tuple[str, timedelta], ...] = STATUS_WINDOWS,
) -> list[GroupStats]:
    """Per window and (provider, model): counts, error rate, latency/TTFT percentiles, cost."""
    end = window_end(at)
    labels = [label for label, _ in windows]
    source, params = labelled_source(
        rings([width for _, width in windows], end),
        "rollup_hour_svc",
        "rollup_minute_svc",
        "provider, model, requests, errors, input_tokens, output_tokens, cost_usd, unpriced,"
        " latency_hist, ttft_hist",
    )
    # ring r counts towards every window k from r outwards (k indexes `labels`)
    upto = ", ".join(f"({r}, {k})" for r in range(len(windows)) for k in range(r, len(windows)))
    prelude = f"WITH src AS MATERIALIZED ({source}), w(win, k) AS (VALUES {upto}) "
    totals = cur.execute(
        prelude + "SELECT k, provider, model, sum(requests)::BIGINT, sum(errors)::BIGINT,"
        " sum(input_tokens)::BIGINT, sum(output_tokens)::BIGINT, sum(cost_usd)::DOUBLE,"
        " sum(unpriced)::BIGINT FROM src JOIN w USING (win)"
        " GROUP BY ALL",
        params,
    ).fetchall()
    hist_rows = cur.execute(
        prelude + "SELECT k, provider, model, metric, b, sum(n)::BIGINT FROM ("
        " SELECT win, provider, model, 0 AS metric, u.b, sum(u.n) AS n"
        " FROM (SELECT win, provider, model, unnest(latency_hist) AS u FROM src) GROUP BY ALL"
        " UNION ALL SELECT win, provider, model, 1, u.b, sum(u.n)"
        " FROM (SELECT win, provider, model, unnest(ttft_hist) AS u FROM src) GROUP BY ALL"
        ") JOIN w USING (win) GROUP BY ALL",
        params,
    ).fetchall()
    hists: dict[tuple[int, str, str, int], list[tuple[int, int]]] = defaultdict(list)
    for k, provider, model, metric, b, n in hist_rows:
        hists[(k, provider, model, metric)].append((int(b), int(n)))
    out = []
    for k, provider, model, req, err, tin, tout, cost, unpriced in totals:
        lat = hists.get((k, provider, model, 0), [])
        ttft = hists.get((k, provider, model, 1), [])
        out.append(
            GroupStats(
                window=labels[k],
                provider=provider or None,
                model=model or None,
                requests=int(req),
                errors=int(err),
                error_rate=(err / req) if req else None,
                latency_p50_ms=quantile(lat, 0.50),
                latency_p95_ms=quantile(lat, 0.95),
                latency_p99_ms=quantile(lat, 0.99),
                ttft_p95_ms=quantile(ttft, 0.95),
                input_tokens=int(tin),
                output_tokens=int(tout),
                cost_usd=float(cost),
                unpriced=int(unpriced),
            )
        )
    order = {label: i for i, label in enumerate(labels)}
    out.sort(key=lambda g: (order[g.window], -g.requests, g.provider or "", g.model or ""))
    return out


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """What `llmdeck cache info` prints."""

    path: str
    size_bytes: int
    wal_bytes: int
    schema_version: int
    spans: int
    first_span: datetime | None
    """The first span start inside the expected range (clock.ExpectedRange at the time of asking)."""
    last_span: datetime | None
    """The last span start inside the expected range: a span dated next year is not "last"."""
    rollup_minutes: int
    rollup_first: datetime | None
    quarantined: int
    last_checkpoint: str | None
    future_spans: int = 0
    """Spans dated after the expected range (a host clock ahead), up to `latest_span`."""
    past_spans: int = 0
    """Spans dated before `past_before` (older than the rollup retention), from `earliest_span`."""
    latest_span: datetime | None = None
    earliest_span: datetime | None = None
    past_before: datetime | None = None

    def outside_range(self) -> str | None:
        """One line on the spans dated outside the expected range, or None when there are none."""
        words = clock.outside_range(self.future_spans, self.past_spans, _day(self.latest_span),
                                    _day(self.past_before), _day(self.earliest_span))
        return f"{words} (a host clock may be wrong)" if words else None


def _day(t: datetime | None) -> str | None:
    return f"{t:%Y-%m-%d}" if t is not None else None


def cache_info(
    cur: duckdb.DuckDBPyConnection, path: str, horizon_days: float | None = None,
) -> CacheInfo:
    """What `llmdeck cache info` prints; spans outside clock.ExpectedRange (now, `horizon_days`
    or the default rollup retention) are counted apart from the span range."""
    import os

    expected = ExpectedRange.now(horizon_days)
    lo, hi = ns_datetime(expected.oldest_ns), ns_datetime(expected.newest_ns)
    spans, first, last, future, past, latest, earliest = cur.execute(
        "SELECT count(*), min(start_time) FILTER (WHERE start_time BETWEEN $lo AND $hi),"
        " max(start_time) FILTER (WHERE start_time BETWEEN $lo AND $hi),"
        " count(*) FILTER (WHERE start_time > $hi), count(*) FILTER (WHERE start_time < $lo),"
        " max(start_time), min(start_time) FROM spans",
        {"lo": lo, "hi": hi},
    ).fetchall()[0]
    rows, rfirst = cur.execute("SELECT count(*), min(ts) FROM rollup_minute").fetchall()[0]
    quarantined = cur.execute("SELECT count(*) FROM quarantine").fetchall()[0][0]
    meta = dict(cur.execute("SELECT key, value FROM meta").fetchall())
    wal = f"{path}.wal"
    return CacheInfo(
        path=path,
        size_bytes=os.path.getsize(path) if os.path.exists(path) else 0,
        wal_bytes=os.path.getsize(wal) if os.path.exists(wal) else 0,
        schema_version=int(meta.get("schema_version", 0)),
        spans=int(spans),
        first_span=first,
        last_span=last,
        rollup_minutes=int(rows),
        rollup_first=rfirst,
        quarantined=int(quarantined),
        last_checkpoint=meta.get("last_checkpoint"),
        future_spans=int(future),
        past_spans=int(past),
        latest_span=latest if future else None,
        earliest_span=earliest if past else None,
        past_before=lo,
    )


def newest_span(cur: duckdb.DuckDBPyConnection, at: datetime) -> datetime | None:
    """The latest span start not after `at` (plus clock.FUTURE_TOLERANCE_NS): a span dated
    next year by a wrong clock is not the newest."""
    limit = naive_utc(at) + timedelta(microseconds=FUTURE_TOLERANCE_NS // 1000)
    rows = cur.execute("SELECT max(start_time) FROM spans WHERE start_time <= ?", [limit]).fetchall()
    value = rows[0][0]
    return value if isinstance(value, datetime) else None
