"""Budgets: calendar periods in UTC, and a budget's level, forecast and reason from its spend.

`period_bounds(period, at)` gives the UTC calendar day, ISO week or month
holding `at`; `budget_status(spec, at, spent, burn, unpriced)` turns a period's
spend and recent USD/hour rates into a level, a forecast and a reason in words.

A budget covers a calendar period in UTC (a day, an ISO week from Monday
00:00, a calendar month). Its status is computed from what was spent so far in
the period and the recent spend rates (USD per hour over the last 1h, 6h,
24h): the forecast extrapolates the 6h rate to the period end, the time to
exhaustion divides what is left by the 1h rate. Pure module: no Textual, no I/O.

A budget on basis "billed" gets its spend and rates from
`console.cache.billed_budgets` (bills up to each provider's last complete UTC day,
estimates after) and the same arithmetic; `basis_note` says in words which is which.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from console.snapshots import BilledBasis, BudgetLevel, BudgetStatus
from console.timeutil import naive_utc

if TYPE_CHECKING:
    from console.config import BudgetSpec

__all__ = ["BudgetPeriod", "basis_label", "basis_note", "budget_status", "period_bounds"]

BudgetPeriod = Literal["day", "week", "month"]


def period_bounds(period: BudgetPeriod, at: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the calendar period (UTC, naive) that contains `at`."""
    at = naive_utc(at)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day, day + timedelta(days=1)
    if period == "week":
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=7)
    if period == "month":
        first = day.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return first, following
    raise ValueError(f"unknown budget period {period!r}")


def _percent(fraction: float) -> int:
    """Whole percent, rounded down (so 89.99% never reads as a 90% threshold)."""
    return math.floor(round(fraction * 100, 9))


def budget_status(
    spec: BudgetSpec,
    at: datetime,
    spent_usd: float,
    burn_usd_per_hour: Mapping[str, float],
    unpriced: int,
    billed: BilledBasis | None = None,
) -> BudgetStatus:
    """A budget's state at `at` given its spend this period and its recent USD/hour by window.

    CRITICAL when the spent share reaches `critical`; WARNING when it reaches
    `warning` or when the forecast (spent + 6h rate x hours left) exceeds the
    limit; else OK. `billed` (basis "billed" only) says how `spent_usd` was made of bills and
    estimates; the arithmetic is the same.
    """
    at = naive_utc(at)
    start, end = period_bounds(spec.period, at)
    limit = spec.limit_usd
    hours_left = max(0.0, (end - at) / timedelta(hours=1))
    forecast = spent_usd + burn_usd_per_hour.get("6h", 0.0) * hours_left
    remaining = limit - spent_usd
    used = spent_usd / limit
    burn_1h = burn_usd_per_hour.get("1h", 0.0)
    if remaining <= 0:
        exhaustion: timedelta | None = timedelta(0)
    elif burn_1h > 0:
        exhaustion = timedelta(hours=remaining / burn_1h)
    else:
        exhaustion = None
    spent_text = f"{_percent(used)}% of ${limit:,.2f} spent"
    forecast_text = f"forecast ${forecast:,.0f} > limit ${limit:,.0f}"
    if used >= spec.critical:
        level, reason = BudgetLevel.CRITICAL, f"critical: {spent_text}"
    elif used >= spec.warning:
        level, reason = BudgetLevel.WARNING, f"warning: {spent_text}"
        if forecast > limit:
            reason += f", {forecast_text}"
    elif forecast > limit:
        level, reason = BudgetLevel.WARNING, f"warning: {forecast_text}"
    else:
        level, reason = BudgetLevel.OK, f"ok: {spent_text}, forecast ${forecast:,.0f}"
    return BudgetStatus(
        name=spec.name,
        scope=spec.scope,
        match=spec.match,
        period=spec.period,
        period_start=start,
        period_end=end,
        limit_usd=limit,
        spent_usd=spent_usd,
        remaining_usd=remaining,
        used=used,
        burn_usd_per_hour=tuple(burn_usd_per_hour.items()),
        forecast_usd=forecast,
        time_to_exhaustion=exhaustion,
        level=level,
        reason=reason,
        unpriced_requests=unpriced,
        basis="estimated" if billed is None else "billed",
        billed=billed,
    )


def _day(d: date) -> str:
    return d.strftime("%m-%d")


def basis_note(period_start: date, days: Mapping[str, tuple[date, date]],
               estimated_only: Iterable[str]) -> str:
    """A billed budget's basis in words, from the days billed per provider this period.

    `days`: provider -> (first, last) day billed (inclusive); `estimated_only`: providers in
    scope with spend but no billed day. "billed to 12-03, estimated after" when every provider's
    figures run from the period start to the same day; otherwise per provider ("openai billed to
    12-03; estimated after; google estimated (no bills)").
    """
    rest = sorted(set(estimated_only))
    if not days:
        return "no bills for this period yet: all estimated"
    spans = set(days.values())
    if len(spans) == 1 and next(iter(spans))[0] == period_start and not rest:
        note = f"billed to {_day(next(iter(spans))[1])}, estimated after"
    else:
        parts = [f"{p} billed to {_day(b)}" if a == period_start else f"{p} billed {_day(a)}..{_day(b)}"
                 for p, (a, b) in sorted(days.items())]
        late = any(a > period_start for a, _ in days.values())
        note = ", ".join(parts) + ("; estimated outside those days" if late else "; estimated after")
    if rest:
        note += f"; {', '.join(rest)} estimated (no bills)"
    return note


def basis_label(period_start: date, days: Mapping[str, tuple[date, date]],
                estimated_only: Iterable[str]) -> str:
    """`basis_note` for a table cell: "billed to 12-03, est. after"; "billed to 12-02/12-03, est.
    after" when providers' figures end on different days; "billed from 12-03 to 12-09, est.
    outside" when some begin after the period does; providers with no bills named at the end."""
    rest = sorted(set(estimated_only))
    if not days:
        return "estimated: no bills yet"
    lasts = sorted({b for _, b in days.values()})
    to = "/".join(_day(d) for d in lasts) if len(lasts) <= 2 else f"{_day(lasts[0])}/…/{_day(lasts[-1])}"
    firsts = [a for a, _ in days.values()]
    if all(a == period_start for a in firsts):
        label = f"billed to {to}, est. after"
    else:
        label = f"billed from {_day(min(firsts))} to {to}, est. outside"
    if rest:
        label += f"; {', '.join(rest)} est."
    return label
