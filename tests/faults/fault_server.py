"""A real loopback HTTP server that misbehaves on request, for every connector's fault tests.

`FaultServer` listens on 127.0.0.1 (port 0) with raw sockets, one thread per
connection, HTTP/1.1 keep-alive. Each path is given behaviours with `route(path, *b)`:
several are served in order and the last repeats (`route("/x", Reply(503), Reply(503),
Reply(200, body))` fails twice then succeeds). Unrouted paths answer 404. Behaviours:
`Reply` (status, body, headers, optional delay), `Drip` (headers, then a byte every N s,
never finishing), `Reset` (read the request, then RST via SO_LINGER 0), `Hang` (accept,
read, never answer), `Answer` (a Reply computed from the request, e.g. per PromQL query,
after a delay). Every request is recorded (`requests`), and the server tracks the
most requests it had in flight at once, overall and per path.

    with FaultServer() as server:
        server.route("/api", Reply(429, {"error": "slow down"}, headers={"Retry-After": "1"}))
        url = server.url
"""

from __future__ import annotations

import json
import select
import socket
import struct
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

_REASONS = {200: "OK", 204: "No Content", 301: "Moved Permanently", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 408: "Request Timeout", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
            504: "Gateway Timeout", 529: "Site Overloaded"}


@dataclass(frozen=True)
class Reply:
    """An answer: status, body (dict/list -> JSON, str -> text), headers, after `delay` seconds."""

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    delay: float = 0.0

    def encoded(self) -> tuple[bytes, str]:
        """(body bytes, content type)."""
        if isinstance(self.body, bytes):
            return self.body, self.content_type or "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), self.content_type or "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), self.content_type or "application/json"


@dataclass(frozen=True)
class Drip:
    """Send headers promising a long body, then one byte every `interval` seconds, never finishing."""

    interval: float = 0.5
    status: int = 200
    content_type: str = "application/json"


@dataclass(frozen=True)
class Reset:
    """Read the request, then reset the connection (SO_LINGER 0, close)."""


@dataclass(frozen=True)
class Hang:
    """Read the request and never answer (until the client gives up or the server stops)."""


@dataclass(frozen=True)
class Answer:
    """A `Reply` computed from the request (the PromQL query, say), sent after `delay` seconds."""

    handler: Callable[[RecordedRequest], Reply]
    delay: float = 0.0


Behaviour = Reply | Drip | Reset | Hang | Answer


def html_page(status: int, title: str | None, text: str = "") -> Reply:
    """An HTML error page such as a proxy in front of the source serves (no <title> when None)."""
    head = f"<head><title>{title}</title></head>" if title is not None else "<head></head>"
    body = f"<!DOCTYPE html>\n<html>{head}<body><h1>{title or 'Error'}</h1>{text}</body></html>"
    return Reply(status, body, content_type="text/html; charset=utf-8")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server read it."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    time: float  # time.monotonic() when the request was read

    def json(self) -> Any:
        return json.loads(self.body)


