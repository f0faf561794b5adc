"""Budgets on basis "billed", on a real cache: spans ingested by the Ingestor, provider bills
stored by billing_store.store_fetch (as `llmdeck billing sync` does).

The data clock is 2026-12-04 10:30 UTC (a Friday). OpenAI's figures were fetched at 09:00 on
12-04 covering 12-01..12-04, so 12-04 is partial and its bills do not count: billed to 12-03.
Anthropic's were fetched at 01:00 on 12-03 covering 12-01..12-03: 12-03 was under way, so
billed to 12-02. Google has traces and no billing source at all. Bills differ from the
estimates on purpose (so a test can tell which was counted) and carry 10 decimal places (so
exactness shows).
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from console.billing import BillingFetch, BillingLine
from console.cache import billing_store
from console.cache.billed_budgets import coverage
from console.cache.cost_queries import cost_snapshot
from console.cache.ingest import Ingestor
from console.cache.scope_sql import HourMemo
from console.cache.store import Cache
from console.cli import main
from console.config import BudgetSpec, CacheSettings, Config, ConfigError, load_config
from console.snapshots import BudgetStatus
from console.status_report import as_json, gather
from tests.unit.otlp_spans import Span, write_spans

AT = datetime(2026, 12, 4, 10, 30)
D = {n: date(2026, 12, n) for n in range(1, 5)}
NOV30 = date(2026, 11, 30)
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "google": "gemini-2.5-flash"}
OA_BILLS = {  # (day, model) -> amount; 12-04 is the partial day (fetched 09:00 that day)
    (NOV30, "gpt-4o-mini-2024-07-18"): Decimal("9.9999999999"),
    (D[1], "gpt-4o-mini-2024-07-18"): Decimal("1.1111111111"),
    (D[1], None): Decimal("0.0000000007"),  # a line with no model (a tool fee, say)
    (D[2], "gpt-4o-mini-2024-07-18"): Decimal("2.2222222222"),
    (D[3], "gpt-4o-mini-2024-07-18"): Decimal("3.3333333333"),
    (D[4], "gpt-4o-mini-2024-07-18"): Decimal("0.0400000001"),
}
ANT_BILLS = {
    (D[1], "claude-haiku-4-5-20251001"): Decimal("0.5000000005"),
    (D[2], "claude-haiku-4-5-20251001"): Decimal("0.2500000003"),
    (D[3], "claude-haiku-4-5-20251001"): Decimal("0.0100000001"),  # partial: fetched 01:00
}


def config(**kw: Any) -> Config:
    return Config(cache=CacheSettings(rollup_retention_days=None), **kw)


def spans() -> list[Span]:
    """Two spans an hour per provider (:10 and :40) from 11-30 00:00 to AT."""
    out = []
    t = datetime(2026, 11, 30)
    while t < AT:
        for minute in (10, 40):
            at = t + timedelta(minutes=minute)
            if at < AT:
                out += [Span(at, provider=p, model=m, tenant="acme", tin=100_000, tout=10_000)
                        for p, m in MODELS.items()]
        t += timedelta(hours=1)
    return out


def fetch(provider: str, source: str, bills: dict[tuple[date, str | None], Decimal], start: date,
          end: date, fetched_at: datetime) -> BillingFetch:
    lines = tuple(BillingLine(provider, source, d, amount, "USD", m, "line", None)
                  for (d, m), amount in bills.items())
    return BillingFetch(provider, source, start, end, lines, (), fetched_at, pages=1)


@pytest.fixture(scope="module")
def cache_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("billed_budgets")
    path = root / "cache.duckdb"
    trace_file = write_spans(root / "spans.jsonl", spans())
    with Cache.open(path) as cache:
        assert Ingestor(cache, config()).run([trace_file]).spans_stored == len(spans())
        billing_store.store_fetch(cache.con, fetch("openai", "oa", OA_BILLS, NOV30, D[4] + timedelta(days=1),
                                                   datetime(2026, 12, 4, 9, 0)))
        billing_store.store_fetch(cache.con, fetch("anthropic", "ant", ANT_BILLS, D[1], D[4],
                                                   datetime(2026, 12, 3, 1, 0)))
    return path


@pytest.fixture
def cur(cache_path: Path) -> Any:
    with Cache.open(cache_path, read_only=True) as cache:
        yield cache.cursor()


def traced(cur: Any, since: datetime, until: datetime, provider: str | None = None) -> float:
    """The estimate straight from the spans table (not the rollups the budgets read)."""
    sql = "SELECT coalesce(sum(cost_usd), 0) FROM spans WHERE start_time >= ? AND start_time < ?"
    params: list[object] = [since, until]
    if provider is not None:
        sql += " AND provider = ?"
        params.append(provider)
    return float(cur.execute(sql, params).fetchall()[0][0])


def budget(**kw: Any) -> BudgetSpec:
    return BudgetSpec(**{"name": "b", "limit_usd": 100.0, "basis": "billed", **kw})


def status_of(cur: Any, spec: BudgetSpec, at: datetime = AT, memo: HourMemo | None = None) -> BudgetStatus:
    (b,) = cost_snapshot(cur, [spec], at, memo).budgets
    return b


def test_coverage_ends_at_each_providers_last_complete_day(cur):
    # openai: fetched 12-04 09:00, so 12-04 is partial; anthropic: fetched 12-03 01:00
    assert coverage(cur, AT) == {"openai": (NOV30, D[4]), "anthropic": (D[1], D[3])}
    # at 12-02 noon, nothing on or after 12-02 counts yet (today is still moving)
    assert coverage(cur, datetime(2026, 12, 2, 12)) == {"openai": (NOV30, D[2]), "anthropic": (D[1], D[2])}


def test_provider_budget_is_the_bills_exactly_up_to_the_seam_then_the_estimates(cur):
    b = status_of(cur, budget(scope="provider", match="openai"))
    assert b.basis == "billed" and b.billed is not None
    # 12-01..12-03 as billed, to the last decimal; not 11-30 (before the period), not 12-04 (partial)
    assert b.billed.billed_usd == Decimal("1.1111111111") + Decimal("0.0000000007") \
        + Decimal("2.2222222222") + Decimal("3.3333333333")
    assert b.billed.billed_usd == Decimal("6.6666666673")
    # the tail: openai's traces from the seam (12-04 00:00) to now, as estimated
    tail = traced(cur, datetime(2026, 12, 4), AT, "openai")
    assert tail > 0 and b.billed.estimated_usd == pytest.approx(tail, rel=1e-12)
    assert b.spent_usd == pytest.approx(6.6666666673 + tail, rel=1e-12)
    assert b.billed.days == (("openai", D[1], D[3]),)
    assert b.billed.estimated_only == ()
    assert b.billed.note == "billed to 12-03, estimated after"
    assert b.billed.label == "billed to 12-03, est. after"
    # the estimated basis of the same budget counts the traces of the whole month instead
    est = status_of(cur, budget(scope="provider", match="openai", basis="estimated"))
    assert est.basis == "estimated" and est.billed is None
    assert est.spent_usd == pytest.approx(traced(cur, datetime(2026, 12, 1), AT, "openai"), rel=1e-9)
    assert est.spent_usd != pytest.approx(b.spent_usd)


def test_burn_rates_and_forecast_work_on_the_combined_series(cur):
    b = status_of(cur, budget(scope="provider", match="openai"))
    rates = dict(b.burn_usd_per_hour)
    per_span = traced(cur, datetime(2026, 12, 4, 9), datetime(2026, 12, 4, 9, 30), "openai")
    # 1h and 6h lie wholly after the seam: the traces (2 spans an hour)
    assert rates["1h"] == pytest.approx(2 * per_span)
    assert rates["6h"] == pytest.approx(2 * per_span)
    # 24h [12-03 10:30, 12-04 10:30): 13.5 h of 12-03's bill, spread evenly, then the traced tail
    billed_part = float(Decimal("3.3333333333")) * 13.5 / 24
    tail = traced(cur, datetime(2026, 12, 4), AT, "openai")
    assert rates["24h"] == pytest.approx((billed_part + tail) / 24)
    hours_left = (datetime(2027, 1, 1) - AT) / timedelta(hours=1)
    assert b.forecast_usd == pytest.approx(b.spent_usd + rates["6h"] * hours_left)


def test_global_budget_has_a_seam_per_provider_and_says_which(cur):
    b = status_of(cur, budget())
    assert b.billed is not None
    ant = Decimal("0.5000000005") + Decimal("0.2500000003")  # not 12-03: partial when fetched
    assert b.billed.billed_usd == Decimal("6.6666666673") + ant
    assert dict((p, (a, z)) for p, a, z in b.billed.days) == {"openai": (D[1], D[3]),
                                                             "anthropic": (D[1], D[2])}
    assert b.billed.estimated_only == ("google",)
    tail = (traced(cur, datetime(2026, 12, 4), AT, "openai")
            + traced(cur, datetime(2026, 12, 3), AT, "anthropic")
            + traced(cur, datetime(2026, 12, 1), AT, "google"))
    assert b.billed.estimated_usd == pytest.approx(tail, rel=1e-12)
    assert b.billed.note == ("anthropic billed to 12-02, openai billed to 12-03; estimated after;"
                             " google estimated (no bills)")
    assert b.billed.label == "billed to 12-02/12-03, est. after; google est."


def test_model_budget_matches_bills_after_normalising_the_model(cur):
    b = status_of(cur, budget(scope="model", match="claude-haiku-4-5"))
    assert b.billed is not None
    assert b.billed.billed_usd == Decimal("0.7500000008")
    assert b.billed.estimated_usd == pytest.approx(traced(cur, datetime(2026, 12, 3), AT, "anthropic"),
                                                   rel=1e-12)
    assert b.billed.note == "billed to 12-02, estimated after"


def test_a_week_budget_counts_only_its_own_days_of_the_bills(cur):
    # the ISO week of 12-04 starts Monday 11-30: openai's 11-30 bill counts, anthropic has none
    b = status_of(cur, budget(period="week"))
    assert b.billed is not None
    assert b.period_start == datetime(2026, 11, 30)
    assert b.billed.billed_usd == Decimal("9.9999999999") + Decimal("6.6666666673") + Decimal("0.7500000008")
    assert b.billed.note == ("anthropic billed 12-01..12-02, openai billed to 12-03; estimated outside"
                             " those days; google estimated (no bills)")
    # anthropic's 11-30 (before its figures begin) is estimated
    tail = (traced(cur, datetime(2026, 12, 4), AT, "openai")
            + traced(cur, datetime(2026, 11, 30), datetime(2026, 12, 1), "anthropic")
            + traced(cur, datetime(2026, 12, 3), AT, "anthropic")
            + traced(cur, datetime(2026, 11, 30), AT, "google"))
    assert b.billed.estimated_usd == pytest.approx(tail, rel=1e-12)


def test_without_bills_for_the_period_everything_is_estimated_and_said_so(cur):
    b = status_of(cur, budget(scope="provider", match="google"))
    est = status_of(cur, budget(scope="provider", match="google", basis="estimated"))
    assert b.billed is not None and b.billed.billed_usd == 0 and b.billed.days == ()
    assert b.billed.note == "no bills for this period yet: all estimated"
    assert b.billed.label == "estimated: no bills yet"
    assert b.spent_usd == pytest.approx(est.spent_usd, rel=1e-12)


def test_the_memo_gives_the_same_answer_read_again(cur):
    memo = HourMemo()
    first = status_of(cur, budget(), memo=memo)
    again = status_of(cur, budget(), memo=memo)
    plain = status_of(cur, budget())
    assert first == again == plain


def test_status_json_carries_the_basis(tmp_path, cache_path, capsys):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[[budgets]]\nname = "openai billed"\nscope = "provider"\nmatch = "openai"\n'
                   'limit_usd = 100\nbasis = "billed"\n\n'
                   '[[budgets]]\nname = "openai estimated"\nscope = "provider"\nmatch = "openai"\n'
                   'limit_usd = 100\n', encoding="utf-8")
    code = main(["--config", str(cfg), "--cache", str(cache_path), "status", "--at", AT.isoformat(),
                 "--json"])
    billed, estimated = json.loads(capsys.readouterr().out)["budgets"]
    assert code == 0
    assert billed["basis"] == "billed" and billed["basis_note"] == "billed to 12-03, estimated after"
    assert billed["billed_usd"] == "6.6666666673"  # exact, as a string
    assert billed["billed_days"] == {"openai": {"first": "2026-12-01", "last": "2026-12-03"}}
    assert billed["estimated_only"] == []
    assert billed["spent_usd"] == pytest.approx(6.6666666673 + billed["estimated_usd"], abs=1e-6)
    assert estimated["basis"] == "estimated" and "billed_usd" not in estimated
    code = main(["--config", str(cfg), "--cache", str(cache_path), "status", "--at", AT.isoformat()])
    text = capsys.readouterr().out
    assert "basis billed: billed to 12-03, estimated after ($6.67 billed + $" in text


def test_gather_and_as_json_agree_with_the_snapshot(cur):
    cfg = config(budgets=[budget()])
    budgets: Any = as_json(gather(cur, cfg, AT))["budgets"]
    billed = status_of(cur, budget()).billed
    assert billed is not None and budgets[0]["billed_usd"] == str(billed.billed_usd) == "7.4166666681"
    assert budgets[0]["basis_note"] == billed.note


def test_a_billed_budget_scoped_by_tenant_is_refused_where_it_is_written(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[[budgets]]\nname = "acme"\nscope = "tenant"\nmatch = "acme"\n'
                   'limit_usd = 10\nbasis = "billed"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(cfg)
    assert str(caught.value) == (
        f'{cfg}:6: budgets[0].basis: a tenant budget cannot be on basis "billed": provider bills'
        ' carry no tenant (use basis = "estimated", or scope global, provider or model)')
    # the same budget on the estimated basis, and a billed one by provider, load
    cfg.write_text('[[budgets]]\nname = "acme"\nscope = "tenant"\nmatch = "acme"\nlimit_usd = 10\n\n'
                   '[[budgets]]\nname = "oa"\nscope = "provider"\nmatch = "openai"\nlimit_usd = 10\n'
                   'basis = "billed"\n', encoding="utf-8")
    assert [b.basis for b in load_config(cfg).budgets] == ["estimated", "billed"]


def test_an_unknown_basis_is_refused_with_its_line(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[[budgets]]\nname = "x"\nlimit_usd = 10\nbasis = "invoiced"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(cfg)
    assert str(caught.value).startswith(f"{cfg}:4: budgets[0].basis: ")
    assert "estimated" in str(caught.value) and "billed" in str(caught.value)


@pytest.fixture
def writable(cache_path: Path, tmp_path: Path) -> Path:
    """A copy of the module's cache this test may add syncs to."""
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(cache_path.read_bytes())
    return copy


