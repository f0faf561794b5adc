"""How the source hub's readings reach the views: `:sources`, `:alerts`, `:serving`, PromQL
SLOs beside cache SLOs, and outside alerts on the overview's "Firing" line.

Every reader here runs on a poll worker thread and only reads the hub's latest
snapshots (no network I/O), except the SLO detail of a PromQL SLO, whose chart
range queries run on the hub's loop with a deadline. No Textual here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from console.alerts import ActiveAlert, Silence, counterpart, loud
from console.config import Config, SloSpec
from console.slo import REQUIRED_WINDOWS, AlertLevel, window_label
from console.snapshots import Series, SloDetail, SloStatus
from console.source_views import AlertsPage, ServingPage, SourcesPage
from console.sources import SourceStatus

if TYPE_CHECKING:
    from console.source_hub import SourceHub

CHART_DEADLINE = 8.0
"""Seconds a PromQL SLO's chart queries may take before the detail shows without charts."""


def no_data_status(spec: SloSpec, reason: str, freshness: str = "down") -> SloStatus:
    """A PromQL SLO with no figures: its source is down, not read yet, or its queries failed.

    Shown as a gap (no compliance, no burn rates), never as the last figures or as OK.
    """
    return SloStatus(
        name=spec.name, kind=spec.kind, objective=spec.objective,
        window=timedelta(days=spec.window_days), filter=spec.filter,
        threshold_ms=spec.threshold_ms, requests=0, compliance=None,
        budget_remaining=math.nan, time_to_exhaustion=None,
        burn_rates=tuple((window_label(w), None) for w in REQUIRED_WINDOWS),
        level=AlertLevel.OK, reason=reason, source=spec.source,
        freshness="down" if freshness == "down" else "stale",
    )


def promql_statuses(hub: SourceHub | None, config: Config) -> dict[str, SloStatus]:
    """Every PromQL SLO's latest status by SLO name, marked with its source's freshness."""
    from console.prometheus_poll import PrometheusReading

    specs = {s.name: s for s in config.slos if s.promql is not None}
    if not specs:
        return {}
    out: dict[str, SloStatus] = {}
    readings = {} if hub is None else {r.name: r for r in hub.readings()}
    for name, spec in specs.items():
        assert spec.promql is not None
        reading = readings.get(spec.promql.source)
        if reading is None:
            out[name] = no_data_status(spec, f"{spec.source}: not polled (console sources off)")
            continue
        status = reading.status
        snap = reading.snapshot
        if not isinstance(snap, PrometheusReading) or status.state == "down":
            why = status.detail or "not read yet"
            out[name] = no_data_status(spec, f"{spec.source} {status.state}: {why}",
                                       "down" if status.state == "down" else "stale")
            continue
        found = next((s for s in snap.slos if s.name == name), None)
        if found is None:
            error = dict(snap.errors).get(name, "no result")
            out[name] = no_data_status(spec, f"{spec.source}: {error}")
        else:
            out[name] = replace(found, source=spec.source, freshness=status.state)
    return out


def merge_slos(config: Config, cache_statuses: Sequence[SloStatus],
               promql: dict[str, SloStatus]) -> tuple[SloStatus, ...]:
    """Cache and PromQL SLOs side by side, in config order (`cache_statuses` in the config order
    of the cache SLOs)."""
    cache = iter(cache_statuses)
    out = []
    for spec in config.slos:
        if spec.promql is None:
            out.append(next(cache))
        else:
            out.append(promql.get(spec.name) or no_data_status(spec, f"{spec.source}: no result"))
    return tuple(out)


def alert_readings(hub: SourceHub | None) -> tuple[list[ActiveAlert], list[Silence],
                                                    list[SourceStatus]]:
    """Every alert and silence the alert sources last reported, and those sources' states.

    A source that is down contributes nothing: its last alerts are not passed off as current.
    """
    from console.alertmanager_poll import AlertmanagerReading
    from console.prometheus_poll import PrometheusReading

    alerts: list[ActiveAlert] = []
    silences: list[Silence] = []
    statuses: list[SourceStatus] = []
    if hub is None:
        return alerts, silences, statuses
    for reading in hub.readings():
        if reading.kind not in ("prometheus", "alertmanager"):
            continue
        statuses.append(reading.status)
        snap = reading.snapshot
        if reading.status.state == "down" or snap is None:
            continue
        if isinstance(snap, (PrometheusReading, AlertmanagerReading)):
            alerts.extend(snap.alerts)
        if isinstance(snap, AlertmanagerReading):
            silences.extend(snap.silences)
    return alerts, silences, statuses


def firing_alerts(hub: SourceHub | None) -> list[ActiveAlert]:
    """The outside alerts that page someone now, each once (Alertmanager's state decides for
    alerts it holds; silenced and inhibited ones are not firing)."""
    alerts, _, _ = alert_readings(hub)
    return loud(alerts)


def read_sources(statuses: tuple[SourceStatus, ...]) -> SourcesPage:
    return SourcesPage(statuses)


def read_alerts(hub: SourceHub | None) -> AlertsPage:
    """Every alert once: a Prometheus alert that an Alertmanager here also holds is shown as
    Alertmanager has it (with its silence state), not twice."""
    alerts, silences, statuses = alert_readings(hub)
    once = [a for a in alerts if a.origin != "prometheus" or counterpart(a, alerts) is None]
    return AlertsPage(tuple(once), tuple(silences), tuple(statuses))


def read_serving(hub: SourceHub | None) -> ServingPage:
    from console.serving import ServingSnapshot

    if hub is None:
        return ServingPage(())
    rows = []
    for reading in hub.readings():
        if reading.kind != "scrape":
            continue
        snap = reading.snapshot if isinstance(reading.snapshot, ServingSnapshot) else None
        if reading.status.state == "down":
            snap = None  # a gap, not the last figures
        rows.append((snap, reading.status))
    return ServingPage(tuple(rows))


ChartMemo = dict[tuple[str, timedelta], tuple[datetime, SloDetail]]
"""A PromQL SLO's charts by (SLO, span), with the source reading they were drawn after."""


def promql_detail(hub: SourceHub | None, spec: SloSpec, at: datetime, status: SloStatus,
                  span: timedelta, memo: ChartMemo | None = None) -> SloDetail:
    """A PromQL SLO's detail with charts from `query_range` (empty charts if the source cannot
    answer within `CHART_DEADLINE`). With `memo`, the range queries run again only after the
    source has been read again, not on every refresh of the screen."""
    from console.promql_charts import promql_detail as detail_from_promql

    empty = SloDetail(status=status, error_rate=Series("error_rate", "fraction", ()),
                      latency_p95=Series("latency_p95", "ms", ()),
                      burn_rate=Series("burn_rate", "x", ()), markers=())
    if hub is None or spec.promql is None or status.freshness == "down":
        return empty
    source = spec.promql.source
    client: Any = hub.client(source)  # the Prometheus poller's PrometheusClient
    if client is None:
        return empty
    read_at = next((r.read_at for r in hub.readings() if r.name == source), None)
    key = (spec.name, span)
    kept = memo.get(key) if memo is not None else None
    if kept is not None and read_at is not None and kept[0] == read_at:
        return replace(kept[1], status=status)
    poller = hub.poller(source)
    le_cache = getattr(getattr(poller, "inner", poller), "le_cache", None)
    try:
        detail = hub.call(lambda: detail_from_promql(client, spec, at, status, span, 72, le_cache),
                          CHART_DEADLINE)
    except Exception:  # the table row says how the source is; the charts stay empty
        return empty
    if memo is not None and read_at is not None:
        memo[key] = (read_at, detail)
    return detail
