"""A loopback JSON document store that records every request: the far side of `http.request`.

Stands in for a prompt registry or a feature-flag service. Documents live under their
raw request path (percent-encoding kept, so a test sees exactly what went on the wire):
GET answers the document (404 when there is none); POST, PUT and PATCH deep-merge the JSON
body into it (creating it); DELETE removes it. Every request is recorded (method, raw
path, lower-cased headers, body) before anything else happens.

Faults, for the next mutating request only: `fail_next(status, body)` answers that and
changes nothing; `ignore_next()` answers 200 and changes nothing (a server that drops the
change: the read-back must catch it); `hang_next()` reads the request and never answers
(a client timeout).

    with HttpActionServer() as server:
        server.docs["/api/prompts/greeting"] = {"labels": {"production": 3}}
        server.url, server.mutating(), server.requests
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

READS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Recorded:
    """One request as the server read it."""

    method: str
    path: str
    """The raw request target (path and query, percent-encoding as sent)."""
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def _merge(into: Any, patch: Any) -> Any:
    if isinstance(into, dict) and isinstance(patch, dict):
        out = dict(into)
        for key, value in patch.items():
            out[key] = _merge(out.get(key), value)
        return out
    return patch


class HttpActionServer:
    """A ThreadingHTTPServer on 127.0.0.1:0 (see the module docstring)."""

    def __init__(self) -> None:
        self.docs: dict[str, Any] = {}
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._fault: tuple[str, int, Any] | None = None
        self._release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                status, answer = server.handle(self.command, self.path,
                                               {k.lower(): v for k, v in self.headers.items()}, body)
                if status == 0:  # hang: never answer
                    server._release.wait()
                    self.close_connection = True
                    return
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(Recorded(method, path, headers, body))
            if method not in READS and self._fault is not None:
                kind, status, answer = self._fault
                self._fault = None
                return (0, None) if kind == "hang" else (status, answer)  # "fail", "ignore"
            if method in READS:
                if path not in self.docs:
                    return 404, {"error": f"no document at {path}"}
                return 200, self.docs[path]
            if method == "DELETE":
                self.docs.pop(path, None)
                return 200, {"deleted": path}
            try:
                patch = json.loads(body) if body else {}
            except json.JSONDecodeError:
                return 400, {"error": "body is not JSON"}
            self.docs[path] = _merge(self.docs.get(path), patch)
            return 200, {"ok": True, "doc": self.docs[path]}

    def fail_next(self, status: int, answer: Any) -> None:
        with self._lock:
            self._fault = ("fail", status, answer)

    def ignore_next(self) -> None:
        with self._lock:
            self._fault = ("ignore", 200, {"ok": True})

    def hang_next(self) -> None:
        with self._lock:
            self._fault = ("hang", 0, None)

    def mutating(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.method not in READS]

    def __enter__(self) -> HttpActionServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
