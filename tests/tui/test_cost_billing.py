"""The cost screen's "Billed vs estimated" section, on a real cache, at 80x24 and 160x50.

Traces are ingested by the Ingestor and provider billing stored by billing_store.store_fetch
(as tests/unit/test_reconcile.py does): one day billed at twice the table's price
(price_changed), one day with half its hours untraced (missing_hours), one day with usage from a
project the traces never see and a hostile name (unseen_usage), the rest matching. The backend
answers on its worker thread (reconcile() on its cursor); the screen renders the frozen page.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from console.backend import Backend
from console.billing import BillingFetch, BillingLine, UsageLine
from console.billing_view import SETUP_HINT
from console.cache import billing_store
from console.cache.ingest import Ingestor
from console.cache.store import Cache
from console.config import CacheSettings, Config, UiSettings
from console.config_sources import SourcesSettings
from console.views import CostPage, CostView
from tests.tui.conftest import settle
from tests.tui.screen_text import screen_lines, screen_text
from tests.unit.otlp_spans import Span, write_spans

D0 = date(2026, 11, 1)
AT = datetime(2026, 11, 10, 6, 0)
"""The data clock: the last 7 completed UTC days are 11-03 .. 11-09."""
TIN, TOUT = 100_000, 10_000
PER_SPAN = Decimal("0.021")  # gpt-4o-mini: 100k in x $0.15/M + 10k out x $0.60/M
FULL = PER_SPAN * 48  # 2 spans an hour for 24 hours
HOSTILE_PROJECT = "[@click=app.quit]proj[/]"
HOSTILE_MODEL = "[b]ft-model[i]"
HOSTILE_SOURCE = "ant[b]x[/]"
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 50), id="160x50")]


def day(n: int) -> date:
    return D0 + timedelta(days=n)


def spans_of(n: int, hours: range = range(24), per_hour: int = 2, model: str = "gpt-4o-mini",
             tenant: str = "acme") -> list[Span]:
    start = datetime.combine(day(n), datetime.min.time())
    return [Span(start + timedelta(hours=h, minutes=10 + 20 * i), provider="openai", model=model,
                 tenant=tenant, tin=TIN, tout=TOUT) for h in hours for i in range(per_hour)]


def bill(n: int, amount: Decimal, model: str = "gpt-4o-mini-2024-07-18",
         project: str | None = None) -> BillingLine:
    return BillingLine("openai", "oa", day(n), amount, "USD", model, f"{model}, input", project)


def used(n: int, requests: int = 48, model: str = "gpt-4o-mini-2024-07-18",
         project: str | None = None) -> UsageLine:
    return UsageLine("openai", "oa", day(n), model, project, requests, requests * TIN, requests * TOUT,
                     0, False)


def config(**sources: Any) -> Config:
    return Config(cache=CacheSettings(rollup_retention_days=None),
                  ui=UiSettings(refresh_seconds=30), sources=SourcesSettings(**sources))


BILLING_SOURCES = {
    "openai_billing": [{"name": "oa", "admin_key_ref": "env:OA_ADMIN_KEY", "poll_seconds": 600}],
    "anthropic_billing": [{"name": HOSTILE_SOURCE, "admin_key_ref": "env:ANT_ADMIN_KEY",
                           "poll_seconds": 60}],
}


def build(path: Path, with_billing: bool) -> None:
    spans = spans_of(2)  # 11-03: matches
    lines, usage = [bill(2, FULL)], [used(2)]
    spans += spans_of(3)  # 11-04: billed at twice the table's price
    lines += [bill(3, FULL * 2)]
    usage += [used(3)]
    spans += spans_of(4, range(12))  # 11-05: 12 hours untraced
    lines += [bill(4, FULL)]
    usage += [used(4)]
    spans += spans_of(5)  # 11-06: a project the traces never see
    lines += [bill(5, FULL, project="acme"), bill(5, PER_SPAN * 20, project=HOSTILE_PROJECT)]
    usage += [used(5, project="acme"), used(5, 20, project=HOSTILE_PROJECT)]
    spans += spans_of(6, range(8, 12), 1, model=HOSTILE_MODEL)  # 11-07: a model with no price
    lines += [bill(6, Decimal("0.30"), HOSTILE_MODEL)]
    for n in (6, 7, 8):  # 11-07 .. 11-09 match
        spans += spans_of(n)
        lines += [bill(n, FULL)]
        usage += [used(n)]
    trace_file = write_spans(path.parent / f"{path.stem}.jsonl", spans)
    with Cache.open(path) as cache:
        report = Ingestor(cache, config()).run([trace_file])
        assert report.spans_stored == len(spans)
        if with_billing:
            billing_store.store_fetch(cache.con, BillingFetch(
                "openai", "oa", day(2), day(9), tuple(lines), tuple(usage), AT - timedelta(minutes=4),
                pages=2))
            billing_store.store_fetch(cache.con, BillingFetch(  # synced 2 hours ago, polls each 60 s
                "anthropic", HOSTILE_SOURCE, day(7), day(9), (), (), AT - timedelta(hours=2), pages=1))


@pytest.fixture(scope="module")
def caches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cost_billing")
    paths = {"billed": root / "billed.duckdb", "unbilled": root / "unbilled.duckdb"}
    build(paths["billed"], True)
    build(paths["unbilled"], False)
    return paths


@pytest.fixture
def deck(caches: dict[str, Path]) -> Iterator[Any]:
    """deck(kind, config) -> the app on a read-only open of that cache, the clock at AT."""
    opened: list[Cache] = []

    def make(kind: str = "billed", cfg: Config | None = None) -> Any:
        from console.app import LlmdeckApp

        cache = Cache.open(caches[kind], read_only=True)
        opened.append(cache)
        backend = Backend(cache, cfg or config(**BILLING_SOURCES), lambda: AT)
        return LlmdeckApp(backend, wall_clock=lambda: AT)

    yield make
    for cache in opened:
        cache.close()


async def open_billing(pilot: Any) -> None:
    """`3`, then focus the billing table (it scrolls into view at 80x24)."""
    await settle(pilot)
    await pilot.press("3")
    await settle(pilot)
    pilot.app.screen.query_one("#cost-billing").focus()
    await pilot.pause()
    await pilot.pause()


def test_reader_flags_gaps_first_with_their_causes(caches: dict[str, Path]) -> None:
    with Cache.open(caches["billed"], read_only=True) as cache:
        page = Backend(cache, config(**BILLING_SOURCES), lambda: AT).fetch(CostView()).snapshot
    assert isinstance(page, CostPage) and page.billing is not None
    rows = page.billing.rows
    assert [(r.day.day, r.cause) for r in rows if r.flagged] == [
        (4, "price_changed"), (5, "missing_hours"), (6, "unseen_usage"), (7, "unpriced")]
    assert [r.flagged for r in rows] == sorted((r.flagged for r in rows), reverse=True)
    assert {r.day for r in rows} == {day(n) for n in range(2, 9)}
    top = rows[0]
    assert top.billed == FULL * 2 and top.gap is not None and abs(top.gap - FULL) < Decimal("1e-9")
    fresh = {s.source: s.stale for s in page.billing.sources}
    assert fresh == {"oa": False, HOSTILE_SOURCE: True}


@pytest.mark.parametrize("size", SIZES)
async def test_rows_causes_and_freshness_shown(deck: Any, size: tuple[int, int]) -> None:
    app = deck()
    async with app.run_test(size=size) as pilot:
        await open_billing(pilot)
        text = screen_text(app)
        lines = screen_lines(app)
        assert all(len(line) <= size[0] for line in lines)
        assert "Billed vs estimated (last 7 completed UTC days; 4 gaps over 5%)" in text
        for cause in ("price_changed", "missing_hours", "unseen_usage"):
            assert cause in text, text
        assert "+$1.01" in text and "+50%" in text  # 11-04: billed $2.02, estimated $1.01
        days = "11-03..11-09" if size[0] < 120 else "2026-11-03..2026-11-09"
        assert f"openai/oa fresh · synced 4m ago · days {days}" in text
        assert f"anthropic/{HOSTILE_SOURCE} STALE · synced 2h00m ago" in text
        if size[0] >= 120:
            assert "no sync for over 3× poll_seconds (3m)" in text
        table = app.screen.query_one("#cost-billing")
        first = [str(getattr(c, "plain", c)) for c in table.get_row_at(0)]
        if size[0] < 120:
            assert first[:2] == ["11-04", "gpt-4o-mini"] and first[-1] == "price_changed"
            assert "11-04 openai/gpt-4o-mini: price_changed — the provider billed $2.0160" in text
        else:
            assert first[:3] == ["2026-11-04", "openai", "gpt-4o-mini"]
            assert first[-1].startswith("the provider billed $2.0160 for its 5,280,000 tokens")
        assert app.is_running


async def show_unseen_usage_row(app: Any, pilot: Any, cause_column: int, pauses: int = 1) -> str:
    """Open the billing table, highlight the row whose cause is unseen_usage; the screen's text."""
    await open_billing(pilot)
    table = app.screen.query_one("#cost-billing")
    row = next(i for i in range(table.row_count)
               if "unseen_usage" in str(getattr(table.get_row_at(i)[cause_column], "plain", "")))
    table.move_cursor(row=row)
    for _ in range(pauses):
        await pilot.pause()
    return screen_text(app)


