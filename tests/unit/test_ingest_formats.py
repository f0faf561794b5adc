"""Every input format `llmdeck ingest` accepts stores the same rows with the right values.

One small canonical set of GenAI spans is written in each format (OTLP/JSON
export request, Collector JSON lines, Collector length-prefixed protobuf, flat
JSON lines, Parquet, and their .gz/.zst forms); each must land in the cache
with identical column values. The shipped example payloads are checked too.
"""

from __future__ import annotations

import gzip
import json
import struct
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from console.cli import main
from console.pricing import PriceTable

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns
MS = 1_000_000


@dataclass
class Canon:
    """One span as the test wants it stored; `trace_id`/`span_id` as written (any case)."""

    trace_id: str
    span_id: str
    parent: str | None
    service: str
    name: str
    start_ns: int
    duration_ms: float
    provider: str
    request_model: str
    response_model: str | None = None
    status_code: int = 0
    status_message: str | None = None
    error_type: str | None = None
    http_status: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read: int | None = None
    ttft_s: float | None = None
    tenant: str | None = None
    route: str | None = None
    prompt_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # what the row must say
    @property
    def status(self) -> str:
        if self.status_code == 2 or self.error_type or (self.http_status or 0) >= 500:
            return "error"
        return "ok" if self.status_code == 1 else "unset"

    @property
    def rate_limited(self) -> bool:
        return self.http_status in (429, 529) or "rate_limit" in (self.error_type or "") or (
            "overloaded" in (self.error_type or ""))

    def expected_cost(self) -> float | None:
        model = self.response_model or self.request_model
        price = PriceTable.load().lookup(self.provider, model, date(2026, 1, 1))
        if price is None:
            return None
        return price.cost(self.input_tokens or 0, self.output_tokens or 0, self.cache_read or 0)


CANON: list[Canon] = [
    Canon("5B8EFFF798038103D269B633813FC60C", "EEE19B7EC3C1B174", "EEE19B7EC3C1B173",
          "support-chatbot", "chat gpt-4o-mini", T0 + 1_500 * MS + 123, 1250.0, "openai",
          "gpt-4o-mini", "gpt-4o-mini-2024-07-18", input_tokens=1200, output_tokens=180,
          cache_read=800, ttft_s=0.41, tenant="acme-corp", route="/v1/chat",
          prompt_version="v13", extra={"server.port": 443}),
    Canon("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b175", "eee19b7ec3c1b173",
          "support-chatbot", "chat claude-haiku-4-5", T0 + 61_000 * MS, 90.0, "anthropic",
          "claude-haiku-4-5", status_code=2, status_message="overloaded",
          error_type="overloaded_error", http_status=529, tenant="globex", route="/v1/chat"),
    Canon("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", None, "search-summarizer",
          "chat gpt-4o", T0 + 3_600_000 * MS, 2400.5, "openai", "gpt-4o",
          "gpt-4o-2024-08-06", status_code=1, input_tokens=3000, output_tokens=400,
          tenant="initech", route="/v1/summarize", prompt_version="v4"),
    Canon("0af7651916cd43dd8448eb211c8031aa", "b7ad6b71692033aa", None, "code-assistant",
          "chat acme-finetune-v2", T0 + 7_200_000 * MS, 800.0, "openai", "acme-finetune-v2",
          input_tokens=500, output_tokens=50, tenant="hooli", route="/v1/complete"),
]
BY_SPAN = {c.span_id.lower(): c for c in CANON}

ROW_SQL = """
SELECT span_id, trace_id, parent_span_id, service, name, kind, operation, provider,
       request_model, response_model, epoch_ns(start_time), duration_ms, ttft_ms, status,
       error_type, http_status, rate_limited, input_tokens, output_tokens, cache_read_tokens,
       tenant, route, prompt_version, unpriced, cost_usd, price_version
FROM spans ORDER BY span_id
"""


