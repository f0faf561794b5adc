"""The receiver with its decoding and mapping in worker processes (`console.receiver_pool.MapPool`).

What the workers map must be stored exactly as the receiver's own mapping thread stores it (the
same `map_request` with a `BatchBuilder` from the same configuration); bad bodies get the same
answers; the workers end with `close`, and a worker that dies is replaced.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from connectors.otlp_http import ExportRequest, ExportResult
from console.cache.store import Cache
from console.config import Config, RedactionRule, RedactionSettings
from console.receiver import Receiver
from console.receiver_pool import MapPool
from tests.unit.test_otlp_proto_columns import cases
from tests.unit.test_receiver import PEER, json_request, json_span, protobuf_request


def config() -> Config:  # a user rule: the workers must get the configuration, not the defaults
    return Config(redaction=RedactionSettings(rules=[RedactionRule(name="fruit", pattern="banana")]))


def bodies() -> list[tuple[bytes, str]]:
    return [
        *((body, "protobuf") for body in cases().values()),
        (protobuf_request(30, model="banana-model"), "protobuf"),
        (json_request([json_span(1), json_span(2, name="a banana"), json_span(3, startTimeUnixNano="0")]),
         "json"),
        (b"\x0a\xff\xff", "protobuf"),
        (b"{not json", "json"),
    ]


Run = tuple[list[ExportResult], list[Any], list[Any], list[int]]


async def run(tmp_path: Path, workers: int, sent: list[tuple[bytes, str]]) -> Run:
    cache = Cache.open(tmp_path / f"w{workers}.duckdb")
    receiver = Receiver(cache, config(), map_workers=workers)
    receiver.start()
    try:
        results = [await receiver.handle(ExportRequest(body, encoding, PEER))  # type: ignore[arg-type]
                   for body, encoding in sent]
        pids = receiver._pool.pids() if receiver._pool is not None else []
    finally:
        receiver.close()
    cur = cache.cursor()
    spans = cur.execute("SELECT * EXCLUDE (source) FROM spans ORDER BY trace_id, span_id").fetchall()
    quarantine = cur.execute("SELECT line, reason FROM quarantine ORDER BY ALL").fetchall()
    cache.close()
    return results, spans, quarantine, pids


def gone(pids: list[int], timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            alive.append(pid)
        if not alive:
            return True
        time.sleep(0.05)
    return False


async def test_workers_store_what_the_mapping_thread_stores_and_end_with_close(tmp_path: Path) -> None:
    sent = bodies()
    in_thread = await run(tmp_path, 0, sent)
    in_workers = await run(tmp_path, 1, sent)
    assert [r.status for r in in_thread[0]] == [200] * 7 + [400, 400]
    assert in_workers[0] == in_thread[0]  # answers: partial successes and 400s word for word
    assert in_workers[1] == in_thread[1] and len(in_thread[1]) > 80  # every stored column
    assert in_workers[2] == in_thread[2] and in_thread[2]
    assert "banana" not in repr(in_thread[1])  # the user rule ran in the worker too
    assert in_workers[3] and gone(in_workers[3])


async def test_the_writer_waits_for_requests_being_mapped_to_join_its_commit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A group commit: a request mapped while another is still being mapped is not committed
    alone (its answer waits for the other's spans to join the transaction); then one commit."""
    import console.receiver as receiver_module
    import console.receiver_writer as writer_module

    monkeypatch.setattr(writer_module, "GROUP_WAIT", 600.0)  # only the order is asserted
    both_taken, release = threading.Event(), threading.Event()
    original = receiver_module.map_request

    def held(builder: Any, req: ExportRequest, seq: int, **kwargs: Any) -> Any:
        (both_taken if seq == 1 else release).wait()
        return original(builder, req, seq, **kwargs)

    monkeypatch.setattr(receiver_module, "map_request", held)
    cache = Cache.open(tmp_path / "c.duckdb")
    commits: list[int] = []

    @contextmanager
    def write_lock() -> Iterator[None]:
        commits.append(1)
        yield

    receiver = Receiver(cache, Config(), write_lock=write_lock)
    receiver.start()
    extra = threading.Thread(target=receiver._map_loop, daemon=True)  # a second mapping thread
    receiver._threads.insert(0, extra)
    extra.start()
    try:
        first, second = (asyncio.ensure_future(receiver.handle(ExportRequest(
            protobuf_request(n, first=100 * n), "protobuf", PEER))) for n in (5, 7))
        while receiver._mapping < 2:  # both taken from the inbox, both held
            await asyncio.sleep(0.01)
        both_taken.set()  # the first is mapped; the second still held
        while receiver.stats().queue_spans < 5 and not first.done():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        assert not first.done() and not commits, "committed alone while another was being mapped"
        release.set()
        assert [r.status for r in await asyncio.gather(first, second)] == [200, 200]
        assert len(commits) == 1
        assert cache.cursor().execute("SELECT count(*) FROM spans").fetchall()[0][0] == 12
    finally:
        both_taken.set()
        release.set()
        receiver.close()
        cache.close()


def test_a_worker_that_dies_is_replaced(tmp_path: Path) -> None:
    pool = MapPool(config(), 1)
    pool.start()
    try:
        body = protobuf_request(5)
        first = pool.map(body, "otlp-http 127.0.0.1", 1)
        assert first is not None and first[2] == 5
        [pid] = pool.pids()
        os.kill(pid, signal.SIGKILL)
        assert gone([pid])
        again = pool.map(body, "otlp-http 127.0.0.1", 1)
        assert again is not None and again[0] is not None
        assert again[0].equals(first[0])
        assert pool.pids() and pool.pids() != [pid]
    finally:
        pids = pool.pids()
        pool.close()
    assert gone(pids)


def _children(pid: int) -> set[int]:
    found = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.add(int(name))
            except (OSError, ValueError, IndexError):
                continue
    return found


def test_a_worker_is_the_only_process_started_and_loads_no_duckdb() -> None:
    """The memory the receiver's tree costs: no resource tracker beside the workers, and a
    worker maps without DuckDB's library (~20 MB) in its address space."""
    before = _children(os.getpid())
    pool = MapPool(config(), 1)
    pool.start()
    try:
        mapped = pool.map(protobuf_request(3), "otlp-http 127.0.0.1", 1)
        assert mapped is not None and mapped[2] == 3
        assert pool.map(b"\x0a\xff\xff", "otlp-http 127.0.0.1", 2) is None  # the receiver's 400
        [pid] = pool.pids()
        assert _children(os.getpid()) - before == {pid}
        with open(f"/proc/{pid}/maps") as f:
            libraries = {line.split()[-1] for line in f if line.rstrip().endswith(".so") or ".so." in line}
        assert any("libarrow" in lib for lib in libraries)  # it maps into Arrow tables
        assert not [lib for lib in libraries if "duckdb" in lib.lower()]
    finally:
        pids = pool.pids()
        pool.close()
    assert gone(pids)
