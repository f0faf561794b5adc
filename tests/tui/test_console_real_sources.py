"""The console reading a real Prometheus and a real Alertmanager, as a user would see it.

Prometheus scrapes itself, evaluates an always-firing rule and sends it to
Alertmanager; a PromQL SLO reads Prometheus's own HTTP request counters. The
console (80x24, the demo cache underneath) must show both sources live on
`:sources`, the alert on `:alerts` and on the overview's Firing line, the PromQL
SLO beside the cache SLOs on `:slo` with its source, and hostile alert text as
inert text. Then Alertmanager is stopped: its source turns stale/down and the
alerts screen says so instead of "nothing firing".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.backend import Backend
from console.config import AlertmanagerSource, Config, PrometheusSource, PromqlSli, SloSpec
from console.launch import source_hub
from tests.integration.servers import (
    ServerProcess,
    free_port,
    start_alertmanager,
    start_prometheus,
    wait_until,
)
from tests.tui.conftest import WALL, DemoData
from tests.tui.screen_text import screen_text, terminal_bytes

HOSTILE = "[@click=app.quit]pwn[/] \x1b]0;title\x07 \x9b2J"

RULES = """\
groups:
  - name: console
    interval: 1s
    rules:
      - alert: GatewayErrorBudgetBurn
        expr: vector(1)
        for: 0s
        labels: {severity: page, team: llm}
        annotations: {summary: "gateway burns its error budget"}
"""


@dataclass
class Stack:
    prom_url: str
    am_url: str
    am: ServerProcess


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    d = tmp_path_factory.mktemp("console-stack")
    prom_port = free_port()
    (d / "rules.yml").write_text(RULES)
    am, am_url = start_alertmanager(d)
    try:
        prom, prom_url = start_prometheus(d, (
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "rule_files: [rules.yml]\n"
            "scrape_configs:\n  - job_name: self\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{prom_port}']}}]\n"
            f"alerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['{am_url[7:]}']}}]\n"
        ), prom_port)
        with prom:
            def arrived() -> bool:
                alerts = httpx.get(f"{am_url}/api/v2/alerts").json()
                return any(a["labels"]["alertname"] == "GatewayErrorBudgetBurn" for a in alerts)
            wait_until(arrived, 45, "the rule's alert to reach Alertmanager", interval=0.2)
            # and an alert carrying hostile text, posted straight to Alertmanager
            httpx.post(f"{am_url}/api/v2/alerts", json=[{
                "labels": {"alertname": "Hostile", "severity": "ticket", "note": HOSTILE},
                "annotations": {"summary": HOSTILE},
            }]).raise_for_status()
            yield Stack(prom_url, am_url, am)
    finally:
        am.stop()


def console_config(demo: DemoData, stack: Stack) -> Config:
    slo = SloSpec(name="prometheus api availability", kind="availability", objective=0.99,
                  window_days=1, promql=PromqlSli(
                      source="prom", errors='prometheus_http_requests_total{code=~"5.."}',
                      total="prometheus_http_requests_total"))
    sources = demo.config.sources.model_copy(update={
        "prometheus": [PrometheusSource(name="prom", url=stack.prom_url, refresh_seconds=1)],
        "alertmanager": [AlertmanagerSource(name="am", url=stack.am_url, refresh_seconds=1)],
    })
    return demo.config.model_copy(update={"sources": sources, "slos": [*demo.config.slos, slo]})


async def wait_text(pilot: Any, *needles: str, timeout: float = 20.0) -> str:
    """Pause until every needle is on the screen; fail with the screen's text."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        await pilot.pause(0.05)
        text = screen_text(pilot.app)
        if all(n in text for n in needles):
            return text
    raise AssertionError(f"{needles} not on screen after {timeout}s:\n{text}")


async def test_console_shows_real_prometheus_and_alertmanager_sources(
        demo_data: DemoData, stack: Stack, make_app: Any, tmp_path: Path) -> None:
    config = console_config(demo_data, stack)
    hub = source_hub(config)
    assert hub is not None
    backend = Backend(demo_data.cache, config, lambda: demo_data.at, [demo_data.simulator], hub=hub)
    app = make_app(backend=backend)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        for _ in range(400):  # both sources polled once (the hub starts after the first paint)
            if all(s.state == "live" for s in hub.statuses()):
                break
            await asyncio.sleep(0.05)
        assert [(s.name, s.state) for s in hub.statuses()] == [("prom", "live"), ("am", "live")]

        await pilot.press("5")
        text = await wait_text(pilot, "prom", "am", "prometheus", "alertmanager")
        assert "✖ down" not in text

        await pilot.press("6")
        text = await wait_text(pilot, "GatewayErrorBudgetBurn", "Hostile")
        assert "firing" in text
        raw = terminal_bytes(app)
        for forbidden in ("\x1b]0;", "\x9b"):
            assert forbidden not in raw  # hostile label text reached the terminal inert
        assert "\\x1b]0;title" in text or "\\x1b" in text

        await pilot.press("2")
        await wait_text(pilot, "prometheus api")

        await pilot.press("1")
        await wait_text(pilot, "Firing:")
        assert app.is_running  # the [@click=app.quit] in the alert text did nothing

        # Alertmanager goes away: the source is not live any more and :alerts says so
        stack.am.stop()
        await pilot.press("6")
        for _ in range(200):
            am_state = hub.statuses()[1].state
            if am_state != "live":
                break
            await asyncio.sleep(0.05)
        assert hub.statuses()[1].state in ("stale", "down")
        text = await wait_text(pilot, "am ")
        assert "connect" in text or "stale" in text or "down" in text
    assert not hub.running  # stopped with the app
    assert WALL  # the status lines used the pinned wall clock
