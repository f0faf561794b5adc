"""`console.receiver.Receiver`, the OTLP/HTTP handler: decode, map, group-commit, answer after commit.

Requests go straight to `Receiver.handle` (the HTTP framing is `connectors/otlp_http`'s, tested in
test_otlp_http.py; the two together with the real SDK exporter in tests/integration). The cache is
a real DuckDB file; a write lock held by the test stands in for a slow writer, so what is asserted
is order (answered only after the commit), never time.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from connectors.otlp_http import ExportRequest, ExportResult
from console.cache.store import Cache
from console.config import Config
from console.receiver import Receiver

PEER = "127.0.0.1:50000"


def protobuf_request(n: int, *, first: int = 0, model: str = "gpt-4o-mini", trace: int = 1,
                     start_ns: int | None = None) -> bytes:
    """An ExportTraceServiceRequest of `n` GenAI chat spans (span ids first+1 .. first+n)."""
    start = start_ns if start_ns is not None else time.time_ns() - 60 * 10**9
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "checkout"
    ss = rs.scope_spans.add()
    ss.scope.name = "test"
    for i in range(first, first + n):
        sp = ss.spans.add()
        sp.trace_id = trace.to_bytes(16, "big")
        sp.span_id = (i + 1).to_bytes(8, "big")
        sp.name = f"chat {model}"
        sp.kind = 3  # CLIENT
        sp.start_time_unix_nano = start + i * 1_000_000
        sp.end_time_unix_nano = start + i * 1_000_000 + 250_000_000
        for key, value in (("gen_ai.provider.name", "openai"), ("gen_ai.operation.name", "chat"),
                           ("gen_ai.request.model", model)):
            a = sp.attributes.add()
            a.key, a.value.string_value = key, value
        for key, number in (("gen_ai.usage.input_tokens", 1000), ("gen_ai.usage.output_tokens", 100)):
            a = sp.attributes.add()
            a.key, a.value.int_value = key, number
    return req.SerializeToString()


def json_request(spans: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
        "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}]}]})


def json_span(span_id: int, **extra: Any) -> dict[str, Any]:
    start = time.time_ns() - 60 * 10**9
    span = {"traceId": "0" * 31 + "2", "spanId": f"{span_id:016x}", "name": "chat",
            "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 10**8),
            "attributes": [{"key": "gen_ai.provider.name", "value": {"stringValue": "anthropic"}},
                           {"key": "gen_ai.request.model", "value": {"stringValue": "claude-sonnet-4"}}]}
    span.update(extra)
    return span


class Gate:
    """A write lock the test holds shut to keep the writer from committing; counts commits."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.open.set()
        self.entered = 0
        self.lock = threading.Lock()

    @contextmanager
    def __call__(self) -> Iterator[None]:
        self.open.wait()
        with self.lock:
            self.entered += 1
            yield


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[Cache]:
    c = Cache.open(tmp_path / "c.duckdb")
    yield c
    c.close()


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def receiver(cache: Cache, gate: Gate) -> Iterator[Receiver]:
    r = Receiver(cache, Config(), write_lock=gate)
    r.start()
    yield r
    gate.open.set()
    r.close()


def count(cache: Cache, sql: str = "SELECT count(*) FROM spans") -> Any:
    return cache.cursor().execute(sql).fetchall()[0][0]


async def send(receiver: Receiver, body: bytes, encoding: str = "protobuf") -> ExportResult:
    return await receiver.handle(ExportRequest(body, encoding, PEER))  # type: ignore[arg-type]


async def test_protobuf_spans_are_mapped_priced_rolled_up_and_acknowledged(receiver, cache) -> None:
    result = await send(receiver, protobuf_request(20))
    assert result == ExportResult(200)
    rows = cache.cursor().execute(
        "SELECT provider, request_model, input_tokens, output_tokens, cost_usd > 0, service, kind"
        " FROM spans").fetchall()
    assert len(rows) == 20
    assert set(rows) == {("openai", "gpt-4o-mini", 1000, 100, True, "checkout", rows[0][6])}
    assert count(cache, "SELECT sum(requests) FROM rollup_minute") == 20
    stats = receiver.stats()
    assert (stats.requests, stats.spans_stored, stats.duplicates, stats.rejected) == (1, 20, 0, 0)
    assert stats.state == "ok" and stats.last_write_at is not None


