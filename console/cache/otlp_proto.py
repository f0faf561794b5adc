"""Decode OTLP protobuf export requests into the OTLP/JSON shape the mapper reads."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def _any_value(v: AnyValue) -> dict[str, Any]:
    which = v.WhichOneof("value")
    if which == "string_value":
        return {"stringValue": v.string_value}
    if which == "int_value":
        return {"intValue": v.int_value}
    if which == "double_value":
        return {"doubleValue": v.double_value}
    if which == "bool_value":
        return {"boolValue": v.bool_value}
    if which == "array_value":
        return {"arrayValue": {"values": [_any_value(x) for x in v.array_value.values]}}
    if which == "kvlist_value":
        return {"kvlistValue": {"values": _attributes(v.kvlist_value.values)}}
    if which == "bytes_value":
        return {"bytesValue": v.bytes_value.hex()}
    return {}


def _attributes(kvs: Any) -> list[dict[str, Any]]:
    return [{"key": kv.key, "value": _any_value(kv.value)} for kv in kvs]


def decode_export_request(body: bytes) -> dict[str, Any]:
    """Parse one ExportTraceServiceRequest; ids become lowercase hex as in OTLP/JSON."""
    req = ExportTraceServiceRequest()
    req.ParseFromString(body)
    resource_spans = []
    for rs in req.resource_spans:
        scope_spans = []
        for ss in rs.scope_spans:
            spans = []
            for sp in ss.spans:
                spans.append(
                    {
                        "traceId": sp.trace_id.hex(),
                        "spanId": sp.span_id.hex(),
                        "parentSpanId": sp.parent_span_id.hex(),
                        "name": sp.name,
                        "kind": sp.kind,
                        "startTimeUnixNano": sp.start_time_unix_nano,
                        "endTimeUnixNano": sp.end_time_unix_nano,
                        "attributes": _attributes(sp.attributes),
                        "events": [
                            {
                                "name": ev.name,
                                "timeUnixNano": ev.time_unix_nano,
                                "attributes": _attributes(ev.attributes),
                            }
                            for ev in sp.events
                        ],
                        "status": {"code": sp.status.code, "message": sp.status.message},
                    }
                )
            scope_spans.append({"scope": {"name": ss.scope.name}, "spans": spans})
        resource_spans.append(
            {
                "resource": {"attributes": _attributes(rs.resource.attributes)},
                "scopeSpans": scope_spans,
            }
        )
    return {"resourceSpans": resource_spans}
