"""The receiver with the real OpenTelemetry Python SDK: its OTLP/HTTP exporter, and hostile bodies.

A `Receiver` behind the real `OtlpHttpServer` listens on a free loopback port (its event loop in a
thread of this process, so the test can read the cache while it runs). The SDK's
`OTLPSpanExporter` sends GenAI spans as protobuf, gzip on and off; OTLP/JSON bodies are built from
the SDK's own protobuf encoder through `google.protobuf.json_format` (ids turned into hex, enums into
integers, as OTLP/JSON wants) and POSTed with httpx, gzip on and off. The cache must then hold the
spans mapped (provider, model, tokens), priced and rolled up, each once.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from connectors.otlp_http import OtlpHttpServer
from console.cache.store import Cache
from console.config import Config
from console.receiver import Receiver


class Running:
    """A receiver serving on 127.0.0.1:<free port> from a thread's event loop."""

    def __init__(self, cache_path: Path) -> None:
        self.cache = Cache.open(cache_path)
        self.receiver = Receiver(self.cache, Config())
        self.server = OtlpHttpServer(self.receiver.handle, host="127.0.0.1", port=0)
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            await self.server.start()
            self.ready.set()
            await self.server.serve_until(self.stop)

        self.loop.run_until_complete(main())
        self.loop.close()

    def __enter__(self) -> Running:
        self.receiver.start()
        self.thread.start()
        assert self.ready.wait(30), "the server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)
        self.receiver.close()
        self.receiver.cache.close()

    @property
    def url(self) -> str:
        host, port = self.server.address
        return f"http://{host}:{port}/v1/traces"

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return self.receiver.cache.cursor().execute(sql).fetchall()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    with Running(tmp_path / "cache.duckdb") as r:
        yield r


def genai_spans(count: int, service: str = "support-bot") -> list[ReadableSpan]:
    """`count` finished SDK spans as GenAI instrumentations make them (both semconv generations)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("genai-test")
    for i in range(count):
        with tracer.start_as_current_span("agent turn"):
            anthropic = i % 3 == 2
            with tracer.start_as_current_span(
                    "chat claude-opus-4-1" if anthropic else "chat gpt-4o-mini",
                    kind=SpanKind.CLIENT) as span:
                if anthropic:  # the current convention
                    span.set_attribute("gen_ai.provider.name", "anthropic")
                    span.set_attribute("gen_ai.request.model", "claude-opus-4-1")
                else:  # the older one: gen_ai.system
                    span.set_attribute("gen_ai.system", "openai")
                    span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
                    span.set_attribute("gen_ai.response.model", "gpt-4o-mini-2024-07-18")
                span.set_attribute("gen_ai.operation.name", "chat")
                span.set_attribute("gen_ai.usage.input_tokens", 1200 + i)
                span.set_attribute("gen_ai.usage.output_tokens", 80)
                span.set_attribute("user.email", f"user{i}@example.com")  # redacted when stored
                if i == 4:
                    span.set_status(Status(StatusCode.ERROR, "rate limited"))
                    span.set_attribute("error.type", "429")
    provider.shutdown()
    spans = list(memory.get_finished_spans())
    assert len(spans) == 2 * count
    return spans


def span_ids(spans: list[ReadableSpan]) -> set[tuple[str, str]]:
    return {(f"{s.context.trace_id:032x}", f"{s.context.span_id:016x}") for s in spans}


def assert_stored(running: Running, spans: list[ReadableSpan]) -> None:
    """Every span stored once, mapped, priced, redacted and rolled up."""
    rows = running.query("SELECT trace_id, span_id FROM spans")
    assert len(rows) == len(set(rows)) == len(spans)
    assert set(rows) == span_ids(spans)
    genai = running.query(
        "SELECT provider, request_model, count(*), count(*) FILTER (WHERE cost_usd > 0),"
        " count(*) FILTER (WHERE unpriced), min(input_tokens) >= 1200, sum(output_tokens)"
        " FROM spans WHERE provider IS NOT NULL GROUP BY ALL ORDER BY ALL")
    n = len(spans) // 2
    anthropic = sum(1 for i in range(n) if i % 3 == 2)
    assert genai == [("anthropic", "claude-opus-4-1", anthropic, anthropic, 0, True, 80 * anthropic),
                     ("openai", "gpt-4o-mini", n - anthropic, n - anthropic, 0, True,
                      80 * (n - anthropic))]
    assert running.query("SELECT count(*) FROM spans WHERE status = 'error'") == [(1,)]
    assert running.query("SELECT count(*) FROM spans WHERE service = 'support-bot'") == [(len(spans),)]
    stored = running.query("SELECT string_agg(attributes::VARCHAR, ' ') FROM spans")[0][0] or ""
    assert "@example.com" not in stored
    minute = running.query("SELECT sum(requests), round(sum(cost_usd), 9) FROM rollup_minute")
    hour = running.query("SELECT sum(requests), round(sum(cost_usd), 9) FROM rollup_hour")
    spans_sum = running.query("SELECT count(*), round(sum(cost_usd), 9) FROM spans")
    assert minute == hour == spans_sum and spans_sum[0][1] > 0


def to_otlp_json(spans: list[ReadableSpan]) -> dict[str, Any]:
    """OTLP/JSON from the SDK's protobuf encoder: json_format, then hex ids as the spec says."""
    message = encode_spans(spans)
    data = json_format.MessageToDict(message, use_integers_for_enums=True)
    for rs in data["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in sp:
                        sp[key] = base64.b64decode(sp[key]).hex()
    return data


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip],
                         ids=["plain", "gzip"])
