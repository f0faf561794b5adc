"""The console as a writer of its cache (console/writers.py, console/billing_worker.py).

Billing polling against the loopback replay of the providers' APIs (tests/faults/billing_server.py)
into a real cache: each source is a line of the sources view, live after a sync, stale (with the
reason) after a failed fetch that left every stored row as it was, down at once on a refused key;
the poller's thread ends on close. The read-write open: another process reading the file leaves
the console read-only, its billing lines saying why nothing is polled; a writer holding it is the
usual locked-cache error.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from console.billing_worker import BillingWorker
from console.cache.faults import CacheLockedError
from console.cache.store import Cache
from console.config import Config, OpenAIBillingSource, SourcesSettings
from console.launch import ConsoleWriters
from console.timeutil import utc_now
from console.writers import WriteGate, not_polling, open_for_writers
from tests.faults.billing_server import OPENAI_COSTS, BillingServer, json_reply

KEY = "sk-admin-canary-writer-5e6f7a8b9c0d"
ENV = "LLMDECK_T_WRITER_OPENAI_ADMIN"
TODAY = utc_now().date()
START = TODAY - timedelta(days=9)


class Wall:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 4, 12, 0, 0)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def server() -> Iterator[BillingServer]:
    with BillingServer(start=START, days=10, page_days=3, today=TODAY) as srv:
        yield srv


@pytest.fixture
def config(server: BillingServer, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv(ENV, KEY)
    source = OpenAIBillingSource(name="oa", url=server.url, admin_key_ref=f"env:{ENV}",
                                 timeout_seconds=2, poll_seconds=60, since_days=10)
    return Config(sources=SourcesSettings(openai_billing=[source]))


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[Cache]:
    with Cache.open(tmp_path / "c.duckdb") as c:
        yield c


def rows(cache: Cache) -> dict[str, list[tuple[Any, ...]]]:
    cur = cache.cursor()
    return {t: cur.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
            for t in ("billing", "billing_usage", "billing_syncs")}


def test_a_failed_fetch_keeps_the_rows_and_shows_the_source_stale_then_down(
        config: Config, cache: Cache, server: BillingServer) -> None:
    wall = Wall()
    worker = BillingWorker(cache, config, WriteGate(), wall=wall)
    (line,) = worker.probes()
    assert (line.source_status().state, line.source_status().detail) == ("stale", "not synced yet")
    (ok,) = worker.sync_once()
    assert ok.ok, ok.error
    status = line.source_status()
    assert (status.name, status.kind, status.state) == ("oa", "billing", "live")
    assert status.detail.startswith(f"synced {START:%m-%d}..{TODAY:%m-%d}")
    before = rows(cache)
    assert before["billing"], "the first sync stored nothing"

    server.replace(OPENAI_COSTS, json_reply({"error": {"message": "internal", "type": "server_error"}},
                                            500))
    wall.now += timedelta(seconds=61)
    (failed,) = worker.sync_once()
    assert not failed.ok and failed.status == 500
    assert rows(cache) == before  # nothing of what was stored was touched
    status = line.source_status()
    assert status.state == "stale" and "HTTP 500" in status.detail, status
    assert status.last_ok is not None and status.since == wall.now
    assert KEY not in status.detail and KEY[-12:] not in status.detail
    wall.now += timedelta(seconds=10 * 60)  # ten polls without a good one
    assert line.source_status().state == "down"
    # the cost screen's billing section: the stored figures, flagged stale past three polls
    from console.billing_reader import billing_section
    from console.pricing import PriceTable

    (fetched,) = [r[0] for r in cache.cursor().execute("SELECT fetched_at FROM billing_syncs").fetchall()]
    later = fetched + timedelta(seconds=3 * 60 + 1)
    section = billing_section(cache.cursor(), config, later, PriceTable.load(), wall=lambda: later)
    (fresh,) = section.sources
    assert (fresh.source, fresh.stale, fresh.last_day) == ("oa", True, TODAY)
    assert rows(cache) == before


def test_no_sync_for_three_polls_is_stale_and_a_refused_key_is_down_at_once(
        config: Config, cache: Cache, server: BillingServer) -> None:
    wall = Wall()
    worker = BillingWorker(cache, config, WriteGate(), wall=wall)
    (line,) = worker.probes()
    worker.sync_once()
    wall.now += timedelta(seconds=3 * 60 + 1)
    status = line.source_status()
    assert status.state == "stale" and status.detail.startswith("not synced for 181 s; synced ")
    server.replace(OPENAI_COSTS, json_reply({"error": {"message": "Incorrect API key provided",
                                                       "type": "invalid_request_error"}}, 401))
    worker.sync_once()
    status = line.source_status()
    assert status.state == "down"
    assert f"check the secret env:{ENV}" in status.detail and KEY not in status.detail


def test_the_poller_thread_syncs_then_close_leaves_no_thread(config: Config, cache: Cache) -> None:
    first = BillingWorker(cache, config, WriteGate(), first_delay=0.0)  # poll_seconds: 60
    first.start()
    try:  # never synced: the first sync runs at once, not a poll interval (60 s) later
        deadline = time.monotonic() + 30
        while first.syncs < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert first.syncs == 1 and first.last_error is None
    finally:
        first.close()
    worker = BillingWorker(cache, config, WriteGate(), every=0.1, first_delay=0.0)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while worker.syncs < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert worker.syncs >= 2 and worker.last_error is None
    finally:
        worker.close()
    assert not worker.running
    assert not [t for t in threading.enumerate() if t.name == "llmdeck-billing"]


def test_a_closed_gate_ends_the_poller_and_says_so(config: Config, cache: Cache) -> None:
    gate = WriteGate()
    gate.close("the console is closing")
    worker = BillingWorker(cache, config, gate, every=0.1, first_delay=0.0)
    worker.start()
    deadline = time.monotonic() + 30
    while worker.running and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.close()
    assert not worker.running and worker.syncs == 0
    (line,) = worker.probes()
    assert line.source_status().detail == "not polling: the console is closing"
    assert rows(cache)["billing_syncs"] == []


def _holder(path: Path, read_only: bool) -> subprocess.Popen[str]:
    code = ("import duckdb, sys, time\n"
            f"c = duckdb.connect({str(path)!r}, read_only={read_only})\n"
            "print('ready', flush=True)\n"
            "sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def _release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=30)


def test_another_reader_leaves_the_console_read_only_and_its_billing_lines_say_why(
        tmp_path: Path, config: Config) -> None:
    path = tmp_path / "c.duckdb"
    Cache.open(path).close()
    proc = _holder(path, read_only=True)
    try:
        pauses: list[float] = []
        cache, held_by = open_for_writers(path, pause=pauses.append)
        try:
            assert cache.read_only and held_by is not None and len(pauses) == 3
            assert held_by.startswith(f"{path} is in use by") and held_by.endswith(f"(PID {proc.pid})")
            held = not_polling(held_by)
            assert held == (f"not polling: the cache is open read-only here ({held_by}); run `llmdeck"
                            " billing sync` once it is closed, or restart the console then")
            writers = ConsoleWriters.build(cache, config, held_by)
            writers.start()
            try:
                (line,) = writers.probes()
                status = line.source_status()
                assert (status.name, status.state, status.detail) == ("oa", "down", held)
                assert writers.billing is not None and not writers.billing.running
            finally:
                writers.close()
        finally:
            cache.close()
    finally:
        _release(proc)
    cache, held_by = open_for_writers(path)  # once the other process is gone: read-write
    with cache:
        assert not cache.read_only and held_by is None


def test_a_writer_holding_the_file_is_the_usual_locked_cache_error(tmp_path: Path) -> None:
    path = tmp_path / "c.duckdb"
    Cache.open(path).close()
    proc = _holder(path, read_only=False)
    try:
        with pytest.raises(CacheLockedError, match=rf"in use by .* \(PID {proc.pid}\)"):
            open_for_writers(path, pause=lambda _: None)
    finally:
        _release(proc)
    with duckdb.connect(str(path), read_only=True) as con:  # nothing was left holding it
        assert con.execute("SELECT 1").fetchall() == [(1,)]


# ---- [receiver] listen inside the console process ---------------------------------------------


def _receiver_config(listen: str, **receiver: Any) -> Config:
    from console.config import ReceiverSettings

    return Config(receiver=ReceiverSettings(listen=listen, **receiver))


def _sdk_spans(count: int) -> list[Any]:
    """`count` finished GenAI client spans from the real OpenTelemetry SDK."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "writer-test"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("writer-test")
    for i in range(count):
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT) as span:
            span.set_attribute("gen_ai.system", "openai")
            span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            span.set_attribute("gen_ai.usage.input_tokens", 100 + i)
            span.set_attribute("gen_ai.usage.output_tokens", 10)
    provider.shutdown()
    return list(memory.get_finished_spans())


