"""`llmdeck status`: traffic per provider/model, SLO states and budget states, as text or JSON.

`gather` reads traffic, cache SLOs and budgets from the cache's rollups and
evaluates PromQL SLOs live on their Prometheus sources; `gather_without_cache`
does without a trace cache file (PromQL SLOs only; cache SLOs and budgets are
unknown); `as_json` and `write_text` render it; `exit_code` is 0 when all is well,
1 for any ticket or budget warning or an SLO or budget that could not be
evaluated, 2 for any page or critical budget.
Every string that came from the data, a source or the config is written through
`console.safe_text.cell`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import duckdb

from console import formatting as fmt
from console.cache.cost_queries import cost_snapshot
from console.cache.queries import STATUS_WINDOWS, GroupStats, status_groups
from console.cache.slo_queries import slo_statuses
from console.config import Config, SloSpec
from console.safe_text import cell
from console.snapshots import BudgetStatus, SloStatus

if TYPE_CHECKING:
    from console.promql_slo import PromqlSloResult
    from console.reconcile import Row


@dataclass(frozen=True)
class SloLine:
    """One configured SLO: its status, or why its source gave none (`error`)."""

    spec: SloSpec
    status: SloStatus | None
    error: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        """`cache` or `prometheus:<source name>`."""
        return self.spec.source

    @property
    def level(self) -> int:
        """The alert level; an SLO that could not be evaluated counts at least as a ticket."""
        return 1 if self.status is None else int(self.status.level)


@dataclass(frozen=True)
class StatusReport:
    """Everything `llmdeck status` prints, computed at `at`."""

    at: datetime
    groups: list[GroupStats]
    slos: tuple[SloLine, ...]
    budgets: tuple[BudgetStatus, ...]
    trace_cache_missing: Path | None = None
    """The trace cache file that does not exist (nothing was read from it), else None."""
    unread_budgets: tuple[str, ...] = ()
    """Budgets that could not be evaluated (no trace cache)."""
    reconciliation: tuple[Row, ...] | None = None
    """Billed vs estimated over the last RECONCILE_DAYS completed UTC days; None when no billing
    source has synced into this cache (or there is no cache). Not part of the exit code."""

    @property
    def exit_code(self) -> int:
        """0 all well, 1 any ticket/warning or unknown SLO or budget, 2 any page/critical."""
        levels = [s.level for s in self.slos] + [int(b.level) for b in self.budgets]
        return max([*levels, 1 if self.unread_budgets else 0], default=0)


def gather(cur: duckdb.DuckDBPyConnection, config: Config, at: datetime,
           promql: Mapping[str, PromqlSloResult] | None = None) -> StatusReport:
    """Traffic groups, every configured SLO (cache and PromQL, in config order) and budget at `at`.

    PromQL SLOs are evaluated live unless `promql` (results by SLO name) is given.
    """
    budgets = cost_snapshot(cur, config.budgets, at).budgets if config.budgets else ()
    cache_specs = [s for s in config.slos if s.promql is None]
    cached = iter(slo_statuses(cur, cache_specs, at))
    if promql is None and len(cache_specs) < len(config.slos):
        from console.prometheus_poll import evaluate_configured

        promql = evaluate_configured(config, at)
    lines = []
    for spec in config.slos:
        if spec.promql is None:
            lines.append(SloLine(spec, next(cached)))
            continue
        result = (promql or {}).get(spec.name)
        if result is None:
            lines.append(SloLine(spec, None, "not evaluated"))
        else:
            lines.append(SloLine(spec, result.status, result.error, result.warnings))
    return StatusReport(at, status_groups(cur, at), tuple(lines), budgets,
                        reconciliation=_reconciliation(cur, config, at))


RECONCILE_DAYS = 7


def _reconciliation(cur: duckdb.DuckDBPyConnection, config: Config, at: datetime) -> tuple[Row, ...] | None:
    from console.cache import billing_store

    syncs = billing_store.syncs(cur)
    if not syncs:
        return None
    from console.pricing import PriceTable
    from console.reconcile import reconcile

    table = PriceTable.load(config.pricing.overrides)
    return tuple(reconcile(cur, at.date(), RECONCILE_DAYS, table, config.billing.reconcile_threshold,
                           syncs))


def gather_without_cache(config: Config, at: datetime, cache_file: Path,
                         promql: Mapping[str, PromqlSloResult] | None = None) -> StatusReport:
    """The report when the trace cache file does not exist: PromQL SLOs live, the rest unknown."""
    if promql is None and any(s.promql is not None for s in config.slos):
        from console.prometheus_poll import evaluate_configured

        promql = evaluate_configured(config, at)
    lines = []
    for spec in config.slos:
        result = None if spec.promql is None else (promql or {}).get(spec.name)
        if spec.promql is None:
            lines.append(SloLine(spec, None, f"no trace cache at {cache_file}"))
        elif result is None:
            lines.append(SloLine(spec, None, "not evaluated"))
        else:
            lines.append(SloLine(spec, result.status, result.error, result.warnings))
    return StatusReport(at, [], tuple(lines), (), cache_file, tuple(b.name for b in config.budgets))


# ---------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------


def _num(value: float | None, digits: int = 6) -> float | None:
    """Rounded, and None where JSON has no number (no data, infinities)."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds(), 3)


