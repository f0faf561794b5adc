"""The cost screen's billing section read from the cache (backend worker thread only).

Reads what `llmdeck billing sync` (or the demo) stored: `console.reconcile.reconcile` rows for
the last completed UTC days and each billing source's last sync. Read-only: nothing is fetched
or written here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from console.billing_view import STALE_POLLS, BilledRow, BillingFreshness, BillingSection, order_rows
from console.cache import billing_store
from console.reconcile import Row, reconcile, unconfigured
from console.timeutil import utc_now

if TYPE_CHECKING:
    import duckdb

    from console.cache.scope_sql import HourMemo
    from console.config import Config
    from console.pricing import PriceTable

DAYS = 7
"""Completed UTC days shown."""
DEFAULT_POLL_SECONDS = 300.0
"""For a source stored in the cache but no longer in the config."""


def billed_row(r: Row) -> BilledRow:
    """A reconciliation row as the screen shows it (the top cause only)."""
    cause: str = r.status
    detail, more = r.note, 0
    if r.causes:
        cause, detail, more = r.causes[0].code, r.causes[0].detail, len(r.causes) - 1
    return BilledRow(r.provider, r.model, r.day, r.billed, r.estimated, r.gap, r.share, r.status,
                     cause, detail, more)


def billing_section(cur: duckdb.DuckDBPyConnection, config: Config, at: datetime,
                    table: PriceTable, days: int = DAYS,
                    wall: Callable[[], datetime] = utc_now,
                    memo: HourMemo | None = None) -> BillingSection:
    """Billed vs estimated for [at's day - days, at's day), with every source's freshness.

    A sync's age is measured on the earlier of `at` and the wall clock: syncs are stamped with
    the wall clock, and the demo's simulated `at` runs ahead of it (a pinned `at` in the past,
    as in tests, is used as it is). With a `memo` (the backend's, which lives no longer than
    its price table), the reconciliation of completed days is computed once per data version
    and state of the billing syncs instead of on every refresh."""
    threshold = config.billing.reconcile_threshold
    configured = {s.name: float(s.poll_seconds) for s in config.sources.billing()}
    syncs = billing_store.syncs(cur)
    if not syncs:
        return BillingSection((), (), days, threshold, tuple(configured))
    now = min(at, wall())
    sources = []
    for s in syncs:
        poll = configured.get(s.source, DEFAULT_POLL_SECONDS)
        age = max(now - s.fetched_at, timedelta(0))
        sources.append(BillingFreshness(s.provider, s.source, s.fetched_at, s.covered_from,
                                        s.end - timedelta(days=1), poll, age,
                                        age > timedelta(seconds=STALE_POLLS * poll)))
    if memo is None:
        found = reconcile(cur, at.date(), days, table, threshold, syncs)
    else:
        memo.sync(cur)
        found = memo.get(("reconcile", at.date(), days, threshold, id(table), tuple(syncs)),
                         lambda: reconcile(cur, at.date(), days, table, threshold, syncs))
    rows = [billed_row(r) for r in found if r.status != "not_configured"]
    return BillingSection(order_rows(rows), tuple(sources), days, threshold, tuple(configured),
                          unconfigured_line(found))


def unconfigured_line(found: list[Row]) -> str:
    """The rows of providers no billing source has synced, as one line ("" when none)."""
    u = unconfigured(found)
    if u is None:
        return ""
    providers = ", ".join(f"{name} {n} row{'' if n == 1 else 's'}" for name, n in u.providers)
    return f"no billing source: {providers}; ${u.estimated:,.2f} estimated"
