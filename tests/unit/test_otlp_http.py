"""The OTLP/HTTP server's framing against real loopback sockets: statuses, encodings, limits, hostile clients.

Clients are httpx, the OTel SDK's own exporter, or raw sockets (for what well-behaved clients never send).
The handler only records what reached it, so every assertion is about the framing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import hmac
import logging
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import h11
import httpx
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from connectors.otlp_http import ExportRequest, ExportResult, OtlpHttpServer
from connectors.otlp_http_body import BodyTooLarge, BoundedGunzip
from connectors.otlp_http_codec import clean_message
from connectors.otlp_http_connection import peer_name

MiB = 1024 * 1024
PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
TOKEN = "rcv-token-7f3a9c1e55d04b2a"
NO_BODY = [("Host", "x"), ("Content-Length", "0")]
HANG_GUARD = 30.0  # only so a broken server fails the test instead of hanging it; never a speed claim


@dataclass
class Recorder:
    """A handler that records each request and answers with `result` (or raises `error`)."""

    result: ExportResult = field(default_factory=lambda: ExportResult(200))
    error: Exception | None = None
    hold: asyncio.Event | None = None
    requests: list[ExportRequest] = field(default_factory=list)
    entered: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, request: ExportRequest) -> ExportResult:
        self.requests.append(request)
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.error is not None:
            raise self.error
        return self.result


class ServerFactory(Protocol):
    """The `serve` fixture: starts a server on a free loopback port with the test's recorder."""

    async def __call__(self, **options: object) -> OtlpHttpServer: ...


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def serve(recorder: Recorder) -> AsyncIterator[ServerFactory]:
    servers: list[OtlpHttpServer] = []

    async def start(**options: object) -> OtlpHttpServer:
        server = OtlpHttpServer(recorder, host="127.0.0.1", port=0, **options)  # type: ignore[arg-type]
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


def url(server: OtlpHttpServer, path: str = "/v1/traces") -> str:
    return f"http://{server.address[0]}:{server.address[1]}{path}"


M = TypeVar("M", bound=Message)


def _decode(response: httpx.Response, message: M) -> M:
    """`message` filled from the response body, in the encoding its Content-Type names."""
    if response.headers["content-type"] == "application/json":
        json_format.Parse(response.content, message)
    else:
        message.ParseFromString(response.content)
    return message


def decode_status(response: httpx.Response) -> status_pb2.Status:
    return _decode(response, status_pb2.Status())


def decode_success(response: httpx.Response) -> trace_service_pb2.ExportTraceServiceResponse:
    return _decode(response, trace_service_pb2.ExportTraceServiceResponse())