def check_rows(rows: list[tuple[Any, ...]], canon: list[Canon] = CANON) -> None:
    """Each stored row carries exactly the canonical values of its span."""
    assert sorted(r[0] for r in rows) == sorted(c.span_id.lower() for c in canon)
    version = PriceTable.load().version
    for (span_id, trace_id, parent, service, name, kind, operation, provider, req, resp,
         start_ns, duration, ttft, status, error_type, http_status, rate_limited, tin, tout,
         tcache, tenant, route, pver, unpriced, cost, price_version) in rows:
        c = BY_SPAN[span_id]
        assert trace_id == c.trace_id.lower()
        assert parent == (c.parent.lower() if c.parent else None)
        assert (service, name, kind, operation) == (c.service, c.name, 3, "chat")
        assert (provider, req, resp) == (c.provider, c.request_model, c.response_model)
        assert start_ns == c.start_ns
        assert duration == pytest.approx(c.duration_ms, abs=1e-6)
        assert ttft == (None if c.ttft_s is None else pytest.approx(c.ttft_s * 1000))
        assert (status, error_type, http_status, rate_limited) == (
            c.status, c.error_type, c.http_status, c.rate_limited)
        assert (tin, tout, tcache) == (c.input_tokens, c.output_tokens, c.cache_read)
        assert (tenant, route, pver) == (c.tenant, c.route, c.prompt_version)
        want = c.expected_cost()
        if want is None:
            assert (unpriced, cost, price_version) == (True, None, None)
        else:
            assert unpriced is False
            assert cost == pytest.approx(want, rel=1e-9)
            assert price_version == version


# ---------------------------------------------------------------------------
# Writers for each format
# ---------------------------------------------------------------------------


def _kv(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}  # OTLP/JSON: 64-bit as string
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": value}}


def _attrs(c: Canon) -> dict[str, Any]:
    a: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": c.provider,
        "gen_ai.request.model": c.request_model,
        "gen_ai.response.model": c.response_model,
        "gen_ai.usage.input_tokens": c.input_tokens,
        "gen_ai.usage.output_tokens": c.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": c.cache_read,
        "gen_ai.response.time_to_first_chunk": c.ttft_s,
        "error.type": c.error_type,
        "http.response.status_code": c.http_status,
        "llmdeck.tenant": c.tenant,
        "http.route": c.route,
        "llmdeck.prompt.version": c.prompt_version,
        **c.extra,
    }
    return {k: v for k, v in a.items() if v is not None}


def otlp_span(c: Canon) -> dict[str, Any]:
    sp: dict[str, Any] = {
        "traceId": c.trace_id,
        "spanId": c.span_id,
        "name": c.name,
        "kind": 3,
        "startTimeUnixNano": str(c.start_ns),
        "endTimeUnixNano": str(c.start_ns + int(c.duration_ms * MS)),
        "attributes": [_kv(k, v) for k, v in _attrs(c).items()],
        "status": {} if not c.status_code else {"code": c.status_code,
                                                 **({"message": c.status_message}
                                                    if c.status_message else {})},
    }
    if c.parent:
        sp["parentSpanId"] = c.parent
    return sp


def otlp_request(canon: list[Canon]) -> dict[str, Any]:
    services: dict[str, list[Canon]] = {}
    for c in canon:
        services.setdefault(c.service, []).append(c)
    return {"resourceSpans": [
        {"resource": {"attributes": [_kv("service.name", svc)]},
         "scopeSpans": [{"scope": {"name": "test"}, "spans": [otlp_span(c) for c in cs]}]}
        for svc, cs in services.items()
    ]}


def write_otlp_json(path: Path) -> Path:
    path.write_text(json.dumps(otlp_request(CANON), indent=2))
    return path


def write_collector_jsonl(path: Path) -> Path:
    with path.open("w") as f:
        f.write(json.dumps(otlp_request(CANON[:2])) + "\n")
        f.write(json.dumps(otlp_request(CANON[2:])) + "\n")
    return path


def write_collector_proto(path: Path) -> Path:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    def message(canon: list[Canon]) -> bytes:
        req = ExportTraceServiceRequest()
        for c in canon:
            rs = req.resource_spans.add()
            kv = rs.resource.attributes.add()
            kv.key, kv.value.string_value = "service.name", c.service
            ss = rs.scope_spans.add()
            ss.scope.name = "test"
            sp = ss.spans.add()
            sp.trace_id = bytes.fromhex(c.trace_id)  # either hex case in, raw bytes on the wire
            sp.span_id = bytes.fromhex(c.span_id)
            if c.parent:
                sp.parent_span_id = bytes.fromhex(c.parent)
            sp.name = c.name
            sp.kind = Span.SPAN_KIND_CLIENT  # an integer enum on the wire
            sp.start_time_unix_nano = c.start_ns
            sp.end_time_unix_nano = c.start_ns + int(c.duration_ms * MS)
            if c.status_code:
                sp.status.code = Status.StatusCode.Value(
                    {1: "STATUS_CODE_OK", 2: "STATUS_CODE_ERROR"}[c.status_code])
                sp.status.message = c.status_message or ""
            for key, value in _attrs(c).items():
                a = sp.attributes.add()
                a.key = key
                if isinstance(value, bool):
                    a.value.bool_value = value
                elif isinstance(value, int):
                    a.value.int_value = value
                elif isinstance(value, float):
                    a.value.double_value = value
                else:
                    a.value.string_value = value
        return req.SerializeToString()

    with path.open("wb") as f:
        for chunk in (CANON[:1], CANON[1:3], CANON[3:]):  # three frames
            body = message(chunk)
            f.write(struct.pack(">I", len(body)) + body)
    return path


