"""An OTLP/HTTP trace receiver's server side: `POST /v1/traces` over HTTP/1.1 (h11 on asyncio streams).

The server frames requests and hands each complete, decompressed body to an async `Handler`; it never
parses spans. Memory is bounded by construction: a body is refused (413) past `max_body_bytes`, declared,
chunked or after gunzip; every body being read or waiting on the handler is charged to one
`max_pending_bytes` budget across connections (past it: 503 + Retry-After, body unread, connection
closed; joining a body for the handler briefly holds it twice); at most `max_connections` are served
at once; a request must arrive within `read_timeout` of its first byte (slowloris) and an idle
keep-alive connection closes after `idle_timeout`.
The bearer token, when set, is compared in constant time and never echoed or logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Literal

import h11

from connectors.otlp_http_body import (
    BadGzip,
    BodyCollector,
    BodyTooLarge,
    BoundedGunzip,
    BudgetExhausted,
    PendingBudget,
)
from connectors.otlp_http_codec import MEDIA_TYPES, Encoding, request_encoding, status_body, success_body

MiB = 1024 * 1024
TRACES_PATH = b"/v1/traces"
_READ_SIZE = 64 * 1024
_LINGER_SECONDS = 2.0
_LINGER_BYTES = 4 * MiB
_BUSY_RETRY_SECONDS = 1.0
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """One complete export body, already decompressed."""

    body: bytes
    encoding: Literal["protobuf", "json"]
    peer: str


@dataclass(frozen=True, slots=True)
class ExportResult:
    """The handler's answer: 200 (optionally a partial success) or an error status with a message."""

    status: int
    rejected_spans: int = 0
    message: str = ""
    retry_after: float | None = None


Handler = Callable[[ExportRequest], Awaitable[ExportResult]]
_HANDLER_FAILED = ExportResult(500, message="the receiver failed on this request")


