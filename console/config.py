"""The TOML config: pydantic models and the entry points that load them.

One file at `$XDG_CONFIG_HOME/llmdeck/config.toml` (or `--config`, or
`LLMDECK_CONFIG`). A missing default file is not an error: defaults apply; a
file named explicitly must exist. Any setting can be overridden from the
environment as `LLMDECK_<SECTION>__<KEY>` (for example
`LLMDECK_CACHE__RETENTION_DAYS=3`; lists and tables as JSON). Every problem is
reported at once as `<file>:<line>: <key>: <message>` or
`env <VARIABLE>: <key>: <message>`.

Reading the file and locating keys in it lives in `console.config_toml`; problems,
error messages and environment overrides in `console.config_errors`; the names
callers import from here are re-exported.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from console import paths
from console.config_actions import ActionsSettings as ActionsSettings
from console.config_base import HttpUrl as HttpUrl
from console.config_base import KeyRef as KeyRef
from console.config_base import NonEmpty as NonEmpty
from console.config_base import _Section
from console.config_errors import CONFIG_FILE_ENV as CONFIG_FILE_ENV
from console.config_errors import ENV_PREFIX as ENV_PREFIX
from console.config_errors import SECRET_MESSAGE as SECRET_MESSAGE
from console.config_errors import ConfigError as ConfigError
from console.config_errors import ConfigProblem as ConfigProblem
from console.config_errors import Loc as Loc
from console.config_errors import apply_env, error_message
from console.config_errors import dotted_key as dotted_key
from console.config_errors import looks_like_secret as looks_like_secret
from console.config_sources import AlertmanagerSource as AlertmanagerSource
from console.config_sources import AnthropicBillingSource as AnthropicBillingSource
from console.config_sources import BillingSource as BillingSource
from console.config_sources import HttpSource as HttpSource
from console.config_sources import LiteLLMSource as LiteLLMSource
from console.config_sources import OpenAIBillingSource as OpenAIBillingSource
from console.config_sources import OpenRouterBillingSource as OpenRouterBillingSource
from console.config_sources import OtlpFileSource as OtlpFileSource
from console.config_sources import PlainHeader as PlainHeader
from console.config_sources import PrometheusSource as PrometheusSource
from console.config_sources import ScrapeSource as ScrapeSource
from console.config_sources import SourcesSettings as SourcesSettings
from console.config_toml import TomlLines, read_toml

# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


class UiSettings(_Section):
    """How the console looks and reacts."""

    refresh_seconds: float = Field(default=5, ge=1)
    """Seconds between panel refreshes; a poll re-arms only after the previous one ends."""
    theme: str = "llmdeck-dark"
    """Textual theme name."""
    keymap: dict[str, str] = {}
    """Key remaps: binding id -> key (for example `quit = "ctrl+q"`)."""


class CacheSettings(_Section):
    """Where the DuckDB trace cache lives and how long it keeps what."""

    path: Path | None = None
    """Cache file; default `$XDG_CACHE_HOME/llmdeck/cache.duckdb`."""
    retention_days: float | None = Field(default=None, gt=0)
    """Spans older than this are pruned automatically after each ingest; None keeps them."""
    rollup_retention_days: float | None = Field(default=400, gt=0)
    """Rollups outlive spans; they are pruned after this many days."""


class IngestSettings(_Section):
    """Which span attributes carry llmdeck's dimensions, and what is kept."""

    tenant_attributes: list[str] = [
        "llmdeck.tenant",
        "tenant.id",
        "tenant",
        "gen_ai.tenant.id",
        "enduser.id",
        "user.id",
    ]
    """First attribute present (span, then resource) gives the tenant."""
    route_attributes: list[str] = ["llmdeck.route", "http.route", "url.template", "route"]
    """First attribute present gives the route."""
    prompt_id_attributes: list[str] = [
        "llmdeck.prompt.id",
        "gen_ai.prompt.id",
        "gen_ai.prompt.name",
        "prompt.id",
        "prompt.name",
    ]
    """First attribute present gives the prompt id."""
    prompt_version_attributes: list[str] = [
        "llmdeck.prompt.version",
        "gen_ai.prompt.version",
        "prompt.version",
    ]
    """First attribute present gives the prompt version."""
    fallback_attributes: list[str] = ["llmdeck.fallback", "gen_ai.fallback", "fallback.used"]
    """A true value in any of these marks the call as served by a fallback."""
    keep_bodies: bool = False
    """Keep prompt/completion bodies (`gen_ai.input.messages` and friends); off by default."""
    batch_spans: int = Field(default=50_000, ge=100, le=1_000_000)
    """Spans per committed batch (one transaction each)."""


