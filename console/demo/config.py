"""The configuration `llmdeck demo` runs with: its cache, fast refresh, SLOs and budgets.

Calibrated against the simulator's traffic (console/demo/simulator.py,
DEFAULT_RATE): before the scripted incident every SLO is ok and every budget
ok, at any time of day; within minutes of the incident the anthropic
availability and rate-limit SLOs page (5m and 1h burn rates above 14.4),
and the service-wide SLOs follow with tickets or pages.

Baseline of the demo traffic (seed 7, a week, ~121k spans): ~0.2% failed calls,
~0.1% rate limited, ~0.2% served by a fallback; call latency p95 ~5.1 s,
p99 ~8.4 s, p99.9 ~17 s; TTFT p95 ~760 ms, p99 ~1.03 s; spend ~$44 a day
(anthropic ~$27, openai ~$15, tenant acme-corp ~$10). Evaluated every 5 minutes
over four simulated days (seeds 1, 2, 3, 4, 7; starts at 00:10, 03:00, 05:00,
15:00, 21:30 UTC), no SLO or budget ever fired; the highest baseline burn rates
were 4.6 (1h), 1.5 (6h) and 0.56 (3d). With the incident (80% of anthropic
calls failing, each retried twice), anthropic availability paged 2-4 minutes
in, anthropic rate limits 3-6 minutes in, support-chatbot availability 6-9.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from console.config import (
    ActionsSettings,
    AlertmanagerSource,
    AnthropicBillingSource,
    BudgetSpec,
    CacheSettings,
    Config,
    OpenAIBillingSource,
    ScopeFilter,
    ScrapeSource,
    SloSpec,
    SourcesSettings,
    UiSettings,
)
from console.config_actions import LiteLLMGateway
from console.demo.billing_api import ENV_KEYS
from console.demo.gateway_world import ENV_MASTER_KEY
from console.demo.runbooks import write_demo_runbooks

if TYPE_CHECKING:
    from console.demo.endpoints import EndpointUrls

SOURCE_REFRESH_SECONDS = 2
"""How often the console reads the demo's servers."""
DEMO_GATEWAY = "demo-litellm"
"""The `[[actions.litellm]]` name of the demo's gateway (its admin API moves the simulator's traffic)."""
BILLING_SINCE_DAYS = 9
"""The demo's billing sources reach back over its week of history (and the partial day before)."""

DEMO_SLOS: tuple[SloSpec, ...] = (
    SloSpec(name="support-chatbot availability", kind="availability", objective=0.995,
            filter=ScopeFilter(service="support-chatbot")),
    SloSpec(name="anthropic availability", kind="availability", objective=0.995,
            filter=ScopeFilter(provider="anthropic")),
    SloSpec(name="anthropic rate limits", kind="rate_limit", objective=0.99,
            filter=ScopeFilter(provider="anthropic")),
    SloSpec(name="support-chatbot latency", kind="latency", objective=0.95, threshold_ms=8_000,
            filter=ScopeFilter(service="support-chatbot")),
    SloSpec(name="code-assistant latency", kind="latency", objective=0.95, threshold_ms=8_000,
            filter=ScopeFilter(service="code-assistant")),
    SloSpec(name="search-summarizer latency", kind="latency", objective=0.99, threshold_ms=15_000,
            filter=ScopeFilter(service="search-summarizer")),
    SloSpec(name="code-assistant TTFT", kind="ttft", objective=0.95, threshold_ms=1_000,
            filter=ScopeFilter(service="code-assistant")),
    SloSpec(name="rate limits (all traffic)", kind="rate_limit", objective=0.99),
    SloSpec(name="served without fallback", kind="fallback", objective=0.98),
)

DEMO_BUDGETS: tuple[BudgetSpec, ...] = (
    BudgetSpec(name="total monthly", scope="global", period="month", limit_usd=3_000),
    BudgetSpec(name="anthropic monthly", scope="provider", match="anthropic", period="month",
               limit_usd=2_000),
    BudgetSpec(name="openai weekly", scope="provider", match="openai", period="week",
               limit_usd=300),
    BudgetSpec(name="acme-corp daily", scope="tenant", match="acme-corp", period="day",
               limit_usd=25),
)


def demo_config(cache_path: Path, endpoints: EndpointUrls | None = None) -> Config:
    """The demo's Config: cache at `cache_path`, 1 s refresh, calibrated SLOs and budgets.

    With `endpoints` (the servers console/demo/endpoints.py started), it lists them
    as sources: two `[[sources.scrape]]` (`demo-vllm`, kind vllm; `demo-litellm`,
    kind litellm), one `[[sources.alertmanager]]` (`demo-alertmanager`), and the
    billing APIs as `demo-openai-billing` / `demo-anthropic-billing`, their admin keys
    `env:` refs to the random keys the demo put in its own environment.
    Its `[actions]`: environment "demo", never read-only (it acts only on the simulator),
    everyone an admin, and with `endpoints` the demo gateway's admin API as the one
    `[[actions.litellm]]` (`demo-litellm`, the LiteLLM server's URL, its master key an `env:`
    ref to the random key the demo put in its environment), and its runbook directory
    `runbooks/` next to the cache, where this writes the demo's switch-provider
    (console/demo/runbooks.py).
    Nothing is pruned: the simulated clock may run ahead of the wall clock, and
    retention is measured against the wall clock.
    """
    sources = SourcesSettings()
    actions = ActionsSettings(environment="demo", prod=False, default_role="admin")
    if endpoints is not None:
        runbooks = Path(cache_path).parent / "runbooks"
        write_demo_runbooks(runbooks)
        actions = ActionsSettings(
            environment="demo", prod=False, default_role="admin", runbook_dir=str(runbooks),
            litellm=[LiteLLMGateway(name=DEMO_GATEWAY, url=endpoints.litellm,
                                    admin_key_ref=f"env:{ENV_MASTER_KEY}")])
        every = SOURCE_REFRESH_SECONDS
        sources = SourcesSettings(
            scrape=[ScrapeSource(name="demo-vllm", url=endpoints.vllm, kind="vllm", refresh_seconds=every),
                    ScrapeSource(name="demo-litellm", url=endpoints.litellm, kind="litellm",
                                 refresh_seconds=every)],
            alertmanager=[AlertmanagerSource(name="demo-alertmanager", url=endpoints.alertmanager,
                                             refresh_seconds=every)],
            openai_billing=[OpenAIBillingSource(
                name="demo-openai-billing", url=endpoints.openai_billing, since_days=BILLING_SINCE_DAYS,
                admin_key_ref=f"env:{ENV_KEYS['openai']}", poll_seconds=60)]
            if endpoints.openai_billing else [],
            anthropic_billing=[AnthropicBillingSource(
                name="demo-anthropic-billing", url=endpoints.anthropic_billing,
                since_days=BILLING_SINCE_DAYS, admin_key_ref=f"env:{ENV_KEYS['anthropic']}",
                poll_seconds=60)]
            if endpoints.anthropic_billing else [],
        )
    return Config(
        ui=UiSettings(refresh_seconds=1),
        cache=CacheSettings(path=Path(cache_path), retention_days=None, rollup_retention_days=None),
        slos=list(DEMO_SLOS),
        budgets=list(DEMO_BUDGETS),
        sources=sources,
        actions=actions,
    )
