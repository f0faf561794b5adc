"""OTLP/HTTP framing that needs no socket: the request's media type and the response bodies.

Responses are hand-encoded (two small messages) so the receiver's framing loads no protobuf runtime:
`ExportTraceServiceResponse{partial_success{rejected_spans, error_message}}` for a 200 and
`google.rpc.Status{code, message}` for a 4xx/5xx, each in the request's encoding (binary protobuf or
the protobuf JSON mapping, where an int64 is a decimal string). `ExportRequest`, `ExportResult` and
`Handler` are the contract between the server and its handler (re-exported by `connectors.otlp_http`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

Encoding = Literal["protobuf", "json"]
MEDIA_TYPES: dict[Encoding, str] = {"protobuf": "application/x-protobuf", "json": "application/json"}
_ENCODINGS: dict[str, Encoding] = {media: encoding for encoding, media in MEDIA_TYPES.items()}
MESSAGE_LIMIT = 1000
# C0/C1 controls, line/paragraph separators and bidi controls (a message may quote span text and ends up
# in exporters' logs, where these could break or reorder lines). Not connectors.http_text.printable: that
# deletes bidi and other format characters, joining the words either side ("span\u202etext" -> "spantext");
# here each run of them becomes one space (test_clean_message_removes_line_separators_and_bidi_controls).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]+")


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """One complete export body, already decompressed."""

    body: bytes
    encoding: Encoding
    peer: str


@dataclass(frozen=True, slots=True)
class ExportResult:
    """The handler's answer: 200 (optionally a partial success) or an error status with a message."""

    status: int
    rejected_spans: int = 0
    message: str = ""
    retry_after: float | None = None


Handler = Callable[[ExportRequest], Awaitable[ExportResult]]


def result_problem(result: object) -> str | None:
    """Why a handler's answer cannot be sent as is (None when it can): the fields are checked by type, as
    a wrong type would otherwise fail while the response is being framed and drop the connection."""
    if not isinstance(result, ExportResult):
        return f"a {type(result).__name__}, not an ExportResult"
    if type(result.status) is not int or not (result.status == 200 or 400 <= result.status <= 599):
        return f"status {result.status!r}, not 200 or 4xx/5xx"
    if type(result.rejected_spans) is not int or result.rejected_spans < 0:
        return f"rejected_spans {result.rejected_spans!r}, not an int >= 0"
    if type(result.message) is not str:
        return f"a message of type {type(result.message).__name__}, not str"
    retry_after = result.retry_after
    if retry_after is not None and (type(retry_after) not in (int, float) or math.isnan(retry_after)):
        return f"retry_after {retry_after!r}, not None or a number"
    return None

# google.rpc.Code for each HTTP status this server answers with (the gRPC/HTTP mapping of google.rpc.Code).
_RPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 408: 4, 413: 8, 415: 3, 429: 8, 500: 13,
              501: 12, 503: 14, 504: 4}
_RPC_UNKNOWN = 2


def request_encoding(content_type: str | None) -> Encoding | None:
    """The OTLP encoding a Content-Type names (parameters such as charset ignored), or None if unsupported."""
    if content_type is None:
        return None
    return _ENCODINGS.get(content_type.split(";", 1)[0].strip().lower())


def clean_message(text: str) -> str:
    """`text` on one line without control characters, at most MESSAGE_LIMIT characters."""
    return _CONTROL.sub(" ", text).strip()[:MESSAGE_LIMIT]


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1  # a negative int32/int64 is sent as its 64-bit two's complement
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value) if value else b""


def _field_bytes(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(value)) + value if value else b""


def success_body(encoding: Encoding, rejected_spans: int, message: str) -> bytes:
    """An ExportTraceServiceResponse; partial_success only when something was rejected or said."""
    text = clean_message(message)
    if encoding == "json":
        partial: dict[str, str] = {}
        if rejected_spans:
            partial["rejectedSpans"] = str(rejected_spans)
        if text:
            partial["errorMessage"] = text
        return json.dumps({"partialSuccess": partial} if partial else {}).encode()
    inner = _field_varint(1, rejected_spans) + _field_bytes(2, text.encode())
    return _varint(1 << 3 | 2) + _varint(len(inner)) + inner if inner else b""


def status_body(encoding: Encoding, http_status: int, message: str) -> bytes:
    """A google.rpc.Status for an error response: the gRPC code matching `http_status`, and the message."""
    code = _RPC_CODES.get(http_status, _RPC_UNKNOWN)
    text = clean_message(message)
    if encoding == "json":
        return json.dumps({"code": code, "message": text}).encode()
    return _field_varint(1, code) + _field_bytes(2, text.encode())
