"""The demo simulator's live traffic to the console's receiver: OTLP/HTTP protobuf over loopback.

One keep-alive `httpx.Client` (no proxy from the environment: the receiver is on loopback),
`POST /v1/traces` with `Content-Type: application/x-protobuf`, as an SDK exporter sends. A 200
means the spans are stored (the receiver answers once they are committed); its
`partial_success.rejected_spans` says how many were quarantined. Anything else is
`LiveRefused` with the status and the receiver's message (a google.rpc.Status).
"""

from __future__ import annotations

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from console.safe_text import cell

PROTOBUF = "application/x-protobuf"
TIMEOUT_SECONDS = 30.0
"""How long a request may wait for its commit (a backfill part holds the write lock meanwhile)."""


class LiveRefused(Exception):
    """The receiver did not store a request: its HTTP status and message."""

    def __init__(self, status: int, message: str, retry_after: str | None = None) -> None:
        self.status = status
        self.message = message
        self.retry_after = retry_after
        wait = f" (Retry-After {retry_after} s)" if retry_after else ""
        super().__init__(f"HTTP {status}{': ' + message if message else ''}{wait}")


class LiveLink:
    """Posts encoded ExportTraceServiceRequests to `url`; `close()` ends the connection."""

    def __init__(self, url: str, timeout: float = TIMEOUT_SECONDS) -> None:
        self.url = url
        self._client = httpx.Client(timeout=timeout, trust_env=False)

    def send(self, body: bytes) -> int:
        """Post one request; the number of spans the receiver rejected (quarantined). Raises
        `LiveRefused` on any status but 200, `httpx.HTTPError` when it cannot be reached."""
        response = self._client.post(self.url, content=body, headers={"Content-Type": PROTOBUF})
        if response.status_code != 200:
            raise LiveRefused(response.status_code, _status_message(response),
                              response.headers.get("retry-after"))
        answer = ExportTraceServiceResponse()
        answer.ParseFromString(response.content)
        return int(answer.partial_success.rejected_spans)

    def close(self) -> None:
        self._client.close()


def _status_message(response: httpx.Response) -> str:
    """The message of a google.rpc.Status body (field 2), clean; else the reason phrase."""
    body = response.content
    if "json" in response.headers.get("content-type", ""):
        try:
            doc = response.json()
            return cell(str(doc.get("message", "")), 300) if isinstance(doc, dict) else ""
        except ValueError:
            return cell(response.reason_phrase, 100)
    i = 0
    try:
        while i < len(body):
            key, i = _varint(body, i)
            field, wire = key >> 3, key & 7
            if wire == 0:
                _, i = _varint(body, i)
            elif wire == 2:
                size, i = _varint(body, i)
                if field == 2:
                    return cell(body[i:i + size].decode("utf-8", "replace"), 300)
                i += size
            else:
                break
    except IndexError:
        pass
    return cell(response.reason_phrase, 100)


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7