class _Refusal(Exception):
    """A request answered with an error status by the server itself, not the handler."""

    def __init__(self, status: int, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.result = ExportResult(status, message=message, retry_after=retry_after)


def _busy() -> _Refusal:
    return _Refusal(503, "the receiver is busy: too many bytes pending", retry_after=_BUSY_RETRY_SECONDS)


class OtlpHttpServer:
    """Serves `POST /v1/traces` on one address, passing each complete body to `handler`."""

    def __init__(self, handler: Handler, *, host: str = "127.0.0.1", port: int = 4318,
                 max_body_bytes: int = 16 * MiB, max_pending_bytes: int = 64 * MiB,
                 max_connections: int = 64, token: str | None = None,
                 read_timeout: float = 30.0, idle_timeout: float = 60.0, close_grace: float = 5.0) -> None:
        if token is not None and not token:
            raise ValueError("the receiver token is empty: set a token or none")
        if max_body_bytes < 1 or max_connections < 1:
            raise ValueError("the receiver needs max_body_bytes > 0 and max_connections > 0")
        self.handler = handler
        self._host, self._port = host, port
        self.max_body_bytes = max_body_bytes
        self.budget = PendingBudget(max(max_pending_bytes, max_body_bytes))  # room for one largest body
        self._max_connections = max_connections
        self._token = token.encode() if token is not None else None
        self.read_timeout, self.idle_timeout, self._close_grace = read_timeout, idle_timeout, close_grace
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], _Connection] = {}
        self._refused: set[asyncio.Task[None]] = set()  # past max_connections, being answered 503
        self.closing = False
        self.address: tuple[str, int] = (host, port)

    @property
    def pending_bytes(self) -> int:
        """Body bytes held now (being read or waiting on the handler), across connections."""
        return self.budget.used

    async def start(self) -> None:
        """Bind and start accepting; `address` then holds the bound (host, port)."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._accept, self._host, self._port)
        bound = self._server.sockets[0].getsockname()
        self.address = (str(bound[0]), int(bound[1]))

    async def serve_until(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, then close cleanly."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop accepting, drop idle connections, give requests in flight `close_grace`, then cancel."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        for task, connection in list(self._connections.items()):
            if not connection.busy:
                task.cancel()
        for task in self._refused:
            task.cancel()
        tasks = [*self._connections, *self._refused]
        if tasks:
            _finished, late = await asyncio.wait(tasks, timeout=self._close_grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def authorized(self, request: h11.Request) -> bool:
        """True without a token, else only for exactly one `Authorization: Bearer <token>` that matches."""
        if self._token is None:
            return True
        values = [value for name, value in request.headers if name == b"authorization"]
        if len(values) != 1:
            return False
        scheme, _, credential = values[0].partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(credential.strip(), self._token)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            if self.closing or len(self._connections) >= self._max_connections:
                self._refused.add(task)
                writer.write(_busy_response())
                await writer.drain()
                await _linger(reader, writer)
                return
            connection = _Connection(self, reader, writer)
            self._connections[task] = connection
            await connection.serve()
        except (ConnectionError, TimeoutError):
            pass
        except asyncio.CancelledError:  # close() cancelled us; end normally, as asyncio's stream callback
            pass                         # logs a cancelled client_connected_cb task as an error
        except Exception as exc:  # a bug here must not take the server down; h11's text may quote headers
            _log.error("OTLP receiver connection failed: %s", type(exc).__name__)
        finally:
            self._connections.pop(task, None)
            self._refused.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class _Connection:
    """One client connection: reads requests in turn (keep-alive) and answers each."""

    def __init__(self, server: OtlpHttpServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self._server, self._reader, self._writer = server, reader, writer
        self._h11 = h11.Connection(h11.SERVER)
        address = writer.get_extra_info("peername")
        self._peer = _peer_name(address)
        self._deadline = 0.0
        self.busy = False

    async def serve(self) -> None:
        while not self._server.closing:
            self.busy = False
            try:
                request = await self._read_head()
                if request is None:
                    return
                await self._answer(request)
            except h11.RemoteProtocolError as exc:  # its text may quote the request: never sent or logged
                if self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    malformed = ExportResult(exc.error_status_hint, message="malformed HTTP request")
                    await self._respond("json", malformed)
                    await _linger(self._reader, self._writer)
                return
            if self._h11.our_state is not h11.DONE or self._h11.their_state is not h11.DONE:
                if self._h11.their_state is h11.SEND_BODY:  # a body we left unread may still be arriving
                    await _linger(self._reader, self._writer)
                return
            self._h11.start_next_cycle()

    async def _read_head(self) -> h11.Request | None:
        """The next request's head; None when the client closed, or stayed idle past `idle_timeout`,
        or sent the head too slowly (`read_timeout` from its first byte)."""
        event = self._h11.next_event()  # a pipelined request may be buffered already
        if event is h11.NEED_DATA:
            try:
                async with asyncio.timeout(self._server.idle_timeout):
                    data = await self._reader.read(_READ_SIZE)
            except TimeoutError:
                return None
            self._h11.receive_data(data)
        self.busy = True
        self._deadline = asyncio.get_running_loop().time() + self._server.read_timeout
        if event is h11.NEED_DATA:
            try:
                event = await self._next_event()
            except TimeoutError:
                return None
        if isinstance(event, h11.Request):
            return event
        if isinstance(event, h11.ConnectionClosed):
            return None
        raise h11.RemoteProtocolError("expected a request", error_status_hint=400)

    async def _next_event(self) -> h11.Event:
        """h11's next event, reading more bytes as needed before the request's deadline."""
        while True:
            event = self._h11.next_event()
            if event is not h11.NEED_DATA:
                assert event is not h11.PAUSED, "a request is read only in a fresh cycle"
                return event  # type: ignore[return-value]
            async with asyncio.timeout_at(self._deadline):
                data = await self._reader.read(_READ_SIZE)
            self._h11.receive_data(data)

    async def _answer(self, request: h11.Request) -> None:
        encoding = request_encoding(_header(request, b"content-type"))
        try:
            gzip, declared = self._admit(request, encoding)
        except _Refusal as refusal:
            await self._skip_small_body(request)
            await self._respond(encoding or "json", refusal.result)
            return
        assert encoding is not None
        try:
            try:
                body = BodyCollector(self._server.budget, self._server.max_body_bytes, declared)
            except BudgetExhausted:
                raise _busy() from None
            try:
                await self._read_body(body, gzip)
                result = await self._call_handler(body.joined(), encoding)
            finally:
                body.release()
        except _Refusal as refusal:
            result = refusal.result
        await self._respond(encoding or "json", result)

    def _admit(self, request: h11.Request, encoding: Encoding | None) -> tuple[bool, int | None]:
        """Whether the body is gzip and its declared length, or a _Refusal before any body byte is read."""
        path = request.target.split(b"?", 1)[0]
        if path != TRACES_PATH:
            raise _Refusal(404, "only /v1/traces is served here")
        if request.method != b"POST":
            raise _Refusal(405, "use POST for /v1/traces")
        if not self._server.authorized(request):
            raise _Refusal(401, "a valid bearer token is required")
        if encoding is None:
            raise _Refusal(415, "Content-Type must be application/x-protobuf or application/json")
        content_encoding = (_header(request, b"content-encoding") or "identity").strip().lower()
        if content_encoding not in ("gzip", "identity"):
            raise _Refusal(415, "Content-Encoding must be gzip or identity")
        length = _header(request, b"content-length")
        declared = int(length) if length is not None else None  # h11 has checked it is a number
        if declared is not None and declared > self._server.max_body_bytes:
            raise _Refusal(413, f"the body is larger than {self._server.max_body_bytes} bytes")
        return content_encoding == "gzip", declared

    async def _skip_small_body(self, request: h11.Request) -> None:
        """Read and drop a refused request's body if it is small and already on its way, so the
        connection stays usable; a large, chunked or not-yet-sent (100-continue) body closes it instead."""
        length = _header(request, b"content-length")
        if length is None or int(length) > _READ_SIZE or self._h11.they_are_waiting_for_100_continue:
            return
        with contextlib.suppress(TimeoutError):
            while not isinstance(await self._next_event(), (h11.EndOfMessage, h11.ConnectionClosed)):
                pass

    async def _read_body(self, body: BodyCollector, gzip: bool) -> None:
        """Read the body into `body` (gunzipped, bounded); a _Refusal on a limit, timeout or bad gzip."""
        if self._h11.they_are_waiting_for_100_continue:
            self._writer.write(self._h11.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
        gunzip = BoundedGunzip(self._server.max_body_bytes, body.add) if gzip else None
        too_large = _Refusal(413, f"the body is larger than {self._server.max_body_bytes} bytes")
        on_the_wire = 0  # bounds gzip input too (empty members would otherwise stream in forever)
        try:
            while True:
                event = await self._next_event()
                if isinstance(event, h11.Data):
                    on_the_wire += len(event.data)
                    if on_the_wire > self._server.max_body_bytes:
                        raise BodyTooLarge
                    if gunzip is not None:
                        gunzip.feed(bytes(event.data))
                    else:
                        body.add(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:  # the client closed mid-body: there is no one to answer
                    raise ConnectionResetError("the client closed before the body ended")
            if gunzip is not None:
                gunzip.finish()
        except BodyTooLarge:
            raise too_large from None
        except BudgetExhausted:
            raise _busy() from None
        except BadGzip as exc:
            raise _Refusal(400, str(exc)) from None
        except TimeoutError:
            raise _Refusal(408, "the request body arrived too slowly") from None

    async def _call_handler(self, body: bytes, encoding: Encoding) -> ExportResult:
        try:
            result = await self._server.handler(ExportRequest(body=body, encoding=encoding, peer=self._peer))
        except Exception as exc:
            _log.error("the OTLP handler failed on a request from %s", self._peer, exc_info=exc)
            return _HANDLER_FAILED
        if not isinstance(result, ExportResult) or not (result.status == 200 or 400 <= result.status <= 599):
            _log.error("the OTLP handler answered %r, not an ExportResult with status 200 or 4xx/5xx",
                       type(result).__name__ if not isinstance(result, ExportResult) else result.status)
            return _HANDLER_FAILED
        return result

    async def _respond(self, encoding: Encoding, result: ExportResult) -> None:
        status = result.status
        if status == 200:
            payload = success_body(encoding, result.rejected_spans, result.message)
        else:
            payload = status_body(encoding, status, result.message)
        headers = [("content-type", MEDIA_TYPES[encoding]), ("content-length", str(len(payload)))]
        if status in (429, 503) and result.retry_after is not None and math.isfinite(result.retry_after):
            headers.append(("retry-after", str(max(1, math.ceil(result.retry_after)))))
        if status == 401:
            headers.append(("www-authenticate", "Bearer"))
        if self._server.closing or self._h11.their_state is not h11.DONE:
            headers.append(("connection", "close"))
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        out = self._h11.send(h11.Response(status_code=status, headers=headers, reason=reason)) or b""
        out += self._h11.send(h11.Data(data=payload)) or b""
        out += self._h11.send(h11.EndOfMessage()) or b""
        self._writer.write(out)
        await self._writer.drain()


def _peer_name(address: object) -> str:
    """`host:port` of a socket peer (`[host]:port` for IPv6)."""
    if not isinstance(address, tuple) or len(address) < 2:
        return "unknown"
    host = str(address[0])
    return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"


def _header(request: h11.Request, name: bytes) -> str | None:
    for key, value in request.headers:
        if key == name:
            return value.decode("latin-1")
    return None


def _busy_response() -> bytes:
    """A raw 503 for a connection past the limit (no request has been read, so h11 cannot frame it)."""
    body = status_body("json", 503, "the receiver is at its connection limit")
    return (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: %d\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (math.ceil(_BUSY_RETRY_SECONDS), len(body), body))


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half-close, then discard what the client still sends (bounded in bytes and time) before closing,
    so the answer is not lost to a reset while the client is still writing a body nobody will read."""
    with contextlib.suppress(OSError, RuntimeError):
        if writer.can_write_eof():
            writer.write_eof()
    discarded = 0
    try:
        async with asyncio.timeout(_LINGER_SECONDS):
            while discarded < _LINGER_BYTES:
                chunk = await reader.read(_READ_SIZE)
                if not chunk:
                    return
                discarded += len(chunk)
    except (TimeoutError, ConnectionError):
        return