def flat_record(c: Canon, dotted: bool = False) -> dict[str, Any]:
    """A flat span: our column names, or (dotted=True) OTel attribute keys."""
    rec: dict[str, Any] = {
        "trace_id": c.trace_id,
        "span_id": c.span_id,
        "parent_span_id": c.parent,
        "service": c.service,
        "name": c.name,
        "kind": 3,
        "start_time_unix_nano": c.start_ns,
        "duration_ms": c.duration_ms,
        "status": {0: "unset", 1: "ok", 2: "error"}[c.status_code],
        "status_message": c.status_message,
    }
    if dotted:
        rec.update(_attrs(c))
    else:
        rec.update({
            "operation": "chat",
            "provider": c.provider,
            "request_model": c.request_model,
            "response_model": c.response_model,
            "input_tokens": c.input_tokens,
            "output_tokens": c.output_tokens,
            "cache_read_tokens": c.cache_read,
            "ttft_ms": None if c.ttft_s is None else c.ttft_s * 1000,
            "error_type": c.error_type,
            "http_status": c.http_status,
            "tenant": c.tenant,
            "route": c.route,
            "prompt_version": c.prompt_version,
        })
    return rec


def write_flat_jsonl(path: Path) -> Path:
    with path.open("w") as f:
        for i, c in enumerate(CANON):
            rec = flat_record(c, dotted=i % 2 == 1)
            if i == 0:  # ISO text with nanoseconds instead of an integer
                del rec["start_time_unix_nano"]
                rec["start_time"] = "2026-01-01T00:00:01.500000123Z"
            f.write(json.dumps(rec) + "\n")
    return path


_PARQUET_SCHEMA = pa.schema([
    ("trace_id", pa.string()), ("span_id", pa.string()), ("parent_span_id", pa.string()),
    ("service", pa.string()), ("name", pa.string()), ("kind", pa.int8()),
    ("start_time_unix_nano", pa.int64()), ("duration_ms", pa.float64()),
    ("status", pa.string()), ("status_message", pa.string()), ("operation", pa.string()),
    ("provider", pa.string()), ("request_model", pa.string()), ("response_model", pa.string()),
    ("input_tokens", pa.int64()), ("output_tokens", pa.int64()),
    ("cache_read_tokens", pa.int64()), ("ttft_ms", pa.float64()), ("error_type", pa.string()),
    ("http_status", pa.int16()), ("tenant", pa.string()), ("route", pa.string()),
    ("prompt_version", pa.string()),
])


def write_parquet(path: Path) -> Path:
    records = [flat_record(c) for c in CANON]
    pq.write_table(pa.Table.from_pylist(records, schema=_PARQUET_SCHEMA), path)
    return path


WRITERS = {
    "otlp.json": (write_otlp_json, "otlp-json"),
    "collector.jsonl": (write_collector_jsonl, "otlp-json"),
    "collector.pb": (write_collector_proto, "otlp-proto"),
    "flat.jsonl": (write_flat_jsonl, "jsonl"),
    "spans.parquet": (write_parquet, "parquet"),
}


def compress(path: Path, how: str) -> Path:
    data = path.read_bytes()
    out = path.with_name(path.name + "." + how)
    if how == "gz":
        out.write_bytes(gzip.compress(data))
    else:
        out.write_bytes(zstandard.ZstdCompressor().compress(data))
    path.unlink()
    return out


# ---------------------------------------------------------------------------
# The shipped examples
# ---------------------------------------------------------------------------