def _receiver_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("llmdeck-receiver")]


def test_the_receiver_in_the_console_stores_sdk_spans_shows_its_stats_and_closes_first(
        cache: Cache) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    from console.backend import Backend
    from console.launch import CacheProbe

    config = _receiver_config("127.0.0.1:0")
    writers = ConsoleWriters.build(cache, config, None)
    assert writers.billing is None and writers.receiver is not None
    writers.start()
    try:
        host = writers.receiver
        line = host.source_status()
        assert (line.name, line.kind, line.state) == ("otlp receiver", "otlp", "live")
        assert line.detail == f"{host.address[0]}:{host.address[1]}: 0 requests, 0 spans stored"
        spans = _sdk_spans(12)
        exporter = OTLPSpanExporter(endpoint=host.url, timeout=30)
        try:
            assert exporter.export(spans[:8]) is SpanExportResult.SUCCESS
            assert exporter.export(spans[8:]) is SpanExportResult.SUCCESS
            assert exporter.export(spans[:8]) is SpanExportResult.SUCCESS  # a retry: stored once
        finally:
            exporter.shutdown()  # type: ignore[no-untyped-call]
        # acknowledged means stored: the panels' connection reads them at once
        backend = Backend(cache, config, utc_now, [CacheProbe(cache), *writers.probes()])
        statuses = {s.name: s for s in backend.source_statuses()}
        assert statuses["otlp receiver"].detail.endswith(
            ": 3 requests, 12 spans stored, 8 duplicates")
        assert statuses["trace cache"].state == "live"
        rows = cache.cursor().execute("SELECT count(*), count(DISTINCT span_id), min(provider),"
                                      " sum(input_tokens) FROM spans").fetchall()
        assert rows == [(12, 12, "openai", sum(100 + i for i in range(12)))]
        url = host.url
    finally:
        writers.close()
    assert not _receiver_threads()
    assert writers.receiver.source_status().detail.endswith(": closed; 3 requests, 12 spans stored")
    import httpx

    with pytest.raises(httpx.ConnectError):  # nothing listens any more
        httpx.post(url, content=b"", headers={"Content-Type": "application/x-protobuf"}, timeout=5)


