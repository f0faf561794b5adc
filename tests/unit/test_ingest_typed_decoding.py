"""OTLP JSON lines decoded into structs map exactly as the dict path maps them.

`readers.decode_line` decodes a Collector line with msgspec into typed structs and
`BatchBuilder` maps them with `SpanMapper.add_typed_otlp_span`; anything the structs
reject, or the typed mapping cannot map cleanly, goes through the reference dict path
(`orjson.loads` + `add_otlp_span`). Each case here is mapped both ways, and the rows,
dedupe keys, duplicate counts, spans read and quarantine rows (with their reasons)
must be identical.
"""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import pytest

from console.cache import readers
from console.cache.batching import BatchBuilder
from console.config import Config, IngestSettings

T0 = 1_767_225_600_000_000_000


def kv(key: str, value: Any) -> dict[str, Any]:
    return {"key": key, "value": value}


def s(text: str) -> dict[str, Any]:
    return {"stringValue": text}


def span(n: int, **over: Any) -> dict[str, Any]:
    sp: dict[str, Any] = {
        "traceId": f"{n + 1:032x}", "spanId": f"{n + 1:016x}", "name": f"chat {n}", "kind": 3,
        "startTimeUnixNano": str(T0 + n * 10**9), "endTimeUnixNano": str(T0 + n * 10**9 + 3 * 10**8),
        "attributes": [
            kv("gen_ai.operation.name", s("chat")), kv("gen_ai.provider.name", s("openai")),
            kv("gen_ai.request.model", s("gpt-4o-mini")), kv("llmdeck.tenant", s("acme")),
            kv("gen_ai.usage.input_tokens", {"intValue": "120"}),
            kv("gen_ai.usage.output_tokens", {"intValue": 80}),
            kv("gen_ai.request.stream", {"boolValue": True}),
            kv("gen_ai.response.time_to_first_chunk", {"doubleValue": 0.25}),
            kv("user.email", s("someone@example.com")),
        ],
        "status": {},
    }
    sp.update(over)
    return {k: v for k, v in sp.items() if v is not ...}


def request(*spans: dict[str, Any], resource: Any = ..., key: str = "scopeSpans") -> dict[str, Any]:
    res = {"attributes": [kv("service.name", s("svc"))]} if resource is ... else resource
    return {"resourceSpans": [{"resource": res, key: [{"scope": {"name": "t"}, "spans": list(spans)}]}]}


def attrs_span(n: int, *extra: dict[str, Any]) -> dict[str, Any]:
    base = span(n)
    return span(n, attributes=base["attributes"] + list(extra))


def encoded(obj: Any) -> bytes:
    return json.dumps(obj).encode()