async def test_an_exporter_retry_of_a_stored_batch_is_not_stored_twice(receiver, cache) -> None:
    body = protobuf_request(30)
    assert (await send(receiver, body)).status == 200
    assert (await send(receiver, body)).status == 200  # the exporter never saw the first 200
    assert count(cache) == 30
    assert receiver.stats().duplicates == 30
    assert count(cache, "SELECT sum(requests) FROM rollup_minute") == 30


async def test_requests_queued_meanwhile_share_one_commit_and_none_is_answered_before_it(
        receiver, cache, gate) -> None:
    assert (await send(receiver, protobuf_request(1, first=10_000))).status == 200
    before = gate.entered
    gate.open.clear()  # the writer blocks at its next transaction
    tasks = [asyncio.ensure_future(send(receiver, protobuf_request(10, first=100 * i)))
             for i in range(40)]
    # all 40 mapped and waiting (at most one of them taken by the blocked writer)
    while receiver.stats().queue_spans < 400:
        await asyncio.sleep(0.01)
    assert not any(t.done() for t in tasks), "answered before its spans were committed"
    assert count(cache) == 1
    gate.open.set()
    results = await asyncio.gather(*tasks)
    assert all(r.status == 200 for r in results)
    assert count(cache) == 401
    assert gate.entered - before <= 2, "each request was committed in its own transaction"
    assert receiver.stats().queue_spans == 0


async def test_a_full_queue_answers_503_with_retry_after_and_memory_stays_bounded(
        cache, gate) -> None:
    receiver = Receiver(cache, Config(), write_lock=gate, queue_spans=1_000)
    receiver.start()
    try:
        gate.open.clear()
        tasks = [asyncio.ensure_future(send(receiver, protobuf_request(400, first=1000 * i)))
                 for i in range(6)]
        # 1,000 queued spans hold two requests of 400 (the writer, held, counts as queued)
        while sum(t.done() for t in tasks) < 4:
            await asyncio.sleep(0.01)
        refused = [t.result() for t in tasks if t.done()]
        assert all(r.status == 503 and r.retry_after and r.retry_after >= 1 for r in refused)
        assert "behind" in refused[0].message
        stats = receiver.stats()
        assert stats.queue_spans == 800 and stats.state == "behind"
        gate.open.set()
        results = await asyncio.gather(*tasks)
        assert [r.status for r in results].count(200) == 2
        assert count(cache) == 800
    finally:
        gate.open.set()
        receiver.close()


async def test_spans_that_cannot_be_mapped_are_quarantined_and_reported_as_partial_success(
        receiver, cache) -> None:
    body = json_request([json_span(1), json_span(2, traceId=""), json_span(3, spanId="zz")])
    result = await send(receiver, body, "json")
    assert result.status == 200 and result.rejected_spans == 2
    assert result.message.startswith("2 span(s) rejected: resourceSpans[0].scopeSpans[0].spans[1]:")
    assert "\n" not in result.message
    assert count(cache) == 1
    assert count(cache, "SELECT count(*) FROM quarantine WHERE source = 'otlp-http 127.0.0.1'") == 2
    assert receiver.stats().rejected == 2


@pytest.mark.parametrize(("encoding", "body", "says"), [
    ("protobuf", protobuf_request(50)[:-7], "undecodable protobuf"),
    ("protobuf", b"\xff" * 64, "undecodable protobuf"),
    ("json", b'{"resourceSpans": [', "undecodable OTLP/JSON"),
    ("json", b"[" * 5000 + b"]" * 5000, "undecodable OTLP/JSON"),
    ("json", b'{"resourceSpans": [{"resource": {"attributes": [{"key": "\xff\xfe"}]}}]}',
     "undecodable OTLP/JSON"),
    ("json", b'"just a string"', "undecodable OTLP/JSON"),
    ("json", b'{"resourceSpans": "nope"}', "resourceSpans is not an array"),
], ids=["truncated-protobuf", "garbage-protobuf", "truncated-json", "deeply-nested-json",
        "invalid-utf8", "not-an-object", "wrong-shape"])
