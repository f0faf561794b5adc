"""SLO maths: compliance, error budget, burn rate and multi-window multi-burn-rate alerts.

Pure (no Textual, no panels, no I/O): everything works on good/total counts.
Burn rate = error ratio / (1 - objective): 1.0 spends the budget exactly over the
SLO window. Budget remaining: 1.0 untouched, 0 exhausted, negative overspent.
A 100% objective has no budget: no errors leave it untouched (burn 0.0); any
error makes the burn ``inf`` and the remaining budget ``-inf``. Alerts follow the
Google SRE workbook ("Alerting on SLOs"); a window without traffic never fires.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import IntEnum, StrEnum

Histogram = Iterable[tuple[int, int]]  # (bucket, count) pairs, as in the rollups' histograms
BucketBound = Callable[[int], float]  # a bucket's upper bound in ms


def _budget(objective: float) -> float:
    """The error budget as a fraction of requests, after checking 0 < objective <= 1."""
    if not 0.0 < objective <= 1.0:
        raise ValueError(f"SLO objective must be in (0, 1], got {objective!r}")
    return 1.0 - objective


@dataclass(frozen=True)
class SloTarget:
    """An objective (fraction of good requests, e.g. 0.999) over a rolling window."""

    objective: float
    window: timedelta = timedelta(days=28)

    def __post_init__(self) -> None:
        _budget(self.objective)
        if self.window <= timedelta(0):
            raise ValueError(f"SLO window must be positive, got {self.window}")


@dataclass(frozen=True)
class WindowCounts:
    """Good and total request counts over one window (fractional from PromQL's `increase`)."""

    good: float
    total: float

    def __post_init__(self) -> None:
        if not 0 <= self.good <= self.total:
            raise ValueError(f"need 0 <= good <= total, got good={self.good} total={self.total}")

    @property
    def bad(self) -> float:
        """Requests that missed the objective."""
        return self.total - self.good


def compliance(counts: WindowCounts) -> float | None:
    """The good share of requests (the SLI), None when there was no traffic."""
    return counts.good / counts.total if counts.total else None


def burn_rate(counts: WindowCounts, objective: float) -> float | None:
    """How many times faster than sustainable the budget burns; None with no traffic, inf at 100%."""
    budget = _budget(objective)
    if counts.total == 0:
        return None
    if budget == 0.0:
        return math.inf if counts.bad else 0.0
    return (counts.bad / counts.total) / budget


def burn_rates(counts: Mapping[timedelta, WindowCounts], objective: float) -> dict[timedelta, float | None]:
    """The burn rate of every window, ready for `alert_state`."""
    return {window: burn_rate(c, objective) for window, c in counts.items()}


def error_budget_remaining(counts_over_slo_window: WindowCounts, objective: float) -> float:
    """The fraction of the window's error budget left: 1 untouched, 0 exhausted, below 0 overspent."""
    burn = burn_rate(counts_over_slo_window, objective)
    return 1.0 if burn is None else 1.0 - burn


def time_to_exhaustion(
    remaining_fraction: float, current_burn_rate: float | None, slo_window: timedelta
) -> timedelta | None:
    """How long the remaining budget lasts at the current burn: 0 if spent, None if not burning."""
    # burn 1 spends a whole budget in one SLO window; cap what timedelta cannot hold
    if remaining_fraction <= 0:
        return timedelta(0)
    if current_burn_rate is None or not current_burn_rate > 0:
        return None
    seconds = remaining_fraction * slo_window.total_seconds() / current_burn_rate
    return timedelta.max if seconds >= timedelta.max.total_seconds() else timedelta(seconds=seconds)


class SeverityMarks:
    """Colour-free renderings shared by the severity enums (value 0 ok, 1 warn, 2 worst)."""

    value: int
    name: str

    @property
    def symbol(self) -> str:
        """A one-character mark that carries the meaning without colour."""
        return ("✔", "▲", "✖")[self.value]

    @property
    def word(self) -> str:
        """The lowercase word shown beside the symbol."""
        return self.name.lower()


class AlertLevel(SeverityMarks, IntEnum):
    """Alert severity, ordered OK < TICKET < PAGE, with colour-free renderings."""

    OK = 0
    TICKET = 1
    PAGE = 2

    @property
    def ascii(self) -> str:
        """A pure-ASCII label for terminals without Unicode."""
        return self.name


@dataclass(frozen=True)
class BurnRule:
    """Fire at `severity` when both windows' burn rates exceed `threshold`."""

    severity: AlertLevel
    long_window: timedelta
    short_window: timedelta
    threshold: float

    def __post_init__(self) -> None:
        if not timedelta(0) < self.short_window < self.long_window:
            raise ValueError(f"need 0 < short window < long window in {self}")

    def fires(self, burn_rates: Mapping[timedelta, float | None]) -> bool:
        """True when both windows had traffic and burn above the threshold."""
        long, short = burn_rates.get(self.long_window), burn_rates.get(self.short_window)
        return long is not None and short is not None and long > self.threshold and short > self.threshold


_M, _H = timedelta(minutes=1), timedelta(hours=1)

DEFAULT_RULES: tuple[BurnRule, ...] = (
    BurnRule(AlertLevel.PAGE, _H, 5 * _M, 14.4),
    BurnRule(AlertLevel.PAGE, 6 * _H, 30 * _M, 6.0),
    BurnRule(AlertLevel.TICKET, 24 * _H, 2 * _H, 3.0),
    BurnRule(AlertLevel.TICKET, timedelta(days=3), 6 * _H, 1.0),
)
"""The SRE workbook's multi-window multi-burn-rate rules for a 99.9% SLO."""

REQUIRED_WINDOWS: tuple[timedelta, ...] = (5 * _M, 30 * _M, _H, 2 * _H, 6 * _H, 24 * _H, timedelta(days=3))
"""Every window DEFAULT_RULES reads, shortest first."""


def window_label(window: timedelta) -> str:
    """A compact label such as 5m, 1h, 24h, 3d or 28d."""
    seconds = int(window.total_seconds())
    if seconds % 86400 == 0 and seconds >= 2 * 86400:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


@dataclass(frozen=True)
class AlertState:
    """The highest firing severity, the rule that fired it and the burn rates it saw."""

    level: AlertLevel
    rule: BurnRule | None = None
    long_burn: float | None = None
    short_burn: float | None = None

    @property
    def symbol(self) -> str:
        """The level's colour-free symbol."""
        return self.level.symbol

    @property
    def word(self) -> str:
        """The level's lowercase word."""
        return self.level.word

    @property
    def label(self) -> str:
        """Symbol and word together, e.g. "✖ page"."""
        return f"{self.symbol} {self.word}"

    @property
    def reason(self) -> str:
        """Why this state, e.g. "page: 1h burn 16.2 and 5m burn 20.1 > 14.4"."""
        if self.rule is None:
            return f"{self.word}: no burn-rate rule fires"
        r = self.rule
        return (
            f"{self.word}: {window_label(r.long_window)} burn {self.long_burn:.1f} and"
            f" {window_label(r.short_window)} burn {self.short_burn:.1f} > {r.threshold:g}"
        )


def alert_state(
    burn_rates: Mapping[timedelta, float | None], rules: Iterable[BurnRule] = DEFAULT_RULES
) -> AlertState:
    """Evaluate the rules; the highest severity wins, and the earliest listed rule among equals."""
    best = AlertState(AlertLevel.OK)
    for rule in rules:
        if rule.severity > best.level and rule.fires(burn_rates):
            best = AlertState(
                rule.severity, rule, burn_rates.get(rule.long_window), burn_rates.get(rule.short_window)
            )
    return best


@dataclass(frozen=True)
class SloEvaluation:
    """An SLO's figures from its window counts, whatever the counts came from (cache or PromQL)."""

    compliance: float | None
    budget_remaining: float
    time_to_exhaustion: timedelta | None
    """At the 1h burn rate."""
    burn_rates: tuple[tuple[str, float | None], ...]
    """(window label, burn rate) for REQUIRED_WINDOWS, shortest first."""
    level: AlertLevel
    reason: str


def evaluate_windows(
    counts: Mapping[timedelta, WindowCounts], objective: float, slo_window: timedelta
) -> SloEvaluation:
    """Compliance, budget, burn rates and alert level from counts over REQUIRED_WINDOWS and the SLO window."""
    burns = {w: burn_rate(counts[w], objective) for w in REQUIRED_WINDOWS}
    over_window = counts[slo_window]
    remaining = error_budget_remaining(over_window, objective)
    state = alert_state(burns)
    return SloEvaluation(
        compliance=compliance(over_window),
        budget_remaining=remaining,
        time_to_exhaustion=time_to_exhaustion(remaining, burns[_H], slo_window),
        burn_rates=tuple((window_label(w), b) for w, b in burns.items()),
        level=state.level,
        reason=state.reason,
    )


class SloKind(StrEnum):
    """The SLO templates LLM services live by."""

    AVAILABILITY = "availability"
    LATENCY = "latency"
    TTFT = "ttft"
    RATE_LIMIT = "rate_limit"
    FALLBACK = "fallback"


@dataclass(frozen=True)
class RollupCounts:
    """Rollup sums over one window: the inputs every SLO kind is computed from."""

    requests: int = 0
    errors: int = 0
    rate_limited: int = 0
    fallbacks: int = 0
    latency_hist: tuple[tuple[int, int], ...] = ()
    ttft_hist: tuple[tuple[int, int], ...] = ()


def availability(requests: int, errors: int) -> WindowCounts:
    """Good requests are those that did not fail."""
    return WindowCounts(requests - errors, requests)


def rate_limit_share(requests: int, rate_limited: int) -> WindowCounts:
    """Good requests are those not rate limited (429/529, provider overload)."""
    return WindowCounts(requests - rate_limited, requests)


def fallback_share(requests: int, fallbacks: int) -> WindowCounts:
    """Good requests are those served without falling back to another model or provider."""
    return WindowCounts(requests - fallbacks, requests)


def under_threshold(hist: Histogram, threshold_ms: float, upper_bound: BucketBound) -> WindowCounts:
    """Good = requests in buckets whose upper bound is <= threshold, total = all in the histogram.

    Conservative on purpose: a bucket straddling the threshold counts bad in full,
    so compliance is never overstated (with the cache's buckets, upper bound
    GAMMA**b, it errs by at most one bucket, ~2% of the threshold).
    """
    good = total = 0
    for bucket, count in hist:
        total += count
        if upper_bound(bucket) <= threshold_ms:
            good += count
    return WindowCounts(good, total)


def counts_for(
    kind: SloKind,
    rollup: RollupCounts,
    threshold_ms: float | None = None,
    upper_bound: BucketBound | None = None,
) -> WindowCounts:
    """Good/total for an SLO kind; latency and TTFT need a threshold and the bucket upper-bound function."""
    if kind is SloKind.AVAILABILITY:
        return availability(rollup.requests, rollup.errors)
    if kind is SloKind.RATE_LIMIT:
        return rate_limit_share(rollup.requests, rollup.rate_limited)
    if kind is SloKind.FALLBACK:
        return fallback_share(rollup.requests, rollup.fallbacks)
    if threshold_ms is None or upper_bound is None:
        raise ValueError(f"a {kind} SLO needs threshold_ms and upper_bound")
    hist = rollup.latency_hist if kind is SloKind.LATENCY else rollup.ttft_hist
    return under_threshold(hist, threshold_ms, upper_bound)