async def test_hostile_names_render_literally(deck: Any) -> None:
    app = deck()
    async with app.run_test(size=(160, 50)) as pilot:
        text = await show_unseen_usage_row(app, pilot, cause_column=-2)
        assert HOSTILE_MODEL in text
        assert HOSTILE_PROJECT in text  # the cause's detail names the project as it came
        assert f"anthropic/{HOSTILE_SOURCE}" in text
        await pilot.click("#cost-billing")  # clicking the literal text runs nothing
        await pilot.pause()
        assert app.is_running
    app = deck()
    async with app.run_test(size=(80, 24)) as pilot:
        text = await show_unseen_usage_row(app, pilot, cause_column=-1, pauses=2)
        assert HOSTILE_MODEL in text and "[@click=app.quit]" in text
        assert app.is_running


@pytest.mark.parametrize("size", SIZES)
async def test_no_billing_synced_says_how_to_configure(deck: Any, size: tuple[int, int]) -> None:
    app = deck("unbilled", config())
    async with app.run_test(size=size) as pilot:
        await open_billing(pilot)
        text = screen_text(app)
        assert "Billed vs estimated: no billing source has synced yet" in text
        assert SETUP_HINT in text, text  # whole, even at 80 columns
        assert not app.screen.query_one("#cost-billing").display
    app = deck("unbilled")  # configured, never synced
    async with app.run_test(size=size) as pilot:
        await open_billing(pilot)
        text = screen_text(app)
        assert "no billing source has synced yet" in text
        assert f"run `llmdeck billing sync` for the configured oa, {HOSTILE_SOURCE}" in text


