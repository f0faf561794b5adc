"""Drill-down reads: a breakdown by one dimension, the worst requests, one trace's span tree.

The breakdown reads the rollups; the request lists read `spans` bounded by a
start-time range so they stay fast; a trace is read by its id. Filter values are
always bound as parameters. An unset filter field matches everything; the empty
string matches a missing value (rollups store it as '', spans as NULL).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import duckdb

from console.cache.queries import window_end
from console.cache.scope_sql import rollup_sums, union_parts
from console.config import ScopeFilter
from console.snapshots import (
    Breakdown,
    BreakdownRow,
    Dimension,
    RequestRow,
    TraceSpan,
    TraceTree,
)
from console.timeutil import naive_utc

_SPAN_MODEL = "coalesce(request_model, response_model)"
"""The span's model as the rollups key it."""
_SPAN_DIMS = {"service": "service", "provider": "provider", "model": _SPAN_MODEL,
              "tenant": "tenant", "route": "route", "prompt_version": "prompt_version"}


def breakdown(
    cur: duckdb.DuckDBPyConnection, flt: ScopeFilter, start: datetime, end: datetime,
    dimension: Dimension,
) -> Breakdown:
    """Traffic in scope over [start, end) (widened to whole minutes) per `dimension`, worst first."""
    start, end = window_end(naive_utc(start)), window_end(naive_utc(end))
    source, params = union_parts([(0, start, end)], flt, keys=(dimension,), hists=("latency_hist",))
    sums = rollup_sums(cur, source, params, (dimension,), ("latency_hist",))
    rows = [
        BreakdownRow(
            key=str(key),
            requests=t.requests,
            errors=t.errors,
            error_rate=t.error_rate,
            rate_limited=t.rate_limited,
            latency_p95_ms=t.latency_quantile(0.95),
            cost_usd=t.cost_usd,
            unpriced=t.unpriced,
        )
        for (key,), t in sums.items()
    ]
    rows.sort(key=lambda r: (-r.errors, -r.requests, r.key))
    return Breakdown(filter=flt, start=start, end=end, dimension=dimension, rows=tuple(rows))


def _span_filter(flt: ScopeFilter) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    for dim, value in flt.items():
        clauses.append(f" AND coalesce({_SPAN_DIMS[dim]}, '') = ?")
        params.append(value)
    return "".join(clauses), params


_ORDERS = {
    "slowest": ("", "duration_ms DESC NULLS LAST, start_time DESC, span_id"),
    "failed": (" AND status = 'error'", "start_time DESC, span_id"),
}


def worst_requests(
    cur: duckdb.DuckDBPyConnection,
    flt: ScopeFilter,
    start: datetime,
    end: datetime,
    order: Literal["slowest", "failed"],
    limit: int = 50,
) -> tuple[RequestRow, ...]:
    """The slowest requests, or the failed ones newest first, started in [start, end)."""
    extra, sort = _ORDERS[order]
    where, params = _span_filter(flt)
    rows = cur.execute(
        "SELECT trace_id, span_id, start_time, service, provider, "
        f"{_SPAN_MODEL}, tenant, route, prompt_version, status, error_type, http_status,"
        " duration_ms, ttft_ms, cost_usd FROM spans"
        f" WHERE start_time >= ? AND start_time < ?{where}{extra} ORDER BY {sort} LIMIT ?",
        [naive_utc(start), naive_utc(end), *params, int(limit)],
    ).fetchall()
    return tuple(RequestRow(*row) for row in rows)


# ---------------------------------------------------------------------------
# Trace tree
# ---------------------------------------------------------------------------

_DETAIL_COLUMNS = (
    "provider", "operation", "request_model", "response_model", "input_tokens", "output_tokens",
    "cache_read_tokens", "cost_usd", "price_version", "unpriced", "ttft_ms", "http_status",
    "error_type", "rate_limited", "fallback", "tenant", "route", "prompt_id", "prompt_version",
    "redactions", "source",
)
"""Stored columns shown with a span, before its remaining attributes."""
_SHOWN_ONLY_IF_SET = {"unpriced", "rate_limited", "fallback", "redactions"}
_HEAD = ("span_id", "parent_span_id", "name", "service", "start_time", "duration_ms", "status",
         "status_message")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.6g}"
    return json.dumps(value, default=str, ensure_ascii=False)


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out.append((prefix, _text(value)))