def test_a_second_source_of_a_provider_holds_its_seam_back_to_its_own_last_day(writable):
    # a second OpenAI organisation whose figures end at 12-02: 12-03 is only half billed, so it is
    # estimated (oa's 12-03 bill no longer counts) and the note says to 12-02
    second = {(D[1], "gpt-4o-mini"): Decimal("0.0000000100"), (D[2], "gpt-4o-mini"): Decimal("0.0000000200")}
    with Cache.open(writable) as cache:
        billing_store.store_fetch(cache.con, fetch("openai", "oa2", second, D[1], D[3],
                                                   datetime(2026, 12, 3, 6, 0)))
        b = status_of(cache.cursor(), budget(scope="provider", match="openai"))
        tail = traced(cache.cursor(), datetime(2026, 12, 3), AT, "openai")
    assert b.billed is not None
    assert b.billed.billed_usd == Decimal("1.1111111111") + Decimal("0.0000000007") \
        + Decimal("2.2222222222") + Decimal("0.0000000300")
    assert b.billed.estimated_usd == pytest.approx(tail, rel=1e-12)
    assert b.billed.note == "billed to 12-02, estimated after"


def test_the_seam_moves_when_a_later_sync_brings_the_finished_day(writable):
    # the next morning a sync (fetched 12-05 01:00) brings 12-04 whole: billed to 12-04
    later = datetime(2026, 12, 5, 2, 0)
    whole = {(D[4], "gpt-4o-mini-2024-07-18"): Decimal("0.5555555555")}
    memo = HourMemo()  # as the console polls: a stored sync must show though no span changed
    with Cache.open(writable) as cache:
        before = status_of(cache.cursor(), budget(scope="provider", match="openai"), later, memo)
        billing_store.store_fetch(cache.con, fetch("openai", "oa", whole, D[4], date(2026, 12, 6),
                                                   datetime(2026, 12, 5, 1, 0)))
        after = status_of(cache.cursor(), budget(scope="provider", match="openai"), later, memo)
        tail = traced(cache.cursor(), datetime(2026, 12, 5), later, "openai")
    assert memo.hits > 0
    assert before.billed is not None and after.billed is not None
    assert before.billed.note == "billed to 12-03, estimated after"  # 12-04 was partial when fetched
    assert after.billed.note == "billed to 12-04, estimated after"
    assert after.billed.billed_usd == Decimal("6.6666666673") + Decimal("0.5555555555")
    assert after.billed.estimated_usd == pytest.approx(tail, rel=1e-12)


