"""The demo's outside systems on loopback: a vLLM and a LiteLLM `/metrics`, and an Alertmanager API.

`llmdeck demo` starts them next to the simulator, each on 127.0.0.1 with a port
the OS picks, and lists them in the demo's config as `[[sources.scrape]]` and
`[[sources.alertmanager]]`, so the console reads them through its real
connectors; and OpenAI- and Anthropic-shaped billing APIs (console/demo/billing_api.py),
listed as `[[sources.openai_billing]]` and `[[sources.anthropic_billing]]`. The LiteLLM
server also serves the gateway's admin API (console/demo/gateway_admin.py), seeded with
the simulator's tenants, keys and deployments, behind a master key made per run; its
changes move the traffic's levers (console/demo/gateway_world.py), so the runbook
actions listed in the demo's `[[actions.litellm]]` change what the simulator sends.
Everything they serve comes from the simulator's traffic (console/demo/telemetry.py,
billing_ledger.py), so the scripted anthropic incident shows in the scraped figures
and as a firing `AnthropicErrorBudgetBurn` alert.

Each server is a stdlib `ThreadingHTTPServer` on a daemon thread; `close()`
stops them. Requests are never logged (the console owns the terminal).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from console.demo import generate
from console.demo.alertmanager_api import AlertmanagerState, ApiError
from console.demo.billing_api import BillingApi, forget_keys, install_keys
from console.demo.billing_ledger import BillingLedger
from console.demo.exposition import CONTENT_TYPE, litellm_page, vllm_page
from console.demo.gateway_admin import GatewayAdmin
from console.demo.gateway_world import GatewayWorld, build_admin, forget_master_key, install_master_key
from console.demo.levers import Levers
from console.demo.telemetry import Telemetry
from console.timeutil import utc_now

HOST = "127.0.0.1"
MAX_BODY = 1 << 20
POLL_SECONDS = 0.1
"""How often a server checks whether it should stop (closing waits at most this long)."""
AM_VERSION = {"version": "0.25.0", "revision": "llmdeck-demo", "branch": "", "buildUser": "",
              "buildDate": "", "goVersion": ""}


@dataclass(frozen=True)
class EndpointUrls:
    """Base URLs of the demo's servers (`http://127.0.0.1:PORT`)."""

    vllm: str
    litellm: str
    alertmanager: str
    openai_billing: str | None = None
    anthropic_billing: str | None = None