def test_otlp_json_example_pretty_printed_single_object(examples, ingest, sql, cache_file):
    report = ingest([examples / "otlp_genai_spans.json"])
    assert (report.files, report.spans_read, report.spans_stored, report.quarantined,
            report.errors) == (1, 2, 2, 0, [])
    ok, err = sql("SELECT * FROM spans ORDER BY span_id")
    names = [c[0] for c in sql("SELECT column_name, ordinal_position FROM "
                               "information_schema.columns WHERE table_name='spans' "
                               "ORDER BY ordinal_position")]
    ok, err = dict(zip(names, ok, strict=True)), dict(zip(names, err, strict=True))
    assert (ok["trace_id"], ok["span_id"], ok["parent_span_id"]) == (
        "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "eee19b7ec3c1b173")
    assert (ok["service"], ok["provider"], ok["operation"]) == ("support-chatbot", "openai", "chat")
    assert (ok["request_model"], ok["response_model"]) == ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert ok["duration_ms"] == pytest.approx(1250.0)
    assert ok["ttft_ms"] == pytest.approx(410.0)
    assert (ok["input_tokens"], ok["output_tokens"], ok["cache_read_tokens"]) == (1200, 180, 800)
    # (1200 - 800) * 0.15 + 800 * 0.075 + 180 * 0.60 per million, at the shipped list price
    assert ok["cost_usd"] == pytest.approx(228e-6)
    assert ok["status"] == "unset" and ok["rate_limited"] is False
    assert err["status"] == "error" and err["error_type"] == "rate_limit_error"
    assert err["rate_limited"] is True
    assert err["status_message"].startswith("Number of request tokens")
    assert ok["source"] == f"{examples / 'otlp_genai_spans.json'}:1"
    assert json.loads(ok["attributes"])["server.address"] == "api.openai.com"
    (start_ns,) = sql("SELECT epoch_ns(start_time) FROM spans WHERE span_id='eee19b7ec3c1b174'")[0]
    assert start_ns == 1735689600000000000


def test_collector_jsonl_example_one_request_per_line(examples, ingest, sql):
    report = ingest([examples / "otelcol_file_exporter_traces.jsonl"])
    assert (report.spans_read, report.spans_stored, report.quarantined) == (3, 3, 0)
    rows = sql("SELECT span_id, source, status, provider FROM spans ORDER BY source, span_id")
    src = str(examples / "otelcol_file_exporter_traces.jsonl")
    assert rows == [
        ("eee19b7ec3c1b174", f"{src}:1", "unset", "openai"),
        ("eee19b7ec3c1b175", f"{src}:1", "error", "anthropic"),
        ("b7ad6b7169203331", f"{src}:2", "unset", "openai"),
    ]


def test_both_examples_together_overlap_by_two_spans(examples, ingest, sql):
    report = ingest([examples / "otlp_genai_spans.json",
                     examples / "otelcol_file_exporter_traces.jsonl"])
    assert (report.files, report.spans_read, report.spans_stored, report.duplicates) == (2, 5, 3, 2)
    assert sql("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans") == [(3, 3)]


# ---------------------------------------------------------------------------
# Every format, plain and compressed
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(WRITERS))
def test_each_format_stores_the_canonical_rows(name, tmp_path, ingest, sql):
    path = WRITERS[name][0](tmp_path / name)
    report = ingest([path])
    assert report.errors == []
    assert (report.spans_read, report.spans_stored, report.quarantined) == (4, 4, 0)
    assert report.unpriced == 1  # acme-finetune-v2
    check_rows(sql(ROW_SQL))


@pytest.mark.parametrize("how", ["gz", "zst"])
@pytest.mark.parametrize("name", [n for n in WRITERS if not n.endswith(".parquet")])
def test_compressed_variants_store_the_same_rows(name, how, tmp_path, ingest, sql):
    path = compress(WRITERS[name][0](tmp_path / name), how)
    report = ingest([path])
    assert report.errors == []
    assert (report.spans_read, report.spans_stored, report.quarantined) == (4, 4, 0)
    check_rows(sql(ROW_SQL))


def test_parquet_with_internal_zstd_compression(tmp_path, ingest, sql):
    path = tmp_path / "z.parquet"
    pq.write_table(pa.Table.from_pylist([flat_record(c) for c in CANON], schema=_PARQUET_SCHEMA),
                   path, compression="zstd")
    assert ingest([path]).spans_stored == 4
    check_rows(sql(ROW_SQL))


def test_parquet_with_nanosecond_timestamp_column(tmp_path, ingest, sql):
    """DuckDB's own `COPY spans TO '...parquet'` writes start_time as timestamp[ns]."""
    records = [flat_record(c) for c in CANON]
    for r in records:
        r["start_time"] = r.pop("start_time_unix_nano")
    schema = pa.schema([f if f.name != "start_time_unix_nano" else pa.field(
        "start_time", pa.timestamp("ns")) for f in _PARQUET_SCHEMA])
    path = tmp_path / "ns.parquet"
    pq.write_table(pa.Table.from_pylist(records, schema=schema), path)
    report = ingest([path])
    assert report.errors == []
    assert report.spans_stored == 4
    check_rows(sql(ROW_SQL))


