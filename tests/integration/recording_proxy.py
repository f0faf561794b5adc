"""A loopback HTTP proxy that forwards every request to one real server and records method and path.

Put it between a client and a real server to prove what was (not) sent: the client's
config points at the proxy, the proxy forwards to the server unchanged.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "accept-encoding"}


class RecordingProxy:
    """Forwards to `target` (http://127.0.0.1:PORT); `requests` lists (method, path with query)."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._upstream = httpx.Client(base_url=self.target, timeout=10.0)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    proxy.requests.append((self.command, self.path))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                answer = proxy._upstream.request(self.command, self.path, content=body, headers=headers)
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in _HOP and name.lower() != "content-encoding":
                        self.send_header(name, value)
                self.send_header("content-length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _forward

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="recording-proxy",
                                        daemon=True)

    def mutating(self) -> list[tuple[str, str]]:
        """Every request that was not a GET or HEAD."""
        with self._lock:
            return [r for r in self.requests if r[0] not in ("GET", "HEAD")]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._upstream.close()
