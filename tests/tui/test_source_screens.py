"""SVG snapshots of `:sources`, `:alerts` and `:serving` at 80x24 and 160x50, over fixed readings.

The source hub is replaced by `FixedHub`, which hands the backend fixed readings
(built from the real parsers where there is one: the vLLM sample through the scrape
parser and the serving derivation) with fixed states and times relative to the
pinned wall clock, so every run draws the same screen. What the connectors and the
live hub do is tested elsewhere (integration tests, tests/tui/test_console_real_sources.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from console.alertmanager_poll import AlertmanagerReading
from console.alerts import ActiveAlert, Silence, SilenceMatcher
from console.backend import Backend
from console.prometheus_poll import PrometheusReading
from console.serving import BudgetServing, DeploymentServing, ModelServing, ServingSnapshot
from console.source_hub import Reading
from console.sources import SourceStatus
from tests.tui.conftest import WALL, DemoData, settle
from tests.tui.test_snapshots import SIZES, PortableBackend


def status(name: str, kind: str, state: str, *, ago_s: float | None = 2, latency: float | None = 41.0,
           detail: str = "", error: str = "", since_s: float | None = None) -> SourceStatus:
    since = None if since_s is None else WALL - timedelta(seconds=since_s)
    last_ok = None if ago_s is None else WALL - timedelta(seconds=ago_s)
    return SourceStatus(name, kind, state, last_ok, since,  # type: ignore[arg-type]
                        detail, latency, error, WALL - timedelta(seconds=since_s or ago_s) if error else None)


def alert(source: str, origin: str, name: str, state: str, severity: str, summary: str,
          minutes: float, **labels: str) -> ActiveAlert:
    all_labels = {"alertname": name, "severity": severity, **labels}
    return ActiveAlert(source, origin, name, state, severity,  # type: ignore[arg-type]
                       tuple(sorted(all_labels.items())), summary,
                       WALL - timedelta(minutes=minutes), f"fp-{name}",
                       ("4c0e9d3b-0b8a-4a61-9c55-8f0f7a6f2b11",) if state == "suppressed" else ())


def vllm_snapshot() -> ServingSnapshot:
    models = (
        ModelServing("meta-llama/Llama-3.1-8B-Instruct", requests_per_s=12.4, errors_per_s=0.31,
                     error_ratio=0.025, ttft_p95_s=0.412, e2e_p95_s=6.8, queue_p95_s=0.9,
                     queue_mean_s=0.2, running=24, waiting=7, kv_cache_usage=0.83,
                     input_tokens_per_s=5120.0, output_tokens_per_s=1880.0),
        ModelServing("Qwen/Qwen2.5-7B-Instruct", requests_per_s=3.1, errors_per_s=0.0, error_ratio=0.0,
                     ttft_p95_s=0.118, e2e_p95_s=2.2, queue_p95_s=0.0, running=4, waiting=0,
                     kv_cache_usage=0.21, input_tokens_per_s=990.0, output_tokens_per_s=410.0),
    )
    return ServingSnapshot("gpu-vllm", "vllm", WALL - timedelta(seconds=3), 15.0, models, series=412)


def litellm_snapshot() -> ServingSnapshot:
    models = (
        ModelServing("claude-sonnet", requests_per_s=8.2, errors_per_s=1.9, error_ratio=0.23,
                     ttft_p95_s=1.9, e2e_p95_s=14.2, input_tokens_per_s=9800.0,
                     output_tokens_per_s=2100.0, spend_per_hour=41.5, spend_total=1290.2,
                     fallbacks_ok_per_s=1.4, fallbacks_failed_per_s=0.1),
        ModelServing("gpt-4o-mini", requests_per_s=21.0, errors_per_s=0.02, error_ratio=0.001,
                     ttft_p95_s=0.5, e2e_p95_s=3.1, input_tokens_per_s=30500.0,
                     output_tokens_per_s=4100.0, spend_per_hour=3.9, spend_total=201.7),
    )
    deployments = (
        DeploymentServing("d-anthropic-1", "anthropic/claude-sonnet-4", "claude-sonnet",
                          "https://api.anthropic.com", "anthropic", 1, 6.3, 1.9, 14.0, 88000.0),
        DeploymentServing("d-openai-1", "openai/gpt-4o-mini", "gpt-4o-mini", "https://api.openai.com",
                          "openai", 0, 21.0, 0.02, 9800.0, 1.9e6),
    )
    budgets = (BudgetServing("team", "support", 312.5, 1000.0, 51.0),
               BudgetServing("key", "ci-runner", float("inf"), float("inf"), None))
    return ServingSnapshot("gateway", "litellm", WALL - timedelta(seconds=3), 15.0, models, deployments,
                           budgets, series=803)


class FixedHub:
    """Stands in for the source hub: fixed readings, nothing polled."""

    def __init__(self, readings: list[Reading]) -> None:
        self._readings = tuple(readings)
        self.running = False

    def start(self) -> None:
        self.running = True

    def stop(self, timeout: float = 5.0) -> None:
        self.running = False

    def readings(self) -> tuple[Reading, ...]:
        return self._readings

    def statuses(self) -> tuple[SourceStatus, ...]:
        return tuple(r.status for r in self._readings)

    def poller(self, name: str) -> None:
        return None


def fixed_hub() -> FixedHub:
    at = WALL - timedelta(seconds=2)
    prom_alerts = (alert("prom", "prometheus", "GatewayErrorBudgetBurn", "firing", "page",
                         "claude-sonnet 5xx burn 14x", 12, team="llm"),)
    am_alerts = (
        alert("am", "alertmanager", "GatewayErrorBudgetBurn", "active", "page",
              "claude-sonnet 5xx burn 14x", 12, team="llm"),
        alert("am", "alertmanager", "VllmKvCacheFull", "active", "ticket",
              "KV cache above 80% on gpu-vllm", 31, model="meta-llama/Llama-3.1-8B-Instruct"),
        alert("am", "alertmanager", "NightlyEvalSlow", "suppressed", "ticket",
              "nightly eval run over 2h", 95, job="evals"),
    )
    silence = Silence("am", "4c0e9d3b-0b8a-4a61-9c55-8f0f7a6f2b11", "active",
                      (SilenceMatcher("alertname", "NightlyEvalSlow"),),
                      WALL - timedelta(hours=1), WALL + timedelta(hours=1, minutes=20),
                      "alice", "eval cluster maintenance")
    return FixedHub([
        Reading("prom", "prometheus", PrometheusReading("prom", at, prom_alerts, (), (), ()), at,
                status("prom", "prometheus", "live", detail="1 alerts (1 firing), 0 PromQL SLOs",
                       latency=38.0)),
        Reading("am", "alertmanager", AlertmanagerReading("am", at, am_alerts, (silence,)), at,
                status("am", "alertmanager", "live", detail="2 firing, 1 silenced/inhibited, 1 silences",
                       latency=12.0)),
        Reading("gpu-vllm", "scrape", vllm_snapshot(), at,
                status("gpu-vllm", "scrape", "live", detail="vllm, 2 models, 412 series", latency=55.0)),
        Reading("gateway", "scrape", litellm_snapshot(), at - timedelta(seconds=40),
                status("gateway", "scrape", "stale", ago_s=42, since_s=27,
                       detail="gateway: HTTP 503: upstream overloaded",
                       error="gateway: HTTP 503: upstream overloaded")),
        Reading("thanos", "prometheus", None, None,
                status("thanos", "prometheus", "down", ago_s=None, latency=None, since_s=300,
                       detail="thanos: connect: cannot connect to 10.0.0.7:9090: connection refused",
                       error="thanos: connect: cannot connect to 10.0.0.7:9090: connection refused")),
    ])


@pytest.fixture
def source_deck(make_app: Callable[..., Any], demo_data: DemoData) -> Callable[[], Any]:
    def build() -> Any:
        backend: Backend = PortableBackend(demo_data)
        backend.hub = fixed_hub()  # type: ignore[assignment]
        return make_app(backend=backend, incident_feed=False)  # no "INC-n opened" toast on top
    return build


def after(*keys: str) -> Callable[[Any], Any]:
    async def run(pilot: Any) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
    return run


@pytest.mark.parametrize("size", SIZES)
def test_sources_screen(snap_compare: Any, source_deck: Callable[[], Any], size: tuple[int, int]) -> None:
    """`5`: `6 sources · ● 4 live · ▲ 1 stale · ✖ 1 down`; rows worst first: `thanos` `✖ down`
    since 12:15:01Z, last ok `never`, with its connect error, `gateway` `▲ stale` since
    12:19:34Z (HTTP 503), then the
    live ones (demo simulator, prom 38ms, am 12ms, gpu-vllm 55ms) with what each read. The status
    line names the stale and down sources before the refresh age. 80x24: source pinned, the
    detail and last-error columns reached by scrolling right; 160x50 shows them."""
    assert snap_compare(source_deck(), terminal_size=size, run_before=after("5"))


@pytest.mark.parametrize("size", SIZES)
def test_alerts_screen(snap_compare: Any, source_deck: Callable[[], Any], size: tuple[int, int]) -> None:
    """`6`: `✖ 2 firing · ▲ 0 pending · ◌ 1 silenced`, then `thanos down: …` (an alert source
    that cannot be read is named, not taken for "nothing firing"). GatewayErrorBudgetBurn once
    (Alertmanager's copy of the Prometheus alert), `page`, for 12m; VllmKvCacheFull `ticket` 31m;
    NightlyEvalSlow `◌ silenced` last. Silences: one active, `alertname=NightlyEvalSlow`, ends in
    1h20m, by alice, its comment, the id's first 8 characters."""
    assert snap_compare(source_deck(), terminal_size=size, run_before=after("6"))


@pytest.mark.parametrize("size", SIZES)
def test_serving_screen(snap_compare: Any, source_deck: Callable[[], Any], size: tuple[int, int]) -> None:
    """`7`: notes line names each scrape source and that `gateway` is stale (HTTP 503). vLLM
    table: Llama 12.40 req/s, err 2.5%, TTFT p95 412ms, e2e 6.80s, queue 900ms, running 24,
    waiting 7, KV 83.0%; Qwen below. LiteLLM table (dimmed: its source is stale): claude-sonnet
    23.0% errors, $41.50/h, fallbacks; gpt-4o-mini. Deployments: anthropic `▲ partial outage`,
    openai `● healthy`. Budgets: support $312.50 of $1,000.00 (68.8% used, resets in 51.0h);
    ci-runner ∞. 80x24 shows the top of this (model column pinned, scroll for more)."""
    assert snap_compare(source_deck(), terminal_size=size, run_before=after("7"))


def test_a_down_scrape_source_is_a_gap_on_serving_and_a_stale_one_keeps_its_last_figures() -> None:
    from console.source_readers import read_serving

    hub = fixed_hub()
    down = Reading("old-vllm", "scrape", vllm_snapshot(), WALL - timedelta(minutes=20),
                   status("old-vllm", "scrape", "down", ago_s=1200, since_s=600, detail="timeout"))
    hub = FixedHub([*hub.readings(), down])
    page = read_serving(hub)  # type: ignore[arg-type]
    assert [(s.source if s else None, st.state) for s, st in page.readings] == [
        ("gpu-vllm", "live"), ("gateway", "stale"), (None, "down")]
