"""The demo traffic's OTLP/JSON export requests as OTLP protobuf (what an SDK exporter sends).

`console/demo/traffic.py` builds ExportTraceServiceRequests in the OTLP/JSON shape (hex ids,
integers as strings), the shape the Collector's file exporter writes. The simulator's live
traffic goes to the receiver as `application/x-protobuf` instead: `encode` builds the same
request with opentelemetry-proto's messages (ids as bytes), so the receiver decodes back what
the backfill's files hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def encode(request: Mapping[str, Any]) -> bytes:
    """The serialized ExportTraceServiceRequest of an OTLP/JSON request dict."""
    msg = ExportTraceServiceRequest()
    for rs in request.get("resourceSpans", ()):
        out_rs = msg.resource_spans.add()
        _attributes(out_rs.resource.attributes, rs.get("resource", {}).get("attributes", ()))
        for ss in rs.get("scopeSpans", ()):
            out_ss = out_rs.scope_spans.add()
            scope = ss.get("scope", {})
            out_ss.scope.name = scope.get("name", "")
            out_ss.scope.version = scope.get("version", "")
            for span in ss.get("spans", ()):
                _span(out_ss.spans.add(), span)
    body: bytes = msg.SerializeToString()
    return body


def _span(out: Any, span: Mapping[str, Any]) -> None:
    out.trace_id = bytes.fromhex(span["traceId"])
    out.span_id = bytes.fromhex(span["spanId"])
    if span.get("parentSpanId"):
        out.parent_span_id = bytes.fromhex(span["parentSpanId"])
    out.name = span.get("name", "")
    out.kind = int(span.get("kind", 0))
    out.start_time_unix_nano = int(span["startTimeUnixNano"])
    out.end_time_unix_nano = int(span["endTimeUnixNano"])
    _attributes(out.attributes, span.get("attributes", ()))
    for event in span.get("events", ()):
        ev = out.events.add()
        ev.name = event.get("name", "")
        ev.time_unix_nano = int(event.get("timeUnixNano", 0))
        _attributes(ev.attributes, event.get("attributes", ()))
    status = span.get("status") or {}
    if status:
        out.status.code = int(status.get("code", 0))
        out.status.message = status.get("message", "")


def _attributes(out: Any, attrs: Iterable[Mapping[str, Any]]) -> None:
    for attr in attrs:
        kv: KeyValue = out.add()
        kv.key = attr["key"]
        _value(kv.value, attr.get("value", {}))


def _value(out: AnyValue, value: Mapping[str, Any]) -> None:
    if "stringValue" in value:
        out.string_value = value["stringValue"]
    elif "intValue" in value:
        out.int_value = int(value["intValue"])
    elif "doubleValue" in value:
        out.double_value = float(value["doubleValue"])
    elif "boolValue" in value:
        out.bool_value = bool(value["boolValue"])
    elif "arrayValue" in value:
        for item in value["arrayValue"].get("values", ()):
            _value(out.array_value.values.add(), item)
    elif "kvlistValue" in value:
        _attributes(out.kvlist_value.values, value["kvlistValue"].get("values", ()))
