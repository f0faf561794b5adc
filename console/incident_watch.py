"""What fires, handed to the incident feed after every refresh, on the poller's worker thread.

The feed (`console.incident_feed`) turns a paging SLO, a critical budget or a firing outside
alert into an incident and timeline entries. It must see every refresh whatever screen is
showing, so the app's poll worker calls `IncidentWatch.observe` after fetching the screen's
view: when that view was the overview, its alerts are reused; otherwise the SLOs, budgets
and the hub's alerts are read here (the same thread as the poll, so the backend's memo is
never used by two threads at once). SLO and budget figures of the moment go with each
entry. No Textual here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from console import source_readers
from console.alerts import loud
from console.backend import Backend, alerts_from
from console.cache.cost_queries import cost_snapshot
from console.cache.trace_queries import breakdown
from console.config import ScopeFilter
from console.incident_feed import FeedResult, IncidentFeed
from console.incidents import IncidentError
from console.safe_text import cell
from console.snapshots import Alert, BudgetStatus, OverviewSnapshot, SloStatus
from console.state_db import StateError


def slo_figures(s: SloStatus) -> dict[str, Any]:
    """An SLO's figures as the timeline keeps them."""
    return {"compliance": s.compliance, "budget_remaining": s.budget_remaining,
            "burn": dict(s.burn_rates), "requests": s.requests, "reason": s.reason}


def budget_figures(b: BudgetStatus) -> dict[str, Any]:
    """A budget's figures as the timeline keeps them."""
    return {"spent_usd": round(b.spent_usd, 2), "limit_usd": b.limit_usd, "used": round(b.used, 4),
            "forecast_usd": round(b.forecast_usd, 2), "reason": b.reason}


class IncidentWatch:
    """Feeds each refresh's alerts to one `IncidentFeed`; remembers its last problem."""

    def __init__(self, feed: IncidentFeed) -> None:
        self.feed = feed
        self.problem = ""
        """Why the last observation failed ("" when it worked): the app says it once."""

    def observe(self, backend: Backend, snapshot: object, data_at: datetime,
                wall_at: datetime) -> FeedResult | None:
        """Read what fires at `data_at` (or take it from an overview `snapshot`) and write the
        difference at `wall_at`; None when the state file could not be written (see `problem`)."""
        every, _, alert_sources = source_readers.alert_readings(backend.hub)
        outside = loud(every)
        figures: dict[str, Mapping[str, Any]] = {}
        if isinstance(snapshot, OverviewSnapshot):
            alerts: tuple[Alert, ...] = snapshot.alerts
            slos, budgets = snapshot.slos, snapshot.budgets
        else:
            slos = backend.slo_statuses(data_at)
            cost = cost_snapshot(backend.cache.cursor(), backend.config.budgets, data_at, backend.memo)
            alerts, budgets = alerts_from(slos, cost, outside), cost.budgets
        figures.update({f"slo:{s.name}": slo_figures(s) for s in slos if int(s.level) >= 2})
        figures.update({f"budget:{b.name}": budget_figures(b) for b in budgets if int(b.level) >= 2})
        # what cannot be known this round is not "resolved": an SLO whose source is down (the
        # overview's alerts leave it out) and every alert of an alert source that did not answer
        unknown = [f"slo:{s.name}" for s in slos if s.freshness == "down"]
        unknown += [f"alert:{status.name}/" for status in alert_sources if status.state == "down"]
        try:
            result = self.feed.observe(alerts, outside, wall_at, figures=figures, unknown=unknown)
        except (StateError, IncidentError) as exc:
            self.problem = cell(exc, 300)
            return None
        finally:
            self.feed.store.close()  # the poll's thread ends with this call
        self.problem = ""
        return result


def traffic_scope(backend: Backend, scope: Mapping[str, str], at: datetime,
                  window: timedelta = timedelta(hours=1)) -> dict[str, str]:
    """`scope` (an incident's provider/model/tenant) completed from the traffic of the last
    `window` (a worker thread: it reads the cache): with a provider and no model, the model
    group that provider served most as `traffic_model`; and as `fallback`, the busiest group of
    another provider (what switch-provider's `fallback_models` is prefilled with; the dialog
    shows both, editable)."""
    found = dict(scope)
    provider = found.get("provider")
    if provider is None:
        return found
    cur = backend.cache.cursor()
    if "model" not in found:
        own = breakdown(cur, ScopeFilter(provider=provider), at - window, at, "model")
        busiest = max((r for r in own.rows if r.key), key=lambda r: r.requests, default=None)
        if busiest is not None:
            found["traffic_model"] = busiest.key
    if "fallback" not in found:
        others = breakdown(cur, ScopeFilter(), at - window, at, "provider")
        other = max((r for r in others.rows if r.key and r.key != provider),
                    key=lambda r: r.requests - r.errors, default=None)
        if other is not None:
            theirs = breakdown(cur, ScopeFilter(provider=other.key), at - window, at, "model")
            best = max((r for r in theirs.rows if r.key), key=lambda r: r.requests - r.errors,
                       default=None)
            if best is not None:
                found["fallback"] = best.key
    return found
