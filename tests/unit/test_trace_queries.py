"""Drill-down reads (console.cache.trace_queries): breakdown order, worst requests, span trees."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from console.cache.ingest import Ingestor
from console.cache.store import Cache
from console.cache.trace_queries import breakdown, span_time_range, trace_tree, worst_requests
from console.config import ScopeFilter
from tests.unit.otlp_spans import Span, ns, write_spans

B = datetime(2026, 3, 4, 9, 0)
HOUR = timedelta(hours=1)
# tenant -> (provider, requests, errors, of which rate limited)
TENANTS = {"alpha": ("openai", 10, 3, 0), "beta": ("openai", 20, 3, 2),
           "gamma": ("anthropic", 50, 0, 0), None: ("anthropic", 5, 1, 0)}
TRACE = "0af7651916cd43dd8448eb211c80319c"


def trace_spans() -> list[Span]:
    """gateway root -> (retrieval, llm call -> tool), plus an orphan whose parent is missing."""
    t = B + timedelta(minutes=30)
    ms = timedelta(milliseconds=1)

    def s(span_id: str, start: int, **kw: Any) -> Span:
        return Span(t + start * ms, trace_id=TRACE, span_id=span_id * 16, **kw)

    return [
        s("1", 0, name="POST /chat", service="gateway", provider=None, model=None, tin=None,
          tout=None, dur_ms=900),
        s("3", 10, parent="1" * 16, name="chat gpt-4o-mini", tenant="alpha", dur_ms=700,
          attrs={"app.note": "hello"}),
        s("2", 5, parent="1" * 16, name="retrieve", provider=None, model=None, tin=None, tout=None),
        s("4", 20, parent="3" * 16, name="tool call", provider=None, model=None, tin=None, tout=None),
        s("5", 1, parent="9" * 16, name="late child of a lost parent", provider=None, model=None,
          tin=None, tout=None),
    ]


@pytest.fixture(scope="module")
def trace_cache(tmp_path_factory: pytest.TempPathFactory, make_config: Any) -> Path:
    rng = random.Random(8)
    spans = []
    for tenant, (provider, n, errors, limited) in TENANTS.items():
        for i in range(n):
            error = i < errors
            spans.append(Span(B + timedelta(seconds=rng.randrange(3600)), provider=provider,
                              model="gpt-4o-mini" if provider == "openai" else "claude-haiku-4-5",
                              tenant=tenant, dur_ms=rng.lognormvariate(math.log(800), 0.7),
                              error=error, http_status=429 if i < limited else None))
    tmp = tmp_path_factory.mktemp("traces")
    cache_path = tmp / "cache.duckdb"
    with Cache.open(cache_path) as cache:
        Ingestor(cache, make_config()).run([write_spans(tmp / "traffic.jsonl", spans),
                                           write_spans(tmp / "trace.json", trace_spans())])
    return cache_path


def test_breakdown_lists_worst_first_errors_then_requests(trace_cache):
    with Cache.open(trace_cache, read_only=True) as cache:
        cur = cache.cursor()
        bd = breakdown(cur, ScopeFilter(), B, B + HOUR, "tenant")
        exact = {k: (n, e, rl, cost, lat) for k, n, e, rl, cost, lat in cur.execute(
            "SELECT coalesce(tenant, ''), count(*), count(*) FILTER (WHERE status = 'error'),"
            " count(*) FILTER (WHERE rate_limited), coalesce(sum(cost_usd), 0), list(duration_ms)"
            " FROM spans GROUP BY ALL").fetchall()}
    # the trace's spans (alpha, and four without a tenant) are in the hour too
    assert [r.key for r in bd.rows] == ["beta", "alpha", "", "gamma"]
    assert [r.label for r in bd.rows][2] == "(none)"
    for row in bd.rows:
        n, e, rl, cost, lat = exact[row.key]
        assert (row.requests, row.errors, row.rate_limited) == (n, e, rl)
        assert row.error_rate == pytest.approx(e / n)
        assert row.cost_usd == pytest.approx(cost)
        p95 = sorted(lat)[math.ceil(0.95 * len(lat)) - 1]
        assert abs(row.latency_p95_ms - p95) / p95 <= 0.02
    assert (bd.start, bd.end, bd.dimension) == (B, B + HOUR, "tenant")


def test_breakdown_filters_by_scope_and_empty_string_means_missing(trace_cache):
    with Cache.open(trace_cache, read_only=True) as cache:
        cur = cache.cursor()
        by_model = breakdown(cur, ScopeFilter(provider="anthropic"), B, B + HOUR, "model")
        missing = breakdown(cur, ScopeFilter(tenant=""), B, B + HOUR, "service")
        later = breakdown(cur, ScopeFilter(), B + 2 * HOUR, B + 3 * HOUR, "tenant")
    assert [(r.key, r.requests) for r in by_model.rows] == [("claude-haiku-4-5", 55)]
    assert sum(r.requests for r in missing.rows) == 5 + 4  # 5 anonymous calls, 4 trace spans
    assert later.rows == ()


def test_worst_requests_slowest_first_within_the_time_range(trace_cache):
    start, end = B + timedelta(minutes=10), B + timedelta(minutes=50)
    with Cache.open(trace_cache, read_only=True) as cache:
        cur = cache.cursor()
        rows = worst_requests(cur, ScopeFilter(provider="openai"), start, end, "slowest", limit=5)
        exact = cur.execute(
            "SELECT span_id, duration_ms FROM spans WHERE provider = 'openai'"
            " AND epoch_ns(start_time) >= ? AND epoch_ns(start_time) < ?"
            " ORDER BY duration_ms DESC LIMIT 5", [ns(start), ns(end)]).fetchall()
    assert [(r.span_id, r.duration_ms) for r in rows] == exact
    assert all(start <= r.start_time < end and r.provider == "openai" for r in rows)


def test_worst_requests_failed_are_errors_newest_first(trace_cache):
    with Cache.open(trace_cache, read_only=True) as cache:
        cur = cache.cursor()
        failed = worst_requests(cur, ScopeFilter(), B, B + HOUR, "failed")
        anonymous = worst_requests(cur, ScopeFilter(tenant=""), B, B + HOUR, "failed")
    assert len(failed) == 3 + 3 + 1
    assert all(r.status == "error" for r in failed)
    assert [r.start_time for r in failed] == sorted((r.start_time for r in failed), reverse=True)
    assert [r.tenant for r in anonymous] == [None]
    limited = [r for r in failed if r.http_status == 429]
    assert len(limited) == 2 and {r.tenant for r in limited} == {"beta"}


def test_trace_tree_orders_parents_before_children_by_start_time(trace_cache):
    with Cache.open(trace_cache, read_only=True) as cache:
        tree = trace_tree(cache.cursor(), TRACE.upper())
    assert tree is not None and tree.trace_id == TRACE
    names = [(s.name, d) for s, d in zip(tree.spans, tree.depths, strict=True)]
    assert names == [("POST /chat", 0), ("retrieve", 1), ("chat gpt-4o-mini", 1),
                     ("tool call", 2), ("late child of a lost parent", 0)]
    assert tree.spans[-1].parent_span_id == "9" * 16  # kept, though not in the cache


def test_trace_span_attributes_list_columns_then_span_attributes_as_text(trace_cache):
    with Cache.open(trace_cache, read_only=True) as cache:
        tree = trace_tree(cache.cursor(), TRACE)
    assert tree is not None
    llm = next(s for s in tree.spans if s.name == "chat gpt-4o-mini")
    attrs = dict(llm.attributes)
    keys = [k for k, _ in llm.attributes]
    assert attrs["provider"] == "openai" and attrs["request_model"] == "gpt-4o-mini"
    assert attrs["input_tokens"] == "1000" and attrs["output_tokens"] == "100"
    assert attrs["tenant"] == "alpha" and float(attrs["cost_usd"]) > 0
    assert attrs["app.note"] == "hello" and attrs["resource.service.name"] == "svc"
    assert keys.index("provider") < keys.index("source") < keys.index("app.note")
    assert all(isinstance(v, str) for _, v in llm.attributes)
    root = tree.spans[0]
    assert root.service == "gateway" and "provider" not in dict(root.attributes)


def test_unknown_trace_is_none_and_time_range_spans_the_cache(trace_cache, tmp_path):
    with Cache.open(trace_cache, read_only=True) as cache:
        cur = cache.cursor()
        assert trace_tree(cur, "f" * 32) is None
        first, last = span_time_range(cur)
        assert (first, last) == tuple(cur.execute(
            "SELECT min(start_time), max(start_time) FROM spans").fetchall()[0])
    assert first is not None and last is not None and B <= first < last < B + HOUR
    with Cache.open(tmp_path / "empty.duckdb") as cache:
        assert span_time_range(cache.cursor()) == (None, None)
