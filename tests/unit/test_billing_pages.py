"""The billing connectors together: 90 days x 3 providers from the loopback replay, exact sums and memory.

The server is tests/faults/billing_server.py (the real provider APIs cannot be reached
here). Memory is flat in the number of pages: reading the same 90 days as 90 one-day
pages costs no more than reading them as 3 pages of 30 days (each page is parsed and
dropped before the next is read). Wall time is measured in bench/billing_sync.py, not here
(no wall-clock thresholds in tests).
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from datetime import date, datetime, timedelta
from decimal import Decimal

from connectors import billing_anthropic, billing_openai, billing_openrouter
from connectors.billing_pages import cents_to_dollars, money
from tests.faults.billing_server import BillingServer, client_for

START = date(2026, 6, 1)
END = START + timedelta(days=90)
NOW = datetime(2026, 8, 30, 9, 0)


async def _all_three(server: BillingServer) -> dict[str, Decimal]:
    totals = {}
    for module in (billing_openai, billing_anthropic, billing_openrouter):
        async with client_for(server, module, "k-" + "x" * 30) as client:
            fetch = await module.fetch(client, module.PROVIDER, START, END, now=NOW)
        totals[module.PROVIDER] = sum((line.amount for line in fetch.lines), Decimal(0))
    return totals


async def test_ninety_days_of_three_providers_are_fetched_exactly() -> None:
    with BillingServer(start=START, days=90, page_days=7, lines_per_day=12, today=NOW.date()) as server:
        totals = await _all_three(server)
    assert totals == {p: server.expected_total(p) for p in ("openai", "anthropic", "openrouter")}


def _peak(page_days: int) -> int:
    with BillingServer(start=START, days=90, page_days=page_days, lines_per_day=12) as server:
        gc.collect()  # garbage left by earlier tests must not be counted against this walk
        tracemalloc.start()
        try:

            async def run() -> None:
                async with client_for(server, billing_openai, "k-" + "x" * 30) as client:
                    await billing_openai.fetch(client, "o", START, END, now=NOW)

            asyncio.run(run())
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


def test_memory_is_flat_in_the_number_of_pages() -> None:
    _peak(30)  # warm up: first-use allocations (TLS context, imports) are not the walk's
    many, few = _peak(1), _peak(30)  # 180 pages vs 6 pages, the same lines
    assert many <= few * 1.25 + 256 * 1024, (many, few)


def test_amount_forms() -> None:
    assert money(Decimal("0.1"), "x") + money(Decimal("0.2"), "x") == Decimal("0.3")
    assert money(3, "x") == Decimal(3) and money(" 1.50 ", "x") == Decimal("1.50")
    assert cents_to_dollars(Decimal("-0")) == 0 and str(cents_to_dollars(Decimal("1E+2"))) == "1"