class RedactionRule(_Section):
    """A user redaction rule: a regular expression and the placeholder replacing matches."""

    name: str
    """Rule name, shown in redaction counts."""
    pattern: str
    """Python regular expression; matches are replaced."""
    placeholder: str = "[REDACTED]"
    """Replacement text."""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"bad regular expression: {exc}") from None
        return value


class RedactionSettings(_Section):
    """PII and secret redaction applied to every attribute and event text at ingest."""

    enabled: bool = True
    """Redaction on or off."""
    builtin: list[str] = ["email", "phone", "card", "ssn", "ip", "secret"]
    """Which built-in detectors run."""
    rules: list[RedactionRule] = []
    """User rules, applied after the built-in detectors."""


class PriceOverride(_Section):
    """A user price (USD per million tokens) that wins over the shipped table."""

    model: str
    """Model name as it appears in spans."""
    provider: str | None = None
    """Provider, when the same model name is sold by several."""
    input: float = Field(ge=0)
    """USD per million input tokens."""
    output: float = Field(ge=0)
    """USD per million output tokens."""
    cache_read: float | None = Field(default=None, ge=0)
    """USD per million cached input tokens; None uses the input price."""
    effective: date = date(2000, 1, 1)
    """First day this price applies."""


class PricingSettings(_Section):
    """User prices layered over the shipped price table."""

    overrides: list[PriceOverride] = []
    """Price overrides; the latest `effective` on or before a span's day wins."""


class BillingSettings(_Section):
    """Provider billing against the trace estimates (`llmdeck cost reconcile`)."""

    reconcile_threshold: float = Field(default=0.05, gt=0, lt=1)
    """A provider/model/day whose billed and estimated spend differ by more than this share
    of the billed amount (of the estimate when nothing was billed) is flagged as a gap."""


