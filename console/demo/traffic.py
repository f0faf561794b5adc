"""Synthetic but realistic LLM traffic, as OTLP spans, for the demo and benchmarks.

Several services, providers, models, tenants, routes and prompt versions;
diurnal load; log-normal latency and token counts; a background of errors and
rate limits; optional provider incidents. Deterministic for a given seed.

`TrafficModel.span` draws one LLM call (one span). `TrafficModel.request` draws
what an application does for one user request: the call, the client's retries
of a retryable failure (same trace, `http.request.resend_count`), then a
fallback model (`llmdeck.fallback=true`) when the retries are exhausted.

With `levers` (console/demo/levers.py: what the demo gateway's admin actions
changed), a request sees the levers' state at its start time: a throttled
tenant's held-back requests never happen, a group routed elsewhere while its
provider fails is served by the other group, a deployment moved to another
upstream model has that model's provider and latency. With no lever moved the
random draws are exactly the ones without levers (same spans for a seed).
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from console.demo.levers import IDLE, Levers, LeverState, Upstream

# (provider name as emitted, model, response model, median latency s, weight)
MODELS: tuple[tuple[str, str, str, float, float], ...] = (
    ("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 1.1, 0.30),
    ("openai", "gpt-4o", "gpt-4o-2024-08-06", 2.4, 0.12),
    ("openai", "gpt-4.1-mini", "gpt-4.1-mini-2025-04-14", 1.3, 0.10),
    ("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929", 2.8, 0.16),
    ("anthropic", "claude-haiku-4-5", "claude-haiku-4-5-20251001", 1.0, 0.12),
    ("gcp.gemini", "gemini-2.5-flash", "gemini-2.5-flash", 1.2, 0.10),
    ("mistral_ai", "mistral-small", "mistral-small-2503", 0.9, 0.06),
    ("openai", "acme-finetune-v2", "acme-finetune-v2", 1.5, 0.04),  # no public price
)
# Where a request goes once its retries are exhausted (requested model -> fallback model).
FALLBACKS: dict[str, str] = {
    "gpt-4o-mini": "claude-haiku-4-5",
    "gpt-4o": "claude-sonnet-4-5",
    "gpt-4.1-mini": "gpt-4o-mini",
    "claude-sonnet-4-5": "gpt-4o",
    "claude-haiku-4-5": "gpt-4o-mini",
    "gemini-2.5-flash": "gpt-4o-mini",
    "mistral-small": "gpt-4o-mini",
    "acme-finetune-v2": "gpt-4o-mini",
}
SERVICES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("support-chatbot", ("/v1/chat", "/v1/chat/stream")),
    ("search-summarizer", ("/v1/summarize",)),
    ("code-assistant", ("/v1/complete", "/v1/review")),
)
SERVICE_WEIGHTS: tuple[float, ...] = (0.5, 0.2, 0.3)
TENANTS: tuple[tuple[str, float], ...] = (
    ("acme-corp", 0.22), ("globex", 0.16), ("initech", 0.12), ("umbrella", 0.10),
    ("hooli", 0.09), ("stark-industries", 0.08), ("wayne-ent", 0.07), ("tyrell", 0.06),
    ("cyberdyne", 0.05), ("soylent", 0.05),
)
PROMPTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("support-answer", ("v12", "v13")),
    ("summarize", ("v4",)),
    ("code-complete", ("v7", "v8")),
)
ERROR_TYPES = (("timeout", 504), ("api_error", 500), ("invalid_request_error", 400))
RETRYABLE_STATUSES = frozenset({429, 500, 504, 529})

_MODEL_INDEX = {m[1]: i for i, m in enumerate(MODELS)}

PROVIDER_PREFIXES: dict[str, str] = {
    "openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini", "vertex_ai": "gcp.gemini",
    "mistral": "mistral_ai",
}
"""LiteLLM's provider prefix of `litellm_params.model` -> the provider name the spans carry."""
_SPAN_PREFIX = {"openai": "openai", "anthropic": "anthropic", "gcp.gemini": "gemini",
                "mistral_ai": "mistral"}