def test_the_receiver_lines_say_why_it_does_not_listen(tmp_path: Path, cache: Cache,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    gate = WriteGate()
    # held read-only by another process: not started, said
    held = ConsoleWriters.build(cache, _receiver_config("127.0.0.1:0"), "x is in use by y (PID 1)", gate)
    held.start()
    assert held.receiver is not None and held.receiver.receiver is None
    line = held.receiver.source_status()
    assert line.state == "down" and line.detail == (
        "127.0.0.1:0: not listening: the cache is open read-only here (x is in use by y (PID 1));"
        " restart the console once it is closed")
    held.close()
    # an address other than loopback without a token: refused, as `llmdeck receive` refuses it
    open_ = ConsoleWriters.build(cache, _receiver_config("0.0.0.0:0"), None, gate)
    open_.start()
    assert open_.receiver is not None and open_.receiver.receiver is None
    assert "an address other than loopback needs [receiver] token" in open_.receiver.source_status().detail
    open_.close()
    # a token reference that holds nothing: named, never started
    monkeypatch.delenv("LLMDECK_T_WRITER_TOKEN", raising=False)
    tokenless = ConsoleWriters.build(
        cache, _receiver_config("0.0.0.0:0", token="env:LLMDECK_T_WRITER_TOKEN"), None, gate)
    tokenless.start()
    assert tokenless.receiver is not None and tokenless.receiver.receiver is None
    assert "LLMDECK_T_WRITER_TOKEN" in tokenless.receiver.source_status().detail
    tokenless.close()
    # a port already taken: the console goes on, the line says it
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = ConsoleWriters.build(cache, _receiver_config(f"127.0.0.1:{port}"), None, gate)
        busy.start()
        try:
            assert busy.receiver is not None and busy.receiver.receiver is None
            status = busy.receiver.source_status()
            assert status.state == "down"
            assert status.detail.startswith(f"127.0.0.1:{port}: not listening: 127.0.0.1:{port}: ")
        finally:
            busy.close()
    assert not _receiver_threads()


def test_a_token_from_its_reference_is_required_by_the_receiver(
        cache: Cache, monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    token = "rcv-token-canary-1f2e3d4c5b6a"
    monkeypatch.setenv("LLMDECK_T_WRITER_TOKEN", token)
    config = _receiver_config("127.0.0.1:0", token="env:LLMDECK_T_WRITER_TOKEN")
    writers = ConsoleWriters.build(cache, config, None)
    writers.start()
    try:
        host = writers.receiver
        assert host is not None and host.receiver is not None
        body, kind = b"", {"Content-Type": "application/x-protobuf"}
        assert httpx.post(host.url, content=body, headers=kind, timeout=10).status_code == 401
        ok = httpx.post(host.url, content=body, headers={**kind, "Authorization": f"Bearer {token}"},
                        timeout=10)
        assert ok.status_code == 200
        line = host.source_status()
        assert token not in line.detail and token not in line.last_error
    finally:
        writers.close()


def test_a_restarted_console_starts_from_the_stored_sync_and_waits_until_it_is_due(
        config: Config, cache: Cache, server: BillingServer) -> None:
    first = BillingWorker(cache, config, WriteGate())
    (ok,) = first.sync_once()
    assert ok.ok
    (fetched,) = [r[0] for r in cache.cursor().execute("SELECT fetched_at FROM billing_syncs").fetchall()]
    asked = len(server.requests)
    wall = Wall()
    wall.now = fetched + timedelta(seconds=10)
    again = BillingWorker(cache, config, WriteGate(), wall=wall, first_delay=0.0)
    (line,) = again.probes()
    status = line.source_status()
    assert status.state == "live" and status.last_ok == fetched
    assert status.detail == (f"last synced {fetched:%Y-%m-%d %H:%M}Z, days {START:%m-%d}..{TODAY:%m-%d}")
    again.start()
    try:  # polled 10 s ago: the next poll is poll_seconds (60) after that one, not now
        assert 30 < again._tracks["oa"].due - time.monotonic() <= 50
    finally:
        again.close()
    assert len(server.requests) == asked and again.syncs == 0


def test_close_does_not_wait_on_a_fetch_in_flight_and_nothing_is_stored_after_it(
        server: BillingServer, config: Config, cache: Cache) -> None:
    from tests.faults.fault_server import Answer

    asked, release = threading.Event(), threading.Event()
    normal = server.answer(OPENAI_COSTS)

    def held(request: Any) -> Any:  # the provider answers only when the test lets it
        asked.set()
        release.wait(60)
        return normal.handler(request)

    server.replace(OPENAI_COSTS, Answer(held))
    (source,) = config.sources.openai_billing
    slow = config.model_copy(update={"sources": SourcesSettings(
        openai_billing=[source.model_copy(update={"timeout_seconds": 120})])})
    worker = BillingWorker(cache, slow, WriteGate(), first_delay=0.0)
    worker.start()
    try:
        assert asked.wait(30)
        worker.close(timeout=0.1)  # returns although the fetch cannot end before `release`
        assert not release.is_set()
        release.set()  # the fetch now succeeds: its store must not get in
        deadline = time.monotonic() + 60
        while worker.running and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not worker.running
        assert rows(cache) == {"billing": [], "billing_usage": [], "billing_syncs": []}
        assert worker.last_error == "the billing poller is closed"
    finally:
        release.set()
        worker.close()


def test_the_receiver_line_says_stopped_when_its_server_thread_dies(
        cache: Cache, monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors.otlp_http import OtlpHttpServer

    async def broken(self: Any, stop: Any) -> None:
        raise RuntimeError("the event loop's selector failed")

    monkeypatch.setattr(OtlpHttpServer, "serve_until", broken)
    writers = ConsoleWriters.build(cache, _receiver_config("127.0.0.1:0"), None, WriteGate())
    writers.start()
    try:
        host = writers.receiver
        assert host is not None and host._thread is not None
        host._thread.join(60)
        status = host.source_status()
        assert status.state == "down"
        assert status.detail.endswith("stopped: the event loop's selector failed")
    finally:
        writers.close()
    assert not _receiver_threads()


def test_closing_with_the_writer_held_abandons_its_connection_and_stores_nothing(
        cache: Cache, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from connectors.otlp_http import ExportRequest
    from tests.unit.test_receiver import protobuf_request

    gate = WriteGate()
    writers = ConsoleWriters.build(cache, _receiver_config("127.0.0.1:0"), None, gate)
    writers.start()
    host = writers.receiver
    assert host is not None and host.receiver is not None
    own = host.receiver.cache
    ended: list[str] = []
    monkeypatch.setattr(type(own), "close", lambda self: ended.append("close"), raising=True)
    real_abandon = type(own).abandon

    def abandon(self: Cache) -> None:
        ended.append("abandon")
        real_abandon(self)

    monkeypatch.setattr(type(own), "abandon", abandon)
    gate._lock.acquire()  # the demo simulator's long step, say: the writer waits at the gate
    try:
        receiver = host.receiver
        results: list[Any] = []
        sender = threading.Thread(target=lambda: results.append(asyncio.run(receiver.handle(
            ExportRequest(protobuf_request(5), "protobuf", "127.0.0.1:1")))))
        sender.start()
        deadline = time.monotonic() + 30
        while host.receiver.stats().queue_spans < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        closer = threading.Thread(target=writers.close)
        closer.start()
        closer.join(60)  # the receiver's own close timeout passes, its writer still held
        assert ended == ["abandon"], "a connection a live writer uses is abandoned, not checkpointed"
    finally:
        gate._lock.release()
    sender.join(60)
    assert [r.status for r in results] == [503]  # its commit met the abandoned connection
    deadline = time.monotonic() + 30
    while _receiver_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _receiver_threads()
    assert cache.cursor().execute("SELECT count(*) FROM spans").fetchall() == [(0,)]


def test_the_receiver_fault_is_the_kind_classify_found_else_a_plain_cache_error(cache: Cache) -> None:
    from console.cache.faults import CacheError, CacheFullError
    from console.receiver import ReceiverStats
    from console.writers import ReceiverHost

    class Stub:
        """A receiver that cannot write, with the fault `faults.classify` found (or none)."""

        def __init__(self, fault: CacheError | None, reason: str) -> None:
            self.fault = fault
            self._stats = ReceiverStats(1, 0, 0, 0, 0, "cannot_write", reason, None)

        def stats(self) -> ReceiverStats:
            return self._stats

    host = ReceiverHost(cache, _receiver_config("127.0.0.1:0"), WriteGate(), host="127.0.0.1", port=0)

    def fault_with(receiver: Stub | None) -> CacheError | None:
        host.receiver = receiver  # type: ignore[assignment]
        return host.cache_fault

    assert fault_with(None) is None  # not started
    fault = fault_with(Stub(CacheFullError("full"), "no space left on the device holding it"))
    assert type(fault) is CacheFullError and str(fault) == "no space left on the device holding it"
    assert fault.path == cache.path
    # not a file fault by classify's rules: its words (a bug's "permission") name no kind
    fault = fault_with(Stub(None, "the receiver's writer stopped: KeyError: 'permission'"))
    assert type(fault) is CacheError and fault.path == cache.path
    fault_with(None)