_LISTEN = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})")


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:4318`) -> (host, port); ValueError saying what is wrong."""
    m = _LISTEN.fullmatch(value.strip())
    if not m:
        raise ValueError(f"not HOST:PORT: {value!r} (for example 127.0.0.1:4318)")
    port = int(m["port"])
    if port > 65535:
        raise ValueError(f"port {port} is out of range (0-65535)")
    return m["host"].strip("[]"), port


def _listen(value: str | None) -> str | None:
    if value is not None:
        parse_listen(value)
    return value


class ReceiverSettings(_Section):
    """The OTLP/HTTP trace receiver (`llmdeck receive`, or inside the console when `listen` is set)."""

    listen: str | None = None
    """`HOST:PORT` to listen on; `llmdeck receive` defaults to 127.0.0.1:4318, the console
    process receives only when this is set. A non-loopback address needs `token`."""
    token: KeyRef | None = None
    """Where the bearer token exporters must send lives (`keyring:SERVICE/NAME` or `env:VAR`)."""
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    """The largest export body accepted (after decompression); larger ones get a 413."""
    queue_spans: int = Field(default=100_000, ge=1_000, le=10_000_000)
    """Spans received but not yet stored, past which exporters get a 503 with Retry-After."""

    _check_listen = field_validator("listen")(_listen)


class ScopeFilter(_Section):
    """Which traffic an SLO or drill-down covers; an unset field matches everything."""

    service: str | None = None
    """Service name (`service.name`)."""
    provider: str | None = None
    """Provider as stored in the cache (`openai`, `anthropic`, ...)."""
    model: str | None = None
    """Requested model."""
    tenant: str | None = None
    """Tenant."""
    route: str | None = None
    """Route."""
    prompt_version: str | None = None
    """Prompt version."""

    def items(self) -> list[tuple[str, str]]:
        """The set fields as (dimension, value), in a fixed order."""
        return [(k, v) for k, v in self.model_dump().items() if v is not None]

    def describe(self) -> str:
        """`service=support-chatbot provider=anthropic`, or `all traffic`."""
        return " ".join(f"{k}={v}" for k, v in self.items()) or "all traffic"


SloKindName = Literal["availability", "latency", "ttft", "rate_limit", "fallback"]


class PromqlSli(_Section):
    """Where an SLO takes its SLI from a Prometheus-compatible store instead of the cache.

    Queries are counter selectors (`llm_requests_total{job="gw"}`), wrapped as
    `sum(increase(SELECTOR[$window]))`, or whole expressions that contain `$window`
    themselves (substituted with each window: `5m`, `1h`, `28d`...). Give
    `good` + `total`, or `errors` + `total`, or (latency/ttft SLOs) `histogram`.
    """

    source: NonEmpty
    """Name of a `[[sources.prometheus]]` entry."""
    good: str | None = None
    """Good events (counter selector or expression with `$window`)."""
    errors: str | None = None
    """Bad events, when it is easier to count those."""
    total: str | None = None
    """All events."""
    histogram: str | None = None
    """Latency histogram metric name without `_bucket` (e.g. `llm_request_duration_seconds`)."""
    selector: str = ""
    """Label matchers for `histogram`, without braces (`job="gw",model="gpt-4o"`)."""
    method: Literal["bucket", "quantile"] = "bucket"
    """bucket: good = requests in the `le` bucket at `threshold_ms`; quantile: good = minutes
    whose `histogram_quantile(quantile)` is at or under the threshold."""
    quantile: float = Field(default=0.95, gt=0, lt=1)
    """The quantile for `method = "quantile"`."""

    @model_validator(mode="after")
    def _complete(self) -> PromqlSli:
        ratio = self.total is not None and (self.good is not None) != (self.errors is not None)
        if self.histogram is not None:
            if self.good or self.errors or self.total:
                raise ValueError("give histogram, or good/errors with total, not both")
        elif not ratio:
            raise ValueError("give good and total, or errors and total, or histogram")
        return self


class SloSpec(_Section):
    """One service level objective over the trace cache's rollups."""

    name: NonEmpty
    """Shown in panels, `status` and alerts."""
    kind: SloKindName
    """availability (non-error share), latency or ttft (share under `threshold_ms`),
    rate_limit (share not 429/529/overloaded), fallback (share served without fallback)."""
    objective: float = Field(gt=0, lt=1)
    """Target good share as a fraction, for example 0.999."""
    window_days: float = Field(default=28, gt=0, le=90)
    """Rolling SLO window in days."""
    threshold_ms: float | None = Field(default=None, gt=0)
    """Latency/TTFT threshold in ms; required for those kinds."""
    filter: ScopeFilter = ScopeFilter()
    """Which traffic counts (cache SLOs)."""
    promql: PromqlSli | None = None
    """Take the SLI from PromQL instead of the trace cache (`[slos.promql]`)."""

    @model_validator(mode="after")
    def _threshold_needed(self) -> SloSpec:
        if self.kind in ("latency", "ttft") and self.threshold_ms is None:
            raise ValueError(f"a {self.kind} SLO needs threshold_ms")
        if self.promql is not None:
            if self.filter.items():
                raise ValueError("a PromQL SLO selects its traffic in its queries, not filter")
            if self.promql.histogram is not None and self.threshold_ms is None:
                raise ValueError("a histogram SLI needs threshold_ms")
        return self

    @property
    def source(self) -> str:
        """Where the SLI comes from: `cache` or `prometheus:<source name>`."""
        return "cache" if self.promql is None else f"prometheus:{self.promql.source}"


class BudgetSpec(_Section):
    """A spend budget over a calendar period (UTC)."""

    name: NonEmpty
    """Shown in panels and `status`."""
    scope: Literal["global", "provider", "model", "tenant"] = "global"
    """What the budget covers."""
    match: str | None = None
    """The provider, model or tenant name; required unless scope is global."""
    period: Literal["day", "week", "month"] = "month"
    """Calendar period (weeks start on Monday, UTC)."""
    limit_usd: float = Field(gt=0)
    """Budget in USD for one period."""
    warning: float = Field(default=0.7, gt=0, le=1)
    """Share of the limit spent (or forecast) that raises a warning."""
    critical: float = Field(default=0.9, gt=0, le=1)
    """Share of the limit spent that is critical."""
    basis: Literal["estimated", "billed"] = "estimated"
    """What spend counts: "estimated" (traces x price table) or "billed" (what the providers
    billed, per UTC day up to each provider's last complete figure, the hours after it filled
    from the estimates). Bills carry no tenant: a billed budget cannot be scoped by tenant."""

    @field_validator("basis")
    @classmethod
    def _billable(cls, basis: str, info: ValidationInfo) -> str:
        scope = info.data.get("scope")
        if basis == "billed" and scope == "tenant":
            raise ValueError(
                'a tenant budget cannot be on basis "billed": provider bills carry no tenant'
                ' (use basis = "estimated", or scope global, provider or model)')
        return basis

    @model_validator(mode="after")
    def _consistent(self) -> BudgetSpec:
        if self.scope != "global" and not self.match:
            raise ValueError(f"a {self.scope} budget needs match")
        if self.warning >= self.critical:
            raise ValueError("warning must be below critical")
        return self


class Config(_Section):
    """The whole llmdeck configuration."""

    ui: UiSettings = UiSettings()
    sources: SourcesSettings = SourcesSettings()
    cache: CacheSettings = CacheSettings()
    ingest: IngestSettings = IngestSettings()
    redaction: RedactionSettings = RedactionSettings()
    pricing: PricingSettings = PricingSettings()
    billing: BillingSettings = BillingSettings()
    receiver: ReceiverSettings = ReceiverSettings()
    actions: ActionsSettings = ActionsSettings()
    """Runbook actions (`[actions]`): environment, prod read-only, roles, target systems."""
    slos: list[SloSpec] = []
    """Service level objectives (`[[slos]]`)."""
    budgets: list[BudgetSpec] = []
    """Spend budgets (`[[budgets]]`)."""

    def reference_problems(self) -> list[tuple[Loc, str]]:
        """What refers to something that does not exist, or clashes, with where it is."""
        problems: list[tuple[Loc, str]] = []
        seen: set[tuple[str, str]] = set()
        for kind in SourcesSettings.model_fields:
            for i, source in enumerate(getattr(self.sources, kind)):
                if (kind, source.name) in seen or any(source.name == n for k, n in seen if k != kind):
                    problems.append((("sources", kind, i, "name"),
                                     f"source name {source.name!r} is used twice; names must be unique"))
                seen.add((kind, source.name))
        slo_names = [s.name for s in self.slos]
        for name in dict.fromkeys(n for n in slo_names if slo_names.count(n) > 1):
            where = [i for i, n in enumerate(slo_names) if n == name]
            entries = " and ".join(f"#{i + 1}" for i in where)
            problems.append((("slos", where[-1], "name"),
                             f"SLO names must be unique: {name!r} names [[slos]] {entries}"
                             " (status, alerts and the SLO views key SLOs by name)"))
        proms = {p.name for p in self.sources.prometheus}
        for i, slo in enumerate(self.slos):
            if slo.promql is not None and slo.promql.source not in proms:
                known = ", ".join(sorted(proms)) or "none configured"
                problems.append((("slos", i, "promql", "source"),
                                 f"no prometheus source named {slo.promql.source!r} (known: {known})"))
        return problems

    def cache_file(self, override: Path | None = None) -> Path:
        """The cache file: `--cache`, then config, then the XDG default."""
        return override or self.cache.path or paths.default_cache_file()


def write_json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file (field docstrings become descriptions)."""
    schema = Config.model_json_schema()
    for model in _sections(_Section):  # Config and every section (a model unused
        # by Config has no $defs entry and adds nothing)
        props = schema if model is Config else schema.get("$defs", {}).get(model.__name__, {})
        docs = {}
        for base in reversed(model.__mro__):  # inherited fields keep their docstrings
            if isinstance(base, type) and issubclass(base, _Section) and base is not _Section:
                docs.update(_field_docstrings(base))
        for name, doc in docs.items():
            prop = props.get("properties", {}).get(name)
            if prop is not None:
                prop.setdefault("description", doc)
    return schema


def _sections(base: type[_Section]) -> list[type[_Section]]:
    """`base`'s subclasses, their subclasses, and so on."""
    found = []
    for sub in base.__subclasses__():
        found += [sub, *_sections(sub)]
    return found


def _field_docstrings(model: type[BaseModel]) -> dict[str, str]:
    """`name: T = ...` followed by a string literal, in the class body: {name: docstring}."""
    import ast
    import inspect
    import textwrap

    body = ast.parse(textwrap.dedent(inspect.getsource(model))).body[0]
    assert isinstance(body, ast.ClassDef)
    docs: dict[str, str] = {}
    for node, after in zip(body.body, body.body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config and where it came from (what `llmdeck config check` reports)."""

    config: Config
    file: Path
    file_found: bool
    file_sections: tuple[str, ...]
    """Top-level keys present in the file."""
    env_overrides: tuple[str, ...]
    """Environment variables that overrode a setting."""


def config_file(path: Path | None, env: Mapping[str, str]) -> tuple[Path, bool]:
    """The file to read, and whether it was named (`--config`, `LLMDECK_CONFIG`) so must exist."""
    if path is not None:
        return path.expanduser(), True
    for name, value in env.items():
        if name.upper() == CONFIG_FILE_ENV and value:
            return Path(value).expanduser(), True
    return paths.default_config_file(), False


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read, merge with the environment and validate the config; raises ConfigError."""
    return read_config(path, env).config


def read_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Like `load_config`, also saying which file and environment variables were used."""
    env = os.environ if env is None else env
    file, explicit = config_file(path, env)
    text, data, file_problem = read_toml(file, explicit)
    # A file problem stops validation, so it always comes before any env problem.
    problems: list[_Problem] = [] if file_problem is None else [((0, 0, ""), file_problem)]
    merged = dict(data or {})
    origins, env_problems = apply_env(merged, env, Config)
    problems += [((1, 0, problem.where), problem) for problem in env_problems]
    errors: list[ErrorDetails] = []
    if file_problem is None:
        try:
            config = Config.model_validate(merged)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
        else:
            for loc, message in config.reference_problems():
                order, where = _where(loc, file, TomlLines(text) if text else None, origins)
                problems.append((order, ConfigProblem(where, dotted_key(loc), message)))
            if not problems:
                sections = tuple(data or ())
                found = text is not None
                return LoadedConfig(config, file, found, sections, tuple(origins.values()))
    # Built outside the except block so no traceback carries the rejected input.
    lines = None if text is None else TomlLines(text)
    for error in errors:
        loc = tuple(error["loc"])
        order, where = _where(loc, file, lines, origins)
        problems.append(
            (order, ConfigProblem(where, dotted_key(loc), error_message(error, where, Config)))
        )
    problems.sort(key=lambda item: item[0])
    raise ConfigError([problem for _, problem in problems])


_Order = tuple[int, int, str]
"""Problems sort by line in the file, then by environment variable."""
_Problem = tuple[_Order, ConfigProblem]


def _where(
    loc: Loc, file: Path, lines: TomlLines | None, origins: Mapping[Loc, str]
) -> tuple[_Order, str]:
    for end in range(len(loc), 0, -1):
        name = origins.get(loc[:end])
        if name is not None:
            return (1, 0, f"env {name}"), f"env {name}"
    if lines is None or loc not in lines.lines:
        # An unknown section or key the environment introduced (`LLMDECK_FOO__BAR`).
        name = next((n for o, n in origins.items() if o[: len(loc)] == loc), None)
        if name is not None:
            return (1, 0, f"env {name}"), f"env {name}"
    if lines is None:
        return (0, 0, ""), str(file)
    line = lines.line_of(loc) or 1
    return (0, line, ""), f"{file}:{line}"