def test_the_sdk_exporter_protobuf_spans_are_stored_mapped_priced_and_rolled_up(
        running: Running, compression: Compression) -> None:
    spans = genai_spans(30)
    exporter = OTLPSpanExporter(endpoint=running.url, compression=compression, timeout=30)
    try:
        assert exporter.export(spans[:20]) is SpanExportResult.SUCCESS
        assert exporter.export(spans[20:]) is SpanExportResult.SUCCESS
        # the exporter's retry of a batch already stored: acknowledged, stored once
        assert exporter.export(spans[:20]) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert_stored(running, spans)
    stats = running.receiver.stats()
    assert (stats.requests, stats.spans_stored, stats.duplicates) == (3, 60, 20)


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_otlp_json_built_from_the_sdk_encoder_is_stored_like_protobuf(
        running: Running, gzipped: bool) -> None:
    spans = genai_spans(12)
    body = orjson.dumps(to_otlp_json(spans))
    headers = {"Content-Type": "application/json"}
    if gzipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    with httpx.Client(timeout=30) as client:
        response = client.post(running.url, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {}
    assert_stored(running, spans)


def test_a_partly_bad_json_request_is_a_200_with_partial_success(running: Running) -> None:
    spans = genai_spans(3)
    data = to_otlp_json(spans)
    first = data["resourceSpans"][0]["scopeSpans"][0]["spans"]
    first[0]["traceId"] = "not-an-id"
    with httpx.Client(timeout=30) as client:
        response = client.post(running.url, content=orjson.dumps(data),
                               headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1" and "traceId" in partial["errorMessage"]
    assert running.query("SELECT count(*) FROM spans") == [(5,)]
    assert running.query("SELECT count(*) FROM quarantine") == [(1,)]


def test_hostile_bodies_end_to_end_are_400s_and_the_receiver_keeps_serving(running: Running) -> None:
    from google.rpc.status_pb2 import Status as RpcStatus

    good = encode_spans(genai_spans(4)).SerializeToString()
    proto = {"Content-Type": "application/x-protobuf"}
    json_ct = {"Content-Type": "application/json"}
    with httpx.Client(timeout=30) as client:
        truncated = client.post(running.url, content=good[: len(good) // 2 + 3], headers=proto)
        assert truncated.status_code == 400
        assert truncated.headers["content-type"].startswith("application/x-protobuf")
        status = RpcStatus()
        status.ParseFromString(truncated.content)
        assert "undecodable protobuf" in status.message

        nested = b'{"resourceSpans": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        deep = client.post(running.url, content=nested, headers=json_ct)
        assert deep.status_code == 400 and "undecodable OTLP/JSON" in deep.json()["message"]

        bad_utf8 = client.post(running.url, headers=json_ct,
                               content=b'{"resourceSpans": [{"resource": {"attributes": [{"key": "a",'
                                       b' "value": {"stringValue": "\xc3\x28"}}]}}]}')
        assert bad_utf8.status_code == 400 and "not UTF-8" in bad_utf8.json()["message"]

        gzip_garbage = client.post(running.url, content=gzip.compress(b"\x0a\xff\xff\xff\xff\x0f"),
                                   headers={**proto, "Content-Encoding": "gzip"})
        assert gzip_garbage.status_code == 400

        fine = client.post(running.url, content=good, headers=proto)
        assert fine.status_code == 200
    assert running.query("SELECT count(*) FROM spans") == [(8,)]
    assert running.query("SELECT count(*) FROM quarantine") == [(0,)]


def test_a_json_body_decodes_to_the_same_request_as_its_protobuf(running: Running) -> None:
    """The JSON the tests send is the SDK's own request, not a hand-made look-alike."""
    spans = genai_spans(2)
    data = to_otlp_json(spans)
    back = ExportTraceServiceRequest()
    for rs in data["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in sp:
                        sp[key] = base64.b64encode(bytes.fromhex(sp[key])).decode()
    json_format.ParseDict(data, back)
    assert back == encode_spans(spans)
