"""Spend reads (console.cache.cost_queries) agree with SQL over `spans`.

A hand-made cache from Friday 27 Feb to Wednesday 4 Mar 2026: the month starts on
the Sunday, the ISO week on the Monday, so today, the week and the month all
differ. One tenant surges on gpt-4o in the last hour.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from console.cache.cost_queries import cost_snapshot
from console.cache.ingest import Ingestor
from console.cache.queries import window_end
from console.cache.store import Cache
from console.config import BudgetSpec
from console.snapshots import BudgetLevel
from tests.unit.otlp_spans import Span, ns, write_spans

END = datetime(2026, 3, 4, 10, 17, 23)  # a Wednesday
NOW = window_end(END)  # reads run to the end of the current minute
STARTS = {"today": datetime(2026, 3, 4), "week": datetime(2026, 3, 2), "month": datetime(2026, 3, 1)}
DIMS = {"provider": "provider", "model": "coalesce(request_model, response_model)",
        "tenant": "tenant", "prompt_version": "prompt_version"}
MODELS = (("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5"), ("openai", "mystery-ft"))


@pytest.fixture(scope="module")
def cost_cache(tmp_path_factory: pytest.TempPathFactory, make_config: Any) -> Path:
    rng = random.Random(4)
    spans = []
    t = datetime(2026, 2, 27)
    while t < END:
        provider, model = rng.choice(MODELS)
        spans.append(Span(t, provider=provider, model=model,
                          tenant=rng.choice(["acme", "globex", "initech", None]),
                          prompt_version=rng.choice(["v1", "v2", None]),
                          error=rng.random() < 0.05, tin=rng.randrange(100, 5000),
                          tout=rng.randrange(10, 800)))
        t += timedelta(seconds=rng.randrange(60, 240))
    for i in range(60):  # more tenants than a table shows
        spans.append(Span(datetime(2026, 3, 4, 1, i), tenant=f"small-{i:02d}", tin=10, tout=1))
    for i in range(40):  # a tenant surging on an expensive model in the last hour
        spans.append(Span(END - timedelta(minutes=55) + timedelta(minutes=i), provider="openai",
                          model="gpt-4o", tenant="surge", tin=200_000, tout=20_000))
    tmp = tmp_path_factory.mktemp("cost")
    path = write_spans(tmp / "spend.jsonl", spans)
    cache_path = tmp / "cache.duckdb"
    with Cache.open(cache_path) as cache:
        report = Ingestor(cache, make_config()).run([path])
    assert report.spans_stored == len(spans) and report.unpriced > 0
    return cache_path


def spend_sql(cur: Any, start: datetime, end: datetime = NOW, dim: str | None = None,
              where: str = "", params: list[Any] | None = None) -> dict[str, tuple[float, int, int]]:
    key = f"coalesce({DIMS[dim]}, '')" if dim else "''"
    rows = cur.execute(
        f"SELECT {key}, coalesce(sum(cost_usd), 0), count(*), count(*) FILTER (WHERE unpriced)"
        f" FROM spans WHERE epoch_ns(start_time) >= ? AND epoch_ns(start_time) < ?{where}"
        " GROUP BY ALL", [ns(start), ns(end), *(params or [])]).fetchall()
    return {k: (cost, n, unpriced) for k, cost, n, unpriced in rows}


def test_totals_and_spend_tables_equal_sql_over_spans_for_every_period(cost_cache):
    with Cache.open(cost_cache, read_only=True) as cache:
        cur = cache.cursor()
        snap = cost_snapshot(cur, [], END)
        totals = dict(snap.totals)
        for period, start in STARTS.items():
            assert totals[period] == pytest.approx(spend_sql(cur, start)[""][0], rel=1e-9)
            for dim in DIMS:
                exact = spend_sql(cur, start, dim=dim)
                table = snap.table(period, dim)
                assert table is not None
                assert len(table.rows) == min(50, len(exact))
                for row in table.rows:
                    cost, n, unpriced = exact[row.key]
                    assert (row.requests, row.unpriced) == (n, unpriced)
                    assert row.cost_usd == pytest.approx(cost, rel=1e-9, abs=1e-12)
                costs = [r.cost_usd for r in table.rows]
                assert costs == sorted(costs, reverse=True)
    assert totals["today"] < totals["week"] < totals["month"]


def test_spend_tables_keep_the_fifty_largest_and_show_missing_keys_as_none(cost_cache):
    with Cache.open(cost_cache, read_only=True) as cache:
        snap = cost_snapshot(cache.cursor(), [], END)
    tenants = snap.table("today", "tenant")
    assert tenants is not None and len(tenants.rows) == 50
    assert tenants.rows[0].key == "surge"
    assert {r.label for r in tenants.rows if r.key == ""} == {"(none)"}


def test_month_counts_and_retry_spend_equal_sql(cost_cache):
    with Cache.open(cost_cache, read_only=True) as cache:
        cur = cache.cursor()
        snap = cost_snapshot(cur, [], END)
        month = spend_sql(cur, STARTS["month"])[""]
        failed = spend_sql(cur, STARTS["today"], where=" AND status = 'error'")[""]
    assert (snap.requests, snap.unpriced_requests) == (month[1], month[2])
    assert snap.retry_spend_usd == pytest.approx(failed[0]) and failed[0] > 0


def test_budget_spend_burn_rates_and_unpriced_equal_sql_for_each_scope(cost_cache):
    budgets = [
        BudgetSpec(name="all", limit_usd=1e6),
        BudgetSpec(name="anthropic", scope="provider", match="anthropic", period="week", limit_usd=1e6),
        BudgetSpec(name="mini", scope="model", match="gpt-4o-mini", period="day", limit_usd=1e6),
        BudgetSpec(name="acme", scope="tenant", match="acme", limit_usd=1e6),
        BudgetSpec(name="ft", scope="model", match="mystery-ft", limit_usd=1e6),
    ]
    wheres = [("", []), (" AND provider = ?", ["anthropic"]),
              (" AND request_model = ?", ["gpt-4o-mini"]), (" AND tenant = ?", ["acme"]),
              (" AND request_model = ?", ["mystery-ft"])]
    starts = [STARTS["month"], STARTS["week"], STARTS["today"], STARTS["month"], STARTS["month"]]
    with Cache.open(cost_cache, read_only=True) as cache:
        cur = cache.cursor()
        snap = cost_snapshot(cur, budgets, END)
        for status, (where, params), start in zip(snap.budgets, wheres, starts, strict=True):
            cost, _, unpriced = spend_sql(cur, start, where=where, params=params)[""]
            assert status.spent_usd == pytest.approx(cost, rel=1e-9, abs=1e-12), status.name
            assert status.unpriced_requests == unpriced
            for label, value in status.burn_usd_per_hour:
                hours = int(label.removesuffix("h"))
                recent = spend_sql(cur, NOW - timedelta(hours=hours), where=where, params=params)
                assert value == pytest.approx(recent[""][0] / hours, rel=1e-9, abs=1e-12)
            assert status.level is BudgetLevel.OK
    ft = snap.budgets[-1]
    assert ft.spent_usd == 0 and ft.unpriced_requests > 0  # unknown cost is not $0 spent quietly


def test_budget_levels_follow_the_share_spent(cost_cache):
    with Cache.open(cost_cache, read_only=True) as cache:
        month = spend_sql(cache.cursor(), STARTS["month"])[""][0]
        budgets = [BudgetSpec(name=name, limit_usd=month / share)
                   for name, share in (("crit", 0.95), ("warn", 0.75), ("trend", 0.3),
                                       ("fine", 0.0001))]
        snap = cost_snapshot(cache.cursor(), budgets, END)
    crit, warn, trend, fine = snap.budgets
    assert crit.level is BudgetLevel.CRITICAL and crit.reason.startswith("critical: 95% of $")
    assert warn.level is BudgetLevel.WARNING and warn.reason.startswith("warning: 75% of $")
    # 30% spent, but the last 6 hours' rate (the surge) runs past the limit by the month end
    assert trend.level is BudgetLevel.WARNING and trend.reason.startswith("warning: forecast $")
    assert trend.forecast_usd > trend.limit_usd
    assert fine.level is BudgetLevel.OK and fine.reason.startswith("ok: 0% of $")
    assert crit.used == pytest.approx(0.95)


def test_movers_put_the_surging_tenant_and_model_first(cost_cache):
    with Cache.open(cost_cache, read_only=True) as cache:
        cur = cache.cursor()
        snap = cost_snapshot(cur, [], END)
        current = spend_sql(cur, NOW - timedelta(hours=1), dim="tenant")["surge"][0]
    assert snap.mover_window == timedelta(hours=1)
    assert 0 < len(snap.movers) <= 5
    top = {(m.dimension, m.key) for m in snap.movers[:2]}
    assert top == {("tenant", "surge"), ("model", "gpt-4o")}
    surge = next(m for m in snap.movers if m.key == "surge")
    assert surge.previous_usd_per_hour == 0 and surge.change is None
    assert surge.current_usd_per_hour == pytest.approx(current)
    assert all(m.current_usd_per_hour > m.previous_usd_per_hour for m in snap.movers)


def test_empty_cache_gives_zero_spend_and_ok_budgets(tmp_path):
    with Cache.open(tmp_path / "empty.duckdb") as cache:
        snap = cost_snapshot(cache.cursor(), [BudgetSpec(name="b", limit_usd=10)], END)
    assert snap.totals == (("today", 0.0), ("week", 0.0), ("month", 0.0))
    assert all(not t.rows for t in snap.tables) and len(snap.tables) == 12
    assert snap.movers == () and snap.requests == 0
    (budget,) = snap.budgets
    assert budget.level is BudgetLevel.OK and budget.time_to_exhaustion is None
