"""What a scraped `/metrics` says about model serving: the frozen snapshot the `:serving` screen shows.

One `ServingSnapshot` per read of a vLLM server or a LiteLLM proxy: a row per model
(`models`), and for LiteLLM a row per deployment (`deployments`) and per budget
(`budgets`). Rates and percentiles come from the difference with the previous read,
so the first read has them as None (shown "-"); gauges and totals are known at once.
`MODEL_COLUMNS[kind]` says which `ModelServing` fields each kind fills, so a screen
can draw one table per kind. Label values (model names, aliases, api bases) are
untrusted text: show them through `console.safe_text`. No Textual, DuckDB or
connectors here (the poller that reads the endpoint is `console.serving_poll`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    pass

ServingKind = Literal["vllm", "litellm", "unknown"]
BudgetScope = Literal["team", "key", "user", "org", "customer"]
DEPLOYMENT_STATES = {0: "healthy", 1: "partial outage", 2: "complete outage"}


@dataclass(frozen=True)
class ModelServing:
    """One model: a vLLM `model_name`, or a LiteLLM `requested_model` (model group)."""

    model: str
    requests_per_s: float | None = None
    """Finished requests (vLLM, every finish reason) or proxy requests (LiteLLM), per second."""
    errors_per_s: float | None = None
    """vLLM: finished with reason abort or error; LiteLLM: failed proxy requests."""
    error_ratio: float | None = None
    """errors / requests over the window (None when no requests)."""
    ttft_p95_s: float | None = None
    """Time to first token, 95th percentile over the window, seconds."""
    e2e_p95_s: float | None = None
    """End-to-end request latency, 95th percentile over the window, seconds."""
    queue_p95_s: float | None = None
    queue_mean_s: float | None = None
    running: float | None = None
    """Requests running now (vLLM; summed over engines)."""
    waiting: float | None = None
    """Requests waiting now (vLLM; summed over engines)."""
    kv_cache_usage: float | None = None
    """KV-cache usage now, 0..1 (vLLM; the fullest engine)."""
    input_tokens_per_s: float | None = None
    output_tokens_per_s: float | None = None
    spend_per_hour: float | None = None
    """USD per hour over the window (LiteLLM)."""
    spend_total: float | None = None
    """USD counted since the proxy started (LiteLLM; known from the first read)."""
    fallbacks_ok_per_s: float | None = None
    """Requests for this model answered by a fallback model group (LiteLLM)."""
    fallbacks_failed_per_s: float | None = None


@dataclass(frozen=True)
class DeploymentServing:
    """One LiteLLM deployment (an upstream model at one api_base), by `model_id`."""

    model_id: str
    model: str
    """The upstream model name (`litellm_model_name`)."""
    model_group: str = ""
    api_base: str = ""
    provider: str = ""
    state: int | None = None
    """0 healthy, 1 partial outage, 2 complete outage (LiteLLM's `litellm_deployment_state`)."""
    successes_per_s: float | None = None
    failures_per_s: float | None = None
    remaining_requests: float | None = None
    """The provider's `x-ratelimit-remaining-requests` as last seen (lowest over keys; inf = no limit)."""
    remaining_tokens: float | None = None

    @property
    def state_text(self) -> str:
        """'healthy', 'partial outage', 'complete outage', or '-' when unknown."""
        return DEPLOYMENT_STATES.get(self.state, "-") if self.state is not None else "-"


@dataclass(frozen=True)
class BudgetServing:
    """One LiteLLM budget: a team's, a virtual key's, a user's, an organisation's or a customer's."""

    scope: BudgetScope
    name: str
    """The alias when one is set, else the id (a key's id is its hash, never the key)."""
    remaining: float | None = None
    """USD left (inf: no budget set)."""
    max_budget: float | None = None
    hours_to_reset: float | None = None
    """Hours until the budget resets."""

    @property
    def used_ratio(self) -> float | None:
        """Share of the budget spent, when both figures are finite."""
        if self.remaining is None or not self.max_budget or math.isinf(self.max_budget):
            return None
        return (self.max_budget - self.remaining) / self.max_budget


@dataclass(frozen=True)
class ServingSnapshot:
    """One read of one scrape source, with rates over the window since the previous read."""

    source: str
    kind: ServingKind
    at: datetime
    """When this read was taken (naive UTC)."""
    window_s: float | None
    """Seconds since the previous read that rates and percentiles cover; None on the first read."""
    models: tuple[ModelServing, ...] = ()
    deployments: tuple[DeploymentServing, ...] = ()
    budgets: tuple[BudgetServing, ...] = ()
    notes: tuple[str, ...] = ()
    """Plain sentences for the screen: first read, counter resets, legacy names, nothing found..."""
    series: int = 0
    """How many samples the read returned."""

    def summary(self) -> str:
        """One line for the sources screen."""
        parts = [self.kind, f"{len(self.models)} models"]
        if self.deployments:
            parts.append(f"{len(self.deployments)} deployments")
        parts.append(f"{self.series} series")
        return ", ".join(parts)


@dataclass(frozen=True)
class Column:
    """A `ModelServing` field a kind fills, its header and how to show it."""

    field: str
    header: str
    unit: Literal["count", "rate", "ratio", "seconds", "usd", "usd_per_hour"]


_COMMON = (Column("requests_per_s", "req/s", "rate"), Column("errors_per_s", "err/s", "rate"),
           Column("error_ratio", "err %", "ratio"))
MODEL_COLUMNS: Mapping[str, tuple[Column, ...]] = {
    "vllm": (*_COMMON, Column("ttft_p95_s", "TTFT p95", "seconds"), Column("e2e_p95_s", "e2e p95", "seconds"),
             Column("queue_p95_s", "queue p95", "seconds"), Column("running", "running", "count"),
             Column("waiting", "waiting", "count"), Column("kv_cache_usage", "KV cache", "ratio"),
             Column("input_tokens_per_s", "prompt tok/s", "rate"),
             Column("output_tokens_per_s", "gen tok/s", "rate")),
    "litellm": (*_COMMON, Column("e2e_p95_s", "latency p95", "seconds"),
                Column("ttft_p95_s", "TTFT p95", "seconds"), Column("input_tokens_per_s", "in tok/s", "rate"),
                Column("output_tokens_per_s", "out tok/s", "rate"),
                Column("spend_per_hour", "$/h", "usd_per_hour"), Column("spend_total", "$ total", "usd"),
                Column("fallbacks_ok_per_s", "fallback ok/s", "rate"),
                Column("fallbacks_failed_per_s", "fallback fail/s", "rate")),
    "unknown": (),
}
"""Per kind, the model-table columns in display order (None values show as "-")."""