# Each case is one line (bytes); ids repeat across cases on purpose (dedupe).
CASES: dict[str, bytes] = {
    "usual": encoded(request(span(1), span(2), span(3))),
    "crlf": encoded(request(span(4))) + b"\r\n",
    "repeat in line": encoded(request(span(5), span(5), span(6))),
    "repeat of earlier line": encoded(request(span(1), span(7))),
    "instrumentationLibrarySpans": encoded(request(span(8), key="instrumentationLibrarySpans")),
    "empty scopeSpans, then ILS": encoded({"resourceSpans": [{
        "scopeSpans": [], "instrumentationLibrarySpans": [{"spans": [span(9)]}]}]}),
    "int ids upper case": encoded(request(span(10, traceId=f"{11:032X}"))),
    "base64 ids": encoded(request(span(11, traceId=base64.b64encode(bytes(range(1, 17))).decode(),
                                       spanId=base64.b64encode(bytes(range(1, 9))).decode()))),
    "all-zero trace id": encoded(request(span(12), span(13, traceId="0" * 32), span(14))),
    "bad span id": encoded(request(span(15), span(16, spanId="xyz"))),
    "missing span id": encoded(request(span(17, spanId=...))),
    "null span id": encoded(request(span(18, spanId=None))),
    "numeric span id": encoded(request(span(19, spanId=12345))),
    "parent empty": encoded(request(span(20, parentSpanId=""), span(21, parentSpanId=f"{3:016x}"))),
    "times as ints": encoded(request(span(22, startTimeUnixNano=T0 + 5, endTimeUnixNano=T0 + 10**9))),
    "time as float": encoded(request(span(23, startTimeUnixNano=1.7e18))),
    "time as ISO text": encoded(request(span(24, startTimeUnixNano="2026-01-01T00:00:01.123456789Z"))),
    "time missing": encoded(request(span(25, startTimeUnixNano=...))),
    "time beyond int64": encoded(request(span(26, endTimeUnixNano=2**64 + 5))),
    "time at uint64 max": encoded(request(span(27, endTimeUnixNano=2**64 - 1))),
    "end before start": encoded(request(span(28, endTimeUnixNano=str(T0)))),
    "kind names": encoded(request(span(29, kind="SPAN_KIND_SERVER"), span(30, kind="nonsense"))),
    "kind null": encoded(request(span(31, kind=None))),
    "status names": encoded(request(span(32, status={"code": "STATUS_CODE_ERROR", "message": "boom"}),
                                    span(33, status={"code": 1}), span(34, status={"code": None}))),
    "status code float": encoded(request(span(35, status={"code": 2.0}))),
    "status not an object": encoded(request(span(36, status="error"))),
    "status message not text": encoded(request(span(37, status={"code": 2, "message": 42}))),
    "status null": encoded(request(span(38, status=None))),
    "name not text": encoded(request(span(39, name=7), span(40, name=""), span(41, name=None))),
    "name with secret": encoded(request(span(42, name="key sk-abcdefghijklmnopqrstuvwxyz123456"))),
    "multi-member values": encoded(request(attrs_span(
        43, kv("a", {"boolValue": True, "doubleValue": 1.5}),
        kv("b", {"doubleValue": 1.5, "boolValue": False}),
    ))),
    "string wins over int": encoded(request(attrs_span(44, kv("c", {"intValue": "7", "stringValue": "x"})))),
    "null string member": encoded(request(attrs_span(45, kv("d", {"stringValue": None, "intValue": "5"})))),
    "empty and unknown values": encoded(request(attrs_span(
        46, kv("e", {}), kv("f", {"foo": 1}), kv("g", None), {"key": "h"}))),
    "int value as text and number": encoded(request(attrs_span(47, kv("i", {"intValue": "-9"}),
                                                               kv("j", {"intValue": 9})))),
    "int value not a number": encoded(request(span(48), attrs_span(49, kv("k", {"intValue": "abc"})))),
    "int value float": encoded(request(attrs_span(50, kv("l", {"intValue": 2.5})))),
    "int value huge": encoded(request(attrs_span(51, kv("m", {"intValue": 2**70})))),
    "double value integral": encoded(request(attrs_span(52, kv("n", {"doubleValue": 3}),
                                                        kv("o", {"doubleValue": 2**70})))),
    "double value as text": encoded(request(attrs_span(53, kv("p", {"doubleValue": "NaN"})))),
    "bool value as int": encoded(request(attrs_span(54, kv("q", {"boolValue": 1})))),
    "array kvlist bytes": encoded(request(attrs_span(
        55,
        kv("r", {"arrayValue": {"values": [s("a"), {"intValue": "3"}, {"doubleValue": 1.25}]}}),
        kv("t", {"kvlistValue": {"values": [kv("x", s("token sk-abcdefghijklmnopqrstuvwxyz123456")),
                                            kv("y", {"boolValue": False})]}}),
        kv("u", {"bytesValue": "AAEC"}),
        kv("v", {"arrayValue": None}),
        kv("w", {"arrayValue": {"values": [{"intValue": 2**70}]}}),
    ))),
    "array then bool": encoded(request(attrs_span(56, kv("x", {"arrayValue": {"values": []},
                                                               "boolValue": True})))),
    "key not text": encoded(request(attrs_span(57, {"key": 5, "value": s("x")}))),
    "key missing": encoded(request(attrs_span(58, {"value": s("x")}))),
    "repeated key": encoded(request(attrs_span(59, kv("gen_ai.provider.name", s("anthropic"))))),
    "attributes not a list": encoded(request(span(60, attributes={"a": 1}))),
    "attributes null": encoded(request(span(61, attributes=None))),
    "body attribute dropped": encoded(request(attrs_span(62, kv("gen_ai.input.messages", s("hi"))))),
    "events": encoded(request(span(63, events=[
        {"name": "gen_ai.content.prompt", "timeUnixNano": str(T0),
         "attributes": [kv("gen_ai.prompt", s("secret prompt")), kv("gen_ai.system", s("openai"))]},
        {"name": "exception", "timeUnixNano": T0 + 1,
         "attributes": [kv("exception.message", s("mail me@example.com")),
                        kv("big", {"intValue": 2**70})]},
    ]))),
    "events null": encoded(request(span(64, events=None), span(65, events=[]))),
    "events not a list": encoded(request(span(66, events={"name": "x"}), span(66), span(67))),
    "events as JSON text": encoded(request(span(68, events='[{"name": "e"}]'), span(69, events="{bad"))),
    "resource null": encoded(request(span(70), resource=None)),
    "resource without attributes": encoded(request(span(71), resource={})),
    "resource multi-member value": encoded(request(span(72), resource={"attributes": [
        kv("service.name", {"intValue": "3", "stringValue": "svc2"}),
        kv("llmdeck.tenant", {"boolValue": True, "doubleValue": 2.0})]})),
    "resource bad attributes": encoded(request(span(73), resource={"attributes": [{"value": s("x")}]})),
    "resource not an object": encoded(request(span(74), resource=["x"])),
    "tenant from resource": encoded(request(span(75, attributes=[]), resource={"attributes": [
        kv("service.name", s("svc")), kv("llmdeck.tenant", s("from-resource"))]})),
    "resourceSpans null": b'{"resourceSpans": null}',
    "resourceSpans empty": b'{"resourceSpans": []}',
    "resourceSpans not a list": b'{"resourceSpans": {"a": 1}}',
    "resourceSpans item not an object": encoded(
        {"resourceSpans": [5, request(span(76))["resourceSpans"][0]]}),
    "scope item not an object": encoded({"resourceSpans": [{"scopeSpans": [3, {"spans": [span(77)]}]}]}),
    "spans null": encoded({"resourceSpans": [{"scopeSpans": [{"spans": None}]}]}),
    "span not an object": encoded(request(span(78), "x")),  # type: ignore[arg-type]
    "unknown fields": encoded({"extra": [[{"deep": 1}]], **request(span(79, extra={"a": [1, 2]}))}),
    "escaped field names": encoded(request(span(80))).replace(b'"name"', b'"n\\u0061me"'),
    "repeated field names": encoded(request(span(81))).replace(
        b'"kind": 3', b'"kind": 3, "kind": "SPAN_KIND_SERVER"'),
    "no resourceSpans": b'{"other": 1}',
    "not an object": b"[1, 2, 3]",
    "null": b"null",
    "malformed": encoded(request(span(82)))[:200],
    "trailing garbage": encoded(request(span(83))) + b" x",
    "byte order mark": b"\xef\xbb\xbf" + encoded(request(span(84))),
    "lone surrogate": encoded(request(span(85))).replace(b'"chat 85"', b'"chat \\ud800"'),
    "nesting 900": encoded(request(span(86, extra=json.loads("[" * 900 + "]" * 900)))),
    "nesting 1020": encoded(request(span(87, extra=json.loads("[" * 100 + "]" * 100)))).replace(
        b"[" * 100, b"[" * 1020).replace(b"]" * 100, b"]" * 1020),
    "nesting 1030": encoded(request(span(88))).replace(
        b'"kind": 3', b'"kind": 3, "x": ' + b"[" * 1030 + b"]" * 1030),
}


