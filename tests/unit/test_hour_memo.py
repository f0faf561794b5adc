"""`HourMemo`: closed hours are read once per data version, and a new ingest is never hidden.

The console polls every second; the whole hours of the 28-day SLO windows only change
when spans land in them. Reusing their sums must give exactly what a fresh read gives,
before and after more spans (including late ones, in an old hour) are ingested.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from console.cache.cost_queries import cost_snapshot
from console.cache.scope_sql import HourMemo
from console.cache.slo_queries import slo_statuses
from console.cache.store import Cache
from console.config import BudgetSpec, ScopeFilter, SloSpec
from tests.unit.otlp_spans import Span, write_spans

AT = datetime(2026, 3, 4, 10, 17)
SPECS = [
    SloSpec(name="availability", kind="availability", objective=0.99),
    SloSpec(name="anthropic latency", kind="latency", objective=0.9, threshold_ms=800.0,
            filter=ScopeFilter(provider="anthropic")),
    SloSpec(name="acme errors", kind="availability", objective=0.95,
            filter=ScopeFilter(tenant="acme")),
]


def spans(start: datetime, hours: int, every: timedelta, first_id: int, **kw: Any) -> list[Span]:
    out = []
    t, i = start, first_id
    while t < start + timedelta(hours=hours):
        out.append(Span(start=t, dur_ms=200.0 + (i % 7) * 150, error=i % 13 == 0,
                        provider="anthropic" if i % 2 else "openai", tenant="acme" if i % 3 else None,
                        trace_id=f"{i:032x}", span_id=f"{i:016x}", **kw))
        t, i = t + every, i + 1
    return out


def test_memo_answers_equal_fresh_reads_across_polls_and_new_ingests(tmp_path: Path, ingest):
    ingest([write_spans(tmp_path / "a.jsonl", spans(AT - timedelta(hours=30), 30,
                                                    timedelta(minutes=3), 1))])
    memo = HourMemo()
    with Cache.open(tmp_path / "cache.duckdb", read_only=True) as cache:
        cur = cache.cursor()
        for minutes in (0, 1, 2, 45):  # polls as the clock moves within and across hours
            memo.sync(cur)
            at = AT + timedelta(minutes=minutes)
            assert slo_statuses(cur, SPECS, at, memo) == slo_statuses(cur, SPECS, at)
        assert memo.hits >= 2 and memo.misses >= 1  # whole hours were reused
        before = slo_statuses(cur, SPECS, AT, memo)

    # late spans, in hours the memo already holds
    ingest([write_spans(tmp_path / "late.jsonl", spans(AT - timedelta(hours=20), 2,
                                                       timedelta(minutes=1), 100_000,
                                                       name="late"))])
    with Cache.open(tmp_path / "cache.duckdb", read_only=True) as cache:
        cur = cache.cursor()
        memo.sync(cur)
        after = slo_statuses(cur, SPECS, AT, memo)
        assert after == slo_statuses(cur, SPECS, AT)
        assert after[0].requests > before[0].requests


BUDGETS = [
    BudgetSpec(name="all", limit_usd=100.0),
    BudgetSpec(name="acme daily", scope="tenant", match="acme", period="day", limit_usd=5.0),
    BudgetSpec(name="anthropic weekly", scope="provider", match="anthropic", period="week",
               limit_usd=50.0),
]


def test_cost_memo_answers_equal_fresh_reads_across_polls_and_new_ingests(tmp_path: Path, ingest):
    ingest([write_spans(tmp_path / "a.jsonl", spans(AT - timedelta(hours=30), 30,
                                                    timedelta(minutes=3), 1))])
    memo = HourMemo()
    with Cache.open(tmp_path / "cache.duckdb", read_only=True) as cache:
        cur = cache.cursor()
        for minutes in (0, 1, 2, 45):  # polls as the clock moves within and across hours
            at = AT + timedelta(minutes=minutes)
            assert cost_snapshot(cur, BUDGETS, at, memo) == cost_snapshot(cur, BUDGETS, at)
        assert memo.hits >= 2 and memo.misses >= 1  # whole hours were reused
        before = cost_snapshot(cur, BUDGETS, AT, memo)

    # late spans, in hours the memo already holds
    ingest([write_spans(tmp_path / "late.jsonl", spans(AT - timedelta(hours=20), 2,
                                                       timedelta(minutes=1), 100_000,
                                                       name="late"))])
    with Cache.open(tmp_path / "cache.duckdb", read_only=True) as cache:
        cur = cache.cursor()
        after = cost_snapshot(cur, BUDGETS, AT, memo)
        assert after == cost_snapshot(cur, BUDGETS, AT)
        assert after.requests > before.requests
