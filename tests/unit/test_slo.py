"""SLO maths against worked examples: budget, burn rate, time to exhaustion, alert rules, templates."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from datetime import timedelta

import pytest

from console.cache.rollups import GAMMA, bucket_of
from console.slo import (
    DEFAULT_RULES,
    REQUIRED_WINDOWS,
    AlertLevel,
    AlertState,
    BurnRule,
    RollupCounts,
    SloKind,
    SloTarget,
    WindowCounts,
    alert_state,
    availability,
    burn_rate,
    burn_rates,
    compliance,
    counts_for,
    error_budget_remaining,
    fallback_share,
    rate_limit_share,
    time_to_exhaustion,
    under_threshold,
    window_label,
)

M, H, D = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


# -- targets and counts --------------------------------------------------------------


def test_target_defaults_to_a_28_day_window_and_is_frozen() -> None:
    target = SloTarget(0.999)
    assert target.window == 28 * D
    with pytest.raises(dataclasses.FrozenInstanceError):
        target.objective = 0.99  # type: ignore[misc]


@pytest.mark.parametrize("objective", [0.0, -0.1, 1.5, math.nan])
def test_objective_outside_zero_to_one_is_rejected(objective: float) -> None:
    with pytest.raises(ValueError):
        SloTarget(objective)
    with pytest.raises(ValueError):
        burn_rate(WindowCounts(1, 1), objective)


def test_counts_reject_more_good_than_total_and_negatives() -> None:
    with pytest.raises(ValueError):
        WindowCounts(good=11, total=10)
    with pytest.raises(ValueError):
        WindowCounts(good=-1, total=10)
    with pytest.raises(ValueError):
        availability(requests=10, errors=11)


def test_compliance_is_good_over_total_and_none_without_traffic() -> None:
    # 1,000,000 requests, 400 errors -> 999,600 / 1,000,000 = 0.9996
    assert compliance(WindowCounts(999_600, 1_000_000)) == pytest.approx(0.9996)
    assert compliance(WindowCounts(0, 0)) is None


# -- error budget --------------------------------------------------------------------


def test_budget_remaining_worked_example_60_percent() -> None:
    # 99.9% over 28 days with 1,000,000 requests: the budget is 0.1% = 1,000 bad requests.
    # 400 errors spend 400 / 1,000 = 40% of it, so 60% remains.
    counts = availability(requests=1_000_000, errors=400)
    assert error_budget_remaining(counts, 0.999) == pytest.approx(0.60)


def test_budget_remaining_goes_negative_when_overspent() -> None:
    # 1,500 errors against a budget of 1,000 -> 150% spent -> -0.5 remaining.
    assert error_budget_remaining(availability(1_000_000, 1_500), 0.999) == pytest.approx(-0.5)
    # exactly 1,000 errors -> exhausted
    assert error_budget_remaining(availability(1_000_000, 1_000), 0.999) == pytest.approx(0.0)


def test_budget_untouched_without_errors_or_traffic() -> None:
    assert error_budget_remaining(availability(1_000_000, 0), 0.999) == 1.0
    assert error_budget_remaining(WindowCounts(0, 0), 0.999) == 1.0


# -- burn rate -----------------------------------------------------------------------


def test_burn_rate_half_percent_errors_against_three_nines_is_five() -> None:
    # error ratio 50 / 10,000 = 0.5%; budget 0.1%; burn = 0.005 / 0.001 = 5.
    assert burn_rate(availability(10_000, 50), 0.999) == pytest.approx(5.0)


def test_burn_rate_one_spends_the_budget_exactly_over_the_window() -> None:
    # 1 error in 1,000 = 0.1% = the whole 99.9% budget rate -> burn 1.
    assert burn_rate(availability(1_000, 1), 0.999) == pytest.approx(1.0)
    # 99% SLO, 3% errors -> 0.03 / 0.01 = 3.
    assert burn_rate(availability(100, 3), 0.99) == pytest.approx(3.0)
    assert burn_rate(availability(100, 0), 0.99) == 0.0


def test_burn_rate_is_none_without_traffic() -> None:
    assert burn_rate(WindowCounts(0, 0), 0.999) is None


def test_burn_rates_maps_every_window() -> None:
    rates = burn_rates({H: availability(10_000, 50), 5 * M: WindowCounts(0, 0)}, 0.999)
    assert rates[H] == pytest.approx(5.0)
    assert rates[5 * M] is None


def test_workbook_page_threshold_spends_two_percent_of_a_30_day_budget_in_an_hour() -> None:
    # burn 14.4 for 1h spends 14.4 * 1h / 720h = 2% of a 30-day budget.
    thirty_days = 30 * D
    assert 14.4 * (H / thirty_days) == pytest.approx(0.02)
    # and 6 for 6h spends 6 * 6 / 720 = 5%
    assert 6 * (6 * H / thirty_days) == pytest.approx(0.05)


# -- time to exhaustion --------------------------------------------------------------


def test_time_to_exhaustion_worked_examples() -> None:
    # A full 30-day budget at burn 14.4 lasts 30 d / 14.4 = 50 h.
    assert time_to_exhaustion(1.0, 14.4, 30 * D) == pytest.approx(50 * H)
    # 60% of a 28-day budget at burn 6 lasts 0.6 * 28 d / 6 = 2.8 d = 67.2 h.
    assert time_to_exhaustion(0.6, 6.0, 28 * D) == pytest.approx(timedelta(hours=67.2))
    # At burn 1 the remaining fraction lasts that fraction of the window: 0.25 * 28 d = 7 d.
    assert time_to_exhaustion(0.25, 1.0, 28 * D) == pytest.approx(7 * D)


def test_time_to_exhaustion_is_zero_once_spent_and_none_when_not_burning() -> None:
    assert time_to_exhaustion(0.0, 5.0, 28 * D) == timedelta(0)
    assert time_to_exhaustion(-0.5, 5.0, 28 * D) == timedelta(0)
    assert time_to_exhaustion(0.0, 0.0, 28 * D) == timedelta(0)  # spent already, even if idle now
    assert time_to_exhaustion(0.6, 0.0, 28 * D) is None
    assert time_to_exhaustion(0.6, None, 28 * D) is None
    assert time_to_exhaustion(0.6, -1.0, 28 * D) is None


def test_time_to_exhaustion_at_infinite_burn_is_zero_and_tiny_burn_is_capped() -> None:
    assert time_to_exhaustion(0.6, math.inf, 28 * D) == timedelta(0)
    assert time_to_exhaustion(1.0, 1e-15, 28 * D) == timedelta.max


# -- 100% objective ------------------------------------------------------------------


def test_hundred_percent_objective_has_no_budget() -> None:
    # budget = 1 - 1.0 = 0: no errors leave it untouched; one error in a million exhausts it
    # infinitely (burn inf, remaining -inf, exhaustion now).
    clean, one_error = availability(1_000_000, 0), availability(1_000_000, 1)
    assert burn_rate(clean, 1.0) == 0.0
    assert error_budget_remaining(clean, 1.0) == 1.0
    assert burn_rate(one_error, 1.0) == math.inf
    remaining = error_budget_remaining(one_error, 1.0)
    assert remaining == -math.inf
    assert time_to_exhaustion(remaining, math.inf, 28 * D) == timedelta(0)
    assert burn_rate(WindowCounts(0, 0), 1.0) is None


def test_alert_state_pages_on_infinite_burn() -> None:
    state = alert_state({H: math.inf, 5 * M: math.inf})
    assert state.level is AlertLevel.PAGE
    assert state.reason == "page: 1h burn inf and 5m burn inf > 14.4"


# -- alert rules ---------------------------------------------------------------------


def test_default_rules_are_the_workbook_table() -> None:
    assert [(r.severity, r.long_window, r.short_window, r.threshold) for r in DEFAULT_RULES] == [
        (AlertLevel.PAGE, H, 5 * M, 14.4),
        (AlertLevel.PAGE, 6 * H, 30 * M, 6.0),
        (AlertLevel.TICKET, 24 * H, 2 * H, 3.0),
        (AlertLevel.TICKET, 3 * D, 6 * H, 1.0),
    ]


def test_required_windows_are_exactly_those_the_rules_read() -> None:
    read = {w for r in DEFAULT_RULES for w in (r.long_window, r.short_window)}
    assert REQUIRED_WINDOWS == tuple(sorted(read))
    assert [window_label(w) for w in REQUIRED_WINDOWS] == ["5m", "30m", "1h", "2h", "6h", "24h", "3d"]


def test_page_fires_when_1h_and_5m_both_exceed_14_4() -> None:
    state = alert_state({H: 16.2, 5 * M: 20.1})
    assert state.level is AlertLevel.PAGE
    assert state.rule == DEFAULT_RULES[0]
    assert (state.long_burn, state.short_burn) == (16.2, 20.1)
    assert state.reason == "page: 1h burn 16.2 and 5m burn 20.1 > 14.4"
    assert state.label == "✖ page"


@pytest.mark.parametrize(
    "rates",
    [
        {H: 16.2, 5 * M: 2.0},  # a slow hour, but the burn has stopped: no page
        {H: 2.0, 5 * M: 50.0},  # a short spike the long window does not confirm
        {H: 14.4, 5 * M: 20.0},  # "exceed" is strict: exactly 14.4 does not fire
    ],
)
def test_page_needs_both_windows_above_threshold(rates: dict[timedelta, float | None]) -> None:
    assert alert_state(rates).level is AlertLevel.OK


def test_slow_page_fires_on_6h_and_30m_above_6() -> None:
    state = alert_state({H: 7.0, 5 * M: 7.0, 6 * H: 6.5, 30 * M: 8.0})
    assert state.level is AlertLevel.PAGE
    assert state.reason == "page: 6h burn 6.5 and 30m burn 8.0 > 6"


def test_ticket_fires_on_24h_and_2h_above_3() -> None:
    state = alert_state({24 * H: 3.5, 2 * H: 4.0})
    assert state.level is AlertLevel.TICKET
    assert state.reason == "ticket: 24h burn 3.5 and 2h burn 4.0 > 3"
    assert state.label == "▲ ticket"


def test_ticket_fires_on_3d_and_6h_above_1() -> None:
    state = alert_state({3 * D: 1.2, 6 * H: 1.1, 24 * H: 1.2, 2 * H: 1.1})
    assert state.level is AlertLevel.TICKET
    assert state.rule == DEFAULT_RULES[3]
    assert state.reason == "ticket: 3d burn 1.2 and 6h burn 1.1 > 1"


def test_page_outranks_ticket_and_the_first_listed_rule_wins_among_equals() -> None:
    state = alert_state({w: 20.0 for w in REQUIRED_WINDOWS})
    assert state.level is AlertLevel.PAGE
    assert state.rule == DEFAULT_RULES[0]


def test_windows_without_traffic_never_fire() -> None:
    assert alert_state({H: None, 5 * M: 50.0}).level is AlertLevel.OK
    assert alert_state({H: 50.0}).level is AlertLevel.OK  # 5m missing altogether
    assert alert_state({w: None for w in REQUIRED_WINDOWS}).level is AlertLevel.OK
    # the ticket still fires from the windows that had traffic
    assert alert_state({H: None, 5 * M: None, 24 * H: 4.0, 2 * H: 4.0}).level is AlertLevel.TICKET


def test_ok_state_renders_without_a_rule() -> None:
    state = alert_state({w: 0.5 for w in REQUIRED_WINDOWS})
    assert state == AlertState(AlertLevel.OK)
    assert state.label == "✔ ok"
    assert state.reason == "ok: no burn-rate rule fires"


def test_custom_rules_replace_the_defaults() -> None:
    rules = (BurnRule(AlertLevel.TICKET, 2 * H, 10 * M, 2.0),)
    assert alert_state({2 * H: 2.5, 10 * M: 3.0}, rules).level is AlertLevel.TICKET
    assert alert_state({H: 99.0, 5 * M: 99.0}, rules).level is AlertLevel.OK
    with pytest.raises(ValueError):
        BurnRule(AlertLevel.PAGE, 5 * M, H, 14.4)  # short window longer than long


def test_levels_are_ordered_and_render_without_colour() -> None:
    assert AlertLevel.OK < AlertLevel.TICKET < AlertLevel.PAGE
    assert max([AlertLevel.TICKET, AlertLevel.PAGE, AlertLevel.OK]) is AlertLevel.PAGE
    assert [(lv.symbol, lv.word, lv.ascii) for lv in AlertLevel] == [
        ("✔", "ok", "OK"),
        ("▲", "ticket", "TICKET"),
        ("✖", "page", "PAGE"),
    ]
    assert all(lv.ascii.isascii() for lv in AlertLevel)


def test_window_label() -> None:
    assert [window_label(w) for w in (28 * D, 30 * D, 90 * M, timedelta(seconds=45))] == [
        "28d",
        "30d",
        "90m",
        "45s",
    ]


# -- SLO kinds -----------------------------------------------------------------------


def test_share_templates_subtract_the_bad_requests() -> None:
    assert availability(1_000, 10) == WindowCounts(990, 1_000)
    assert rate_limit_share(1_000, 25) == WindowCounts(975, 1_000)
    assert fallback_share(1_000, 5) == WindowCounts(995, 1_000)


def test_latency_counts_a_bucket_good_only_if_its_upper_bound_is_within_threshold() -> None:
    # A linear toy scheme: bucket b covers (100(b-1), 100b] ms.
    def upper(b: int) -> float:
        return 100.0 * b

    hist = [(1, 50), (2, 30), (3, 15), (4, 5)]
    # Threshold 250 ms: buckets 1 and 2 (upper 100, 200) are good = 80. Bucket 3 covers
    # (200, 300] and may hold requests under 250, but it counts bad in full (conservative).
    assert under_threshold(hist, 250.0, upper) == WindowCounts(80, 100)
    # Threshold 300 ms: bucket 3's upper bound 300 <= 300, so 50 + 30 + 15 = 95 good.
    assert under_threshold(hist, 300.0, upper) == WindowCounts(95, 100)
    assert under_threshold([], 300.0, upper) == WindowCounts(0, 0)


def test_latency_with_the_cache_bucket_scheme() -> None:
    # The cache's bucket b covers (GAMMA**(b-1), GAMMA**b] ms with GAMMA = 1.02:
    #   250 ms -> bucket 279, upper 1.02**279 ~ 251.6 ms
    #   299 ms -> bucket 288, upper 1.02**288 ~ 299.81 ms
    #   300 ms -> bucket 289, upper 1.02**289 ~ 305.81 ms (300 itself lies in (299.81, 305.81])
    #   301 ms -> bucket 289
    # Threshold 300 ms: buckets 279 and 288 are good (upper <= 300); bucket 289 straddles the
    # threshold, so the 300 ms request, which truly met it, counts bad: 2 good of 4.
    def upper(b: int) -> float:
        return float(GAMMA**b)

    assert [bucket_of(ms) for ms in (250, 299, 300, 301)] == [279, 288, 289, 289]
    hist = [(279, 1), (288, 1), (289, 2)]
    assert under_threshold(hist, 300.0, upper) == WindowCounts(2, 4)
    # Threshold 299 ms: now bucket 288 (upper 299.81) straddles it too, so 299 ms counts bad.
    assert under_threshold(hist, 299.0, upper) == WindowCounts(1, 4)


def test_counts_for_dispatches_each_kind() -> None:
    rollup = RollupCounts(
        requests=1_000,
        errors=10,
        rate_limited=20,
        fallbacks=5,
        latency_hist=((1, 900), (2, 100)),
        ttft_hist=((1, 300), (2, 400)),
    )

    def upper(b: int) -> float:
        return 100.0 * b

    assert counts_for(SloKind.AVAILABILITY, rollup) == WindowCounts(990, 1_000)
    assert counts_for(SloKind.RATE_LIMIT, rollup) == WindowCounts(980, 1_000)
    assert counts_for(SloKind.FALLBACK, rollup) == WindowCounts(995, 1_000)
    # latency and TTFT totals are the requests that recorded the measurement
    assert counts_for(SloKind.LATENCY, rollup, 100.0, upper) == WindowCounts(900, 1_000)
    assert counts_for(SloKind.TTFT, rollup, 100.0, upper) == WindowCounts(300, 700)
    with pytest.raises(ValueError):
        counts_for(SloKind.LATENCY, rollup)


def test_module_imports_no_ui_database_or_network_code() -> None:
    code = (
        "import sys, console.slo\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in"
        " {'textual', 'panels', 'duckdb', 'httpx', 'connectors'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