class FaultServer:
    """A threaded loopback HTTP/1.1 server with per-path behaviours and a request log."""

    def __init__(self) -> None:
        self._routes: dict[str, list[Behaviour]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self.requests: list[RecordedRequest] = []
        self._active: dict[str, int] = defaultdict(int)
        self._active_total = 0
        self.max_in_flight = 0
        self.max_in_flight_by_path: dict[str, int] = defaultdict(int)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def route(self, path: str, *behaviours: Behaviour) -> None:
        """Serve `behaviours` in order on `path` (any method); the last one repeats."""
        with self._lock:
            self._routes[path] = list(behaviours) or [Reply(200)]

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FaultServer:
        """Start accepting connections (the first thread in `_threads` is the accept loop)."""
        thread = threading.Thread(target=self._accept_loop, name="fault-server", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._threads:
            self._threads[0].join(timeout=5)  # the accept loop sees the stop flag within 0.05 s
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in list(self._threads[1:]):
            thread.join(timeout=5)

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving --------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._listener], [], [], 0.05)
            if not ready:
                continue
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), name="fault-conn", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _next(self, path: str) -> Behaviour:
        with self._lock:
            queue = self._routes.get(path)
            if not queue:
                return Reply(404, {"error": f"no route for {path}"})
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        try:
            while not self._stop.is_set():
                request, buffer = self._read_request(conn, buffer)
                if request is None:
                    return
                if not self._answer(conn, request):
                    return
        except OSError:
            return
        finally:
            with self._lock:
                self._conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def _read_request(self, conn: socket.socket, buffer: bytes) -> tuple[RecordedRequest | None, bytes]:
        while b"\r\n\r\n" not in buffer:
            chunk = self._recv(conn)
            if not chunk:
                return None, b""
            buffer += chunk
        head, _, rest = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        while len(rest) < length:
            chunk = self._recv(conn)
            if not chunk:
                return None, b""
            rest += chunk
        body, rest = rest[:length], rest[length:]
        parts = urlsplit(target)
        request = RecordedRequest(method, parts.path, tuple(parse_qsl(parts.query, keep_blank_values=True)),
                                  headers, body, time.monotonic())
        with self._lock:
            self.requests.append(request)
        return request, rest

    def _recv(self, conn: socket.socket) -> bytes:
        while not self._stop.is_set():
            ready, _, _ = select.select([conn], [], [], 0.05)
            if ready:
                return conn.recv(65536)
        return b""

    def _answer(self, conn: socket.socket, request: RecordedRequest) -> bool:
        """Play the path's next behaviour; False when the connection is finished."""
        behaviour = self._next(request.path)
        with self._lock:
            self._active[request.path] += 1
            self._active_total += 1
            self.max_in_flight = max(self.max_in_flight, self._active_total)
            self.max_in_flight_by_path[request.path] = max(self.max_in_flight_by_path[request.path],
                                                           self._active[request.path])
        try:
            return self._play(conn, behaviour, request)
        finally:
            with self._lock:
                self._active[request.path] -= 1
                self._active_total -= 1

    def _play(self, conn: socket.socket, behaviour: Behaviour, request: RecordedRequest) -> bool:
        if isinstance(behaviour, Reset):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            return False
        if isinstance(behaviour, Hang):
            self._wait_for_close(conn, forever=True)
            return False
        if isinstance(behaviour, Drip):
            head = (f"HTTP/1.1 {behaviour.status} {_REASONS.get(behaviour.status, 'Status')}\r\n"
                    f"Content-Type: {behaviour.content_type}\r\nContent-Length: 100000000\r\n\r\n")
            conn.sendall(head.encode())
            while not self._wait_for_close(conn, timeout=behaviour.interval):
                conn.sendall(b" ")
            return False
        if behaviour.delay and self._wait_for_close(conn, timeout=behaviour.delay):
            return False
        if isinstance(behaviour, Answer):
            behaviour = behaviour.handler(request)
        body, content_type = behaviour.encoded()
        headers = {"Content-Type": content_type, **behaviour.headers, "Content-Length": str(len(body))}
        head = f"HTTP/1.1 {behaviour.status} {_REASONS.get(behaviour.status, 'Status')}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
        conn.sendall(head.encode("latin-1") + body)
        return True

    def _wait_for_close(self, conn: socket.socket, timeout: float = 0.0, forever: bool = False) -> bool:
        """Wait up to `timeout` s (or until stop when `forever`); True when the client closed or we stop."""
        end = time.monotonic() + timeout
        while forever or (left := end - time.monotonic()) > 0:
            if self._stop.is_set():
                return True
            ready, _, _ = select.select([conn], [], [], 0.05 if forever else min(0.05, left))
            if ready:
                if not conn.recv(65536, socket.MSG_PEEK):
                    return True
                time.sleep(0.05)  # the client sent more (not pipelined by httpx): keep waiting
        return False
