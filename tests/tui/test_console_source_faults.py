"""Every fault an outside source can have, as the on-call engineer sees it in the console.

One Alertmanager source per fault, each behind its own path prefix on one loopback
fault server: 401, 403, 404, 429 with and without Retry-After, a quota 429, 500,
502, 503, 529, a slow drip, a connection reset, a hang, malformed JSON, a wrong
content type and an HTML error page, plus one healthy source. The console (80x24)
must keep answering keys while they fail, `:sources` must show each one stale or
down with what went wrong, `:alerts` must say the sources are down rather than
"nothing firing", and nothing crashes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from console.backend import Backend
from console.config import AlertmanagerSource
from console.launch import source_hub
from tests.faults.fault_server import Drip, FaultServer, Hang, Reply, Reset, html_page
from tests.tui.conftest import DemoData
from tests.tui.screen_text import screen_text

FAULTS: dict[str, tuple[Any, str]] = {
    # source name: (behaviour, what :sources must say about it)
    "f401": (Reply(401, {"error": "bad token"}), "HTTP 401"),
    "f403": (Reply(403, {"error": "forbidden"}), "HTTP 403"),
    "f404": (Reply(404, "404 page not found"), "HTTP 404"),
    "f429": (Reply(429, {"error": "slow down"}), "HTTP 429"),
    "f429ra": (Reply(429, {"error": "slow down"}, headers={"Retry-After": "1"}), "HTTP 429"),
    "fquota": (Reply(429, {"error": {"type": "insufficient_quota",
                                     "message": "You exceeded your current quota"}}), "quota"),
    "f500": (Reply(500, {"error": "boom"}), "HTTP 500"),
    "f502": (html_page(502, "502 Bad Gateway"), "HTTP 502"),
    "f503": (Reply(503, "upstream unavailable"), "HTTP 503"),
    "f529": (Reply(529, {"type": "error", "error": {"type": "overloaded_error",
                                                   "message": "Overloaded"}}), "HTTP 529"),
    "fdrip": (Drip(interval=0.5), "timeout"),
    "freset": (Reset(), "connect"),
    "fhang": (Hang(), "timeout"),
    "fjson": (Reply(200, b'[{"labels": {', content_type="application/json"), "decode"),
    "ftype": (Reply(200, "<html><title>Sign in</title></html>", content_type="text/html"),
              "content_type"),
}


@pytest.fixture
def faults() -> Iterator[FaultServer]:
    with FaultServer() as server:
        for name, (behaviour, _) in FAULTS.items():
            for path in ("/api/v2/alerts", "/api/v2/silences"):
                server.route(f"/{name}{path}", behaviour)
        server.route("/ok/api/v2/alerts", Reply(200, []))
        server.route("/ok/api/v2/silences", Reply(200, []))
        yield server


async def test_every_fault_is_named_on_sources_and_the_console_keeps_answering(
        demo_data: DemoData, faults: FaultServer, make_app: Any) -> None:
    names = [*FAULTS, "ok"]
    sources = [AlertmanagerSource(name=n, url=faults.url, path_prefix=f"/{n}", refresh_seconds=1,
                                  timeout_seconds=1) for n in names]
    config = demo_data.config.model_copy(update={
        "sources": demo_data.config.sources.model_copy(update={"alertmanager": sources})})
    hub = source_hub(config)
    assert hub is not None
    backend = Backend(demo_data.cache, config, lambda: demo_data.at, [demo_data.simulator], hub=hub)
    app = make_app(backend=backend)
    async with app.run_test(size=(80, 24)) as pilot:
        # every source answered (or failed) at least once; keys keep working meanwhile
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            await pilot.press("5" if int(time.monotonic() * 4) % 2 else "1")
            statuses = {s.name: s for s in hub.statuses()}
            if all(statuses[n].last_error or statuses[n].state == "live" for n in names) \
                    and statuses["fhang"].last_error:
                break
            await asyncio.sleep(0.05)
        statuses = {s.name: s for s in hub.statuses()}
        assert statuses["ok"].state == "live"
        for name, (_, says) in FAULTS.items():
            status = statuses[name]
            assert status.state in ("stale", "down"), (name, status)
            assert says in status.detail, (name, status.detail)
            assert status.detail.startswith(f"{name}: "), status.detail  # names the source
        for name in ("f401", "f403", "fquota"):  # waiting will not fix these
            assert statuses[name].state == "down", statuses[name]

        await pilot.press("5")
        for _ in range(100):
            await pilot.pause(0.05)
            text = screen_text(app)
            if "17 sources" in text and "✖ down" in text:
                break
        assert "17 sources" in text  # the demo simulator, the healthy one and 15 faults
        assert "✖ down since" in text and " · f401: HTTP 401: bad token; check the credentials" in text
        await pilot.press("6")
        for _ in range(100):
            await pilot.pause(0.05)
            text = screen_text(app)
            if "f401 down" in text or "stale:" in text or "down:" in text:
                break
        assert "nothing firing" in text  # the healthy source answered: nothing fires there
        assert "down" in text or "stale" in text  # and the failing ones are named above it
        assert app.is_running
