"""The receiver's direct protobuf -> columns path maps exactly as the OTLP/JSON dict path.

`otlp_proto.add_export_request` (protobuf Span objects into `SpanColumns`) and the reference,
`BatchBuilder.add` of `otlp_proto.decode_export_request`'s dict, must store the same thing for
the same request: every column of every row (redaction, body dropping, pricing, dimensions,
duplicates within the batch), the quarantine rows and the counts. Both batches are also
stored through the ingest's store step and read back column by column.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

from console.cache import readers
from console.cache.batching import BatchBuilder
from console.cache.ingest_writer import Batch, BatchStore
from console.cache.mapping import COLUMN_NAMES
from console.cache.otlp_proto import add_export_request, decode_export_request, parse_export_request
from console.cache.store import Cache
from console.config import Config, IngestSettings, RedactionSettings

NOW = time.time_ns() - 3_600 * 10**9
TOKEN = "sk-proj-" + "Q" * 40


def value(v: Any) -> AnyValue:
    if v is None:
        return AnyValue()
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, bytes):
        return AnyValue(bytes_value=v)
    if isinstance(v, list):
        out = AnyValue()
        out.array_value.values.extend(value(x) for x in v)
        return out
    if isinstance(v, dict):
        out = AnyValue()
        out.kvlist_value.values.extend(KeyValue(key=k, value=value(x)) for k, x in v.items())
        return out
    return AnyValue(string_value=v)


def attrs(**kw: Any) -> list[KeyValue]:
    return [KeyValue(key=k.replace("__", "."), value=value(v)) for k, v in kw.items()]


def span(i: int, **kw: Any) -> Span:
    sp = Span(
        trace_id=bytes([1 + i % 200]) * 16, span_id=(i + 1).to_bytes(8, "big"),
        parent_span_id=b"" if i % 3 == 0 else (i + 1000).to_bytes(8, "big"),
        name=kw.pop("name", f"chat gpt-4o-mini {i}"), kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=kw.pop("start", NOW + i * 1_000_000),
        end_time_unix_nano=kw.pop("end", NOW + i * 1_000_000 + 250_000_000),
        status=kw.pop("status", Status()),
    )
    sp.attributes.extend(kw.pop("attributes", attrs(
        gen_ai__operation__name="chat", gen_ai__provider__name="openai",
        gen_ai__request__model="gpt-4o-mini", gen_ai__response__model="gpt-4o-mini-2024-07-18",
        gen_ai__usage__input_tokens=1000 + i, gen_ai__usage__output_tokens=100 + i,
        llmdeck__tenant=f"tenant-{i % 4}", http__route="/v1/chat")))
    for name, ev_attrs in kw.pop("events", []):
        ev = sp.events.add(name=name, time_unix_nano=NOW + i)
        ev.attributes.extend(ev_attrs)
    assert not kw, kw
    return sp


def request(*groups: tuple[list[KeyValue], list[Span]]) -> bytes:
    req = ExportTraceServiceRequest()
    for res_attrs, spans in groups:
        rs: ResourceSpans = req.resource_spans.add()
        rs.resource.attributes.extend(res_attrs)
        half = len(spans) // 2
        for part in (spans[:half], spans[half:]):  # two scopes per resource
            ss = rs.scope_spans.add()
            ss.scope.name = "test"
            ss.spans.extend(part)
    return req.SerializeToString()


def odd_values() -> list[Span]:
    """Every AnyValue member, unset ones, empty strings, nesting, bodies, secrets, events."""
    return [
        span(0, attributes=attrs(
            gen_ai__provider__name="anthropic", gen_ai__request__model="claude-3-5-haiku-20241022",
            gen_ai__usage__input_tokens=5, gen_ai__usage__output_tokens=7,
            gen_ai__usage__cache_read__input_tokens=3, a__double=1.5, a__bool=False, a__empty="",
            a__unset=None, a__bytes=b"\x00\xffsecret", a__list=[1, "x", 2.5, True, None, [TOKEN]],
            a__map={"k": "Authorization: Bearer abcdef123456", "n": {"deep": TOKEN}, "u": None},
            gen_ai__input__messages='[{"role":"user","content":"hi"}]', gen_ai__prompt__0__content="x",
            gen_ai__prompt__id="p1", llm__input_messages__0="body", note=f"key {TOKEN} here",
            email="mail alice@example.com now", gen_ai__response__time_to_first_chunk=0.25,
            http__response__status_code=429, error__type="RateLimitError")),
        span(1, name=f"call with {TOKEN}", status=Status(code=Status.STATUS_CODE_ERROR,
                                                          message=f"failed: Bearer {TOKEN}")),
        span(2, events=[("gen_ai.content.prompt", attrs(gen_ai__prompt="hello", gen_ai__system="openai")),
                        ("exception", attrs(exception__message=f"boom {TOKEN}", n=3))]),
        span(3, status=Status(code=Status.STATUS_CODE_OK)),
        span(4, attributes=attrs(gen_ai__system="openai", gen_ai__request__model="gpt-4o",
                                 gen_ai__usage__prompt_tokens=10, gen_ai__usage__completion_tokens=2,
                                 gen_ai__usage__input_tokens="12", llmdeck__fallback="yes")),
        span(5, attributes=attrs(gen_ai__request__model="no-such-model", x=1), end=0),
        span(6, attributes=[]),
        span(1, name="the same ids again: a duplicate within the batch"),
    ]


def bad_spans() -> list[Span]:
    """Spans the mapping rejects: the direct path gives the request to the dict path."""
    zero = span(7)
    zero.trace_id = b"\x00" * 16
    short = span(8)
    short.span_id = b"\x01\x02"
    return [span(9), zero, span(10, start=0), short, span(11)]


def cases() -> dict[str, bytes]:
    demo = [span(i) for i in range(12, 60)]
    res = attrs(service__name="svc-a", deployment__environment="prod", token=TOKEN)
    return {
        "usual": request((attrs(service__name="svc"), demo)),
        "odd values": request((res, odd_values()), (attrs(service__name=f"svc {TOKEN}"), demo[:5])),
        "rejected spans": request((res, bad_spans())),
        "empty": request(),
        "no resource attributes": request(([], demo[:3])),
    }


def builder(keep_bodies: bool = False) -> BatchBuilder:
    return BatchBuilder(Config(
        ingest=IngestSettings(keep_bodies=keep_bodies, route_attributes=["http.route"]),
        redaction=RedactionSettings()))


def map_both(body: bytes, keep_bodies: bool = False) -> tuple[Any, Any]:
    dict_path, direct = builder(keep_bodies), builder(keep_bodies)
    dict_path.add(readers.Record("otlp", 7, decode_export_request(body)), "otlp-http 127.0.0.1")
    add_export_request(direct, parse_export_request(body), "otlp-http 127.0.0.1", 7)
    return dict_path.take(), direct.take()


@pytest.mark.parametrize("keep_bodies", [False, True])
@pytest.mark.parametrize("case", sorted(cases()))
def test_the_direct_path_maps_as_the_dict_path(case: str, keep_bodies: bool) -> None:
    (cols_a, quarantine_a, read_a), (cols_b, quarantine_b, read_b) = map_both(cases()[case], keep_bodies)
    assert cols_b.rows == cols_a.rows
    assert cols_b.to_arrow().equals(cols_a.to_arrow())
    assert (quarantine_b, read_b, cols_b.duplicates) == (quarantine_a, read_a, cols_a.duplicates)
    clock_a, clock_b = cols_a.clock, cols_b.clock  # the horizon is "now" when taken: not compared
    assert (clock_b.future, clock_b.past, clock_b.latest_ns, clock_b.earliest_ns) == (
        clock_a.future, clock_a.past, clock_a.latest_ns, clock_a.earliest_ns)
    if case != "empty":
        assert cols_a.rows


def test_what_the_cases_cover_is_really_there() -> None:
    """The cases exercise what the comparison is about (else equal results prove little)."""
    (cols, quarantine, _), _ = map_both(cases()["odd values"])
    text = repr(cols.rows)
    assert TOKEN not in text and "abcdef123456" not in text and "alice@example.com" not in text
    assert all(row[COLUMN_NAMES.index("redactions")] for row in cols.rows[:3])
    assert cols.duplicates == 1
    costs = [row[COLUMN_NAMES.index("cost_usd")] for row in cols.rows]
    assert any(c is not None for c in costs) and None in costs  # priced, and one unpriced
    assert "gen_ai.input.messages" not in text and "body" not in text
    assert not quarantine
    (_, quarantine, read), _ = map_both(cases()["rejected spans"])
    assert len(quarantine) == 3 and read == 2


def test_usual_requests_take_the_direct_path_and_rejected_spans_do_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[int] = []
    direct = builder()
    monkeypatch.setattr(direct, "add", lambda rec, name: taken.append(rec.line))
    for line, case in enumerate(("usual", "odd values", "rejected spans")):
        add_export_request(direct, parse_export_request(cases()[case]), "x", line)
    assert taken == [2]  # only the request holding spans to reject went the dict path
    cols = direct.take()[0]
    assert len(cols) == 48 + 7  # the odd ones less their duplicate; 5 usual ones sent again
    assert cols.duplicates == 1 + 5


def test_both_paths_store_the_same_columns(tmp_path: Path) -> None:
    """Through the store step (dedupe, rollups) into two caches, read back column by column."""
    stored = []
    for which in (0, 1):
        cache = Cache.open(tmp_path / f"{which}.duckdb", read_only=False)
        try:
            cur = cache.cursor()
            store = BatchStore()
            for body in cases().values():
                cols, quarantine, _ = map_both(body)[which]
                store.store(cur, Batch([cols.to_arrow()] if len(cols) else [], quarantine, None))
            store.compact(cur)
            spans = cur.execute("SELECT * FROM spans ORDER BY trace_id, span_id").fetchall()
            quarantined = cur.execute("SELECT source, line, reason FROM quarantine ORDER BY ALL").fetchall()
            stored.append((spans, quarantined))
        finally:
            cache.close()
    assert stored[0][0] and stored[0][1]
    assert stored[1] == stored[0]