class DemoEndpoints:
    """The three servers, driven by one `Telemetry` of the simulator's traffic."""

    def __init__(self, plan: generate.TrafficPlan, start: datetime, clock: Callable[[], datetime],
                 wall: Callable[[], datetime] = utc_now, history_start: datetime | None = None) -> None:
        if plan.levers is None:  # every reader here must see what the admin API changes
            plan = dataclasses.replace(plan, levers=Levers())
        assert plan.levers is not None
        self.plan = plan
        self.world = GatewayWorld(plan.levers, plan.rate, clock)
        """Where the gateway admin API's changes go: the levers of `plan` (the simulator's own)."""
        self.gateway: GatewayAdmin | None = None
        """The LiteLLM admin API on the `litellm` URL, from `start()` on."""
        self._master_key = ""
        self.telemetry = Telemetry(plan, start, clock)
        self.alertmanager = AlertmanagerState(self.telemetry, wall)
        self.ledger = BillingLedger(plan, history_start or start, clock, start=start)
        """What the billing APIs bill: the traffic from `history_start` (the simulator's backfill)."""
        self._servers: list[ThreadingHTTPServer] = []
        self._keys: dict[str, str] = {}
        self.urls: EndpointUrls | None = None

    @classmethod
    def for_simulator(cls, sim: Any) -> DemoEndpoints:
        """Endpoints for a `console.demo.simulator.Simulator` (its traffic plan, start and clock)."""
        return cls(sim.plan, sim.start, sim.clock.now, history_start=sim.backfill_start)

    def start(self) -> EndpointUrls:
        """Bind the servers (three, and the two billing APIs) on loopback ports the OS picks; their URLs."""
        if self.urls is not None:
            return self.urls
        self._master_key = install_master_key()  # in its environment, for the config's `env:` ref
        self.gateway = build_admin(self.world, self._master_key)
        urls = [self._serve(_handler(route)) for route in (self._vllm, self._litellm, self._alertmanager)]
        self.alertmanager.generator_url = urls[2]
        keys = self._keys = install_keys()  # random admin keys in its environment, for `env:` refs
        billing = [self._serve(_handler(BillingApi(p, self.ledger, keys[p]).answer))
                   for p in ("openai", "anthropic")]
        self.urls = EndpointUrls(*urls, *billing)
        return self.urls

    def close(self) -> None:
        """Stop serving (all at once) and release the ports."""
        stopping = [threading.Thread(target=server.shutdown) for server in self._servers]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()
        for server in self._servers:
            server.server_close()
        self._servers = []
        forget_keys(self._keys)
        forget_master_key(self._master_key)

    def __enter__(self) -> DemoEndpoints:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- routes: (method, path, query, body, headers) -> (status, content type, body) -----

    def _vllm(self, method: str, path: str, query: dict[str, list[str]], body: Any, headers: Any) -> _Reply:
        if (method, path) == ("GET", "/metrics"):
            return 200, CONTENT_TYPE, self._page(vllm_page)
        if (method, path) == ("GET", "/health"):
            return 200, "text/plain; charset=utf-8", ""
        return _not_found(path)

    def _litellm(self, method: str, path: str, query: dict[str, list[str]], body: Any,
                 headers: Any) -> _Reply:
        if (method, path) == ("GET", "/metrics"):
            return 200, CONTENT_TYPE, self._page(litellm_page)
        if (method, path) == ("GET", "/health/liveliness"):
            return 200, "application/json", json.dumps("I'm alive!")
        if self.gateway is not None:  # the admin API: keys, teams, deployments, fallbacks
            status, doc = self.gateway.handle(method, path, query, headers, body)
            return status, "application/json", json.dumps(doc)
        return _not_found(path)

    def _alertmanager(self, method: str, path: str, query: dict[str, list[str]], body: Any,
                      headers: Any) -> _Reply:
        am = self.alertmanager
        if path in ("/-/ready", "/-/healthy") and method == "GET":
            return 200, "text/plain; charset=utf-8", "OK"
        if path == "/api/v2/alerts" and method == "GET":
            return _json(am.alerts(query))
        if path == "/api/v2/silences" and method == "GET":
            return _json(am.silences())
        if path == "/api/v2/silences" and method == "POST":
            return _json({"silenceID": am.post_silence(body)})
        if path.startswith("/api/v2/silence/"):
            silence_id = unquote(path.removeprefix("/api/v2/silence/"))
            if method == "GET":
                return _json(am.silence(silence_id))
            if method == "DELETE":
                am.expire(silence_id)
                return 200, "application/json", ""
        if path == "/api/v2/status" and method == "GET":
            return _json({"cluster": {"status": "disabled", "peers": []}, "versionInfo": AM_VERSION,
                          "config": {"original": ""}, "uptime": "2026-01-01T00:00:00.000Z"})
        return _not_found(path)

    def _page(self, render: Callable[[Telemetry], str]) -> str:
        tel = self.telemetry
        tel.catch_up()
        with tel.lock:
            return render(tel)

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> str:
        server = ThreadingHTTPServer((HOST, 0), handler)
        server.daemon_threads = True
        self._servers.append(server)
        threading.Thread(target=server.serve_forever, args=(POLL_SECONDS,),
                         name=f"demo-http-{server.server_port}", daemon=True).start()
        return f"http://{HOST}:{server.server_port}"


_Reply = tuple[int, str, str]
_Route = Callable[[str, str, dict[str, list[str]], Any, Any], _Reply]
"""(method, path, query, JSON body, request headers) -> reply (the demo billing APIs check keys)."""


def _json(value: Any) -> _Reply:
    return 200, "application/json", json.dumps(value)


def _not_found(path: str) -> _Reply:
    return 404, "text/plain; charset=utf-8", f"404 page not found: {path}\n"


def _handler(route: _Route) -> type[BaseHTTPRequestHandler]:
    """A request handler class sending every request to `route`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle(self) -> None:
            try:
                super().handle()
            except (BrokenPipeError, ConnectionResetError):  # the client hung up (the console quit)
                self.close_connection = True

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

        def _handle(self, method: str) -> None:
            url = urlsplit(self.path)
            try:
                body = self._body()
                status, content_type, text = route(method, url.path, parse_qs(url.query), body, self.headers)
            except ApiError as err:
                status, content_type, text = err.status, "application/json", json.dumps(err.message)
            except Exception as exc:  # a demo server bug must answer, not hang the console's poll
                status, content_type, text = 500, "text/plain; charset=utf-8", f"{type(exc).__name__}\n"
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(data)

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0:
                return None
            if length > MAX_BODY:
                raise ApiError(413, "request body too large")
            raw = self.rfile.read(length)
            try:
                return json.loads(raw)
            except ValueError:
                raise ApiError(400, "body is not valid JSON") from None

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
            pass

    return Handler
