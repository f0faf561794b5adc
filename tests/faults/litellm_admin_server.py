"""A loopback LiteLLM admin API that records every request and fails on demand.

`LiteLLMAdminServer` is a `ThreadingHTTPServer` on 127.0.0.1 (port 0) around the demo's
`GatewayAdmin` (console/demo/gateway_admin.py, the documented shapes of API_SHAPES.md §4):
the write side of the LiteLLM adapter cannot be tested against a real proxy here (admin
writes need a database), so it is tested against this. Every request is recorded
(method, path, query, lower-cased headers, body) before anything else happens, so a test
can count the mutating requests that left the process, whatever the server answered.

Faults, each for the next matching request only (`path=None`: any path; `method`:
default any non-GET, since faults are for the writes):
- `fail_next(status, body)`: answer that instead; the state does not change;
- `hang_next()`: read the request and never answer (until `stop`): a client timeout;
- `drop_next()`: apply the request to the state, then close the connection without an
  answer: the change took, and the client cannot know (an "unknown" outcome).

    with LiteLLMAdminServer(MASTER) as server:
        server.admin.add_key("sk-...", key_alias="team-a-key", tpm_limit=1000)
        server.url, server.mutating(), server.requests
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from console.demo.gateway_admin import GatewayAdmin

MASTER_KEY = "sk-llmdeck-admin-test-master-7f3a"
READS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server read it."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def mutating(self) -> bool:
        return self.method not in READS


@dataclass(frozen=True)
class Fault:
    kind: str  # "fail" | "hang" | "drop"
    path: str | None = None
    method: str | None = None
    status: int = 500
    body: Any = field(default_factory=dict)

    def matches(self, method: str, path: str) -> bool:
        if self.path is not None and self.path != path:
            return False
        return method == self.method if self.method is not None else method not in READS


class LiteLLMAdminServer:
    """`GatewayAdmin` served on loopback with a request log and one-shot faults."""

    def __init__(self, master_key: str = MASTER_KEY, admin: GatewayAdmin | None = None) -> None:
        self.master_key = master_key
        self.admin = admin or GatewayAdmin(master_key)
        self.requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    # -- faults -----------------------------------------------------------------------------------

    def fail_next(self, status: int, body: Any, *, path: str | None = None,
                  method: str | None = None) -> None:
        """The next matching request gets `status` and `body` (JSON), and changes nothing."""
        self._add(Fault("fail", path, method, status, body))

    def hang_next(self, *, path: str | None = None, method: str | None = None) -> None:
        """The next matching request is read and never answered (the state does not change)."""
        self._add(Fault("hang", path, method))

    def drop_next(self, *, path: str | None = None, method: str | None = None) -> None:
        """The next matching request is applied, then its connection closed with no answer."""
        self._add(Fault("drop", path, method))

    def _add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.matches(method, path):
                    return self._faults.pop(i)
        return None

    # -- the log ----------------------------------------------------------------------------------

    def mutating(self) -> list[RecordedRequest]:
        """Every request that was not a read (POST, PATCH, DELETE...), in order."""
        with self._lock:
            return [r for r in self.requests if r.mutating]

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> LiteLLMAdminServer:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="litellm-admin-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()  # hung requests end
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LiteLLMAdminServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler(owner: LiteLLMAdminServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

        def do_PUT(self) -> None:
            self._handle("PUT")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def _handle(self, method: str) -> None:
            url = urlsplit(self.path)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            query = tuple(parse_qsl(url.query, keep_blank_values=True))
            owner._record(RecordedRequest(method, url.path, query, headers, raw))
            fault = owner._take_fault(method, url.path)
            if fault is not None and fault.kind == "fail":
                self._answer(fault.status, fault.body)
                return
            if fault is not None and fault.kind == "hang":
                owner._release.wait()
                self.close_connection = True
                return
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                self._answer(400, {"detail": "There was an error parsing the body"})
                return
            status, doc = owner.admin.handle(method, url.path, dict(query), headers, body)
            if fault is not None and fault.kind == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self._answer(status, doc)

        def _answer(self, status: int, doc: Any) -> None:
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
            pass

    return Handler


