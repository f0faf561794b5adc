"""A loopback OpenAI-compatible chat server for tests that put a real gateway in front of it.

It answers `POST /v1/chat/completions` (plain and streamed) with a fixed reply,
usage and OpenAI's `x-ratelimit-remaining-requests` / `-tokens` headers (counting
down from `REQUEST_LIMIT` / `TOKEN_LIMIT`), `GET /v1/models`, and answers 500 for
every model whose name starts with `fail`, so a gateway's fallbacks and deployment
health can be exercised. It runs in a thread of the test process, on 127.0.0.1 and
a free port, and counts what it served per model.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PROMPT_TOKENS = 11
COMPLETION_TOKENS = 7
REPLY = "pong"
REQUEST_LIMIT = 1000
TOKEN_LIMIT = 100_000
TOKENS_PER_CALL = PROMPT_TOKENS + COMPLETION_TOKENS


class FakeOpenAI:
    """The server: `start()`, `base_url`, `served` / `failed` counts per model, `stop()`."""

    def __init__(self) -> None:
        self.served: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                return

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path.rstrip("/").endswith("/models"):
                    owner._json(self, 200, {"object": "list", "data": []})
                else:
                    owner._json(self, 404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    owner._json(self, 404, {"error": {"message": "not found"}})
                    return
                owner._chat(self, body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`, what an OpenAI client's `api_base` takes."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _chat(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        model = str(body.get("model", ""))
        if model.startswith("fail"):
            with self._lock:
                self.failed[model] += 1
            self._json(handler, 500, {"error": {"message": "upstream exploded", "type": "server_error"}})
            return
        with self._lock:
            self.served[model] += 1
            done = sum(self.served.values())
        limits = {"x-ratelimit-limit-requests": str(REQUEST_LIMIT),
                  "x-ratelimit-limit-tokens": str(TOKEN_LIMIT),
                  "x-ratelimit-remaining-requests": str(REQUEST_LIMIT - done),
                  "x-ratelimit-remaining-tokens": str(TOKEN_LIMIT - done * TOKENS_PER_CALL)}
        usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
                 "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}
        base = {"id": f"chatcmpl-{time.monotonic_ns()}", "created": int(time.time()), "model": model}
        if not body.get("stream"):
            self._json(handler, 200, {**base, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": REPLY}}]},
                limits)
            return
        chunks = [
            {**base, "object": "chat.completion.chunk",
             "choices": [{"index": 0, "delta": {"role": "assistant", "content": REPLY},
                          "finish_reason": None}]},
            {**base, "object": "chat.completion.chunk",
             "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage},
        ]
        payload = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        data = payload.encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        for name, value in limits.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    @staticmethod
    def _json(handler: BaseHTTPRequestHandler, status: int, obj: object,
              headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
