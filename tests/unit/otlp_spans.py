"""Hand-made GenAI spans written as Collector JSON lines, for query tests that need exact data."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

EPOCH = datetime(1970, 1, 1)


def ns(t: datetime) -> int:
    """Naive-UTC datetime -> unix nanoseconds."""
    return int((t - EPOCH) / timedelta(microseconds=1)) * 1000


def kv(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    if isinstance(value, list):
        return {"key": key, "value": {"arrayValue": {"values": [kv("", v)["value"] for v in value]}}}
    return {"key": key, "value": {"stringValue": value}}


@dataclass
class Span:
    """One span; None fields are left out of the attributes."""

    start: datetime
    dur_ms: float = 100.0
    provider: str | None = "openai"
    model: str | None = "gpt-4o-mini"
    service: str = "svc"
    tenant: str | None = None
    route: str | None = None
    prompt_version: str | None = None
    error: bool = False
    http_status: int | None = None
    error_type: str | None = None
    tin: int | None = 1000
    tout: int | None = 100
    ttft_ms: float | None = None
    fallback: bool = False
    trace_id: str | None = None
    span_id: str | None = None
    parent: str | None = None
    name: str = "chat"
    attrs: dict[str, Any] = field(default_factory=dict)


def _otlp(s: Span, i: int) -> dict[str, Any]:
    attrs = [kv(k, v) for k, v in (
        ("gen_ai.provider.name", s.provider), ("gen_ai.request.model", s.model),
        ("gen_ai.usage.input_tokens", s.tin), ("gen_ai.usage.output_tokens", s.tout),
        ("llmdeck.tenant", s.tenant), ("llmdeck.route", s.route),
        ("llmdeck.prompt.version", s.prompt_version),
        ("http.response.status_code", s.http_status), ("error.type", s.error_type),
        ("gen_ai.response.time_to_first_chunk",
         None if s.ttft_ms is None else s.ttft_ms / 1000.0),
    ) if v is not None]
    if s.fallback:
        attrs.append(kv("llmdeck.fallback", True))
    attrs += [kv(k, v) for k, v in s.attrs.items()]
    out = {
        "traceId": s.trace_id or f"{i + 1:032x}",
        "spanId": s.span_id or f"{i + 1:016x}",
        "name": s.name,
        "kind": 3,
        "startTimeUnixNano": str(ns(s.start)),
        "endTimeUnixNano": str(ns(s.start) + round(s.dur_ms * 1e6)),
        "attributes": attrs,
        "status": {"code": 2, "message": "failed"} if s.error else {},
    }
    if s.parent:
        out["parentSpanId"] = s.parent
    return out


def write_spans(path: Path, spans: Iterable[Span], per_line: int = 500) -> Path:
    """Collector JSON lines, one resourceSpans per service per line."""
    items = list(spans)
    with path.open("w") as f:
        for lo in range(0, len(items), per_line):
            by_service: dict[str, list[dict[str, Any]]] = {}
            for i in range(lo, min(lo + per_line, len(items))):
                by_service.setdefault(items[i].service, []).append(_otlp(items[i], i))
            req = {"resourceSpans": [
                {"resource": {"attributes": [kv("service.name", svc)]},
                 "scopeSpans": [{"scope": {"name": "test"}, "spans": out}]}
                for svc, out in by_service.items()]}
            f.write(json.dumps(req) + "\n")
    return path