def _builder() -> BatchBuilder:
    return BatchBuilder(Config(ingest=IngestSettings(tenant_attributes=["llmdeck.tenant", "tenant.id"])))


def _map(lines: list[bytes], typed: bool) -> tuple[BatchBuilder, int]:
    builder = _builder()
    typed_lines = 0
    for n, raw in enumerate(lines, 1):
        if typed:
            rec = readers.decode_line("otlp", n, raw)
            typed_lines += type(rec.payload) is readers.TypedLine
        else:
            rec = readers.decode_dict_line("otlp", n, raw)
        builder.add(rec, "f.jsonl")
    return builder, typed_lines


def _state(builder: BatchBuilder) -> tuple[Any, ...]:
    cols = builder.cols
    return cols.rows, cols.keys, cols.duplicates, builder.spans_read, builder.quarantine


@pytest.mark.parametrize("case", list(CASES))
def test_each_case_maps_as_the_dict_path(case: str) -> None:
    lines = [CASES["usual"], CASES[case], CASES["usual"]]
    typed, _ = _map(lines, typed=True)
    reference, _ = _map(lines, typed=False)
    assert _state(typed) == _state(reference)


@pytest.mark.skipif(not readers._TYPED_DECODING,
                    reason="typed decoding is off from Python 3.12 (msgspec's nesting limit)")
