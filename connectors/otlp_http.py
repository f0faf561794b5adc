"""An OTLP/HTTP trace receiver's server side: `POST /v1/traces` over HTTP/1.1 (h11 on asyncio streams).

The server frames requests and hands each complete, decompressed body to an async `Handler`; it never
parses spans. Memory is bounded: a body is refused (413) past `max_body_bytes`, declared, chunked or after
gunzip; every body byte being read or waiting on the handler is charged, as it arrives, to one
`max_pending_bytes` budget across connections (a declared length that does not fit now: 503 +
Retry-After, body unread, connection closed; one that stops fitting mid-body: the same). A body is held in
one buffer, then as one `bytes` for the handler (both at once only while it is copied, with no await, so
at most one body at a time is doubled). Heads are bounded (16 KiB, 100 headers). At most
`max_connections` are served at once; when all slots are taken, the connection idle longest is closed to
make room, and only when every one is busy is a new one answered 503 (at most `max_connections` such
refusals linger at once; the rest are closed at once). Timeouts are in `connectors.otlp_http_connection`.
The bearer token, when set, is compared as HMAC digests (constant time, equal lengths) and never echoed,
logged or kept in clear. The handler has no timeout: a stuck handler holds its body's budget until
`close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets

import h11

from connectors.otlp_http_body import PendingBudget
from connectors.otlp_http_codec import ExportRequest, ExportResult, Handler
from connectors.otlp_http_connection import (
    LINGER_SECONDS,
    Connection,
    ConnectionSettings,
    busy_response,
    drain,
    linger,
    peer_name,
)

__all__ = ["ExportRequest", "ExportResult", "Handler", "OtlpHttpServer"]

MiB = 1024 * 1024
_log = logging.getLogger(__name__)


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
        self._host, self._port = host, port
        self._budget = PendingBudget(max(max_pending_bytes, max_body_bytes))  # room for one largest body
        self._max_connections = max_connections
        self._token_key = secrets.token_bytes(32)  # only the token's digest is kept
        self._token_digest = None if token is None else self._digest(token.encode())
        self._settings = ConnectionSettings(
            handler=handler, budget=self._budget, max_body_bytes=max_body_bytes, read_timeout=read_timeout,
            idle_timeout=idle_timeout, authorized=self.authorized, closing=lambda: self.closing)
        self._close_grace = close_grace
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], Connection] = {}
        self._refused: set[asyncio.Task[None]] = set()  # past max_connections, lingering after a 503
        self.closing = False
        self.address: tuple[str, int] = (host, port)

    @property
    def pending_bytes(self) -> int:
        """Body bytes held now (being read or waiting on the handler), across connections."""
        return self._budget.used

    @property
    def open_connections(self) -> int:
        """Sockets this server holds now: served, or being answered 503 past the limit."""
        return len(self._connections) + len(self._refused)

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

    def _digest(self, credential: bytes) -> bytes:
        return hmac.digest(self._token_key, credential, "sha256")

    def authorized(self, request: h11.Request) -> bool:
        """True without a token, else only for exactly one `Authorization: Bearer <token>` that matches.
        Digests of equal length are compared, so the time taken tells nothing of the token's length."""
        if self._token_digest is None:
            return True
        values = [value for name, value in request.headers if name == b"authorization"]
        if len(values) != 1:
            return False
        scheme, _, credential = values[0].partition(b" ")
        matches = hmac.compare_digest(self._digest(credential.strip()), self._token_digest)
        return scheme.lower() == b"bearer" and matches

    def _make_room(self) -> bool:
        """Whether a new connection can be served: a slot is free, or the connection idle longest (waiting
        between requests, as an exporter's keep-alive session does) was closed to free one."""
        if len(self._connections) < self._max_connections:
            return True
        idle = [(connection.idle_since, task) for task, connection in self._connections.items()
                if not connection.busy]
        if not idle:
            return False
        _since, oldest = min(idle, key=lambda pair: pair[0])
        del self._connections[oldest]
        oldest.cancel()
        return True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None:  # asyncio runs this callback as a task; nothing to track otherwise
            writer.close()
            return
        try:
            if self.closing or not self._make_room():
                writer.write(busy_response())
                if len(self._refused) < self._max_connections:  # else close at once, no linger
                    self._refused.add(task)
                    await drain(writer, LINGER_SECONDS)
                    await linger(reader, writer)
                return
            connection = Connection(self._settings, reader, writer)
            self._connections[task] = connection
            await connection.serve()
        except (ConnectionError, TimeoutError):
            pass
        except asyncio.CancelledError:  # close() or _make_room() cancelled us; end normally, as asyncio's
            pass                         # stream callback logs a cancelled client_connected_cb task
        except h11.ProtocolError as exc:  # its text may quote headers: the type name only
            _log.error("OTLP receiver connection failed: %s", type(exc).__name__)
        except Exception:  # a bug of the server's own: keep serving, with the traceback to find it
            peer = peer_name(writer.get_extra_info("peername"))
            _log.exception("OTLP receiver connection from %s failed", peer)
        finally:
            self._connections.pop(task, None)
            self._refused.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(LINGER_SECONDS):
                    await writer.wait_closed()
