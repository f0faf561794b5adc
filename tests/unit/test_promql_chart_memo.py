"""A PromQL SLO's charts are queried again only after its source has been read again."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from console.config import PromqlSli, SloSpec
from console.snapshots import Point, Series, SloDetail
from console.source_readers import ChartMemo, no_data_status, promql_detail

SPEC = SloSpec(name="api", kind="availability", objective=0.99,
               promql=PromqlSli(source="prom", errors="e_total", total="t_total"))


class Hub:
    def __init__(self) -> None:
        self.read_at = datetime(2026, 12, 4, 12)
        self.calls = 0
        self.inner = SimpleNamespace(client=object(), le_cache={})

    def client(self, name: str) -> Any:
        return self.inner.client

    def poller(self, name: str) -> Any:
        return SimpleNamespace(inner=self.inner)

    def readings(self) -> list[Any]:
        return [SimpleNamespace(name="prom", read_at=self.read_at)]

    def call(self, make: Any, timeout: float) -> Any:
        self.calls += 1
        points = (Point(datetime(2026, 12, 4, 12), float(self.calls)),)
        return SloDetail(status=None, error_rate=Series("error_rate", "fraction", points),  # type: ignore[arg-type]
                         latency_p95=Series("latency_p95", "ms", ()),
                         burn_rate=Series("burn_rate", "x", ()), markers=())


def test_charts_are_redrawn_only_after_a_new_reading() -> None:
    hub, memo = Hub(), ChartMemo()
    status = no_data_status(SPEC, "x", "stale")
    at, span = datetime(2026, 12, 4, 12, 0, 5), timedelta(hours=6)
    first = promql_detail(hub, SPEC, at, status, span, memo)  # type: ignore[arg-type]
    again = promql_detail(hub, SPEC, at, status, span, memo)  # type: ignore[arg-type]
    assert hub.calls == 1 and first.error_rate == again.error_rate
    assert again.status is status  # the table's status now, the charts of the last reading
    hub.read_at += timedelta(seconds=15)
    promql_detail(hub, SPEC, at, status, span, memo)  # type: ignore[arg-type]
    assert hub.calls == 2