def test_exported_spans_table_round_trips_through_parquet(tmp_path, ingest, sql, cache_file):
    """`COPY spans TO x.parquet` from one cache, ingested into another, keeps every mapped field."""
    ingest([write_otlp_json(tmp_path / "a.json")])
    with duckdb.connect(str(cache_file)) as con:
        con.execute(f"COPY spans TO '{tmp_path / 'export.parquet'}' (FORMAT parquet)")
    other = tmp_path / "other.duckdb"
    report = ingest([tmp_path / "export.parquet"], cache=other)
    assert report.errors == [] and report.quarantined == 0, report.quarantine_reasons
    assert report.spans_stored == 4
    check_rows(sql(ROW_SQL, cache=other))


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_flat_span_with_events_as_json_text_is_stored(fmt, tmp_path, ingest, sql):
    """Our own `events` column is JSON text; a flat record carrying it keeps the events."""
    events = [{"name": "retry", "time_unix_nano": T0,
               "attributes": {"note": "mail ops@example.com"}}]
    rec = flat_record(CANON[0]) | {"events": json.dumps(events)}
    path = tmp_path / f"ev.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist([rec]), path)
    else:
        path.write_text(json.dumps(rec) + "\n")
    report = ingest([path])
    assert report.quarantined == 0, report.quarantine_reasons
    (stored,) = sql("SELECT events FROM spans")[0]
    assert json.loads(stored)[0]["name"] == "retry"
    assert "ops@example.com" not in stored and "[EMAIL]" in stored


def test_directory_means_every_file_inside_recursively(tmp_path, examples, ingest, sql):
    d = tmp_path / "traces"
    (d / "nested").mkdir(parents=True)
    write_collector_proto(d / "a.pb")
    write_parquet(d / "nested" / "b.parquet")  # same spans again: all duplicates
    (d / "nested" / "c.jsonl.gz").write_bytes(
        gzip.compress((examples / "otelcol_file_exporter_traces.jsonl").read_bytes()))
    report = ingest([d])
    assert report.errors == []
    assert report.files == 3
    assert (report.spans_read, report.spans_stored, report.duplicates) == (4 + 4 + 3, 4 + 3, 4)
    sources = dict(sql("SELECT split_part(source, ':', 1), count(*) FROM spans GROUP BY 1"))
    assert sources == {str(d / "a.pb"): 4, str(d / "nested" / "c.jsonl.gz"): 3}


@pytest.mark.parametrize("name", list(WRITERS))
def test_explicit_format_matches_auto_detection(name, tmp_path, ingest, sql):
    writer, fmt = WRITERS[name]
    path = writer(tmp_path / name)
    auto, explicit = tmp_path / "auto.duckdb", tmp_path / "explicit.duckdb"
    r1 = ingest([path], "auto", cache=auto)
    r2 = ingest([path], fmt, cache=explicit)
    assert r1.spans_stored == r2.spans_stored == 4
    rows_sql = "SELECT * EXCLUDE (source) FROM spans ORDER BY span_id"
    assert sql(rows_sql, cache=auto) == sql(rows_sql, cache=explicit)
    check_rows(sql(ROW_SQL, cache=explicit))


def test_cli_format_flag_and_wrong_explicit_format(tmp_path, capsys):
    json_file = write_otlp_json(tmp_path / "a.json")
    cache = tmp_path / "c.duckdb"
    assert main(["--cache", str(cache), "ingest", "--format", "parquet", str(json_file),
                 "--json"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["spans_stored"] == 0
    assert str(json_file) in err and "Traceback" not in err
    assert main(["--cache", str(cache), "ingest", "--format", "otlp-json", str(json_file),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["spans_stored"] == 4


def test_auto_detection_ignores_file_names(tmp_path, ingest, sql):
    """Content decides: a Collector JSONL file named .parquet, a proto file named .json."""
    a = write_collector_jsonl(tmp_path / "misnamed.parquet")
    b = write_collector_proto(tmp_path / "misnamed.json")
    report = ingest([a, b])
    assert report.errors == []
    assert (report.spans_stored, report.duplicates) == (4, 4)
    check_rows(sql(ROW_SQL))
