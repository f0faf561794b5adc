"""Provider billing in the cache (console/cache/billing_store.py): a sync replaces exactly its
source's days in one transaction, amounts stay exact Decimals, a v1 cache migrates keeping its
spans, and a failed sync leaves the stored rows exactly as they were."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from console.billing import BillingFetch, BillingLine, UsageLine
from console.billing_sync import days_to_fetch, sync
from console.cache import billing_store, schema
from console.cache.ingest import Ingestor
from console.cache.store import Cache
from console.config import OpenAIBillingSource, OpenRouterBillingSource
from tests.unit.otlp_spans import Span, write_spans

D0 = date(2026, 11, 1)
FETCHED = datetime(2026, 11, 5, 12, 0)


def day(n: int) -> date:
    return D0 + timedelta(days=n)


def line(n: int, amount: str, model: str | None = "gpt-4o", *, source: str = "oa",
         provider: Any = "openai", item: str | None = None, project: str | None = "proj_a") -> BillingLine:
    return BillingLine(provider, source, day(n), Decimal(amount), "USD", model, item, project)


def fetch(start: int, end: int, lines: list[BillingLine], usage: tuple[UsageLine, ...] = (), *,
          source: str = "oa", provider: Any = "openai", at: datetime = FETCHED) -> BillingFetch:
    return BillingFetch(provider, source, day(start), day(end), tuple(lines), usage, at, pages=2)


def rows(cur: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    """Every billing table's rows, in a fixed order (a whole-state snapshot)."""
    return {t: cur.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
            for t in ("billing", "billing_usage", "billing_syncs")}


@pytest.fixture
def cache(tmp_path: Path) -> Any:
    with Cache.open(tmp_path / "cache.duckdb") as c:
        yield c


def test_a_sync_replaces_only_its_sources_days(cache: Cache) -> None:
    cur = cache.con
    billing_store.store_fetch(cur, fetch(0, 4, [line(0, "1.00"), line(1, "2.00"), line(2, "3.00"),
                                                line(3, "4.00"), line(3, "0.50", "gpt-4o-mini")]))
    other = fetch(0, 4, [line(n, "9.00", source="oa2") for n in range(4)], source="oa2")
    billing_store.store_fetch(cur, other)
    anthropic = fetch(0, 4, [line(n, "7.00", "claude-x", source="oa", provider="anthropic")
                             for n in range(4)], source="oa", provider="anthropic")
    billing_store.store_fetch(cur, anthropic)

    # providers revised days 2 and 3; day 3's mini line is gone now
    stored = billing_store.store_fetch(cur, fetch(2, 4, [line(2, "3.25"), line(3, "4.75")],
                                                  at=FETCHED + timedelta(hours=1)))
    assert stored.replaced_lines == 3 and stored.lines == 2
    assert stored.totals == {"USD": Decimal("8.00")}
    got = [(b.day, b.model, b.amount) for b in billing_store.billed(cur, day(0), day(4), provider="openai")]
    # the other OpenAI source ("oa2") sums in with "oa" per model and day
    assert got == [(day(0), "gpt-4o", Decimal("10.00")), (day(1), "gpt-4o", Decimal("11.00")),
                   (day(2), "gpt-4o", Decimal("12.25")), (day(3), "gpt-4o", Decimal("13.75"))]
    assert [b.amount for b in billing_store.billed(cur, day(0), day(4), provider="anthropic")] == [
        Decimal("7.00")] * 4
    assert billing_store.last_day(cur, "oa", "openai") == day(3)
    assert billing_store.last_day(cur, "nobody") is None
    [rec] = [s for s in billing_store.syncs(cur) if s.source == "oa" and s.provider == "openai"]
    assert (rec.start, rec.end, rec.covered_from, rec.lines) == (day(2), day(4), day(0), 2)


