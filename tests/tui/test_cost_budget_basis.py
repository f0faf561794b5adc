"""The cost screen's budget rows say each budget's basis; a billed one says where its bills end.

The cache is tests/tui/test_cost_billing.py's (traces 11-03..11-09, openai bills for those days
fetched at 11-10 05:56, an anthropic source that synced 11-08..11-09 with no lines), the clock
at 11-10 06:00: a billed openai budget is billed 11-03..11-09 and estimated outside those days
(11-01..11-02 had no figures yet; 11-10 is today).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from console.backend import Backend
from console.cache.store import Cache
from console.config import BudgetSpec
from console.views import CostPage, CostView
from tests.tui.conftest import settle
from tests.tui.screen_text import screen_lines, screen_text
from tests.tui.test_cost_billing import AT, BILLING_SOURCES, build, config

NOTE = "openai billed 11-03..11-09; estimated outside those days"
LABEL = "billed from 11-03 to 11-09, est. outside"


def budgets() -> list[BudgetSpec]:
    return [
        BudgetSpec(name="openai billed", scope="provider", match="openai", limit_usd=50.0, basis="billed"),
        BudgetSpec(name="openai estimated", scope="provider", match="openai", limit_usd=50.0),
    ]


@pytest.fixture(scope="module")
def cache_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cost_budget_basis") / "billed.duckdb"
    build(path, True)
    return path


@pytest.fixture
def app(cache_path: Path) -> Iterator[Any]:
    from console.app import LlmdeckApp

    cfg = config(**BILLING_SOURCES).model_copy(update={"budgets": budgets()})
    with Cache.open(cache_path, read_only=True) as cache:
        yield LlmdeckApp(Backend(cache, cfg, lambda: AT), wall_clock=lambda: AT)


def test_the_page_carries_the_billed_basis(cache_path: Path) -> None:
    cfg = config(**BILLING_SOURCES).model_copy(update={"budgets": budgets()})
    with Cache.open(cache_path, read_only=True) as cache:
        page = Backend(cache, cfg, lambda: AT).fetch(CostView()).snapshot
    assert isinstance(page, CostPage)
    billed, estimated = page.budgets
    assert billed.basis == "billed" and billed.billed is not None and billed.billed.note == NOTE
    assert billed.billed.label == LABEL
    # the bills of 11-03..11-09 as stored, exactly (every openai line of those days)
    with Cache.open(cache_path, read_only=True) as cache:
        stored = cache.cursor().execute(
            "SELECT sum(amount) FROM billing WHERE provider = 'openai'").fetchall()[0][0]
    assert billed.billed.billed_usd == Decimal(stored)
    assert estimated.basis == "estimated" and estimated.billed is None


@pytest.mark.parametrize("size", [(160, 50), (80, 24)], ids=["160x50", "80x24"])
async def test_budget_rows_say_billed_to_when_and_estimated_after(app: Any, size: tuple[int, int]) -> None:
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        table = app.screen.query_one("#cost-budgets")
        rows = {str(getattr(r[0], "plain", r[0])): [str(getattr(c, "plain", c)) for c in r]
                for r in (table.get_row_at(i) for i in range(table.row_count))}
        assert rows["openai billed"][4] == LABEL
        assert rows["openai estimated"][4] == "estimated"
        assert all(len(line) <= size[0] for line in screen_lines(app))
        if size[0] >= 160:
            text = screen_text(app)
            assert LABEL in text and "estimated" in text
        assert app.is_running


@pytest.mark.parametrize("size", [(80, 24), (160, 50)], ids=["80x24", "160x50"])
def test_cost_budget_basis_snapshot(snap_compare: Any, app: Any, size: tuple[int, int]) -> None:
    """`3`: the Budgets table, `openai billed` and `openai estimated` (both `$50` limits):
    the billed one's basis cell reads `billed from 11-03 to 11-09, est.
    outside` and its spent is the
    bills of those days plus 11-01..11-02 and today as estimated; the other reads `estimated`
    (dim). 80x24: budget and state pinned, used, spent and basis next; 160x50: every column."""

    async def open_cost(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=open_cost)