async def test_an_undecodable_body_is_a_400_with_a_clean_message_and_stores_nothing(
        receiver, cache, encoding, body, says) -> None:
    result = await send(receiver, body, encoding)
    assert result.status == 400, result
    assert says in result.message and result.message.isprintable()
    assert count(cache) == 0 and count(cache, "SELECT count(*) FROM quarantine") == 0
    # and the receiver goes on
    assert (await send(receiver, protobuf_request(3))).status == 200


async def test_an_empty_request_is_a_plain_200(receiver, cache) -> None:
    assert (await send(receiver, b"{}", "json")).status == 200
    assert (await send(receiver, b"", "protobuf")).status == 200
    assert count(cache) == 0


async def test_json_and_protobuf_bodies_store_the_same_rows(tmp_path) -> None:
    from google.protobuf import json_format

    body = protobuf_request(12, model="gpt-4o")
    msg = ExportTraceServiceRequest()
    msg.ParseFromString(body)
    as_json = json_format.MessageToDict(msg)  # ids in base64, as json_format writes bytes
    for rs in as_json["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:  # OTLP/JSON: ids are hex
                for key in ("traceId", "spanId"):
                    import base64

                    sp[key] = base64.b64decode(sp[key]).hex()
    rows = []
    for name, payload, encoding in (("p", body, "protobuf"), ("j", orjson.dumps(as_json), "json")):
        with Cache.open(tmp_path / f"{name}.duckdb") as c:
            r = Receiver(c, Config())
            r.start()
            try:
                assert (await send(r, payload, encoding)).status == 200
            finally:
                r.close()
            rows.append(c.cursor().execute(
                "SELECT trace_id, span_id, provider, request_model, input_tokens, cost_usd,"
                " start_time, duration_ms, kind FROM spans ORDER BY span_id").fetchall())
    assert len(rows[0]) == 12 and rows[0] == rows[1]


def _first_store_fails_disk_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store step's next transaction fails as a full disk makes DuckDB fail; later ones work."""
    from console.cache import ingest_writer

    real_store = ingest_writer.BatchStore.store
    failures = iter([duckdb.IOException("Could not write file: No space left on device")])

    def flaky_store(self: Any, cur: Any, batch: Any) -> Any:
        fault = next(failures, None)
        if fault is not None:
            raise fault
        return real_store(self, cur, batch)

    monkeypatch.setattr(ingest_writer.BatchStore, "store", flaky_store)


async def test_a_failed_write_is_a_503_and_the_writer_reopens_the_cache_by_itself(
        receiver, cache, monkeypatch) -> None:
    _first_store_fails_disk_full(monkeypatch)
    result = await send(receiver, protobuf_request(5))
    assert result.status == 503 and result.retry_after is not None and result.retry_after >= 1
    assert "disk is full" in result.message and str(cache.path) not in result.message
    # until it can write again, every request is refused the same way (never a 200 for
    # spans it did not store): each 200's ids are stored exactly once
    acknowledged: set[str] = set()
    deadline = time.monotonic() + 60
    batch = 0
    while (stats := receiver.stats()).state == "cannot_write":
        assert time.monotonic() < deadline, "the writer never recovered"
        batch += 1
        again = await send(receiver, protobuf_request(5, first=100 * batch))
        assert again.status in (503, 200)
        if again.status == 200:
            acknowledged |= {f"{i:016x}" for i in range(100 * batch + 1, 100 * batch + 6)}
            break
        assert "no space left on the device" in stats.reason
        await asyncio.sleep(0.05)
    retry = await send(receiver, protobuf_request(5))
    assert retry.status == 200
    acknowledged |= {f"{i:016x}" for i in range(1, 6)}
    assert receiver.cache is not cache, "the failed connection was abandoned, the file reopened"
    stored = receiver.cache.cursor().execute("SELECT span_id FROM spans").fetchall()
    assert sorted(span_id for (span_id,) in stored) == sorted(acknowledged)
    assert receiver.stats().state == "ok"
    receiver.close()
    receiver.cache.close()


@pytest.mark.parametrize("then", ["finish", "abandon"])
async def test_close_refuses_what_it_cannot_finish_and_stops_its_threads(
        tmp_path, gate, monkeypatch, then) -> None:
    """close() past its timeout: what is queued (pending, in the inbox, being mapped) gets a 503
    and is never stored; the group the writer holds is then committed (200, stored) or, when the
    caller abandons the connection as `llmdeck receive` does while a thread runs, refused (503,
    nothing stored)."""
    from console import receiver as module

    cache = Cache.open(tmp_path / "c.duckdb")
    receiver = Receiver(cache, Config(), write_lock=gate)
    receiver.start()
    gate.open.clear()
    held = asyncio.ensure_future(send(receiver, protobuf_request(5, first=0)))
    await _until(lambda: receiver.stats().queue_spans == 5, "the writer holds it at the gate")
    pending = asyncio.ensure_future(send(receiver, protobuf_request(7, first=100)))
    await _until(lambda: receiver.stats().queue_spans == 12, "pending behind it")
    mapping, release = threading.Event(), threading.Event()
    original = module.map_request

    def slow_map(*args: Any, **kwargs: Any) -> Any:
        mapping.set()
        release.wait(60)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "map_request", slow_map)
    being_mapped = asyncio.ensure_future(send(receiver, protobuf_request(9, first=200)))
    await _until(mapping.is_set, "the mapping thread holds the third")
    in_inbox = asyncio.ensure_future(send(receiver, protobuf_request(11, first=300)))
    await _until(lambda: receiver._inbox_bytes > 0, "the fourth waits in the inbox")

    closer = threading.Thread(target=receiver.close, kwargs={"timeout": 0.3})
    closer.start()
    await _until(lambda: not closer.is_alive(), "close() returned")
    assert receiver.running, "the writer is still held at the gate"
    for refused in (pending, in_inbox):
        result = refused.result()  # answered by close() itself
        assert result.status == 503 and result.retry_after and "shutting down" in result.message
    release.set()
    result = await asyncio.wait_for(being_mapped, 60)
    assert result.status == 503 and "shutting down" in result.message
    assert not held.done()
    if then == "abandon":
        receiver.cache.abandon()
    gate.open.set()
    result = await asyncio.wait_for(held, 60)
    await _until(lambda: not receiver.running, "no thread left")
    assert result.status == (200 if then == "finish" else 503)
    if then == "finish":
        receiver.cache.close()
    with Cache.open(tmp_path / "c.duckdb", read_only=True) as reopened:
        ids = reopened.cursor().execute("SELECT span_id FROM spans ORDER BY 1").fetchall()
    expected = [(f"{i:016x}",) for i in range(1, 6)] if then == "finish" else []
    assert ids == expected
    late = await send(receiver, protobuf_request(1, first=9_999))
    assert late.status == 503 and late.retry_after