def _details(row: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for col in _DETAIL_COLUMNS:
        value = row[col]
        if value is None or (col in _SHOWN_ONLY_IF_SET and not value):
            continue
        out.append((col, "true" if value is True else _text(value)))
    if row["attributes"]:
        _flatten("", _loads(row["attributes"]), out)
    if row["events"]:
        events = _loads(row["events"])
        for ev in events if isinstance(events, list) else []:
            name = ev.get("name", "") if isinstance(ev, dict) else ev
            attrs = ev.get("attributes") if isinstance(ev, dict) else None
            out.append(("event", f"{_text(name)} {_text(attrs)}" if attrs else _text(name)))
    return tuple(out)


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


TRACE_SPAN_LIMIT = timedelta(hours=6)
"""How far from a known span of a trace `trace_tree(..., near=)` looks for the others."""


def trace_tree(
    cur: duckdb.DuckDBPyConnection, trace_id: str, near: datetime | None = None
) -> TraceTree | None:
    """Every span of a trace, depth-first by start time, with depths; None if unknown.

    A span whose parent is not in the cache is a root (depth 0). With `near` (a
    start time already seen in this trace) only spans within TRACE_SPAN_LIMIT of
    it are read, so DuckDB skips most of the file instead of scanning every id.
    """
    columns = (*_HEAD, *_DETAIL_COLUMNS, "attributes", "events")
    where = "trace_id = ?"
    params: list[object] = [trace_id.strip().lower()]
    if near is not None:
        where += " AND start_time >= ? AND start_time < ?"
        params += [near - TRACE_SPAN_LIMIT, near + TRACE_SPAN_LIMIT]
    result = cur.execute(
        f"SELECT {', '.join(columns)} FROM spans WHERE {where} ORDER BY start_time, span_id",
        params,
    ).fetchall()
    if not result:
        return None
    rows = [dict(zip(columns, r, strict=True)) for r in result]
    spans = {
        r["span_id"]: TraceSpan(
            span_id=r["span_id"], parent_span_id=r["parent_span_id"], name=r["name"],
            service=r["service"], start_time=r["start_time"], duration_ms=r["duration_ms"],
            status=r["status"], status_message=r["status_message"], attributes=_details(r),
        )
        for r in rows
    }
    order, depths = _depth_first(list(spans.values()))
    return TraceTree(trace_id=trace_id.strip().lower(), spans=tuple(order), depths=tuple(depths))


def _depth_first(spans: Sequence[TraceSpan]) -> tuple[list[TraceSpan], list[int]]:
    """Parents before children, siblings by start time (`spans` arrives sorted by it)."""
    ids = {s.span_id for s in spans}
    children: dict[str, list[TraceSpan]] = {}
    roots = []
    for s in spans:
        if s.parent_span_id and s.parent_span_id in ids and s.parent_span_id != s.span_id:
            children.setdefault(s.parent_span_id, []).append(s)
        else:
            roots.append(s)
    order: list[TraceSpan] = []
    depths: list[int] = []
    seen: set[str] = set()
    # a parent cycle has no root: its spans are picked up as roots after the rest
    for root in [*roots, *spans]:
        stack = [(root, 0)]
        while stack:
            span, depth = stack.pop()
            if span.span_id in seen:
                continue
            seen.add(span.span_id)
            order.append(span)
            depths.append(depth)
            stack.extend((c, depth + 1) for c in reversed(children.get(span.span_id, [])))
    return order, depths


def span_time_range(cur: duckdb.DuckDBPyConnection) -> tuple[datetime | None, datetime | None]:
    """The first and last span start time in the cache (None, None when empty)."""
    first, last = cur.execute("SELECT min(start_time), max(start_time) FROM spans").fetchall()[0]
    return first, last