OTHER_UPSTREAMS: tuple[tuple[str, str, float], ...] = (
    ("anthropic", "claude-sonnet-4-20250514", 4.2),
    ("anthropic", "claude-opus-4-1-20250805", 6.5),
    ("openai", "gpt-4o-2024-05-13", 3.1),
    ("openai", "gpt-4.1-2025-04-14", 2.6),
)
"""Upstream models a demo deployment may be moved to besides MODELS' own (provider, model, median s)."""


def litellm_model(model_index: int) -> str:
    """The `litellm_params.model` of a group's demo deployment: `anthropic/claude-sonnet-4-5-20250929`."""
    provider, _, response_model, _, _ = MODELS[model_index]
    return f"{_SPAN_PREFIX[provider]}/{response_model}"


UPSTREAMS: dict[str, Upstream] = {
    **{litellm_model(i): Upstream(m[0], m[2], m[3]) for i, m in enumerate(MODELS)},
    **{f"{_SPAN_PREFIX[p]}/{name}": Upstream(p, name, median) for p, name, median in OTHER_UPSTREAMS},
}
"""`litellm_params.model` -> what serves it: provider, response model, latency profile (median s)."""


def upstream_for(litellm_params_model: str, median_s: float | None = None) -> Upstream | None:
    """The upstream a deployment's `litellm_params.model` names. One the demo has no latency
    profile for keeps `median_s` (the group's own) with the provider its prefix names; None
    when even the provider is unknown (or no `median_s` is given)."""
    known = UPSTREAMS.get(litellm_params_model)
    if known is not None or median_s is None:
        return known
    prefix, _, name = litellm_params_model.partition("/")
    provider = PROVIDER_PREFIXES.get(prefix)
    return Upstream(provider, name, median_s) if provider and name else None


def model_group_index(group: str) -> int | None:
    """The index in MODELS of a model group (a requested model name), or None."""
    return _MODEL_INDEX.get(group)


@dataclass
class Incident:
    """A provider failing between two times: rate limits, overloads and slow responses.

    `failure_share` of the provider's calls fail (60% 429 rate_limit_error, 40% 529
    overloaded_error); every call is `slowdown` times slower. `billed_share` of the
    failed calls had their prompt processed before failing (overloaded mid-stream),
    so they carry usage (input and partial output tokens) and cost money.
    """

    provider: str
    start_ns: int
    end_ns: int
    failure_share: float = 0.45
    slowdown: float = 3.0
    billed_share: float = 0.0


@dataclass(frozen=True, slots=True)
class _Call:
    """What one user request asks for, whichever model ends up serving it."""

    service_index: int
    model_index: int
    tenant: str
    route: str
    version: str
    stream: bool
    input_tokens: int
    cache_read: int
    output_tokens: int


