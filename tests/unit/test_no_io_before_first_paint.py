"""Configured sources cost the console's start nothing: no socket connects before its first paint."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from console.backend import Backend
from console.cache.store import Cache
from console.config import (
    AlertmanagerSource,
    CacheSettings,
    Config,
    PrometheusSource,
    ScrapeSource,
    SourcesSettings,
)
from console.launch import CacheProbe, source_hub
from tests.faults.fault_server import FaultServer, Reply

AT = datetime(2026, 12, 1, 12, 0, 0)
VLLM_TEXT = 'vllm:num_requests_running{model_name="m"} 1\nvllm:request_success_total{model_name="m"} 5\n'
EMPTY_VECTOR = {"status": "success", "data": {"resultType": "vector", "result": []}}
PATHS: dict[str, dict[str, Reply]] = {
    "prometheus": {"/api/v1/alerts": Reply(200, {"status": "success", "data": {"alerts": []}}),
                   "/api/v1/query": Reply(200, EMPTY_VECTOR)},
    "alertmanager": {"/api/v2/alerts": Reply(200, []), "/api/v2/silences": Reply(200, [])},
    "scrape": {"/metrics": Reply(200, VLLM_TEXT, content_type="text/plain; version=0.0.4")},
}
NAMES = {"prom-a": "prometheus", "prom-b": "prometheus", "am-a": "alertmanager", "am-b": "alertmanager",
         "vllm-a": "scrape", "vllm-b": "scrape"}


@pytest.fixture
def server() -> Iterator[FaultServer]:
    """One loopback server for the six sources, each under its own path prefix (/prom-a/...)."""
    with FaultServer() as srv:
        for name, kind in NAMES.items():
            for path, reply in PATHS[kind].items():
                srv.route(f"/{name}{path}", reply)
        yield srv


def six_sources(url: str, cache: Path) -> Config:
    def common(name: str) -> dict[str, Any]:
        return {"name": name, "url": url, "path_prefix": f"/{name}", "refresh_seconds": 1}

    return Config(cache=CacheSettings(path=cache), sources=SourcesSettings(
        prometheus=[PrometheusSource(**common("prom-a")), PrometheusSource(**common("prom-b"))],
        alertmanager=[AlertmanagerSource(**common("am-a")), AlertmanagerSource(**common("am-b"))],
        scrape=[ScrapeSource(**common("vllm-a"), kind="vllm"), ScrapeSource(**common("vllm-b"), kind="vllm")],
    ))


class EventLog:
    """What happened, in order, from any thread: the first paint, the hub's start, socket connects."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def add(self, what: str, detail: str = "") -> None:
        with self._lock:
            self.events.append((what, detail))

    def index(self, what: str) -> int:
        return next(i for i, (w, _) in enumerate(self.events) if w == what)

    def connects(self) -> list[tuple[int, str]]:
        return [(i, d) for i, (w, d) in enumerate(self.events) if w == "connect"]


def recording_app(backend: Backend, log: EventLog) -> Any:
    """The console, noting its first compositor update on screen and the call that starts the hub."""
    from textual._compositor import CompositorUpdate

    from console.app import LlmdeckApp

    class RecordingApp(LlmdeckApp):
        def _display(self, screen: Any, renderable: Any) -> None:
            if isinstance(renderable, CompositorUpdate) and not self._batch_count:
                log.add("paint")
            super()._display(screen, renderable)

        def _after_first_paint(self) -> None:
            log.add("after first paint")
            super()._after_first_paint()

    return RecordingApp(backend)


async def test_six_configured_sources_connect_only_after_the_first_paint(
        tmp_path: Path, server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    log = EventLog()
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> None:
        log.add("connect", f"{address} on {threading.current_thread().name}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    config = six_sources(server.url, tmp_path / "cache.duckdb")
    cache = Cache.open(tmp_path / "cache.duckdb")
    try:
        hub = source_hub(config)
        assert hub is not None and len(hub.pollers) == 6
        backend = Backend(cache, config, lambda: AT, [CacheProbe(cache)], hub=hub)
        app = recording_app(backend, log)
        async with app.run_test(size=(120, 40)) as pilot:
            for _ in range(2000):  # until every source has been read (bounded; not a timing check)
                if all(server.requests_to(f"/{n}{next(iter(PATHS[k]))}") for n, k in NAMES.items()):
                    break
                await asyncio.sleep(0.01)
            await pilot.pause()
    finally:
        cache.close()

    polled = {n for n, k in NAMES.items() if server.requests_to(f"/{n}{next(iter(PATHS[k]))}")}
    assert polled == set(NAMES), f"sources never polled: {set(NAMES) - polled}; events {log.events[:20]}"
    first_paint, hub_start = log.index("paint"), log.index("after first paint")
    connects = log.connects()
    assert connects, "the sources were read without a socket connect being seen"
    early = [d for i, d in connects if i < first_paint or i < hub_start]
    assert not early, f"connects before the first paint: {early}"
    assert first_paint < hub_start < connects[0][0]
