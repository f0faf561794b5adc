"""Billed against estimated (console/reconcile.py, `llmdeck cost reconcile`) on a real cache: traces
ingested by the Ingestor, provider billing stored by billing_store.store_fetch, one UTC day per
constructed cause, each identified (and ranked first) by what it computes from the data."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from console.billing import BillingFetch, BillingLine, UsageLine
from console.cache import billing_store
from console.cache.ingest import Ingestor
from console.cache.store import Cache
from console.cli import main
from console.pricing import PriceTable
from console.reconcile import Row, reconcile, row_json
from tests.unit.otlp_spans import Span, write_spans

D0 = date(2026, 11, 1)
TODAY = D0 + timedelta(days=9)
TIN, TOUT = 100_000, 10_000
PER_SPAN = Decimal("0.021")  # gpt-4o-mini: 100k in x $0.15/M + 10k out x $0.60/M
FULL = PER_SPAN * 48  # 2 spans an hour for 24 hours
FETCHED = datetime(2026, 11, 9, 6, 0)


def day(n: int) -> date:
    return D0 + timedelta(days=n)


def spans_of(n: int, hours: range = range(24), per_hour: int = 2, model: str = "gpt-4o-mini",
             provider: str = "openai", tenant: str | None = "acme") -> list[Span]:
    start = datetime.combine(day(n), datetime.min.time())
    return [Span(start + timedelta(hours=h, minutes=10 + 20 * i), provider=provider, model=model,
                 tenant=tenant, tin=TIN, tout=TOUT) for h in hours for i in range(per_hour)]


def bill(n: int, amount: Decimal | str, model: str | None = "gpt-4o-mini-2024-07-18",
         project: str | None = None, tier: str | None = None) -> BillingLine:
    return BillingLine("openai", "oa", day(n), Decimal(amount), "USD", model, f"{model}, input", project,
                       tier)


def used(n: int, requests: int = 48, *, model: str = "gpt-4o-mini-2024-07-18", cached: int = 0,
         batch: bool | None = False, project: str | None = None) -> UsageLine:
    return UsageLine("openai", "oa", day(n), model, project, requests, requests * TIN, requests * TOUT,
                     cached, batch)


@pytest.fixture(scope="module")
def cache_path(tmp_path_factory: pytest.TempPathFactory, make_config: Any) -> Path:
    spans: list[Span] = []
    lines: list[BillingLine] = []
    usage: list[UsageLine] = []
    # day 1: no gap; an Anthropic model (no Anthropic billing source); a billed model never traced
    spans += spans_of(1) + spans_of(1, range(0, 24, 6), 1, "claude-haiku-4-5", "anthropic")
    lines += [bill(1, FULL), bill(1, "3.25", "gpt-4o")]
    usage += [used(1)]
    # day 2: an unpriced model in the traces, billed by the provider
    spans += spans_of(2) + spans_of(2, range(8, 12), 1, "acme-finetune-v2")
    lines += [bill(2, FULL), bill(2, "2.00", "acme-finetune-v2")]
    usage += [used(2), used(2, 4, model="acme-finetune-v2")]
    # day 3: the provider's price doubled (its own token counts give the implied price)
    spans += spans_of(3)
    lines += [bill(3, FULL * 2)]
    usage += [used(3)]
    # day 4: traces missing for 12 of the hours the provider billed
    spans += spans_of(4, range(12))
    lines += [bill(4, FULL)]
    usage += [used(4)]
    # day 5: a project the traces never see (tenant "acme" is seen, "proj_nightly" is not)
    spans += spans_of(5)
    lines += [bill(5, FULL, project="acme"), bill(5, PER_SPAN * 20, project="proj_nightly")]
    usage += [used(5, project="acme"), used(5, 20, project="proj_nightly")]
    # day 6: half the input tokens were cached; the traces reported none (priced at list)
    spans += spans_of(6)
    cached = 48 * TIN // 2
    lines += [bill(6, FULL - Decimal(cached) * Decimal("0.075") / 1_000_000)]
    usage += [used(6, cached=cached)]
    # day 7: every request went through the Batch API at half price, traced at list
    spans += spans_of(7)
    lines += [bill(7, FULL / 2, tier="batch")]
    usage += [used(7, batch=True)]
    # day 8: traced, but the provider's figures stop at day 7 (not yet billed)
    spans += spans_of(8)
    tmp = tmp_path_factory.mktemp("reconcile")
    path = tmp / "cache.duckdb"
    trace_file = write_spans(tmp / "traces.jsonl", spans)
    with Cache.open(path) as cache:
        report = Ingestor(cache, make_config()).run([trace_file])
        assert report.spans_stored == len(spans)
        billing_store.store_fetch(cache.con, BillingFetch("openai", "oa", day(1), day(8), tuple(lines),
                                                          tuple(usage), FETCHED, pages=3))
    return path


@pytest.fixture(scope="module")
def rows(cache_path: Path) -> dict[tuple[str, str, int], Row]:
    with Cache.open(cache_path, read_only=True) as cache:
        found = reconcile(cache.cursor(), TODAY, 9, PriceTable.load(), 0.05)
    return {(r.provider, r.model, (r.day - D0).days): r for r in found}


def causes(r: Row) -> list[str]:
    return [c.code for c in r.causes]


def test_matching_day_is_no_gap_and_exact(rows: dict[tuple[str, str, int], Row]) -> None:
    r = rows["openai", "gpt-4o-mini", 1]
    assert r.status == "ok" and r.causes == ()
    assert r.billed == FULL and isinstance(r.billed, Decimal)
    assert abs(r.estimated - FULL) < Decimal("1e-9")  # type: ignore[operator]
    assert abs(r.share) < Decimal("1e-9")  # type: ignore[arg-type]


def test_unconfigured_provider_and_untraced_model_are_marked_not_gaps(
        rows: dict[tuple[str, str, int], Row]) -> None:
    r = rows["anthropic", "claude-haiku-4-5", 1]
    assert r.status == "not_configured" and r.billed is None and r.gap is None
    r = rows["openai", "gpt-4o", 1]
    assert r.status == "no_estimate" and r.billed == Decimal("3.25") and r.estimated is None


def test_unpriced_model(rows: dict[tuple[str, str, int], Row]) -> None:
    r = rows["openai", "acme-finetune-v2", 2]
    assert r.status == "gap" and r.estimated == 0 and r.billed == Decimal("2.00")
    assert causes(r)[0] == "unpriced"
    assert r.causes[0].explains == Decimal("2.00")  # all 4 traced requests unpriced
    assert rows["openai", "gpt-4o-mini", 2].status == "ok"


def test_price_changed_after_the_tables_effective_date(rows: dict[tuple[str, str, int], Row]) -> None:
    r = rows["openai", "gpt-4o-mini", 3]
    assert r.status == "gap" and causes(r) == ["price_changed"]
    assert abs(r.causes[0].explains - r.gap) < Decimal("1e-9")  # type: ignore[operator]
    assert "x2.000" in r.causes[0].detail and "2024-07-18" in r.causes[0].detail


def test_traces_missing_for_hours_the_provider_billed(rows: dict[tuple[str, str, int], Row]) -> None:
    r = rows["openai", "gpt-4o-mini", 4]
    assert r.status == "gap" and causes(r) == ["missing_hours"]
    assert "12 of 24 hours" in r.causes[0].detail
    assert abs(r.causes[0].explains - FULL / 2) < Decimal("1e-9")  # type: ignore[operator]


def test_usage_from_a_project_the_traces_never_see(rows: dict[tuple[str, str, int], Row]) -> None:
    r = rows["openai", "gpt-4o-mini", 5]
    assert r.status == "gap" and causes(r) == ["unseen_usage"]
    assert "proj_nightly" in r.causes[0].detail and "acme" not in r.causes[0].detail.split("(")[0]
    assert r.causes[0].explains == PER_SPAN * 20 == r.gap.quantize(Decimal("0.001"))  # type: ignore[union-attr]


def test_cached_token_discount(rows: dict[tuple[str, str, int], Row]) -> None:
    r = rows["openai", "gpt-4o-mini", 6]
    assert r.status == "gap" and r.gap < 0 and causes(r) == ["discount"]  # type: ignore[operator]
    assert "cached input tokens" in r.causes[0].detail
    assert abs(r.causes[0].explains - r.gap) < Decimal("1e-9")  # type: ignore[operator]


def test_batch_discount(rows: dict[tuple[str, str, int], Row]) -> None:
    r = rows["openai", "gpt-4o-mini", 7]
    assert r.status == "gap" and causes(r) == ["discount"]
    assert "batch" in r.causes[0].detail
    assert abs(r.causes[0].explains - r.gap) < Decimal("1e-9")  # type: ignore[operator]


def test_not_yet_billed_day(rows: dict[tuple[str, str, int], Row]) -> None:
    r = rows["openai", "gpt-4o-mini", 8]
    assert r.status == "not_billed" and r.gap is None and f"..{day(7)}" in r.note


def test_several_causes_ranked_by_what_they_explain(tmp_path: Path, make_config: Any) -> None:
    """Missing hours ($0.504) and an unseen project ($0.21) on one day: missing hours first."""
    spans = spans_of(1, range(12))
    path = tmp_path / "c.duckdb"
    with Cache.open(path) as cache:
        Ingestor(cache, make_config()).run([write_spans(tmp_path / "t.jsonl", spans)])
        billing_store.store_fetch(cache.con, BillingFetch(
            "openai", "oa", day(1), day(2),
            (bill(1, FULL, project="acme"), bill(1, PER_SPAN * 10, project="p2")),
            (used(1, project="acme"), used(1, 10, project="p2")), FETCHED, pages=1))
        found = reconcile(cache.cursor(), day(2), 1, PriceTable.load())
    r = next(x for x in found if x.model == "gpt-4o-mini")
    assert causes(r) == ["missing_hours", "unseen_usage"]
    assert r.causes[1].explains == PER_SPAN * 10


def test_cli_json_rows_and_exit_codes(cache_path: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[billing]\nreconcile_threshold = 0.05\n")
    base = ["--config", str(config), "--cache", str(cache_path), "cost", "reconcile"]
    code = main([*base, "--days", "9", "--today", TODAY.isoformat(), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    by = {(r["model"], r["day"]): r for r in doc["rows"]}
    r = by["gpt-4o-mini", day(3).isoformat()]
    assert r["status"] == "gap" and r["causes"][0]["cause"] == "price_changed"
    assert isinstance(r["billed"], str) and Decimal(r["billed"]) == FULL * 2
    assert by["gpt-4o-mini", day(1).isoformat()]["status"] == "ok"
    assert row_json(Row("openai", "m", day(1), Decimal("1.5"), Decimal("1.5"), "ok"))["gap"] == "0.0"
    # only the matching day: no flagged gap, exit 0; the table names the columns
    code = main([*base, "--days", "1", "--today", day(2).isoformat()])
    out = capsys.readouterr().out
    assert code == 0 and "billed" in out and "estimated" in out and "gpt-4o-mini" in out
    # the text table shows each flagged row's causes
    assert main([*base, "--days", "9", "--today", TODAY.isoformat()]) == 1
    out = capsys.readouterr().out
    assert "missing_hours" in out and "unseen_usage" in out and "not billed" in out


def test_status_json_has_the_reconciliation(cache_path: Path, make_config: Any) -> None:
    from console import status_report

    with Cache.open(cache_path, read_only=True) as cache:
        at = datetime.combine(TODAY, datetime.min.time())
        report = status_report.gather(cache.cursor(), make_config(), at)
    doc = status_report.as_json(report)["reconciliation"]
    assert isinstance(doc, dict) and doc["days"] == 7 and doc["flagged"] == 6
    assert {r["status"] for r in doc["rows"]} == {"ok", "gap", "not_billed"}


def test_status_json_without_billing_has_no_reconciliation(tmp_path: Path, make_config: Any) -> None:
    from console import status_report

    with Cache.open(tmp_path / "c.duckdb") as cache:
        Ingestor(cache, make_config()).run([write_spans(tmp_path / "t.jsonl", spans_of(1))])
        at = datetime.combine(day(2), datetime.min.time())
        report = status_report.gather(cache.cursor(), make_config(), at)
    assert "reconciliation" not in status_report.as_json(report) and report.exit_code == 0


def test_a_cause_pointing_against_the_gap_is_not_listed(tmp_path: Path, make_config: Any) -> None:
    """Billed at half the estimate on a day with 12 untraced hours: missing traces would make
    the estimate LOWER than billed, so they cannot explain a bill below it (seen by hand: it
    was listed as the cause of a -100% gap, explaining more than the gap)."""
    spans = spans_of(1, range(12))
    path = tmp_path / "c.duckdb"
    with Cache.open(path) as cache:
        Ingestor(cache, make_config()).run([write_spans(tmp_path / "t.jsonl", spans)])
        billing_store.store_fetch(cache.con, BillingFetch(
            "openai", "oa", day(1), day(2), (bill(1, FULL / 4),), (), FETCHED, pages=1))
        found = reconcile(cache.cursor(), day(2), 1, PriceTable.load())
    r = next(x for x in found if x.model == "gpt-4o-mini")
    assert r.status == "gap" and r.gap is not None and r.gap < 0
    assert "missing_hours" not in causes(r)
    assert causes(r) == ["unexplained"]


def test_providers_without_billing_are_one_line_in_text_and_counted_in_json(
        tmp_path: Path, make_config: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Traffic of providers no billing source has synced (anthropic: one could be configured;
    google: llmdeck reads no billing API of it) is nothing to compare: the text table has one
    summary line for them instead of a row per model and day; --json keeps every row."""
    spans: list[Span] = []
    for n in (1, 2, 3):
        spans += spans_of(n)
        spans += spans_of(n, range(0, 24, 6), 1, "claude-haiku-4-5", "anthropic")
        spans += spans_of(n, range(0, 24, 8), 1, "claude-sonnet-4-5", "anthropic")
    spans += spans_of(2, range(3), 1, "gemini-2.5-flash", "google")
    spans += spans_of(4)  # openai only, past its billed days: not_billed
    path = tmp_path / "c.duckdb"
    with Cache.open(path) as cache:
        Ingestor(cache, make_config()).run([write_spans(tmp_path / "t.jsonl", spans)])
        billing_store.store_fetch(cache.con, BillingFetch(
            "openai", "oa", day(1), day(4), tuple(bill(n, FULL) for n in (1, 2, 3)), (), FETCHED, pages=1))
    config = tmp_path / "config.toml"
    config.write_text("")
    command = ["--config", str(config), "--cache", str(path), "cost", "reconcile"]
    base = [*command, "--days", "3", "--today", day(4).isoformat()]

    assert main(base) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if "not compared" in line] == [out[-1]]
    assert not any(p in line for line in out[:-1] for p in ("anthropic", "google", "not configured"))
    assert len([line for line in out if "gpt-4o-mini" in line]) == 3  # the compared rows stay
    summary = out[-1]
    assert summary.startswith("not compared: anthropic (6 rows), google (1 row), estimated $")
    assert f"over {day(1)}..{day(3)}" in summary and "(--json lists the rows)" in summary
    assert "add [[sources.anthropic_billing]] and run `llmdeck billing sync`" in summary
    assert "google_billing" not in summary  # no billing API of google to configure

    assert main([*base, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    hidden = [r for r in doc["rows"] if r["status"] == "not_configured"]
    assert len(hidden) == 7 and {r["provider"] for r in hidden} == {"anthropic", "google"}
    assert doc["not_configured"] == {
        "rows": 7, "providers": {"anthropic": 6, "google": 1},
        "estimated": str(sum((Decimal(r["estimated"]) for r in hidden), Decimal(0))),
        "first_day": day(1).isoformat(), "last_day": day(3).isoformat()}
    assert f"${Decimal(doc['not_configured']['estimated']):,.2f} " in summary
    # a day with only a configured provider's traffic: no summary line, null in JSON
    day4 = [*command, "--days", "1", "--today", day(5).isoformat()]
    assert main([*day4, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["not_configured"] is None and [r["status"] for r in doc["rows"]] == ["not_billed"]
    assert main(day4) == 0
    text = capsys.readouterr().out
    assert "not billed" in text and "not compared" not in text


def test_the_cost_screens_billing_section_reconciles_once_per_data_and_sync_state(
        tmp_path: Path, make_config: Any) -> None:
    """With the backend's memo, a refresh with nothing new ingested or synced reuses the rows;
    a new sync (a new fetch time) reconciles again."""
    from console.billing_reader import billing_section
    from console.cache.scope_sql import HourMemo

    config, table, memo = make_config(), PriceTable.load(), HourMemo()
    at = datetime.combine(day(2), datetime.min.time()) + timedelta(hours=6)
    with Cache.open(tmp_path / "c.duckdb") as cache:
        Ingestor(cache, config).run([write_spans(tmp_path / "t.jsonl", spans_of(1))])
        billing_store.store_fetch(cache.con, BillingFetch("openai", "oa", day(1), day(2), (bill(1, FULL),),
                                                          (used(1),), FETCHED, pages=1))
        first = billing_section(cache.cursor(), config, at, table, days=1, wall=lambda: at, memo=memo)
        misses = memo.misses
        again = billing_section(cache.cursor(), config, at, table, days=1, wall=lambda: at, memo=memo)
        assert (memo.misses, again.rows) == (misses, first.rows)
        assert [r.status for r in first.rows] == ["ok"]
        billing_store.store_fetch(cache.con, BillingFetch("openai", "oa", day(1), day(2),
                                                          (bill(1, FULL * 2),), (used(1),),
                                                          FETCHED + timedelta(hours=1), pages=1))
        resynced = billing_section(cache.cursor(), config, at, table, days=1, wall=lambda: at, memo=memo)
    assert memo.misses == misses + 1
    assert [(r.billed, r.status) for r in resynced.rows] == [(FULL * 2, "gap")]
