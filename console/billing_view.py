"""What the cost screen's "Billed vs estimated" section shows: frozen rows, no DuckDB behind them.

The backend builds these on its worker thread from `console.reconcile` rows and
`billing_store.syncs` (see `console/billing_reader.py`); panels import only this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

STALE_POLLS = 3
"""A billing source is stale once its last sync is older than this many of its poll intervals
(the cost screen's source lines and the sources view's billing lines alike)."""
SETUP_HINT = "add [[sources.openai_billing]] to the config, then `llmdeck billing sync`"
"""The one line shown while no billing source has ever synced into the cache."""


@dataclass(frozen=True)
class BilledRow:
    """One provider/model/UTC day: billed against estimated, and the top cause of a gap."""

    provider: str
    model: str
    day: date
    billed: Decimal | None
    estimated: Decimal | None
    gap: Decimal | None
    share: Decimal | None
    status: str
    """ok | gap | no_estimate | not_billed | not_configured (console.reconcile.Status)."""
    cause: str
    """The top cause's code for a gap, else the status."""
    detail: str
    """The top cause's detail for a gap, else the row's note (untrusted: render via safe_text)."""
    more_causes: int = 0
    """How many further causes the reconciliation ranked below the top one."""

    @property
    def key(self) -> str:
        return f"{self.provider}|{self.model}|{self.day.isoformat()}"

    @property
    def flagged(self) -> bool:
        return self.status == "gap"


@dataclass(frozen=True)
class BillingFreshness:
    """One billing source's last completed sync, and whether it is stale."""

    provider: str
    source: str
    fetched_at: datetime
    first_day: date
    last_day: date
    """Days covered (inclusive), over every completed sync of the source."""
    poll_seconds: float
    age: timedelta
    stale: bool
    """Older than 3x its poll_seconds."""


@dataclass(frozen=True)
class BillingSection:
    """Billed vs estimated over the last `days` completed UTC days, flagged gaps first."""

    rows: tuple[BilledRow, ...]
    sources: tuple[BillingFreshness, ...]
    days: int
    threshold: float
    configured: tuple[str, ...] = ()
    """Names of the billing sources in the config (a hint when none has synced yet)."""
    unconfigured: str = ""
    """One line for the providers no billing source has synced (their rows are not listed):
    `no billing source: google 7 rows, mistral 7 rows; $2.02 estimated`."""

    @property
    def synced(self) -> bool:
        return bool(self.sources)


def order_rows(rows: list[BilledRow]) -> tuple[BilledRow, ...]:
    """Flagged gaps first (largest gap first), then the rest (latest day first)."""
    gaps = sorted((r for r in rows if r.flagged),
                  key=lambda r: (-abs(r.gap or Decimal(0)), -r.day.toordinal(), r.provider, r.model))
    rest = sorted((r for r in rows if not r.flagged),
                  key=lambda r: (-r.day.toordinal(), r.provider, r.model))
    return (*gaps, *rest)