@dataclass
class TrafficModel:
    """Draws spans; one instance per stream so the random sequence is reproducible.

    `rng` may be replaced between draws (the demo simulator seeds one per time chunk).
    """

    seed: int = 7
    incidents: list[Incident] = field(default_factory=list)
    rate_limit_share: float = 0.006
    """Background share of calls answered 429 rate_limit_error."""
    error_share: float = 0.006
    """Background share of calls failing otherwise (timeout, 500, 400)."""
    fallback_share: float = 0.05
    """Background share of calls flagged as served by a gateway fallback."""
    max_retries: int = 2
    """Client retries of a retryable failure in `request` (not `span`)."""
    levers: Levers | None = None
    """What the demo gateway's admin actions changed, by simulated time (None: nothing can)."""

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._model_cum = _cumulative([m[4] for m in MODELS])
        self._tenant_names = [t[0] for t in TENANTS]
        self._tenant_cum = _cumulative([t[1] for t in TENANTS])

    def _id(self, nbytes: int) -> str:
        return f"{self.rng.getrandbits(nbytes * 8):0{nbytes * 2}x}"

    def span(self, start_ns: int, service_index: int) -> dict[str, Any]:
        """One GenAI client span in OTLP/JSON shape."""
        call = self._draw(service_index)
        state = self._levers_at(start_ns)
        model_index = self._served(call.model_index, state, start_ns)
        span, _, _ = self._attempt(call, model_index, start_ns, self._id(16), 0, False, state)
        return span

    def request(self, start_ns: int, service_index: int) -> list[dict[str, Any]]:
        """One user request: the call, its retries and a fallback call, all in one trace."""
        rng = self.rng
        call = self._draw(service_index)
        trace_id = self._id(16)
        state = self._levers_at(start_ns)
        share = state.share(call.tenant)
        if share < 1.0 and rng.random() >= share:
            return []  # held back by the gateway's limit on this tenant: no call happens
        model_index = self._served(call.model_index, state, start_ns)
        t = start_ns
        spans: list[dict[str, Any]] = []
        for attempt in range(self.max_retries + 1):
            span, error, end_ns = self._attempt(call, model_index, t, trace_id, attempt, False, state)
            spans.append(span)
            if error is None or error[1] not in RETRYABLE_STATUSES:
                return spans
            # exponential backoff with jitter: ~0.5 s, 1 s, 2 s ...
            t = end_ns + int(0.5e9 * 2**attempt * (1.0 + rng.random()))
        fallback = FALLBACKS.get(MODELS[model_index][1])
        if fallback is not None:
            span, _, _ = self._attempt(call, _MODEL_INDEX[fallback], t, trace_id, 0, True, state)
            spans.append(span)
        return spans

    def _levers_at(self, t_ns: int) -> LeverState:
        return IDLE if self.levers is None else self.levers.at(t_ns)

    def _upstream(self, model_index: int, state: LeverState) -> Upstream:
        provider, model, response_model, median_s, _ = MODELS[model_index]
        return state.upstreams.get(model) or Upstream(provider, response_model, median_s)

    def _served(self, model_index: int, state: LeverState, t_ns: int) -> int:
        """The group that serves a request for group `model_index`: a route's target while the
        group's provider is failing (its deployment cooled down at the gateway), else itself."""
        to = state.routes.get(MODELS[model_index][1])
        if to is None or to not in _MODEL_INDEX:
            return model_index
        if self._incident(self._upstream(model_index, state).provider, t_ns) is None:
            return model_index
        return _MODEL_INDEX[to]

    def _draw(self, service_index: int) -> _Call:
        rng = self.rng
        model_index = _pick(self._model_cum, rng.random())
        routes = SERVICES[service_index][1]
        versions = PROMPTS[service_index][1]
        tenant = self._tenant_names[_pick(self._tenant_cum, rng.random())]
        route = routes[rng.randrange(len(routes))]
        version = versions[-1] if rng.random() < 0.7 else versions[0]
        stream = route.endswith("stream") or service_index == 2
        input_tokens = int(rng.lognormvariate(math.log(900), 0.8)) + 20
        cache_read = int(input_tokens * rng.random() * 0.6) if rng.random() < 0.35 else 0
        output_tokens = int(rng.lognormvariate(math.log(220), 0.7)) + 5
        return _Call(service_index, model_index, tenant, route, version, stream,
                     input_tokens, cache_read, output_tokens)

    def _attempt(
        self, call: _Call, model_index: int, start_ns: int, trace_id: str, attempt: int,
        fallback: bool, state: LeverState = IDLE,
    ) -> tuple[dict[str, Any], tuple[str, int] | None, int]:
        """One call to one model: the span, its error (type, HTTP status) if any, its end."""
        rng = self.rng
        model = MODELS[model_index][1]
        up = self._upstream(model_index, state)
        provider, response_model, median_s = up.provider, up.response_model, up.median_s
        service_index = call.service_index
        output_tokens = call.output_tokens
        latency_s = rng.lognormvariate(math.log(median_s), 0.45) * (0.6 + output_tokens / 500)
        ttft_s = (
            min(latency_s * 0.9, rng.lognormvariate(math.log(0.35), 0.5)) if call.stream else None
        )
        error: tuple[str, int] | None = None
        billed = False
        roll = rng.random()
        incident = self._incident(provider, start_ns)
        if incident is not None:
            latency_s *= incident.slowdown
            if ttft_s is not None:
                ttft_s *= incident.slowdown
            if roll < incident.failure_share:
                error = ("rate_limit_error", 429) if rng.random() < 0.6 else ("overloaded_error", 529)
                billed = rng.random() < incident.billed_share
        elif roll < self.rate_limit_share:
            error = ("rate_limit_error", 429)
        elif roll < self.rate_limit_share + self.error_share:
            error = ERROR_TYPES[rng.randrange(len(ERROR_TYPES))]
            billed = error[1] == 504  # the model was generating when the client gave up
        in_key = "gen_ai.usage.prompt_tokens" if service_index == 1 else "gen_ai.usage.input_tokens"
        out_key = (
            "gen_ai.usage.completion_tokens" if service_index == 1 else "gen_ai.usage.output_tokens"
        )
        attrs: list[dict[str, Any]] = [
            _s("gen_ai.operation.name", "chat"),
            # one service still emits the pre-1.37 attribute names
            _s("gen_ai.system" if service_index == 1 else "gen_ai.provider.name", provider),
            _s("gen_ai.request.model", model),
            _s("llmdeck.tenant", call.tenant),
            _s("http.route", call.route),
            _s("llmdeck.prompt.id", PROMPTS[service_index][0]),
            _s("llmdeck.prompt.version", call.version),
            _b("gen_ai.request.stream", call.stream),
        ]
        if error is None:
            attrs += [
                _s("gen_ai.response.model", response_model),
                _i(in_key, call.input_tokens),
                _i(out_key, output_tokens),
                _s("gen_ai.response.finish_reasons", "stop"),
            ]
            if call.cache_read:
                attrs.append(_i("gen_ai.usage.cache_read.input_tokens", call.cache_read))
            if ttft_s is not None:
                attrs.append(_d("gen_ai.response.time_to_first_chunk", round(ttft_s, 4)))
            status: dict[str, Any] = {}
        else:
            latency_s = min(latency_s, 30.0) if error[1] != 504 else 30.0
            attrs += [_s("error.type", error[0]), _i("http.response.status_code", error[1])]
            if billed:
                partial = int(output_tokens * rng.random() * 0.6)
                attrs += [_i(in_key, call.input_tokens), _i(out_key, partial)]
            status = {"code": 2, "message": f"{error[1]} {error[0]}"}
        if attempt:
            attrs.append(_i("http.request.resend_count", attempt))
        if fallback or rng.random() < self.fallback_share:
            attrs.append(_b("llmdeck.fallback", True))
        if rng.random() < 0.01:
            # PII that must never reach the cache unredacted.
            attrs.append(_s("app.user_note", f"contact jane.doe{rng.randrange(999)}@example.com"))
        end_ns = start_ns + int(latency_s * 1e9)
        span = {
            "traceId": trace_id,
            "spanId": self._id(8),
            "name": f"chat {model}",
            "kind": 3,
            "startTimeUnixNano": str(start_ns),
            "endTimeUnixNano": str(end_ns),
            "attributes": attrs,
            "status": status,
        }
        return span, error, end_ns

    def _incident(self, provider: str, t_ns: int) -> Incident | None:
        for inc in self.incidents:
            if inc.provider == provider and inc.start_ns <= t_ns < inc.end_ns:
                return inc
        return None


