"""One OTLP/HTTP client connection: reads requests in turn (keep-alive), admits, reads and answers each.

Every wait on the client is bounded: a head must arrive within `read_timeout` of its first byte; a body
must keep moving (no `read_timeout` without a byte) and finish within `read_timeout` plus its length at
`MIN_BODY_RATE`; an answer the client does not take within `read_timeout` drops the connection.
A stalled or too-slow body is answered 408 and closed. OTLP exporters retry only 429/502/503/504 and
connection errors, and urllib3 reads an answer even when its body write hit the close, so an SDK exporter
that gets this 408 drops the batch. It is kept because it is the truth (the client did not send in
time; a 503 would say the server was busy when it was not, and invite the same slow resend into the same
cut), and because a well-behaved exporter never gets here: the SDK's own export timeout (10 s by
default) ends its request long before `read_timeout` (30 s) without a byte, or the rate floor (a 16 MiB
body gets ~286 s). The data-loss fix is that a body still moving is no longer cut at a fixed deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

import h11

from connectors.otlp_http_body import (
    BadGzip,
    BodyCollector,
    BodyTooLarge,
    BoundedGunzip,
    BudgetExhausted,
    PendingBudget,
)
from connectors.otlp_http_codec import (
    MEDIA_TYPES,
    Encoding,
    ExportRequest,
    ExportResult,
    Handler,
    request_encoding,
    result_problem,
    status_body,
    success_body,
)

MiB = 1024 * 1024
TRACES_PATH = b"/v1/traces"
READ_SIZE = 64 * 1024
HEAD_READ_SIZE = 16 * 1024  # h11 refuses an incomplete head past this, so a head is read in such steps
MAX_HEADERS = 100
MAX_HEADER_BYTES = 16 * 1024  # names + values: a complete head arriving in one read is bounded too
MIN_BODY_RATE = 64 * 1024  # bytes/s on average a body may not fall below (after a `read_timeout` start)
RETRY_AFTER_MAX = 3600
LINGER_SECONDS = 2.0
LINGER_BYTES = 4 * MiB
BUSY_RETRY_SECONDS = 1.0
HANDLER_FAILED = ExportResult(500, message="the receiver failed on this request")
_log = logging.getLogger("connectors.otlp_http")


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """What a connection needs from its server: the handler, the limits, and two questions it asks."""

    handler: Handler
    budget: PendingBudget
    max_body_bytes: int
    read_timeout: float
    idle_timeout: float
    authorized: Callable[[h11.Request], bool]
    closing: Callable[[], bool]


class Refusal(Exception):
    """A request answered with an error status by the server itself, not the handler."""

    def __init__(self, status: int, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.result = ExportResult(status, message=message, retry_after=retry_after)


def busy_refusal() -> Refusal:
    return Refusal(503, "the receiver is busy: too many bytes pending", retry_after=BUSY_RETRY_SECONDS)


class Connection:
    """One client connection; `busy` is False only while it waits for the next request."""

    def __init__(self, settings: ConnectionSettings, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self._s, self._reader, self._writer = settings, reader, writer
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=HEAD_READ_SIZE)
        self._peer = peer_name(writer.get_extra_info("peername"))
        self._loop = asyncio.get_running_loop()
        self._deadline = 0.0
        self.busy = False
        self.idle_since = self._loop.time()

    async def serve(self) -> None:
        while not self._s.closing():
            self.busy, self.idle_since = False, self._loop.time()
            try:
                request = await self._read_head()
                if request is None:
                    return
                await self._answer(request)
            except h11.RemoteProtocolError as exc:  # its text may quote the request: never sent or logged
                if self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    malformed = ExportResult(exc.error_status_hint, message="malformed HTTP request")
                    await self._respond("json", malformed)
                    await linger(self._reader, self._writer)
                return
            if self._h11.our_state is not h11.DONE or self._h11.their_state is not h11.DONE:
                if self._h11.their_state is h11.SEND_BODY:  # a body we left unread may still be arriving
                    await linger(self._reader, self._writer)
                return
            self._h11.start_next_cycle()

    async def _read_head(self) -> h11.Request | None:
        """The next request's head; None when the client closed, or stayed idle past `idle_timeout`,
        or sent the head too slowly (`read_timeout` from its first byte)."""
        event = self._h11.next_event()  # a pipelined request may be buffered already
        if event is h11.NEED_DATA:
            try:
                async with asyncio.timeout(self._s.idle_timeout):
                    data = await self._reader.read(HEAD_READ_SIZE)
            except TimeoutError:
                return None
            self._h11.receive_data(data)
        self.busy = True
        self._deadline = self._loop.time() + self._s.read_timeout
        if event is h11.NEED_DATA:
            try:
                event = await self._next_event(HEAD_READ_SIZE)
            except TimeoutError:
                return None
        if isinstance(event, h11.Request):
            _check_head(event)
            return event
        if isinstance(event, h11.ConnectionClosed):
            return None
        raise h11.RemoteProtocolError("expected a request", error_status_hint=400)

    async def _next_event(self, read_size: int = READ_SIZE) -> h11.Event:
        """h11's next event, reading more bytes as needed: before the deadline, and each read within
        `read_timeout` (a TimeoutError otherwise)."""
        while True:
            event = self._h11.next_event()
            if event is h11.PAUSED:  # only after a whole request, which is never read past here
                raise h11.RemoteProtocolError("unexpected pause", error_status_hint=400)
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]
            async with asyncio.timeout_at(min(self._deadline, self._loop.time() + self._s.read_timeout)):
                data = await self._reader.read(read_size)
            self._h11.receive_data(data)

    async def _answer(self, request: h11.Request) -> None:
        try:
            encoding, gzip, declared = self._admit(request)
        except Refusal as refusal:
            await self._skip_small_body(request)
            await self._respond(request_encoding(header(request, b"content-type")) or "json", refusal.result)
            return
        if declared is not None and not self._s.budget.fits(declared):
            await self._respond(encoding, busy_refusal().result)  # body unread: the connection closes
            return
        body = BodyCollector(self._s.budget, self._s.max_body_bytes)
        try:
            await self._read_body(body, gzip, declared)
            result = await self._call_handler(body.take(), encoding)
        except Refusal as refusal:
            result = refusal.result
        finally:
            body.release()
        await self._respond(encoding, result)

    def _admit(self, request: h11.Request) -> tuple[Encoding, bool, int | None]:
        """The body's encoding, whether it is gzip, and its declared length; or a Refusal before any body
        byte is read."""
        path = request.target.split(b"?", 1)[0]
        if path != TRACES_PATH:
            raise Refusal(404, "only /v1/traces is served here")
        if request.method != b"POST":
            raise Refusal(405, "use POST for /v1/traces")
        if not self._s.authorized(request):
            raise Refusal(401, "a valid bearer token is required")
        encoding = request_encoding(header(request, b"content-type"))
        if encoding is None:
            raise Refusal(415, "Content-Type must be application/x-protobuf or application/json")
        content_encoding = (header(request, b"content-encoding") or "identity").strip().lower()
        if content_encoding not in ("gzip", "identity"):
            raise Refusal(415, "Content-Encoding must be gzip or identity")
        length = header(request, b"content-length")
        declared = int(length) if length is not None else None  # h11 has checked it is a number
        if declared is not None and declared > self._s.max_body_bytes:
            raise Refusal(413, f"the body is larger than {self._s.max_body_bytes} bytes")
        return encoding, content_encoding == "gzip", declared

    async def _skip_small_body(self, request: h11.Request) -> None:
        """Read and drop a refused request's body if it is small and already on its way, so the
        connection stays usable; a large, chunked or not-yet-sent (100-continue) body closes it instead.
        A client that closes in the middle of it gets a 400 "malformed" rather than the refusal."""
        length = header(request, b"content-length")
        if length is None or int(length) > READ_SIZE or self._h11.they_are_waiting_for_100_continue:
            return
        with contextlib.suppress(TimeoutError):
            while not isinstance(await self._next_event(), (h11.EndOfMessage, h11.ConnectionClosed)):
                pass

    async def _read_body(self, body: BodyCollector, gzip: bool, declared: int | None) -> None:
        """Read the body into `body` (gunzipped, bounded); a Refusal on a limit, timeout or bad gzip.
        A client closing mid-body makes h11 raise RemoteProtocolError (answered 400 by `serve`)."""
        if self._h11.they_are_waiting_for_100_continue:
            self._writer.write(self._h11.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
        expected = declared if declared is not None else self._s.max_body_bytes
        self._deadline = self._loop.time() + self._s.read_timeout + expected / MIN_BODY_RATE
        gunzip = BoundedGunzip(self._s.max_body_bytes, body.add) if gzip else None
        on_the_wire = 0  # bounds gzip input too (empty members would otherwise stream in forever)
        try:
            while not isinstance(event := await self._next_event(), h11.EndOfMessage):
                if not isinstance(event, h11.Data):  # h11 raises on EOF mid-body; nothing else comes
                    raise h11.RemoteProtocolError("unexpected event in a body", error_status_hint=400)
                on_the_wire += len(event.data)
                if on_the_wire > self._s.max_body_bytes:
                    raise BodyTooLarge
                if gunzip is not None:
                    gunzip.feed(bytes(event.data))
                else:
                    body.add(bytes(event.data))
            if gunzip is not None:
                gunzip.finish()
        except BodyTooLarge:
            raise Refusal(413, f"the body is larger than {self._s.max_body_bytes} bytes") from None
        except BudgetExhausted:
            raise busy_refusal() from None
        except BadGzip as exc:
            raise Refusal(400, str(exc)) from None
        except TimeoutError:
            raise Refusal(408, "the request body stalled or arrived too slowly") from None

    async def _call_handler(self, body: bytes, encoding: Encoding) -> ExportResult:
        try:
            result = await self._s.handler(ExportRequest(body=body, encoding=encoding, peer=self._peer))
        except Exception as exc:
            _log.error("the OTLP handler failed on a request from %s", self._peer, exc_info=exc)
            return HANDLER_FAILED
        problem = result_problem(result)
        if problem is not None:
            _log.error("the OTLP handler answered a request from %s with %s", self._peer, problem)
            return HANDLER_FAILED
        return result

    async def _respond(self, encoding: Encoding, result: ExportResult) -> None:
        status = result.status
        if status == 200:
            payload = success_body(encoding, result.rejected_spans, result.message)
        else:
            payload = status_body(encoding, status, result.message)
        headers = [("content-type", MEDIA_TYPES[encoding]), ("content-length", str(len(payload)))]
        if status in (429, 503) and result.retry_after is not None:
            headers.append(("retry-after", str(max(1, math.ceil(min(result.retry_after, RETRY_AFTER_MAX))))))
        if status == 401:
            headers.append(("www-authenticate", "Bearer"))
        if self._s.closing() or self._h11.their_state is not h11.DONE:
            headers.append(("connection", "close"))
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        out = self._h11.send(h11.Response(status_code=status, headers=headers, reason=reason)) or b""
        out += self._h11.send(h11.Data(data=payload)) or b""
        out += self._h11.send(h11.EndOfMessage()) or b""
        self._writer.write(out)
        await drain(self._writer, self._s.read_timeout)


def _check_head(request: h11.Request) -> None:
    """Refuse a head with too many or too large headers (431), or both Content-Length and chunked
    framing (400, then close: RFC 9112 §6.3, a request-smuggling guard)."""
    if (len(request.headers) > MAX_HEADERS
            or sum(len(name) + len(value) for name, value in request.headers) > MAX_HEADER_BYTES):
        raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
    names = {name for name, _value in request.headers}
    if b"content-length" in names and b"transfer-encoding" in names:
        raise h11.RemoteProtocolError("both Content-Length and Transfer-Encoding", error_status_hint=400)


def peer_name(address: object) -> str:
    """`host:port` of a socket peer (`[host]:port` for IPv6)."""
    if not isinstance(address, tuple) or len(address) < 2:
        return "unknown"
    host = str(address[0])
    return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"


def header(request: h11.Request, name: bytes) -> str | None:
    for key, value in request.headers:
        if key == name:
            return value.decode("latin-1")
    return None


def busy_response() -> bytes:
    """A raw 503 for a connection past the limit (no request has been read, so h11 cannot frame it)."""
    body = status_body("json", 503, "the receiver is at its connection limit")
    return (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: %d\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (math.ceil(BUSY_RETRY_SECONDS), len(body), body))


async def drain(writer: asyncio.StreamWriter, timeout: float) -> None:
    """Wait until the kernel takes what was written; a client that takes nothing for `timeout` is cut
    off (transport aborted), so never reading answers cannot hold a connection forever."""
    try:
        async with asyncio.timeout(timeout):
            await writer.drain()
    except TimeoutError:
        writer.transport.abort()
        raise ConnectionResetError("the client stopped reading answers") from None


async def linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half-close, then discard what the client still sends (bounded in bytes and time) before closing,
    so the answer is not lost to a reset while the client is still writing a body nobody will read."""
    with contextlib.suppress(OSError, RuntimeError):
        if writer.can_write_eof():
            writer.write_eof()
    discarded = 0
    try:
        async with asyncio.timeout(LINGER_SECONDS):
            while discarded < LINGER_BYTES:
                chunk = await reader.read(READ_SIZE)
                if not chunk:
                    return
                discarded += len(chunk)
    except (TimeoutError, ConnectionError):
        return