def test_amounts_are_exact_decimals(cache: Cache) -> None:
    cur = cache.con
    # Anthropic's "123.78912" cents is $1.2378912; ten thousand tenths of a cent sum exactly
    lines = [line(0, "1.2378912", "claude-opus"), line(0, "0.1"), line(0, "0.2"),
             *[line(1, "0.001", "gpt-4o-mini", item=f"i{n}") for n in range(10_000)],
             line(2, "12345678901234567890.0123456789")]
    billing_store.store_fetch(cur, fetch(0, 3, lines))
    billed = {(b.day, b.model): b.amount for b in billing_store.billed(cur, day(0), day(3))}
    assert billed[(day(0), "claude-opus")] == Decimal("1.2378912")
    assert billed[(day(0), "gpt-4o")] == Decimal("0.3")
    assert billed[(day(1), "gpt-4o-mini")] == Decimal("10")
    assert billed[(day(2), "gpt-4o")] == Decimal("12345678901234567890.0123456789")
    assert all(isinstance(a, Decimal) for a in billed.values())
    back = billing_store.billed_lines(cur, day(0), day(1))
    assert sorted(b.amount for b in back) == [Decimal("0.1"), Decimal("0.2"), Decimal("1.2378912")]
    # finer than the stored ten places: rounded half-even, once, in Python
    assert billing_store.exact(Decimal("0.00000000005")) == Decimal("0E-10")
    assert billing_store.exact(Decimal("0.00000000015")) == Decimal("2E-10")


def test_usage_lines_round_trip(cache: Cache) -> None:
    cur = cache.con
    usage = (UsageLine("openai", "oa", day(0), "gpt-4o", "proj_a", 10, 1000, 200, 300, batch=True,
                       api_key="key_abc"),
             UsageLine("openai", "oa", day(0), "gpt-4o", "proj_a", 5, 100, 20))
    billing_store.store_fetch(cur, fetch(0, 1, [line(0, "1")], usage))
    got = billing_store.usage(cur, day(0), day(1))
    assert [(u.batch, u.api_key, u.requests, u.input_tokens, u.cached_input_tokens) for u in got] == [
        (True, "key_abc", 10, 1000, 300), (None, None, 5, 100, 0)]


def test_a_fetch_with_a_line_outside_its_days_is_refused_whole(cache: Cache) -> None:
    cur = cache.con
    billing_store.store_fetch(cur, fetch(0, 3, [line(0, "1"), line(1, "2"), line(2, "3")]))
    before = rows(cur)
    with pytest.raises(billing_store.BillingStoreError, match="outside the fetched days"):
        billing_store.store_fetch(cur, fetch(1, 3, [line(1, "5"), line(3, "6")]))
    with pytest.raises(billing_store.BillingStoreError, match="a line of openai/other"):
        billing_store.store_fetch(cur, fetch(1, 3, [line(1, "5", source="other")]))
    assert rows(cur) == before
    # a provider that keeps none of the days asked for (OpenRouter narrows to its 30 days): no change
    empty = billing_store.store_fetch(cur, fetch(3, 3, []))
    assert (empty.lines, empty.replaced_lines, empty.totals) == (0, 0, {})
    assert rows(cur) == before