def _cumulative(weights: list[float]) -> list[float]:
    total = sum(weights)
    out, acc = [], 0.0
    for w in weights:
        acc += w / total
        out.append(acc)
    out[-1] = 1.0
    return out


def _pick(cumulative: list[float], u: float) -> int:
    return min(bisect.bisect_right(cumulative, u), len(cumulative) - 1)


_AMPLITUDE = 0.6
_OMEGA = 2 * math.pi / 86_400  # radians per second
_PEAK_SHIFT_S = 9 * 3_600  # the sine crosses 1.0 upwards at 09:00 UTC, peaks at 15:00


def diurnal_rate(t_ns: int) -> float:
    """Relative load at a time of day (UTC): a trough at night, a peak mid-afternoon."""
    hour = (t_ns / 3.6e12) % 24
    return 1.0 + _AMPLITUDE * math.sin(2 * math.pi * (hour - 9) / 24)


def timestamps(start_ns: int, end_ns: int, count: int, rng: random.Random) -> Iterator[int]:
    """`count` non-decreasing times in [start, end) following the diurnal curve.

    An inhomogeneous Poisson process conditioned on `count` events: `count`
    sorted uniform points in "load time" (the integral of `diurnal_rate`, built
    from exponential gaps scaled to the window) mapped back to clock time. Every
    time falls inside the window by construction, however short or quiet it is.
    """
    if count <= 0:
        return
    if end_ns <= start_ns:
        raise ValueError(f"empty time range [{start_ns}, {end_ns})")
    width_s = (end_ns - start_ns) / 1e9
    phase0 = _OMEGA * (start_ns / 1e9 - _PEAK_SHIFT_S)
    k = _AMPLITUDE / _OMEGA
    cos0 = math.cos(phase0)

    def load(s: float) -> float:  # integral of diurnal_rate over [start, start + s]
        return s - k * (math.cos(phase0 + _OMEGA * s) - cos0)

    def rate(s: float) -> float:
        return 1.0 + _AMPLITUDE * math.sin(phase0 + _OMEGA * s)

    total = load(width_s)
    gaps = [rng.expovariate(1.0) for _ in range(count + 1)]
    scale = total / sum(gaps)
    acc = 0.0
    s = 0.0
    last = start_ns
    for gap in gaps[:-1]:
        acc += gap
        target = acc * scale
        for _ in range(20):  # Newton from the previous point; load() is increasing and smooth
            step = (load(s) - target) / rate(s)
            s = min(max(s - step, 0.0), width_s)
            if abs(step) < 1e-7:
                break
        t = min(max(start_ns + int(s * 1e9), last), end_ns - 1)
        last = t
        yield t


