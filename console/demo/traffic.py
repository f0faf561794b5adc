"""Synthetic but realistic LLM traffic, as OTLP spans, for the demo and benchmarks.

Several services, providers, models, tenants, routes and prompt versions;
diurnal load; log-normal latency and token counts; a background of errors and
rate limits; optional provider incidents. Deterministic for a given seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

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
SERVICES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("support-chatbot", ("/v1/chat", "/v1/chat/stream")),
    ("search-summarizer", ("/v1/summarize",)),
    ("code-assistant", ("/v1/complete", "/v1/review")),
)
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


@dataclass
class Incident:
    """A provider failing between two times: rate limits, overloads and slow responses."""

    provider: str
    start_ns: int
    end_ns: int
    failure_share: float = 0.45
    slowdown: float = 3.0


@dataclass
class TrafficModel:
    """Draws spans; one instance per stream so the random sequence is reproducible."""

    seed: int = 7
    incidents: list[Incident] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._model_weights = [m[4] for m in MODELS]
        self._tenant_names = [t[0] for t in TENANTS]
        self._tenant_weights = [t[1] for t in TENANTS]
        self._counter = 0

    def _id(self, nbytes: int) -> str:
        return f"{self.rng.getrandbits(nbytes * 8):0{nbytes * 2}x}"

    def span(self, start_ns: int, service_index: int) -> dict[str, Any]:
        """One GenAI client span in OTLP/JSON shape."""
        rng = self.rng
        provider, model, response_model, median_s, _ = rng.choices(
            MODELS, weights=self._model_weights
        )[0]
        service, routes = SERVICES[service_index]
        prompt_id, versions = PROMPTS[service_index]
        tenant = rng.choices(self._tenant_names, weights=self._tenant_weights)[0]
        route = routes[rng.randrange(len(routes))]
        version = versions[-1] if rng.random() < 0.7 else versions[0]
        stream = route.endswith("stream") or service_index == 2
        input_tokens = int(rng.lognormvariate(math.log(900), 0.8)) + 20
        cache_read = int(input_tokens * rng.random() * 0.6) if rng.random() < 0.35 else 0
        output_tokens = int(rng.lognormvariate(math.log(220), 0.7)) + 5
        latency_s = rng.lognormvariate(math.log(median_s), 0.45) * (0.6 + output_tokens / 500)
        ttft_s = min(latency_s * 0.9, rng.lognormvariate(math.log(0.35), 0.5)) if stream else None
        error: tuple[str, int] | None = None
        roll = rng.random()
        incident = self._incident(provider, start_ns)
        if incident is not None and roll < incident.failure_share:
            error = ("rate_limit_error", 429) if rng.random() < 0.6 else ("overloaded_error", 529)
            latency_s *= incident.slowdown
        elif incident is not None:
            latency_s *= incident.slowdown * 0.6
        elif roll < 0.006:
            error = ("rate_limit_error", 429)
        elif roll < 0.012:
            error = ERROR_TYPES[rng.randrange(len(ERROR_TYPES))]
        attrs: list[dict[str, Any]] = [
            _s("gen_ai.operation.name", "chat"),
            # one service still emits the pre-1.37 attribute names
            _s("gen_ai.system" if service_index == 1 else "gen_ai.provider.name", provider),
            _s("gen_ai.request.model", model),
            _s("llmdeck.tenant", tenant),
            _s("http.route", route),
            _s("llmdeck.prompt.id", prompt_id),
            _s("llmdeck.prompt.version", version),
            _b("gen_ai.request.stream", stream),
        ]
        if error is None:
            in_key = "gen_ai.usage.prompt_tokens" if service_index == 1 else "gen_ai.usage.input_tokens"
            out_key = (
                "gen_ai.usage.completion_tokens" if service_index == 1 else "gen_ai.usage.output_tokens"
            )
            attrs += [
                _s("gen_ai.response.model", response_model),
                _i(in_key, input_tokens),
                _i(out_key, output_tokens),
                _s("gen_ai.response.finish_reasons", "stop"),
            ]
            if cache_read:
                attrs.append(_i("gen_ai.usage.cache_read.input_tokens", cache_read))
            if ttft_s is not None:
                attrs.append(_d("gen_ai.response.time_to_first_chunk", round(ttft_s, 4)))
            status: dict[str, Any] = {}
        else:
            latency_s = min(latency_s, 30.0) if error[1] != 504 else 30.0
            attrs += [_s("error.type", error[0]), _i("http.response.status_code", error[1])]
            status = {"code": 2, "message": f"{error[1]} {error[0]}"}
        if rng.random() < 0.05:
            attrs.append(_b("llmdeck.fallback", True))
        if rng.random() < 0.01:
            # PII that must never reach the cache unredacted.
            attrs.append(_s("app.user_note", f"contact jane.doe{rng.randrange(999)}@example.com"))
        end_ns = start_ns + int(latency_s * 1e9)
        return {
            "traceId": self._id(16),
            "spanId": self._id(8),
            "name": f"chat {model}",
            "kind": 3,
            "startTimeUnixNano": str(start_ns),
            "endTimeUnixNano": str(end_ns),
            "attributes": attrs,
            "status": status,
        }

    def _incident(self, provider: str, t_ns: int) -> Incident | None:
        for inc in self.incidents:
            if inc.provider == provider and inc.start_ns <= t_ns < inc.end_ns:
                return inc
        return None


def diurnal_rate(t_ns: int) -> float:
    """Relative load at a time of day (UTC): a trough at night, a peak mid-afternoon."""
    hour = (t_ns / 3.6e12) % 24
    return 1.0 + 0.6 * math.sin(2 * math.pi * (hour - 9) / 24)


def timestamps(start_ns: int, end_ns: int, count: int, rng: random.Random) -> Iterator[int]:
    """`count` increasing times in [start, end) following the diurnal curve."""
    mean_gap = (end_ns - start_ns) / max(count, 1)
    t = float(start_ns)
    for _ in range(count):
        t += rng.expovariate(1.0) * mean_gap / diurnal_rate(int(t))
        if t >= end_ns:
            t = end_ns - 1
        yield int(t)


def export_requests(
    model: TrafficModel, start_ns: int, end_ns: int, count: int, spans_per_request: int = 500
) -> Iterator[dict[str, Any]]:
    """ExportTraceServiceRequests (one resourceSpans per service) covering `count` spans."""
    batch: list[list[dict[str, Any]]] = [[] for _ in SERVICES]
    in_batch = 0
    service_weights = (0.5, 0.2, 0.3)
    services = range(len(SERVICES))
    rng = model.rng
    for t in timestamps(start_ns, end_ns, count, rng):
        svc = rng.choices(services, weights=service_weights)[0]
        batch[svc].append(model.span(t, svc))
        in_batch += 1
        if in_batch >= spans_per_request:
            yield _request(batch)
            batch = [[] for _ in SERVICES]
            in_batch = 0
    if in_batch:
        yield _request(batch)


def write_collector_jsonl(path: str, requests: Iterator[dict[str, Any]]) -> int:
    """Write requests as the Collector file exporter does (one JSON request per line)."""
    n = 0
    with open(path, "wb") as f:
        for req in requests:
            f.write(orjson.dumps(req))
            f.write(b"\n")
            n += 1
    return n


def _request(batch: list[list[dict[str, Any]]]) -> dict[str, Any]:
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