async def post(server: OtlpHttpServer, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(url(server), content=body, headers=headers)


class RawClient:
    """A loopback socket speaking whatever bytes a test writes, reading responses with h11."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.h11 = h11.Connection(h11.CLIENT)

    @classmethod
    async def open(cls, server: OtlpHttpServer) -> RawClient:
        reader, writer = await asyncio.open_connection(*server.address)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self) -> tuple[h11.Response | h11.InformationalResponse, bytes]:
        """The next response (or 100 Continue) and its body."""
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        if self.h11.our_state is h11.IDLE:  # the bytes went out raw: let h11 expect a response
            placeholder = h11.Request(method="POST", target="/", headers=NO_BODY)
            self.h11.send(placeholder)
            self.h11.send(h11.EndOfMessage())
        async with asyncio.timeout(HANG_GUARD):
            head: h11.Response | h11.InformationalResponse | None = None
            body = b""
            while True:
                event = self.h11.next_event()
                if event is h11.NEED_DATA:
                    self.h11.receive_data(await self.reader.read(65536))
                elif isinstance(event, h11.InformationalResponse):
                    return event, b""
                elif isinstance(event, h11.Response):
                    head = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    assert head is not None
                    return head, body
                else:
                    raise AssertionError(f"unexpected {event!r}")

    async def wait_closed_by_server(self) -> None:
        """Reads until the server closes (EOF or reset); TimeoutError if it does not within HANG_GUARD."""
        async with asyncio.timeout(HANG_GUARD):
            try:
                while await self.reader.read(65536):
                    pass
            except ConnectionError:
                pass

    async def still_open(self, wait: float = 0.2) -> bool:
        """True when the server has neither sent nor closed anything for `wait` seconds."""
        try:
            return await asyncio.wait_for(self.reader.read(1), wait) != b""  # bytes: open, b"": closed
        except TimeoutError:
            return True
        except ConnectionError:
            return False

    def close(self) -> None:
        self.writer.close()


async def answer_then_close(
        server: OtlpHttpServer, data: bytes) -> tuple[h11.Response | h11.InformationalResponse, bytes]:
    """Send `data` on a new raw connection; its first answer, once the server has closed that connection."""
    client = await RawClient.open(server)
    try:
        await client.send(data)
        answer = await client.response()
        await client.wait_closed_by_server()
    finally:
        client.close()
    return answer


def head(path: str = "/v1/traces", *, length: int | None = None, chunked: bool = False,
         extra: str = "", content_type: str = "application/x-protobuf") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Type: {content_type}"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    text = "\r\n".join(lines) + "\r\n" + extra + "\r\n"
    return text.encode()


def header(response: h11.Response | h11.InformationalResponse, name: bytes) -> bytes | None:
    return next((value for key, value in response.headers if key == name), None)


# --- success and the response encodings -------------------------------------------------------------


async def test_protobuf_body_reaches_the_handler_and_gets_an_empty_export_response(
        serve: ServerFactory, recorder: Recorder) -> None:
    server = await serve()
    response = await post(server, b"\x0a\x00garbage-not-protobuf", PROTOBUF)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    assert response.content == b""  # an ExportTraceServiceResponse with nothing set
    assert not decode_success(response).HasField("partial_success")
    [request] = recorder.requests
    assert request.body == b"\x0a\x00garbage-not-protobuf"  # bodies pass through unparsed
    assert request.encoding == "protobuf"
    assert request.peer.startswith("127.0.0.1:") and int(request.peer.rsplit(":", 1)[1]) > 0


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON"])
async def test_json_request_gets_a_json_answer(serve: ServerFactory, recorder: Recorder,
                                               content_type: str) -> None:
    server = await serve()
    response = await post(server, b'{"resourceSpans": []}', {"Content-Type": content_type})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    assert recorder.requests[0].encoding == "json"


@pytest.mark.parametrize("headers", [PROTOBUF, JSON], ids=["protobuf", "json"])
async def test_partial_success_is_encoded_in_the_request_encoding(
        serve: ServerFactory, recorder: Recorder, headers: dict[str, str]) -> None:
    recorder.result = ExportResult(200, rejected_spans=3, message="3 spans had no trace id\x1b[31m")
    server = await serve()
    response = await post(server, b"x", headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == headers["Content-Type"]
    partial = decode_success(response).partial_success
    assert partial.rejected_spans == 3
    assert partial.error_message == "3 spans had no trace id [31m"  # control characters removed
    if headers is JSON:
        assert response.json()["partialSuccess"]["rejectedSpans"] == "3"  # int64 as a string (proto JSON)


async def test_message_alone_makes_a_partial_success(serve: ServerFactory, recorder: Recorder) -> None:
    recorder.result = ExportResult(200, message="sampled down")
    server = await serve()
    response = await post(server, b"x", PROTOBUF)
    message = decode_success(response)
    assert message.HasField("partial_success")
    assert message.partial_success.rejected_spans == 0
    assert message.partial_success.error_message == "sampled down"


@pytest.mark.parametrize("headers", [PROTOBUF, JSON], ids=["protobuf", "json"])
async def test_large_counts_unicode_and_long_messages_survive_encoding(
        serve: ServerFactory, recorder: Recorder, headers: dict[str, str]) -> None:
    recorder.result = ExportResult(200, rejected_spans=2**40 + 300, message="spän ✓ " + "m" * 5000)
    server = await serve()
    async with httpx.AsyncClient() as client:
        partial = await client.post(url(server), content=b"x", headers=headers)
        recorder.result = ExportResult(400, message="bad ✗ body")
        failed = await client.post(url(server), content=b"x", headers=headers)
    decoded = decode_success(partial).partial_success
    assert decoded.rejected_spans == 2**40 + 300
    assert decoded.error_message.startswith("spän ✓ mmm") and len(decoded.error_message) == 1000
    assert decode_status(failed).message == "bad ✗ body"


# --- error statuses -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code"), [(400, 3), (500, 13)])
@pytest.mark.parametrize("headers", [PROTOBUF, JSON], ids=["protobuf", "json"])
async def test_handler_error_status_carries_a_google_rpc_status(
        serve: ServerFactory, recorder: Recorder, headers: dict[str, str], status: int, code: int) -> None:
    recorder.result = ExportResult(status, message="undecodable: truncated field at byte 12")
    server = await serve()
    response = await post(server, b"\x0a\xff", headers)
    assert response.status_code == status
    assert response.headers["content-type"] == headers["Content-Type"]
    decoded = decode_status(response)
    assert (decoded.code, decoded.message) == (code, "undecodable: truncated field at byte 12")
    assert "retry-after" not in response.headers


@pytest.mark.parametrize(("status", "retry_after", "header_value"),
                         [(429, 0.2, "1"), (503, 2.5, "3"), (503, 30.0, "30"), (503, -4.0, "1"),
                          (503, 1e300, "3600"), (429, float("inf"), "3600")])
async def test_throttled_answers_carry_integer_retry_after(
        serve: ServerFactory, recorder: Recorder, status: int, retry_after: float, header_value: str) -> None:
    recorder.result = ExportResult(status, message="queue full", retry_after=retry_after)
    server = await serve()
    response = await post(server, b"x", PROTOBUF)
    assert response.status_code == status
    assert response.headers["retry-after"] == header_value
    assert decode_status(response).code == (8 if status == 429 else 14)


async def test_handler_exception_is_a_clean_500_and_the_server_keeps_serving(
        serve: ServerFactory, recorder: Recorder, caplog: pytest.LogCaptureFixture) -> None:
    recorder.error = RuntimeError("disk exploded at /secret/path")
    server = await serve()
    async with httpx.AsyncClient() as client:
        failed = await client.post(url(server), content=b"x", headers=JSON)
        recorder.error = None
        served = await client.post(url(server), content=b"y", headers=JSON)
    assert failed.status_code == 500
    assert failed.json() == {"code": 13, "message": "the receiver failed on this request"}
    assert "/secret/path" not in failed.text
    assert served.status_code == 200
    assert [r.body for r in recorder.requests] == [b"x", b"y"]
    assert "the OTLP handler failed" in caplog.text
    assert server.pending_bytes == 0


@pytest.mark.parametrize("answer", [
    ExportResult(204), ExportResult(302), "not a result",
    ExportResult(400, message=None),  # type: ignore[arg-type]
    ExportResult(200, rejected_spans=2.0),  # type: ignore[arg-type]
    ExportResult(200, rejected_spans=True),
    ExportResult(200, rejected_spans=-1),
    ExportResult(503, retry_after="5"),  # type: ignore[arg-type]
    ExportResult(503, retry_after=float("nan")),
], ids=str)
async def test_a_handler_answer_outside_the_contract_is_500(
        serve: ServerFactory, recorder: Recorder, answer: ExportResult) -> None:
    recorder.result = answer
    server = await serve()
    async with httpx.AsyncClient() as client:
        failed = await client.post(url(server), content=b"x", headers=JSON)
        recorder.result = ExportResult(200)
        served = await client.post(url(server), content=b"y", headers=JSON)
    assert (failed.status_code, served.status_code) == (500, 200)
    assert failed.json()["message"] == "the receiver failed on this request"
    assert server.pending_bytes == 0


async def test_other_paths_are_404_and_other_methods_405(serve: ServerFactory, recorder: Recorder) -> None:
    server = await serve()
    async with httpx.AsyncClient() as client:
        not_found = await client.post(url(server, "/v1/metrics"), content=b"x", headers=PROTOBUF)
        root = await client.get(url(server, "/"))
        wrong_method = await client.get(url(server))
        put = await client.put(url(server), content=b"x", headers=JSON)
        with_query = await client.post(url(server, "/v1/traces?x=1"), content=b"q", headers=PROTOBUF)
    assert (not_found.status_code, root.status_code) == (404, 404)
    assert (wrong_method.status_code, put.status_code) == (405, 405)
    assert decode_status(not_found).code == 5
    assert put.headers["content-type"] == "application/json"
    assert with_query.status_code == 200
    assert [r.body for r in recorder.requests] == [b"q"]


@pytest.mark.parametrize("headers", [
    {"Content-Type": "text/plain"},
    {"Content-Type": "application/protobuf"},
    {},
    {"Content-Type": "application/x-protobuf", "Content-Encoding": "br"},
    {"Content-Type": "application/json", "Content-Encoding": "deflate"},
    {"Content-Type": "application/json", "Content-Encoding": "gzip, gzip"},
], ids=["text", "protobuf-without-x", "none", "brotli", "deflate", "double-gzip"])
async def test_unsupported_media_is_415_and_never_reaches_the_handler(
        serve: ServerFactory, recorder: Recorder, headers: dict[str, str]) -> None:
    server = await serve()
    async with httpx.AsyncClient() as client:
        response = await client.post(url(server), content=b"x", headers=headers)
        again = await client.post(url(server), content=b"ok", headers=PROTOBUF)  # same connection
    assert response.status_code == 415
    assert decode_status(response).code == 3
    expected = headers.get("Content-Type", "application/json")
    assert response.headers["content-type"] == (expected if "x-protobuf" in expected or "json" in expected
                                                else "application/json")
    assert again.status_code == 200
    assert [r.body for r in recorder.requests] == [b"ok"]


# --- bearer token ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("authorization", "status"), [
    (f"Bearer {TOKEN}", 200),
    (f"bearer {TOKEN}", 200),
    (f"Bearer {TOKEN}x", 401),
    (f"Bearer {TOKEN[:-1]}", 401),
    (f"Basic {TOKEN}", 401),
    (TOKEN, 401),
    (None, 401),
], ids=["right", "scheme-case", "longer", "shorter", "basic", "no-scheme", "missing"])
async def test_bearer_token_is_required_when_set_and_never_echoed(
        serve: ServerFactory, recorder: Recorder, caplog: pytest.LogCaptureFixture,
        authorization: str | None, status: int) -> None:
    caplog.set_level(logging.DEBUG)
    server = await serve(token=TOKEN)
    headers = dict(PROTOBUF) if authorization is None else {**PROTOBUF, "Authorization": authorization}
    response = await post(server, b"x", headers)
    assert response.status_code == status
    assert len(recorder.requests) == (1 if status == 200 else 0)
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
        assert decode_status(response).code == 16
    assert TOKEN not in response.text and TOKEN[:-1] not in str(response.headers)
    assert TOKEN[:8] not in caplog.text


async def test_two_authorization_headers_are_refused(serve: ServerFactory, recorder: Recorder) -> None:
    server = await serve(token=TOKEN)
    client = await RawClient.open(server)
    await client.send(head(length=1, extra=f"Authorization: Bearer {TOKEN}\r\nAuthorization: Bearer x\r\n")
                      + b"x")
    response, _ = await client.response()
    client.close()
    assert response.status_code == 401
    assert recorder.requests == []


# --- keep-alive, chunked, gzip, 100-continue ----------------------------------------------------------------


async def test_keep_alive_serves_many_requests_on_one_connection(
        serve: ServerFactory, recorder: Recorder) -> None:
    server = await serve()
    client = await RawClient.open(server)
    for n in range(3):
        await client.send(head(length=2) + b"r%d" % n)
        response, _ = await client.response()
        assert response.status_code == 200
    client.close()
    assert [r.body for r in recorder.requests] == [b"r0", b"r1", b"r2"]
    assert len({r.peer for r in recorder.requests}) == 1


@pytest.mark.parametrize("framing", [head(length=1, extra="Connection: close\r\n") + b"c",
                                     head(length=1).replace(b"HTTP/1.1", b"HTTP/1.0") + b"c"],
                         ids=["connection-close", "http-1.0"])
async def test_a_client_asking_to_close_is_answered_then_closed(
        serve: ServerFactory, recorder: Recorder, framing: bytes) -> None:
    server = await serve()
    response, _ = await answer_then_close(server, framing)
    assert response.status_code == 200
    assert [r.body for r in recorder.requests] == [b"c"]


async def test_pipelined_requests_are_answered_in_order(serve: ServerFactory, recorder: Recorder) -> None:
    server = await serve()
    client = await RawClient.open(server)
    await client.send(b"".join(head(length=2) + b"p%d" % n for n in range(3)))
    for _ in range(3):
        response, _ = await client.response()
        assert response.status_code == 200
    client.close()
    assert [r.body for r in recorder.requests] == [b"p0", b"p1", b"p2"]


async def test_chunked_body_is_joined(serve: ServerFactory, recorder: Recorder) -> None:
    server = await serve()

    async def pieces() -> AsyncIterator[bytes]:
        for n in range(50):
            yield b"piece-%02d;" % n

    async with httpx.AsyncClient() as client:
        response = await client.post(url(server), content=pieces(), headers=PROTOBUF)
    assert response.status_code == 200
    assert recorder.requests[0].body == b"".join(b"piece-%02d;" % n for n in range(50))


@pytest.mark.parametrize("encoding", ["gzip", "GZIP", "identity"])
async def test_gzip_and_identity_bodies_reach_the_handler_decompressed(
        serve: ServerFactory, recorder: Recorder, encoding: str) -> None:
    server = await serve()
    payload = bytes(range(256)) * 4000
    body = gzip.compress(payload) if encoding.lower() == "gzip" else payload
    response = await post(server, body, {**PROTOBUF, "Content-Encoding": encoding})
    assert response.status_code == 200
    assert recorder.requests[0].body == payload


async def test_concatenated_gzip_members_are_one_body(serve: ServerFactory, recorder: Recorder) -> None:
    server = await serve()
    response = await post(server, gzip.compress(b"first,") + gzip.compress(b"second"),
                          {**JSON, "Content-Encoding": "gzip"})
    assert response.status_code == 200
    assert recorder.requests[0].body == b"first,second"


@pytest.mark.parametrize("body", [b"not gzip at all", gzip.compress(b"x" * 5000)[:-12], b""],
                         ids=["garbage", "truncated", "empty"])
async def test_broken_gzip_is_400(serve: ServerFactory, recorder: Recorder, body: bytes) -> None:
    server = await serve()
    response = await post(server, body, {**JSON, "Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert "gzip" in response.json()["message"]
    assert recorder.requests == []


async def test_expect_100_continue_is_answered_before_the_body(
        serve: ServerFactory, recorder: Recorder) -> None:
    server = await serve()
    client = await RawClient.open(server)
    await client.send(head(length=4, extra="Expect: 100-continue\r\n"))
    interim, _ = await client.response()
    assert interim.status_code == 100
    await client.send(b"body")
    response, _ = await client.response()
    client.close()
    assert response.status_code == 200
    assert recorder.requests[0].body == b"body"


# --- size limits and the pending budget -----------------------------------------------------------------


async def test_declared_oversize_body_is_413_without_reading_it(
        serve: ServerFactory, recorder: Recorder) -> None:
    server = await serve(max_body_bytes=1 * MiB)
    client = await RawClient.open(server)
    await client.send(head(length=100 * 1000 * 1000))  # 100 MB declared, not one byte sent
    response, body = await client.response()
    assert response.status_code == 413
    assert header(response, b"connection") == b"close"
    await client.wait_closed_by_server()
    client.close()
    assert recorder.requests == []
    assert "larger than 1048576 bytes" in body.decode()


def traced_peak(before: int) -> int:
    return tracemalloc.get_traced_memory()[1] - before


@pytest.fixture
def traced() -> Iterator[int]:
    """Starts tracemalloc (after collecting earlier garbage); yields the bytes traced at the start."""
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        yield tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


async def stream_chunked(client: RawClient, total: int, piece: bytes) -> None:
    """Writes `total` bytes as chunks of `piece`, stopping quietly when the server hangs up."""
    frame = b"%x\r\n%s\r\n" % (len(piece), piece)
    try:
        for _ in range(total // len(piece)):
            await client.send(frame)
        await client.send(b"0\r\n\r\n")
    except ConnectionError:
        pass


async def test_100_mb_chunked_body_stops_at_the_limit_in_bounded_memory(
        serve: ServerFactory, recorder: Recorder, traced: int) -> None:
    server = await serve(max_body_bytes=1 * MiB, max_pending_bytes=4 * MiB)
    client = await RawClient.open(server)
    await client.send(head(chunked=True))
    sender = asyncio.create_task(stream_chunked(client, 100 * 1000 * 1000, b"z" * 65536))
    response, _ = await client.response()
    await client.wait_closed_by_server()
    client.close()
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)
    assert response.status_code == 413
    assert recorder.requests == []
    assert server.pending_bytes == 0
    # The server held at most the 1 MiB limit plus read buffers; 100 MB read into memory would show here.
    assert traced_peak(traced) < 8 * MiB, traced_peak(traced)


async def test_100_mb_body_with_length_sent_anyway_is_refused_in_bounded_memory(
        serve: ServerFactory, recorder: Recorder, traced: int) -> None:
    server = await serve(max_body_bytes=1 * MiB)
    client = await RawClient.open(server)
    await client.send(head(length=100 * 1000 * 1000))
    piece = b"y" * 65536

    async def send_body() -> None:
        try:
            for _ in range(100 * 1000 * 1000 // len(piece)):
                await client.send(piece)
        except ConnectionError:
            pass

    sender = asyncio.create_task(send_body())
    response, _ = await client.response()
    await client.wait_closed_by_server()
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)
    client.close()
    assert response.status_code == 413
    assert recorder.requests == []
    assert traced_peak(traced) < 8 * MiB, traced_peak(traced)


async def test_gzip_bomb_stops_at_the_limit(serve: ServerFactory, recorder: Recorder, traced: int) -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(MiB)
    bomb = b"".join(packer.compress(zeros) for _ in range(64)) + packer.flush()  # 64 MiB from ~64 KB
    assert len(bomb) < MiB // 8
    server = await serve(max_body_bytes=1 * MiB, max_pending_bytes=4 * MiB)
    tracemalloc.reset_peak()
    response = await post(server, bomb, {**PROTOBUF, "Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert recorder.requests == []
    assert server.pending_bytes == 0
    assert traced_peak(traced) < 8 * MiB, traced_peak(traced)


async def test_endless_empty_gzip_members_stop_at_the_limit_on_the_wire(
        serve: ServerFactory, recorder: Recorder) -> None:
    server = await serve(max_body_bytes=100_000)
    empty_member = gzip.compress(b"")
    client = await RawClient.open(server)
    await client.send(head(chunked=True, extra="Content-Encoding: gzip\r\n"))
    sender = asyncio.create_task(stream_chunked(client, 10 * MiB, empty_member * 500))
    response, _ = await client.response()
    await client.wait_closed_by_server()
    client.close()
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)
    assert response.status_code == 413
    assert recorder.requests == []


@pytest.mark.parametrize("limit", [1, 1000, 65536])
def test_bounded_gunzip_never_hands_out_more_than_the_limit(limit: int) -> None:
    pieces: list[bytes] = []
    gunzip = BoundedGunzip(limit, pieces.append)
    with pytest.raises(BodyTooLarge):
        gunzip.feed(gzip.compress(bytes(10 * MiB)))
    assert sum(map(len, pieces)) <= limit


async def test_gzip_body_just_under_the_limit_is_accepted(serve: ServerFactory, recorder: Recorder) -> None:
    server = await serve(max_body_bytes=1 * MiB)
    exact = await post(server, gzip.compress(bytes(MiB)), {**PROTOBUF, "Content-Encoding": "gzip"})
    over = await post(server, gzip.compress(bytes(MiB + 1)), {**PROTOBUF, "Content-Encoding": "gzip"})
    assert (exact.status_code, over.status_code) == (200, 413)
    assert [len(r.body) for r in recorder.requests] == [MiB]


async def test_pending_budget_refuses_with_503_and_retry_after_without_reading_the_body(
        serve: ServerFactory, recorder: Recorder) -> None:
    recorder.hold = asyncio.Event()
    server = await serve(max_body_bytes=100_000, max_pending_bytes=150_000)
    async with httpx.AsyncClient() as client:
        first = asyncio.create_task(client.post(url(server), content=b"a" * 100_000, headers=PROTOBUF))
        await asyncio.wait_for(recorder.entered.wait(), HANG_GUARD)
        assert server.pending_bytes == 100_000  # the first body, waiting on the handler
        busy, _ = await answer_then_close(server, head(length=100_000))
        recorder.hold.set()
        assert (await first).status_code == 200
        after = await client.post(url(server), content=b"b" * 100_000, headers=PROTOBUF)
    assert busy.status_code == 503
    assert header(busy, b"retry-after") == b"1"
    assert header(busy, b"connection") == b"close"
    assert after.status_code == 200
    assert len(recorder.requests) == 2
    assert server.pending_bytes == 0


async def test_chunked_bodies_are_charged_to_the_budget_as_they_arrive(
        serve: ServerFactory, recorder: Recorder) -> None:
    recorder.hold = asyncio.Event()
    server = await serve(max_body_bytes=100_000, max_pending_bytes=150_000)
    async with httpx.AsyncClient() as client:
        first = asyncio.create_task(client.post(url(server), content=b"a" * 100_000, headers=JSON))
        await asyncio.wait_for(recorder.entered.wait(), HANG_GUARD)
        raw = await RawClient.open(server)
        await raw.send(head(chunked=True, content_type="application/json"))
        await stream_chunked(raw, 60_000, b"c" * 10_000)
        busy, body = await raw.response()
        raw.close()
        recorder.hold.set()
        await first
    assert busy.status_code == 503
    assert header(busy, b"content-type") == b"application/json"
    assert "busy" in body.decode()
    assert server.pending_bytes == 0


async def test_gunzipped_bytes_are_charged_to_the_budget(serve: ServerFactory, recorder: Recorder) -> None:
    recorder.hold = asyncio.Event()
    server = await serve(max_body_bytes=150_000, max_pending_bytes=150_000)
    async with httpx.AsyncClient() as client:
        first = asyncio.create_task(client.post(url(server), content=b"a" * 100_000, headers=PROTOBUF))
        await asyncio.wait_for(recorder.entered.wait(), HANG_GUARD)
        small_on_the_wire = gzip.compress(bytes(100_000))
        assert len(small_on_the_wire) < 1000
        busy = await client.post(url(server), content=small_on_the_wire,
                                 headers={**PROTOBUF, "Content-Encoding": "gzip"})
        recorder.hold.set()
        await first
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == "1"
    assert len(recorder.requests) == 1
    assert server.pending_bytes == 0


async def test_the_budget_always_has_room_for_one_largest_body(
        serve: ServerFactory, recorder: Recorder) -> None:
    server = await serve(max_body_bytes=200_000, max_pending_bytes=1000)
    response = await post(server, b"w" * 200_000, PROTOBUF)
    assert response.status_code == 200
    assert len(recorder.requests[0].body) == 200_000


def test_an_empty_token_is_refused_rather_than_matching_an_empty_credential(recorder: Recorder) -> None:
    with pytest.raises(ValueError, match="token is empty"):
        OtlpHttpServer(recorder, token="")


async def test_connections_past_the_limit_get_503_when_every_slot_is_busy(
        serve: ServerFactory, recorder: Recorder) -> None:
    recorder.hold = asyncio.Event()
    server = await serve(max_connections=1)
    holder = await RawClient.open(server)
    await holder.send(head(length=1) + b"h")
    await asyncio.wait_for(recorder.entered.wait(), HANG_GUARD)  # the one slot is busy in the handler
    refused, _ = await answer_then_close(server, head(length=1) + b"e")
    recorder.hold.set()
    served, _ = await holder.response()
    holder.close()
    assert refused.status_code == 503
    assert header(refused, b"retry-after") == b"1"
    assert served.status_code == 200
    assert [r.body for r in recorder.requests] == [b"h"]


async def test_an_idle_keep_alive_connection_makes_room_for_a_new_client(
        serve: ServerFactory, recorder: Recorder) -> None:
    server = await serve(max_connections=1)
    idle = await RawClient.open(server)
    await idle.send(head(length=1) + b"i")
    assert (await idle.response())[0].status_code == 200  # now idle between batches, as an SDK session
    newcomer = await RawClient.open(server)
    await newcomer.send(head(length=1) + b"n")
    served, _ = await newcomer.response()
    await idle.wait_closed_by_server()  # the idle one was closed to free the slot
    newcomer.close()
    idle.close()
    assert served.status_code == 200
    assert [r.body for r in recorder.requests] == [b"i", b"n"]


async def test_refused_connections_past_the_cap_are_closed_at_once(
        serve: ServerFactory, recorder: Recorder) -> None:
    recorder.hold = asyncio.Event()
    server = await serve(max_connections=2)
    busy = [await RawClient.open(server) for _ in range(2)]
    for client in busy:
        await client.send(head(length=1) + b"b")
    while len(recorder.requests) < 2:
        await asyncio.wait_for(recorder.entered.wait(), HANG_GUARD)
        recorder.entered.clear()
    refused = [await RawClient.open(server) for _ in range(40)]  # never send, never close
    for client in refused:
        await client.wait_closed_by_server()  # the 503, then EOF (half-close or close)
    held = server.open_connections
    for client in [*busy, *refused]:
        client.close()
    recorder.hold.set()
    # 2 served + at most 2 (= max_connections) refusals lingering; the other 38 went at once.
    assert held <= 4, held


# --- hostile and broken clients ----------------------------------------------------------------------------


async def test_slow_header_trickle_is_cut_off(serve: ServerFactory, recorder: Recorder) -> None:
    server = await serve(read_timeout=0.3)
    client = await RawClient.open(server)
    await client.send(b"POST /v1/traces HTTP/1.1\r\n")
    lines_sent = 0
    closed = False
    for n in range(int(HANG_GUARD / 0.05)):  # one header line every 50 ms, for as long as it is allowed
        try:
            await client.send(b"X-Slow-%d: a\r\n" % n)
            lines_sent += 1
            closed = await asyncio.wait_for(client.reader.read(1), 0.05) == b""
        except TimeoutError:
            continue
        except ConnectionError:
            closed = True
        break
    client.close()
    assert closed
    assert lines_sent > 1  # the head was being read, then cut off (not closed on its first line)
    assert recorder.requests == []


async def test_slow_body_gets_408_and_is_closed(serve: ServerFactory, recorder: Recorder) -> None:
    server = await serve(read_timeout=0.3)
    response, _ = await answer_then_close(server, head(length=1000) + b"only a little")
    assert response.status_code == 408
    assert recorder.requests == []
    assert server.pending_bytes == 0


async def test_idle_keep_alive_connection_is_closed(serve: ServerFactory, recorder: Recorder) -> None:
    server = await serve(idle_timeout=2.0)
    client = await RawClient.open(server)
    await client.send(head(length=1) + b"k")
    assert (await client.response())[0].status_code == 200
    assert await client.still_open(0.2)  # kept alive after the answer
    await client.wait_closed_by_server()  # then closed after idle_timeout
    client.close()
    assert server.open_connections == 0


async def test_truncated_body_never_reaches_the_handler_and_the_server_keeps_serving(
        serve: ServerFactory, recorder: Recorder) -> None:
    server = await serve()
    for framing in (head(length=1000) + b"x" * 500, head(chunked=True) + b"10\r\n0123"):
        client = await RawClient.open(server)
        await client.send(framing)
        client.writer.write_eof()
        await client.wait_closed_by_server()
        client.close()
    response = await post(server, b"fine", PROTOBUF)
    assert response.status_code == 200
    assert [r.body for r in recorder.requests] == [b"fine"]
    assert server.pending_bytes == 0


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GARBAGE\r\n\r\n", 400),
    (b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n", 400),
    (b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
], ids=["garbage", "bad-length", "bad-transfer-encoding", "huge-header"])
async def test_malformed_http_gets_an_error_and_a_close(
        serve: ServerFactory, recorder: Recorder, request_bytes: bytes, status: int) -> None:
    server = await serve()
    response, body = await answer_then_close(server, request_bytes)
    assert response.status_code == status
    assert b"malformed HTTP request" in body
    assert b"nope" not in body and b"aaaa" not in body  # the request is never quoted back
    assert recorder.requests == []


# --- lifecycle and the real exporter ---------------------------------------------------------------------


async def test_close_lets_a_request_in_flight_finish(serve: ServerFactory, recorder: Recorder) -> None:
    recorder.hold = asyncio.Event()
    server = await serve()
    idle = await RawClient.open(server)
    async with httpx.AsyncClient() as client:
        in_flight = asyncio.create_task(client.post(url(server), content=b"x", headers=PROTOBUF))
        await asyncio.wait_for(recorder.entered.wait(), HANG_GUARD)
        closing = asyncio.create_task(server.close())
        await idle.wait_closed_by_server()  # idle connections go at once
        recorder.hold.set()
        response = await in_flight
        await closing
    idle.close()
    assert response.status_code == 200
    assert response.headers["connection"] == "close"
    with pytest.raises(httpx.ConnectError):
        await post(server, b"y", PROTOBUF)


async def test_close_cancels_a_handler_past_the_grace(serve: ServerFactory, recorder: Recorder) -> None:
    recorder.hold = asyncio.Event()  # never set
    server = await serve(close_grace=0.1)
    async with httpx.AsyncClient() as client:
        in_flight = asyncio.create_task(client.post(url(server), content=b"x", headers=PROTOBUF))
        await asyncio.wait_for(recorder.entered.wait(), HANG_GUARD)
        await server.close()
        with pytest.raises(httpx.HTTPError):
            await in_flight
    assert server.pending_bytes == 0


@pytest.mark.parametrize(("address", "name"), [
    (("127.0.0.1", 5), "127.0.0.1:5"), (("::1", 7, 0, 0), "[::1]:7"), (None, "unknown"), ("sock", "unknown"),
])
def test_peer_names_are_host_colon_port_with_ipv6_bracketed(address: object, name: str) -> None:
    # Pure: IPv6 loopback is not configured on every CI host, and the name format is all this pins.
    assert peer_name(address) == name


async def test_serve_until_binds_a_free_port_and_stops_on_the_event(recorder: Recorder) -> None:
    server = OtlpHttpServer(recorder, port=0)
    stop = asyncio.Event()
    serving = asyncio.create_task(server.serve_until(stop))
    async with asyncio.timeout(HANG_GUARD):
        while server.address[1] == 0:
            if serving.done():
                serving.result()  # raises the bind error
                pytest.fail("serve_until returned without binding")
            await asyncio.sleep(0.01)
    response = await post(server, b"x", PROTOBUF)
    stop.set()
    await asyncio.wait_for(serving, HANG_GUARD)
    assert response.status_code == 200
    with pytest.raises(httpx.ConnectError):
        await post(server, b"y", PROTOBUF)


@pytest.mark.parametrize("compression", ["gzip", "none"])
async def test_the_sdk_exporter_delivers_spans(
        serve: ServerFactory, recorder: Recorder, compression: str) -> None:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

    server = await serve(token=TOKEN)
    exporter = OTLPSpanExporter(endpoint=url(server), headers={"Authorization": f"Bearer {TOKEN}"},
                                compression=Compression(compression))
    provider = TracerProvider()
    results: list[SpanExportResult] = []
    original_export = exporter.export

    def export(spans):  # type: ignore[no-untyped-def]
        results.append(original_export(spans))
        return results[-1]

    exporter.export = export  # type: ignore[method-assign]
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")

    def emit() -> None:
        with tracer.start_as_current_span("chat gpt-4o"):
            pass

    await asyncio.to_thread(emit)
    await asyncio.to_thread(provider.shutdown)
    assert results == [SpanExportResult.SUCCESS]
    decoded = trace_service_pb2.ExportTraceServiceRequest()
    decoded.ParseFromString(recorder.requests[0].body)
    assert decoded.resource_spans[0].scope_spans[0].spans[0].name == "chat gpt-4o"


# --- review findings: memory, slots, framing edge cases ------------------------------------------------


async def test_a_body_of_one_byte_chunks_costs_about_its_size(serve: ServerFactory, traced: int) -> None:
    size = 100_000
    held: list[int] = []

    async def measure(request: ExportRequest) -> ExportResult:
        held.append(tracemalloc.get_traced_memory()[0])
        return ExportResult(200)

    server = OtlpHttpServer(measure, port=0, max_body_bytes=1 * MiB)
    await server.start()
    try:
        client = await RawClient.open(server)
        await client.send(head(chunked=True))
        frames = b"1\r\nx\r\n" * 10_000
        for _ in range(size // 10_000):
            await client.send(frames)
        await client.send(b"0\r\n\r\n")
        response, _ = await client.response()
        client.close()
    finally:
        await server.close()
    assert response.status_code == 200
    # ~40 bytes of object overhead per 1-byte piece would show as ~4 MB here; one buffer is ~100 KB.
    assert held[0] - traced < 1 * MiB, held[0] - traced


async def test_the_handler_call_holds_the_body_once(serve: ServerFactory) -> None:
    size = 4 * MiB
    body = b"z" * size
    held: list[int] = []

    async def measure(request: ExportRequest) -> ExportResult:
        held.append(tracemalloc.get_traced_memory()[0])
        return ExportResult(200)

    server = OtlpHttpServer(measure, port=0)
    await server.start()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]  # the test's own copy of the body is already here
        client = await RawClient.open(server)
        await client.send(head(length=size))
        for start in range(0, size, 65536):
            await client.send(body[start:start + 65536])
        response, _ = await client.response()
        client.close()
    finally:
        tracemalloc.stop()
        await server.close()
    assert response.status_code == 200
    assert held[0] - before < 1.5 * size, (held[0] - before) / size  # pieces + joined copy would be 2x


async def test_a_client_that_never_reads_answers_is_dropped(serve: ServerFactory, recorder: Recorder) -> None:
    recorder.result = ExportResult(200, message="m" * 1000)  # ~1 KB answers fill the socket buffers
    server = await serve(read_timeout=0.5, idle_timeout=0.5)
    client = await RawClient.open(server)
    request = head(length=1) + b"r"

    async def pipeline_forever() -> None:
        with contextlib.suppress(ConnectionError):
            for _ in range(200_000):  # bounded: 20 MB of requests, ~200 MB of answers never read
                await client.send(request * 100)

    sender = asyncio.create_task(pipeline_forever())
    async with asyncio.timeout(HANG_GUARD):
        while server.open_connections == 0:
            await asyncio.sleep(0.01)
        while server.open_connections:  # the server gives up on a client that takes no answer
            await asyncio.sleep(0.05)
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)
    client.close()
    assert len(recorder.requests) > 0


async def test_heads_declaring_large_bodies_hold_no_budget(serve: ServerFactory, recorder: Recorder) -> None:
    server = await serve(max_body_bytes=1 * MiB, max_pending_bytes=4 * MiB)
    squatters = [await RawClient.open(server) for _ in range(6)]
    for client in squatters:
        await client.send(head(length=1 * MiB))  # and never a body byte
    async with asyncio.timeout(HANG_GUARD):
        while server.open_connections < 6:
            await asyncio.sleep(0.01)
    response = await post(server, b"small", PROTOBUF)  # 6 x 1 MiB declared > the 4 MiB budget
    pending = server.pending_bytes
    for client in squatters:
        client.close()
    assert response.status_code == 200
    assert pending == 0
    assert [r.body for r in recorder.requests] == [b"small"]


async def test_a_declared_body_that_does_not_fit_the_budget_now_is_503_unread(
        serve: ServerFactory, recorder: Recorder) -> None:
    recorder.hold = asyncio.Event()
    server = await serve(max_body_bytes=100_000, max_pending_bytes=150_000)
    async with httpx.AsyncClient() as client:
        first = asyncio.create_task(client.post(url(server), content=b"a" * 100_000, headers=PROTOBUF))
        await asyncio.wait_for(recorder.entered.wait(), HANG_GUARD)
        # small enough to be skipped if refused; a busy refusal closes all the same: the contract says so
        busy, _ = await answer_then_close(server, head(length=60_000) + b"b" * 60_000)
        recorder.hold.set()
        await first
    assert busy.status_code == 503
    assert header(busy, b"connection") == b"close"
    assert server.pending_bytes == 0


async def test_a_body_that_keeps_moving_is_not_cut_at_read_timeout(
        serve: ServerFactory, recorder: Recorder) -> None:
    server = await serve(read_timeout=1.0)
    client = await RawClient.open(server)
    size = 1 * MiB
    await client.send(head(length=size))
    for _ in range(16):  # 16 pieces of 64 KiB, 0.125 s apart: ~2 s in all, twice read_timeout
        await client.send(b"m" * (size // 16))
        await asyncio.sleep(0.125)
    response, _ = await client.response()
    client.close()
    assert response.status_code == 200
    assert len(recorder.requests[0].body) == size


async def test_a_trickled_body_is_cut_off_at_its_rate_floor(serve: ServerFactory, recorder: Recorder) -> None:
    server = await serve(read_timeout=0.3, max_body_bytes=1000)
    client = await RawClient.open(server)
    await client.send(head(chunked=True))
    status = None
    async with asyncio.timeout(HANG_GUARD):
        with contextlib.suppress(ConnectionError):
            while True:  # one byte every 50 ms: always moving, far below any useful rate
                await client.send(b"1\r\nt\r\n")
                with contextlib.suppress(TimeoutError):
                    if await asyncio.wait_for(client.reader.read(12), 0.05):
                        status = 408  # the server answered; read the whole answer below
                        break
    client.close()
    assert status == 408
    assert recorder.requests == []
    assert server.pending_bytes == 0


@pytest.mark.parametrize("extra", [
    "".join(f"a{n}: b\r\n" for n in range(7000)),  # a complete head arriving in one read
    "X-Big: " + "a" * 17_000 + "\r\n",
    "".join(f"X-{n}: v\r\n" for n in range(101)),
], ids=["7000-headers", "17k-value", "101-headers"])
async def test_large_heads_are_431_however_they_arrive(
        serve: ServerFactory, recorder: Recorder, extra: str) -> None:
    server = await serve()
    response, _ = await answer_then_close(server, head(length=1, extra=extra) + b"x")
    assert response.status_code == 431
    assert recorder.requests == []


async def test_content_length_with_chunked_is_400_and_closed(
        serve: ServerFactory, recorder: Recorder) -> None:
    server = await serve()
    response, body = await answer_then_close(
        server, head(length=5, chunked=True) + b"5\r\nhello\r\n0\r\n\r\n")
    assert response.status_code == 400
    assert b"malformed HTTP request" in body
    assert recorder.requests == []


async def test_the_token_check_compares_equal_length_digests(
        serve: ServerFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    server = await serve(token=TOKEN)
    for credential in ("x", TOKEN, TOKEN * 3):
        await post(server, b"x", {**PROTOBUF, "Authorization": f"Bearer {credential}"})
    assert compared == [(32, 32)] * 3  # nothing about the token's length reaches the comparison
    assert TOKEN.encode() not in repr(vars(server)).encode()


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u202e", "\u2066", "\u200f", "\x85"])
def test_clean_message_removes_line_separators_and_bidi_controls(separator: str) -> None:
    assert clean_message(f"span{separator}text") == "span text"


@pytest.mark.parametrize("refusal", [401, 413, 503])
async def test_expect_100_continue_refused_gets_no_100_and_a_close(
        serve: ServerFactory, recorder: Recorder, refusal: int) -> None:
    recorder.hold = asyncio.Event()
    server = await serve(token=TOKEN, max_body_bytes=100_000, max_pending_bytes=150_000)
    auth = f"Authorization: Bearer {TOKEN}\r\n"
    first = await RawClient.open(server)
    if refusal == 503:  # one body waits on the handler, so another 100 KB does not fit now
        await first.send(head(length=100_000, extra=auth) + b"a" * 100_000)
        await asyncio.wait_for(recorder.entered.wait(), HANG_GUARD)
    extra = {401: "", 413: auth, 503: auth}[refusal] + "Expect: 100-continue\r\n"
    length = {401: 10, 413: 200_000, 503: 100_000}[refusal]
    response, _ = await answer_then_close(server, head(length=length, extra=extra))
    recorder.hold.set()
    first.close()
    assert response.status_code == refusal  # a final answer, not 100 Continue
    assert len(recorder.requests) == (1 if refusal == 503 else 0)


async def test_after_a_refused_small_body_the_next_pipelined_request_is_served(
        serve: ServerFactory, recorder: Recorder) -> None:
    server = await serve()
    client = await RawClient.open(server)
    await client.send(head("/v1/metrics", length=3) + b"abc" + head(length=2) + b"ok")
    refused, _ = await client.response()
    served, _ = await client.response()
    client.close()
    assert (refused.status_code, served.status_code) == (404, 200)
    assert [r.body for r in recorder.requests] == [b"ok"]


async def test_serve_until_on_a_taken_port_raises(serve: ServerFactory, recorder: Recorder) -> None:
    taken = await serve()
    server = OtlpHttpServer(recorder, port=taken.address[1])
    with pytest.raises(OSError):
        await asyncio.wait_for(server.serve_until(asyncio.Event()), HANG_GUARD)