class _FailingInsert:
    """The writer connection, but the usage insert fails (a full disk, a killed query)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.startswith("INSERT INTO billing_usage"):
            raise duckdb.IOException("No space left on device")
        return self._con.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def test_a_store_failing_halfway_changes_nothing(cache: Cache) -> None:
    cur = cache.con
    billing_store.store_fetch(cur, fetch(0, 3, [line(0, "1"), line(1, "2"), line(2, "3")]))
    before = rows(cur)
    with pytest.raises(duckdb.IOException):
        billing_store.store_fetch(_FailingInsert(cur),  # type: ignore[arg-type]
                                  fetch(0, 3, [line(1, "20")], (UsageLine("openai", "oa", day(1), None,
                                                                          None, 1, 1, 1),)))
    assert rows(cur) == before


def test_a_failed_sync_leaves_the_stored_rows_identical(cache: Cache, make_config: Callable[..., Any],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors.http import SourceError

    monkeypatch.setenv("LLMDECK_T_OA", "sk-admin-test-0000")
    config = make_config(sources={"openai_billing": [{"name": "oa", "admin_key_ref": "env:LLMDECK_T_OA",
                                                      "url": "http://127.0.0.1:9"}]})
    today = day(4)

    async def good(client: Any, name: str, start: date, end: date) -> BillingFetch:
        return fetch((start - D0).days, (end - D0).days,
                     [BillingLine("openai", name, d, Decimal("1.5"), "USD", "gpt-4o")
                      for d in (start + timedelta(days=i) for i in range((end - start).days))])

    [ok] = sync(config, cache, today=today, fetchers={"openai": good})
    assert ok.ok and ok.start == today - timedelta(days=34) and ok.end == day(5)
    before = rows(cache.con)

    async def bad(client: Any, name: str, start: date, end: date) -> BillingFetch:
        raise SourceError(name, "http", "GET /v1/organization/costs (page 2): Internal Server Error",
                          status=500)

    [failed] = sync(config, cache, today=today + timedelta(days=1), fetchers={"openai": bad})
    assert not failed.ok and failed.status == 500 and failed.kind == "http"
    assert failed.error == ("openai (source 'oa'): HTTP 500: GET /v1/organization/costs (page 2):"
                            " Internal Server Error")
    assert rows(cache.con) == before


def test_which_days_a_sync_reads() -> None:
    src = OpenAIBillingSource(name="oa", admin_key_ref="env:X")
    today = date(2026, 12, 4)
    end = date(2026, 12, 5)
    assert days_to_fetch(src, None, today) == (date(2026, 10, 31), end)  # 35 days, today included
    assert days_to_fetch(src, today, today) == (date(2026, 12, 2), end)  # the last 3 again
    assert days_to_fetch(src, date(2026, 11, 20), today) == (date(2026, 11, 18), end)
    assert days_to_fetch(src, date(2025, 1, 1), today) == (date(2026, 10, 31), end)  # never past since_days
    assert days_to_fetch(src, None, today, since=date(2026, 1, 1)) == (date(2026, 1, 1), end)
    none = OpenAIBillingSource(name="oa", admin_key_ref="env:X", refetch_days=0)
    assert days_to_fetch(none, today, today) == (today, end)  # today is partial: always read again
    # OpenRouter keeps 30 days: asking further back would replace older stored days with nothing
    router = OpenRouterBillingSource(name="or", admin_key_ref="env:X")
    assert days_to_fetch(router, None, today) == (date(2026, 11, 4), end)
    assert days_to_fetch(router, None, today, since=date(2026, 9, 1)) == (date(2026, 11, 4), end)


# -- migration of a v1 cache ---------------------------------------------------------------------

def _spans_and_rollups(path: Path) -> tuple[list[Any], int, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        spans = con.execute("SELECT trace_id, span_id, start_time, cost_usd FROM spans"
                            " ORDER BY ALL").fetchall()
        hours = con.execute("SELECT count(*) FROM rollup_hour").fetchall()[0][0]
        version = int(con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()[0][0])
    return spans, hours, version


def _v1_spans(tmp_path: Path) -> Path:
    t = datetime(2026, 11, 1, 9)
    return write_spans(tmp_path / "v1.jsonl", [Span(t + timedelta(minutes=7 * i), tin=100 + i, tout=10)
                                               for i in range(200)])


def _check_migrates(path: Path) -> None:
    spans, hours, version = _spans_and_rollups(path)
    assert version == 1 and len(spans) == 200 and hours > 0
    with Cache.open(path, read_only=True) as ro:  # the console on an old cache: no billing yet, no error
        assert billing_store.billed(ro.cursor(), day(0), day(9)) == []
        assert billing_store.last_day(ro.cursor(), "oa") is None
    with Cache.open(path) as rw:
        billing_store.store_fetch(rw.con, fetch(0, 1, [line(0, "2.5")]))
    spans2, hours2, version2 = _spans_and_rollups(path)
    assert (spans2, hours2, version2) == (spans, hours, schema.SCHEMA_VERSION)
    with Cache.open(path, read_only=True) as ro:
        assert [b.amount for b in billing_store.billed(ro.cursor(), day(0), day(1))] == [Decimal("2.5")]


def test_a_v1_cache_migrates_and_keeps_its_spans(tmp_path: Path, make_config: Callable[..., Any],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.duckdb"
    with monkeypatch.context() as m:  # this code as it was before billing: schema v1
        m.setattr(schema, "SCHEMA_VERSION", 1)
        m.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
        with Cache.open(path) as cache:
            Ingestor(cache, make_config()).run([_v1_spans(tmp_path)])
    _check_migrates(path)
