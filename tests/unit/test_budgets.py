"""Budget maths (console.budgets): calendar periods in UTC, levels, forecasts, worked examples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from console.budgets import budget_status, period_bounds
from console.config import BudgetSpec
from console.snapshots import BudgetLevel


@pytest.mark.parametrize(("period", "at", "start", "end"), [
    ("day", datetime(2026, 4, 15, 13, 5), datetime(2026, 4, 15), datetime(2026, 4, 16)),
    ("day", datetime(2026, 12, 31, 23, 59, 59), datetime(2026, 12, 31), datetime(2027, 1, 1)),
    # 2026-04-15 is a Wednesday: its ISO week starts on Monday the 13th
    ("week", datetime(2026, 4, 15, 13, 5), datetime(2026, 4, 13), datetime(2026, 4, 20)),
    # a Sunday belongs to the week that started the Monday before
    ("week", datetime(2026, 4, 19, 23, 0), datetime(2026, 4, 13), datetime(2026, 4, 20)),
    ("week", datetime(2026, 4, 13, 0, 0), datetime(2026, 4, 13), datetime(2026, 4, 20)),
    ("week", datetime(2026, 1, 1, 8, 0), datetime(2025, 12, 29), datetime(2026, 1, 5)),
    ("month", datetime(2026, 4, 15, 13, 5), datetime(2026, 4, 1), datetime(2026, 5, 1)),
    ("month", datetime(2026, 12, 31, 23, 0), datetime(2026, 12, 1), datetime(2027, 1, 1)),
    ("month", datetime(2028, 2, 29, 12, 0), datetime(2028, 2, 1), datetime(2028, 3, 1)),
])
def test_period_bounds_are_utc_calendar_day_iso_week_and_month(period, at, start, end):
    assert period_bounds(period, at) == (start, end)


def test_period_bounds_convert_aware_times_to_utc_first():
    # 01:30 on the 1st in UTC+2 is still the previous month in UTC
    at = datetime(2026, 5, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert period_bounds("month", at) == (datetime(2026, 4, 1), datetime(2026, 5, 1))
    assert period_bounds("day", at) == (datetime(2026, 4, 30), datetime(2026, 5, 1))


MID_APRIL = datetime(2026, 4, 16)  # 15 days = 360 hours left in April


def monthly(limit: float = 500.0, **kw) -> BudgetSpec:
    return BudgetSpec(name="llm spend", limit_usd=limit, **kw)


def test_forecast_over_the_limit_warns_before_the_warning_share_is_spent():
    # $300 spent, $1/h over the last 6h: 300 + 1 x 360 h = $660 > $500
    b = budget_status(monthly(), MID_APRIL, 300.0, {"1h": 2.0, "6h": 1.0, "24h": 0.5}, 0)
    assert b.forecast_usd == pytest.approx(660.0)
    assert b.used == pytest.approx(0.6)
    assert b.remaining_usd == pytest.approx(200.0)
    assert b.level is BudgetLevel.WARNING
    assert b.reason == "warning: forecast $660 > limit $500"
    # remaining $200 at the 1h rate of $2/h
    assert b.time_to_exhaustion == timedelta(hours=100)
    assert b.period_start == datetime(2026, 4, 1) and b.period_end == datetime(2026, 5, 1)
    assert b.burn_usd_per_hour == (("1h", 2.0), ("6h", 1.0), ("24h", 0.5))


def test_spending_the_critical_share_is_critical_with_the_percent_in_words():
    b = budget_status(monthly(), MID_APRIL, 465.0, {"1h": 0.0, "6h": 0.0, "24h": 0.0}, 3)
    assert b.level is BudgetLevel.CRITICAL
    assert b.reason == "critical: 93% of $500.00 spent"
    assert b.time_to_exhaustion is None  # not spending
    assert b.unpriced_requests == 3


def test_spending_the_warning_share_warns_even_with_a_low_forecast():
    b = budget_status(monthly(), MID_APRIL, 350.0, {"1h": 0.0, "6h": 0.0, "24h": 0.0}, 0)
    assert b.level is BudgetLevel.WARNING
    assert b.reason == "warning: 70% of $500.00 spent"


def test_percent_is_rounded_down_so_it_never_reads_as_a_threshold_not_reached():
    b = budget_status(monthly(), MID_APRIL, 449.95, {"6h": 0.0}, 0)  # 89.99%
    assert b.level is BudgetLevel.WARNING
    assert b.reason == "warning: 89% of $500.00 spent"


def test_low_spend_and_low_forecast_is_ok():
    # $100 spent, $0.50/h over 6h: 100 + 0.5 x 360 = $280
    b = budget_status(monthly(), MID_APRIL, 100.0, {"1h": 0.5, "6h": 0.5, "24h": 0.5}, 0)
    assert b.level is BudgetLevel.OK
    assert b.forecast_usd == pytest.approx(280.0)
    assert b.reason == "ok: 20% of $500.00 spent, forecast $280"
    assert b.time_to_exhaustion == timedelta(hours=800)


def test_over_the_limit_has_no_time_left_and_negative_remaining():
    b = budget_status(monthly(), MID_APRIL, 520.0, {"1h": 3.0, "6h": 3.0, "24h": 3.0}, 0)
    assert b.time_to_exhaustion == timedelta(0)
    assert b.remaining_usd == pytest.approx(-20.0)
    assert b.used == pytest.approx(1.04)
    assert b.level is BudgetLevel.CRITICAL


def test_daily_budget_forecasts_to_midnight_and_custom_thresholds_apply():
    spec = BudgetSpec(name="acme daily", scope="tenant", match="acme", period="day",
                      limit_usd=100, warning=0.5, critical=0.8)
    at = datetime(2026, 4, 16, 18, 0)  # 6 hours left
    b = budget_status(spec, at, 40.0, {"1h": 5.0, "6h": 5.0, "24h": 1.0}, 0)
    assert b.forecast_usd == pytest.approx(70.0)
    assert b.level is BudgetLevel.OK
    b = budget_status(spec, at, 55.0, {"1h": 5.0, "6h": 5.0, "24h": 1.0}, 0)
    assert b.level is BudgetLevel.WARNING
    assert b.reason == "warning: 55% of $100.00 spent"  # forecast $85 stays under the limit
    b = budget_status(spec, at, 60.0, {"1h": 8.0, "6h": 8.0, "24h": 1.0}, 0)
    assert b.reason == "warning: 60% of $100.00 spent, forecast $108 > limit $100"
    assert (b.scope, b.match, b.period) == ("tenant", "acme", "day")


def test_budget_status_takes_aware_times():
    at = datetime(2026, 4, 16, tzinfo=UTC)
    assert budget_status(monthly(), at, 1.0, {}, 0).period_start == datetime(2026, 4, 1)