async def test_a_retry_queued_beside_its_first_try_is_stored_once(receiver, cache, gate) -> None:
    gate.open.clear()
    held = asyncio.ensure_future(send(receiver, protobuf_request(5, first=500)))
    while receiver.stats().queue_spans < 5:  # the writer holds it, blocked at the gate
        await asyncio.sleep(0.01)
    body = protobuf_request(50)
    first = asyncio.ensure_future(send(receiver, body))
    retry = asyncio.ensure_future(send(receiver, body))
    other = asyncio.ensure_future(send(receiver, protobuf_request(7, first=900)))
    while receiver.stats().queue_spans < 112:  # all three queued for the next commit
        await asyncio.sleep(0.01)
    gate.open.set()
    results = await asyncio.gather(held, first, retry, other)
    assert [r.status for r in results] == [200, 200, 200, 200]
    assert count(cache) == 62
    assert count(cache, "SELECT count(DISTINCT (trace_id, span_id)) FROM spans") == 62
    assert count(cache, "SELECT sum(requests) FROM rollup_minute") == 62
    assert receiver.stats().duplicates == 50


async def test_the_writer_applies_the_configured_retention(cache, make_config, monkeypatch) -> None:
    from console import receiver_writer as module

    monkeypatch.setattr(module, "RETENTION_SECONDS", 0.0)
    monkeypatch.setattr(module, "RETENTION_FIRST_SECONDS", 0.0)
    config = make_config(cache={"retention_days": 1})
    r = Receiver(cache, config)
    r.start()
    try:
        old = protobuf_request(10, start_ns=time.time_ns() - 3 * 86_400 * 10**9)
        assert (await send(r, old)).status == 200  # stored, then pruned as too old
        assert (await send(r, protobuf_request(4, first=100))).status == 200
        deadline = time.monotonic() + 30
        while count(cache, "SELECT count(*) FROM spans WHERE span_id <= '000000000000000a'"):
            assert time.monotonic() < deadline, "retention never ran"
            await asyncio.sleep(0.05)
        assert count(cache) == 4
    finally:
        r.close()