def test_usual_lines_take_the_typed_path_and_odd_ones_do_not() -> None:
    usual = [CASES["usual"], CASES["crlf"], CASES["events"], CASES["array kvlist bytes"]]
    _, typed_lines = _map(usual, typed=True)
    assert typed_lines == len(usual)
    odd = [CASES["status code float"], CASES["time beyond int64"], CASES["malformed"],
           CASES["not an object"], CASES["nesting 1030"]]
    _, typed_lines = _map(odd, typed=True)
    assert typed_lines == 0


def test_a_line_that_fails_half_way_is_redone_whole_by_the_dict_path() -> None:
    # Span 66 fails half way through its mapping (events not a list) and its good twin
    # follows in the same line: the typed path, falling back, must leave the same keys,
    # rows and counts as the dict path alone, not a mix of both paths.
    lines = [CASES["usual"], CASES["events not a list"], CASES["usual"]]
    typed, _ = _map(lines, typed=True)
    reference, _ = _map(lines, typed=False)
    assert _state(typed) == _state(reference)
    reasons = [reason for _, _, reason in typed.quarantine]
    assert reasons == ["resourceSpans[0].scopeSpans[0].spans[0]: events is not a list"]
    assert typed.cols.duplicates == reference.cols.duplicates > 0


def test_a_rejected_span_does_not_hide_its_good_twin() -> None:
    # The dedupe key is taken only once a span is stored: the quarantined span 66 must not
    # make the valid span 66 after it count as a duplicate of itself (both paths).
    for typed in (True, False):
        builder, _ = _map([CASES["events not a list"]], typed=typed)
        stored = [row[1] for row in builder.cols.rows]
        assert stored == [f"{67:016x}", f"{68:016x}"] and builder.cols.duplicates == 0
        assert len(builder.quarantine) == 1


def test_random_mixes_of_cases_map_as_the_dict_path() -> None:
    rng = random.Random(11)
    names = list(CASES)
    for _ in range(25):
        lines = [CASES[rng.choice(names)] for _ in range(rng.randint(1, 12))]
        typed, _ = _map(lines, typed=True)
        reference, _ = _map(lines, typed=False)
        assert _state(typed) == _state(reference)


def test_the_reasons_for_bad_lines_are_the_dict_paths() -> None:
    lines = [CASES["malformed"], CASES["not an object"], CASES["no resourceSpans"],
             CASES["bad span id"], CASES["int value not a number"]]
    typed, _ = _map(lines, typed=True)
    by_line = {line: reason for _, line, reason in typed.quarantine}
    assert by_line[1].startswith("malformed JSON: ")
    assert by_line[2] == "expected a JSON object, got list"
    assert by_line[3] == "export request without resourceSpans"
    assert by_line[4] == "resourceSpans[0].scopeSpans[0].spans[1]: spanId 'xyz' is not 8-byte hex"
    assert by_line[5].startswith("resourceSpans[0].scopeSpans[0].spans[1]: unreadable span (ValueError")