def export_requests(
    model: TrafficModel, start_ns: int, end_ns: int, count: int, spans_per_request: int = 500
) -> Iterator[dict[str, Any]]:
    """ExportTraceServiceRequests (one resourceSpans per service) covering `count` spans."""
    batch: list[list[dict[str, Any]]] = [[] for _ in SERVICES]
    in_batch = 0
    services = range(len(SERVICES))
    rng = model.rng
    for t in timestamps(start_ns, end_ns, count, rng):
        svc = rng.choices(services, weights=SERVICE_WEIGHTS)[0]
        batch[svc].append(model.span(t, svc))
        in_batch += 1
        if in_batch >= spans_per_request:
            yield export_request(batch)
            batch = [[] for _ in SERVICES]
            in_batch = 0
    if in_batch:
        yield export_request(batch)


def write_collector_jsonl(path: str, requests: Iterator[dict[str, Any]]) -> int:
    """Write requests as the Collector file exporter does (one JSON request per line)."""
    n = 0
    with open(path, "wb") as f:
        for req in requests:
            f.write(orjson.dumps(req))
            f.write(b"\n")
            n += 1
    return n


def export_request(batch: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """One ExportTraceServiceRequest from spans grouped by service index."""
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [_s("service.name", SERVICES[i][0]),
                                            _s("deployment.environment.name", "prod")]},
                "scopeSpans": [{"scope": {"name": "llmdeck.demo", "version": "1"}, "spans": spans}],
            }
            for i, spans in enumerate(batch)
            if spans
        ]
    }


def _s(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def _i(key: str, value: int) -> dict[str, Any]:
    return {"key": key, "value": {"intValue": str(value)}}


def _d(key: str, value: float) -> dict[str, Any]:
    return {"key": key, "value": {"doubleValue": value}}


def _b(key: str, value: bool) -> dict[str, Any]:
    return {"key": key, "value": {"boolValue": value}}