def test_spans_with_no_provider_are_named_among_the_estimated_only(writable):
    extra = write_spans(writable.parent / "anon.jsonl", [
        Span(datetime(2026, 12, 2, 5, 10), provider=None, model="gpt-4o-mini", tin=100_000, tout=10_000)])
    with Cache.open(writable) as cache:
        Ingestor(cache, config()).run([extra])
        b = status_of(cache.cursor(), budget())
    assert b.billed is not None and b.billed.estimated_only == ("(no provider)", "google")
    assert b.billed.note.endswith("; (no provider), google estimated (no bills)")


def test_notes_name_the_billed_provider_when_another_is_estimated_only():
    from console.budgets import basis_label, basis_note

    start = D[1]
    assert basis_note(start, {"openai": (D[1], D[3])}, ()) == "billed to 12-03, estimated after"
    assert basis_note(start, {"openai": (D[1], D[3])}, ("google",)) == (
        "openai billed to 12-03; estimated after; google estimated (no bills)")
    assert basis_note(start, {}, ("google",)) == "no bills for this period yet: all estimated"
    assert basis_label(start, {"openai": (D[1], D[3])}, ("google",)) == (
        "billed to 12-03, est. after; google est.")
    assert basis_label(start, {"a": (D[1], D[2]), "b": (D[1], D[3]), "c": (D[2], D[4])}, ()) == (
        "billed from 12-01 to 12-02/…/12-04, est. outside")