def slo_json(line: SloLine) -> dict[str, object]:
    s, spec = line.status, line.spec
    if s is None:
        return {
            "name": spec.name, "kind": spec.kind, "objective": spec.objective,
            "window_days": spec.window_days, "threshold_ms": spec.threshold_ms, "filter": {},
            "source": line.source, "state": "unknown", "error": line.error,
            "warnings": list(line.warnings),
        }
    return {
        "name": s.name,
        "kind": s.kind,
        "objective": s.objective,
        "window_days": s.window / timedelta(days=1),
        "threshold_ms": s.threshold_ms,
        "filter": dict(s.filter.items()),
        "requests": s.requests,
        "compliance": _num(s.compliance),
        "budget_remaining": _num(s.budget_remaining),
        "time_to_exhaustion_seconds": _seconds(s.time_to_exhaustion),
        "burn_rates": {label: _num(value, 4) for label, value in s.burn_rates},
        "state": s.level.word,
        "reason": s.reason,
        "source": line.source,
        "error": None,
        "warnings": list(line.warnings),
    }


def budget_json(b: BudgetStatus) -> dict[str, object]:
    return {
        "name": b.name,
        "scope": b.scope,
        "match": b.match,
        "period": b.period,
        "period_start": b.period_start.isoformat() + "Z",
        "period_end": b.period_end.isoformat() + "Z",
        "limit_usd": b.limit_usd,
        "spent_usd": _num(b.spent_usd),
        "remaining_usd": _num(b.remaining_usd),
        "used": _num(b.used),
        "burn_usd_per_hour": {label: _num(value) for label, value in b.burn_usd_per_hour},
        "forecast_usd": _num(b.forecast_usd),
        "time_to_exhaustion_seconds": _seconds(b.time_to_exhaustion),
        "state": b.level.word,
        "reason": b.reason,
        "unpriced_requests": b.unpriced_requests,
        **_basis_json(b),
    }


def _basis_json(b: BudgetStatus) -> dict[str, object]:
    """The budget's basis; a billed one's bills (exact, as a string) and estimates, and which days
    of the period each provider's bills cover."""
    if b.billed is None:
        return {"basis": b.basis}
    x = b.billed
    return {
        "basis": b.basis,
        "basis_note": x.note,
        "billed_usd": str(x.billed_usd),
        "estimated_usd": _num(x.estimated_usd),
        "billed_days": {p: {"first": first.isoformat(), "last": last.isoformat()}
                        for p, first, last in x.days},
        "estimated_only": list(x.estimated_only),
    }


def as_json(report: StatusReport) -> dict[str, object]:
    doc: dict[str, object] = {
        "at": report.at.isoformat() + "Z",
        "groups": [g.as_json() for g in report.groups],
        "slos": [slo_json(s) for s in report.slos],
        "budgets": [budget_json(b) for b in report.budgets] + [
            {"name": name, "state": "unknown", "error": "no trace cache"} for name in report.unread_budgets],
    }
    if report.reconciliation is not None:
        from console.reconcile import row_json

        rows = report.reconciliation
        doc["reconciliation"] = {
            "days": RECONCILE_DAYS,
            "flagged": sum(1 for r in rows if r.flagged),
            "rows": [row_json(r) for r in rows],
        }
    if report.trace_cache_missing is not None:
        doc["trace_cache"] = {"state": "missing", "path": str(report.trace_cache_missing)}
    return doc


# ---------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------


def _runs_out(d: timedelta | None, event: str) -> str:
    """When `event` happens at the current rate, in words."""
    if d is None:
        return "not burning"
    if d <= timedelta(0):
        return event
    return f"{event} in {fmt.duration(d)}"


def _fmt_cost(g: GroupStats) -> str:
    if g.unpriced and g.unpriced == g.requests:
        return "n/a"
    return fmt.usd(g.cost_usd)


