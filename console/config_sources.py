"""The `[sources]` section: every outside system llmdeck reads (and, for Alertmanager, writes).

HTTP sources share `HttpSource` (where, how to authenticate, how often); secrets are
named by reference only (`env:VAR`, `keyring:SERVICE/NAME`), and plain headers that
look like secrets are refused. Re-exported by `console.config`.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from console.billing import Provider
from console.config_base import HttpUrl, KeyRef, NonEmpty, _Section
from console.config_errors import SECRET_MESSAGE, looks_like_secret


def _plain_header(value: str) -> str:
    if looks_like_secret(value):
        raise ValueError(SECRET_MESSAGE + " (secret headers go in header_refs)")
    return value


PlainHeader = Annotated[str, AfterValidator(_plain_header)]
"""A header value that is not a secret (secret ones are named in `header_refs`)."""


class HttpSource(_Section):
    """What every HTTP source has: where it is, how to authenticate, how often to read it."""

    name: NonEmpty
    """Label shown in panels and used to refer to this source."""
    url: HttpUrl
    """Base URL, for example `http://prometheus:9090`."""
    path_prefix: str = ""
    """Path put before every API path (`/prometheus` for Mimir, `/select/0/prometheus` ...)."""
    timeout_seconds: float = Field(default=5, gt=0, le=120)
    """Per-request read timeout; connecting gets at most 3 s, a whole request with its
    retries at most three times this."""
    refresh_seconds: float = Field(default=15, ge=1)
    """Seconds between reads of this source while the console runs."""
    headers: dict[str, PlainHeader] = {}
    """Extra request headers that are not secrets (for example `X-Scope-OrgID` for Mimir)."""
    header_refs: dict[str, KeyRef] = {}
    """Extra headers whose values are secrets: header name -> key reference."""
    bearer_token_ref: KeyRef | None = None
    """`Authorization: Bearer` token reference: `keyring:SERVICE/NAME` or `env:VAR`."""
    basic_username: str | None = None
    """HTTP basic auth user (with `basic_password_ref`)."""
    basic_password_ref: KeyRef | None = None
    """HTTP basic auth password reference."""

    @field_validator("path_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip()
        if value and (not value.startswith("/") or any(c in value for c in "?#") or " " in value):
            raise ValueError("a path prefix starts with / and has no query, fragment or spaces")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_auth(self) -> HttpSource:
        if self.bearer_token_ref and (self.basic_username or self.basic_password_ref):
            raise ValueError("use bearer_token_ref or basic auth, not both")
        if bool(self.basic_username) != bool(self.basic_password_ref):
            raise ValueError("basic auth needs both basic_username and basic_password_ref")
        return self

    def secret_refs(self) -> list[tuple[str, str]]:
        """(setting, reference) for every secret this source uses."""
        refs = [(f"header_refs.{h}", r) for h, r in self.header_refs.items()]
        if self.bearer_token_ref:
            refs.append(("bearer_token_ref", self.bearer_token_ref))
        if self.basic_password_ref:
            refs.append(("basic_password_ref", self.basic_password_ref))
        return refs


class PrometheusSource(HttpSource):
    """A Prometheus-compatible HTTP API (Prometheus, Thanos, Mimir, VictoriaMetrics)."""

    alerts: bool = True
    """Read active alerts from `/api/v1/alerts` (VictoriaMetrics has none without vmalert)."""


class AlertmanagerSource(HttpSource):
    """An Alertmanager whose alerts and silences the console reads and writes."""


class ScrapeSource(HttpSource):
    """A model server's or gateway's `/metrics`, read directly (teams without Prometheus)."""

    kind: Literal["auto", "vllm", "litellm"] = "auto"
    """What serves the endpoint; `auto` tells from the metric names."""
    metrics_path: str = "/metrics"
    """Path of the metrics endpoint under `url` (and `path_prefix`)."""


class BillingSource(_Section):
    """A provider billing/usage API read with an admin key kept outside the config.

    `[[sources.openai_billing]]`, `[[sources.anthropic_billing]]` and
    `[[sources.openrouter_billing]]` differ only in their default `url` (and
    OpenRouter's shorter history); `llmdeck billing sync` reads them.
    """

    provider: ClassVar[Provider]
    history_days: ClassVar[int | None] = None
    """How many days back the provider keeps figures (None: no limit known); a sync never asks
    further back, so days it no longer serves are never replaced by nothing."""
    name: NonEmpty
    """Label shown in panels and used to refer to this source (and stored with its rows)."""
    admin_key_ref: KeyRef
    """Admin key reference: `keyring:SERVICE/NAME` or `env:VAR`; never the key itself
    (OpenAI: an Admin key `sk-admin-...`; Anthropic: an Admin key `sk-ant-admin...`;
    OpenRouter: a Management key)."""
    url: HttpUrl
    """Base URL without `/v1` (the provider's own by default; tests point it at loopback)."""
    poll_seconds: float = Field(default=300, ge=60)
    """Seconds between reads while the console runs; at least 60 (the providers ask for no more
    than one poll a minute)."""
    refetch_days: int = Field(default=3, ge=0, le=31)
    """Each sync fetches again this many days before the last one stored: providers revise
    recent figures."""
    since_days: int = Field(default=35, ge=1, le=400)
    """How many days back the first sync reads (and the most any later one reaches back)."""
    timeout_seconds: float = Field(default=20, gt=0, le=120)
    """Per-request read timeout; a page with its retries gets at most three times this."""

    @field_validator("url")
    @classmethod
    def _bare_url(cls, value: str) -> str:
        if any(c in value for c in "?#"):
            raise ValueError("a billing url has no query or fragment")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _refetch_within_depth(self) -> BillingSource:
        if self.refetch_days > self.since_days:
            raise ValueError(f"refetch_days ({self.refetch_days}) is more than since_days"
                             f" ({self.since_days})")
        return self


class OpenAIBillingSource(BillingSource):
    """OpenAI's Admin API: `/v1/organization/costs` and `/v1/organization/usage/completions`."""

    provider: ClassVar[Provider] = "openai"
    url: HttpUrl = "https://api.openai.com"
    """Base URL without `/v1` (default https://api.openai.com)."""


class AnthropicBillingSource(BillingSource):
    """Anthropic's Admin API: `/v1/organizations/cost_report` and `.../usage_report/messages`."""

    provider: ClassVar[Provider] = "anthropic"
    url: HttpUrl = "https://api.anthropic.com"
    """Base URL without `/v1` (default https://api.anthropic.com)."""


class OpenRouterBillingSource(BillingSource):
    """OpenRouter: `/api/v1/activity` (the last 30 completed UTC days), `/api/v1/credits`, `/api/v1/key`."""

    provider: ClassVar[Provider] = "openrouter"
    history_days: ClassVar[int | None] = 30
    url: HttpUrl = "https://openrouter.ai"
    """Base URL without `/api/v1` (default https://openrouter.ai)."""
    since_days: int = Field(default=31, ge=1, le=400)
    """How many days back the first sync reads, today included (OpenRouter keeps the last 30
    completed days of activity)."""


class LiteLLMSource(_Section):
    """A LiteLLM proxy: spend, model routes, and the gateway actions runbooks apply."""

    name: NonEmpty
    """Label shown in panels and used to refer to this source."""
    url: HttpUrl
    """Proxy base URL."""
    key_ref: KeyRef | None = None
    """Proxy key reference: `keyring:SERVICE/NAME` or `env:VAR`; None when the proxy is open."""


class OtlpFileSource(_Section):
    """OTLP/JSON or Collector file-exporter output picked up from disk."""

    name: NonEmpty
    """Label shown in panels and used to refer to this source."""
    path: NonEmpty
    """Glob of files to ingest, for example `/var/log/otel/*.jsonl`."""


class SourcesSettings(_Section):
    """The outside systems llmdeck reads from; each list may hold several named sources."""

    prometheus: list[PrometheusSource] = []
    """Metrics stores."""
    alertmanager: list[AlertmanagerSource] = []
    """Alert sources."""
    scrape: list[ScrapeSource] = []
    """`/metrics` endpoints of model servers (vLLM) and gateways (LiteLLM) read directly."""
    openai_billing: list[OpenAIBillingSource] = []
    """OpenAI organisation usage/cost APIs."""
    anthropic_billing: list[AnthropicBillingSource] = []
    """Anthropic organisation usage/cost APIs."""
    openrouter_billing: list[OpenRouterBillingSource] = []
    """OpenRouter activity and credits."""
    litellm: list[LiteLLMSource] = []
    """LiteLLM proxies."""
    otlp_files: list[OtlpFileSource] = []
    """Trace files on disk."""

    def http(self) -> list[HttpSource]:
        """Every HTTP source the connectors read (Prometheus, Alertmanager, scrapes)."""
        return [*self.prometheus, *self.alertmanager, *self.scrape]

    def billing(self) -> list[BillingSource]:
        """Every provider billing source: OpenAI, then Anthropic, then OpenRouter."""
        return [*self.openai_billing, *self.anthropic_billing, *self.openrouter_billing]

    def all(self) -> list[HttpSource | BillingSource | LiteLLMSource | OtlpFileSource]:
        """Every configured source, in config order of kind."""
        return [*self.prometheus, *self.alertmanager, *self.scrape, *self.openai_billing,
                *self.anthropic_billing, *self.openrouter_billing, *self.litellm, *self.otlp_files]