@pytest.mark.parametrize("size", SIZES)
def test_cost_billing_snapshot(snap_compare: Any, deck: Any, size: tuple[int, int]) -> None:
    """`3` on the billed cache, billing table focused: the title says 4 gaps over 5%; the two
    source lines (anthropic/ant[b]x[/] STALE, literal; openai/oa fresh); price_changed (11-04,
    +$1.01, +50% of billed) first, then missing_hours (11-05), unseen_usage (11-06), unpriced (11-07, model
    `[b]ft-model[i]` literal), then the ok days latest first.
    80x24: day as MM-DD, no provider/detail columns; the highlighted row's cause detail on one
    line under the table, cut with an ellipsis. 160x50: every column, detail cut with `…`."""
    assert snap_compare(deck(), terminal_size=size, run_before=open_billing)


async def test_enter_on_a_billing_row_opens_its_traffic(deck: Any) -> None:
    """Enter on the top gap (openai gpt-4o-mini) drills to the traces screen filtered to it."""
    from console.views import BreakdownView

    app = deck()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_billing(pilot)
        await pilot.press("enter")
        await settle(pilot)
        view = app.screen.view()
        assert isinstance(view, BreakdownView)
        assert (view.filter.provider, view.filter.model) == ("openai", "gpt-4o-mini")



def build_mixed(tmp_path: Path) -> Path:
    """openai traced and billed on 11-04; mistral traced 4 hours that day, no billing source."""
    path = tmp_path / "mixed.duckdb"
    start = datetime.combine(day(3), datetime.min.time())
    spans = spans_of(3) + [
        Span(start + timedelta(hours=h), provider="mistral_ai", model="mistral-small", tenant="acme",
             tin=TIN, tout=TOUT) for h in range(4)]
    trace_file = write_spans(tmp_path / "mixed.jsonl", spans)
    with Cache.open(path) as cache:
        Ingestor(cache, config()).run([trace_file])
        billing_store.store_fetch(cache.con, BillingFetch(
            "openai", "oa", day(2), day(9), (bill(3, FULL),), (used(3),), AT - timedelta(minutes=4),
            pages=1))
    return path


def test_providers_without_a_billing_source_are_one_line_not_a_row_each(tmp_path: Path) -> None:
    """A provider no billing source has synced has nothing to compare with: its days are summed
    into one line under the source lines (as `llmdeck cost reconcile` prints), not listed as rows."""
    with Cache.open(build_mixed(tmp_path), read_only=True) as cache:
        page = Backend(cache, config(**BILLING_SOURCES), lambda: AT).fetch(CostView()).snapshot
    assert isinstance(page, CostPage) and page.billing is not None
    assert "not_configured" not in {r.status for r in page.billing.rows}
    assert [(r.provider, r.day) for r in page.billing.rows if r.day == day(3)] == [
        ("openai", day(3))]
    assert page.billing.unconfigured == (
        "no billing source: mistral 1 row; $0.05 estimated")


@pytest.mark.parametrize("size", SIZES)
async def test_the_unconfigured_line_is_shown_under_the_sources(tmp_path: Path,
                                                               size: tuple[int, int]) -> None:
    from console.app import LlmdeckApp

    with Cache.open(build_mixed(tmp_path), read_only=True) as cache:
        app = LlmdeckApp(Backend(cache, config(**BILLING_SOURCES), lambda: AT), wall_clock=lambda: AT)
        async with app.run_test(size=size) as pilot:
            await open_billing(pilot)
            lines = screen_lines(app)
    at = [i for i, line in enumerate(lines) if "no billing source: mistral" in line]
    assert at, "\n".join(lines)
    assert "oa fresh" in lines[at[0] - 1] or "oa fresh" in lines[at[0] - 2], "\n".join(lines)
    assert not any("not_configured" in line for line in lines)