TOKEN = "rcv-7f3a9c2e5b1d4e8f"


async def test_the_receivers_token_sent_inside_spans_is_never_stored(cache) -> None:
    r = Receiver(cache, Config(), secrets=(TOKEN,))
    r.start()
    try:
        req = ExportTraceServiceRequest()
        req.ParseFromString(protobuf_request(3))
        rs = req.resource_spans[0]
        rs.resource.attributes[0].value.string_value = f"svc-{TOKEN}"
        span = rs.scope_spans[0].spans[0]
        span.name = f"POST /v1/traces Bearer {TOKEN}"
        attr = span.attributes.add()
        attr.key, attr.value.string_value = "http.request.header.authorization", TOKEN
        assert (await send(r, req.SerializeToString())).status == 200
        bad = await send(r, json_request([json_span(9, traceId=TOKEN), json_span(10, name=TOKEN)]),
                         "json")
        assert bad.status == 200 and bad.rejected_spans == 1
        assert TOKEN not in bad.message
    finally:
        r.close()
    cur = cache.cursor()
    stored = " ".join(str(row) for table in ("spans", "quarantine")
                      for row in cur.execute(f"SELECT * FROM {table}").fetchall())
    assert TOKEN not in stored
    assert count(cache) == 4 and "[SECRET]" in stored
    assert count(cache, "SELECT count(*) FROM spans WHERE service = 'svc-[SECRET]'") == 3


@pytest.mark.parametrize("map_workers", [0, 1])
async def test_a_request_over_the_span_limit_is_a_413_naming_it_counted_before_mapping(
        cache, monkeypatch, map_workers) -> None:
    from console import receiver as module

    receiver = Receiver(cache, Config(), queue_spans=100, map_workers=map_workers)
    receiver.start()
    try:
        too_big = await send(receiver, protobuf_request(101))
        assert too_big.status == 413 and too_big.retry_after is None
        assert "101 spans" in too_big.message and "at most 100 spans per request" in too_big.message
        as_json = await send(receiver, json_request([json_span(i + 1) for i in range(150)]), "json")
        assert as_json.status == 413 and "150 spans" in as_json.message
        assert receiver._builder.spans_read == 0, "nothing was mapped"
        assert count(cache) == 0 and receiver.stats().queue_spans == 0
        assert (await send(receiver, protobuf_request(100))).status == 200  # at the limit: taken
        monkeypatch.setattr(module, "MAX_REQUEST_SPANS", 40)  # the cap below a large queue
        capped = await send(receiver, protobuf_request(41, first=1000))
        assert capped.status == 413 and "at most 40 spans" in capped.message
        assert count(cache) == 100
    finally:
        receiver.close()


def test_llmdeck_receive_reads_its_token_as_the_console_does_stripped_and_header_safe(
        monkeypatch) -> None:
    import io

    from console.receive_cli import _token

    config = Config.model_validate({"receiver": {"token": "env:R2B_RECEIVER_TOKEN"}})
    monkeypatch.setenv("R2B_RECEIVER_TOKEN", "tok-abc123 \n")  # as `echo tok > file` leaves it
    err = io.StringIO()
    assert _token(config, "0.0.0.0", 4318, err) == (True, "tok-abc123")
    monkeypatch.setenv("R2B_RECEIVER_TOKEN", "tok\nabc123")  # no exporter could send it
    assert _token(config, "0.0.0.0", 4318, err) == (False, None)
    said = err.getvalue()
    assert "[receiver] token" in said and "R2B_RECEIVER_TOKEN" in said and "abc123" not in said


async def _until(condition: Any, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.02)