def _write_groups(report: StatusReport, out: TextIO) -> None:
    out.write(f"{'WIN':<4} {'PROVIDER':<12} {'MODEL':<26} {'REQ':>8} {'ERR%':>6} {'P50':>7}"
              f" {'P95':>7} {'P99':>7} {'TTFT95':>7} {'TOK IN':>10} {'TOK OUT':>9} {'COST':>10}"
              f" {'UNPRICED':>8}\n")
    seen = {g.window for g in report.groups}
    for label, _ in STATUS_WINDOWS:
        if label not in seen:
            out.write(f"{label:<4} (no traffic)\n")
    for g in report.groups:
        rate = "-" if g.error_rate is None else f"{100 * g.error_rate:.1f}"
        out.write(
            f"{g.window:<4} {cell(g.provider or '-', 12):<12} {cell(g.model or '-', 26):<26}"
            f" {g.requests:>8,} {rate:>6} {fmt.ms(g.latency_p50_ms):>7}"
            f" {fmt.ms(g.latency_p95_ms):>7} {fmt.ms(g.latency_p99_ms):>7}"
            f" {fmt.ms(g.ttft_p95_ms):>7} {g.input_tokens:>10,} {g.output_tokens:>9,}"
            f" {_fmt_cost(g):>10} {g.unpriced:>8,}\n"
        )
    if any(g.unpriced for g in report.groups):
        out.write("warning: some traffic has no price (cost shown excludes it); add"
                  " [[pricing.overrides]] to the config\n")


def _write_slos(slos: tuple[SloLine, ...], out: TextIO) -> None:
    out.write("\nSLOs\n")
    if not slos:
        out.write("  none configured (add [[slos]] to the config)\n")
        return
    for line in slos:
        s = line.status
        where = cell(line.source, 80)
        if s is None:
            out.write(f"  ? unknown {cell(line.spec.name, 40)}: {line.spec.kind} from {where}\n"
                      f"            error: {cell(line.error or '', 300)}\n")
            continue
        scope = cell(s.filter.describe(), 80) if line.source == "cache" else "PromQL"
        threshold = f" under {fmt.ms(s.threshold_ms)}" if s.threshold_ms is not None else ""
        window = f"{s.window / timedelta(days=1):g}d"
        burns = " ".join(f"{label} {fmt.burn(v)}" for label, v in s.burn_rates)
        out.write(
            f"  {s.level.symbol} {s.level.word:<7} {cell(s.name, 40)}: {s.kind}{threshold}"
            f" {100 * s.objective:g}% over {window}, {scope} [{where}]\n"
            f"            compliance {fmt.pct(s.compliance, 3)} of {s.requests:,} requests,"
            f" budget left {fmt.pct(s.budget_remaining, 1)},"
            f" {_runs_out(s.time_to_exhaustion, 'error budget spent')}\n"
            f"            burn {burns}\n"
            f"            {cell(s.reason, 200)}\n"
        )
        for warning in line.warnings:
            out.write(f"            warning: {cell(warning, 300)}\n")


def _write_budgets(budgets: tuple[BudgetStatus, ...], out: TextIO, unread: tuple[str, ...] = ()) -> None:
    out.write("\nBudgets\n")
    for name in unread:
        out.write(f"  ? unknown {cell(name, 40)}: no trace cache\n")
    if not budgets and not unread:
        out.write("  none configured (add [[budgets]] to the config)\n")
        return
    for b in budgets:
        scope = "all spend" if b.match is None else f"{b.scope} {cell(b.match, 40)}"
        rates = dict(b.burn_usd_per_hour)
        unpriced = f", {b.unpriced_requests:,} unpriced requests" if b.unpriced_requests else ""
        out.write(
            f"  {b.level.symbol} {b.level.word:<7} {cell(b.name, 40)}: {scope}, {b.period}"
            f" from {b.period_start:%Y-%m-%d}\n"
            f"            {fmt.usd(b.spent_usd)} of {fmt.usd(b.limit_usd)} spent,"
            f" forecast {fmt.usd(b.forecast_usd)}, {fmt.usd(rates.get('1h', 0.0))}/h last hour,"
            f" {_runs_out(b.time_to_exhaustion, 'limit reached')}{unpriced}\n"
            f"            {cell(b.reason, 200)}\n"
        )
        if b.billed is not None:
            out.write(f"            basis billed: {cell(b.billed.note, 200)}"
                      f" ({fmt.usd(float(b.billed.billed_usd))} billed +"
                      f" {fmt.usd(b.billed.estimated_usd)} estimated)\n")


def write_text(report: StatusReport, out: TextIO) -> None:
    out.write(f"llmdeck status at {report.at:%Y-%m-%d %H:%M:%S}Z\n")
    if report.trace_cache_missing is not None:
        where = cell(str(report.trace_cache_missing), 200)
        out.write(f"trace cache missing ({where}): no traffic figures; run `llmdeck ingest` to fill it\n")
    else:
        _write_groups(report, out)
    _write_slos(report.slos, out)
    _write_budgets(report.budgets, out, report.unread_budgets)