async def test_a_failing_on_reopen_or_on_fault_does_not_kill_the_writer(cache, monkeypatch) -> None:
    from console import receiver_writer as module

    monkeypatch.setattr(module, "PROBE_MAX_SECONDS", 0.1)
    reopen_failures = iter([RuntimeError("SET threads failed")])
    reopened: list[Cache] = []

    def on_reopen(new: Cache) -> None:
        reopened.append(new)
        fault = next(reopen_failures, None)
        if fault is not None:
            raise fault

    def on_fault(reason: str | None) -> None:
        raise RuntimeError("the fault line could not be printed")

    _first_store_fails_disk_full(monkeypatch)
    receiver = Receiver(cache, Config(), on_reopen=on_reopen, on_fault=on_fault)
    receiver.start()
    try:
        assert (await send(receiver, protobuf_request(5))).status == 503
        await _until(lambda: len(reopened) >= 2 and receiver.stats().state == "ok", "recovered")
        assert receiver.cache is reopened[1], "the connection on_reopen failed on is not used"
        assert (await send(receiver, protobuf_request(5, first=100))).status == 200
        assert count(receiver.cache) == 5
    finally:
        receiver.close()
        receiver.cache.close()


async def test_a_writer_that_dies_answers_503_to_what_it_holds_and_everything_after_and_says_why(
        cache, gate, monkeypatch) -> None:
    from console import receiver_writer as module

    def broken(*args: Any) -> None:
        raise RuntimeError("a bug in the store step")

    receiver = Receiver(cache, Config(), write_lock=gate)
    receiver.start()
    try:
        gate.open.clear()
        held = asyncio.ensure_future(send(receiver, protobuf_request(5)))
        await _until(lambda: receiver.stats().queue_spans == 5, "the writer holds it")
        queued = asyncio.ensure_future(send(receiver, protobuf_request(7, first=100)))
        await _until(lambda: receiver.stats().queue_spans == 12, "queued behind it")
        monkeypatch.setattr(receiver, "_commit", broken)  # the next group meets the bug...
        monkeypatch.setattr(module, "classify", broken)  # ...and so does its fault handling
        gate.open.set()
        first, second = await asyncio.wait_for(asyncio.gather(held, queued), 60)
        assert (first.status, second.status) == (200, 503)  # committed before it; never answered
        late = await send(receiver, protobuf_request(3, first=200))
        assert late.status == 503 and late.retry_after and late.retry_after >= 1
        stats = receiver.stats()
        assert stats.state == "cannot_write"
        assert stats.reason == "the receiver's writer stopped: RuntimeError: a bug in the store step"
        assert count(cache) == 5
    finally:
        gate.open.set()
        receiver.close()


async def test_a_request_whose_mapping_fails_leaves_nothing_for_the_next_one(
        receiver, cache, monkeypatch) -> None:
    from console.cache import otlp_proto as module

    real = module.add_export_request
    calls: list[int] = []

    def fails_once_after_adding(builder: Any, message: Any, name: str, line: int) -> None:
        real(builder, message, name, line)
        calls.append(line)
        if len(calls) == 1:
            raise RuntimeError("a bug past the per-span catches")

    monkeypatch.setattr(module, "add_export_request", fails_once_after_adding)
    failed = await send(receiver, protobuf_request(5))
    assert failed.status == 500 and "cannot map the request" in failed.message
    assert (await send(receiver, protobuf_request(3, first=100))).status == 200
    stored = cache.cursor().execute("SELECT span_id FROM spans ORDER BY 1").fetchall()
    assert stored == [(f"{i:016x}",) for i in range(101, 104)], "the failed request's spans rode along"


async def test_the_fault_kind_comes_from_the_classified_error_not_its_wording(
        receiver, cache, monkeypatch) -> None:
    from console import receiver_writer as module
    from console.cache import ingest_writer
    from console.cache.faults import CacheFullError

    def full(self: Any, cur: Any, batch: Any) -> Any:
        raise duckdb.IOException("Could not write file: quota")

    monkeypatch.setattr(ingest_writer.BatchStore, "store", full)
    monkeypatch.setattr(module, "classify", lambda exc, path: CacheFullError("the quota is used up"))
    monkeypatch.setattr(module, "_has_room", lambda path: False)  # it stays unable to write
    result = await send(receiver, protobuf_request(5))
    assert result.status == 503 and "its disk is full" in result.message
    assert isinstance(receiver.fault, CacheFullError)
    again = await send(receiver, protobuf_request(5, first=100))
    assert again.status == 503 and "its disk is full" in again.message
