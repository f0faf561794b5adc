"""`llmdeck receive` under faults: kill -9 while the SDK exporter retries, a full disk, a corrupt
cache, SIGTERM. The receiver is the real command in its own process; the client is the real
OpenTelemetry SDK exporter (which retries connection errors and 503s, honouring Retry-After).

- kill -9 a few times mid-traffic, restarting on the same port: every span the exporter was told
  was exported (SUCCESS) is stored, none twice, rollups agree, and no process is left behind.
- a full disk (a real small tmpfs, filled by a file): 503 with Retry-After, never a 200 for spans
  not stored; once the file is removed the receiver writes again by itself (no restart).
- a corrupt cache: refuses to start with the same one line and exit code as `llmdeck status`.
- SIGTERM: exit 128 + 15 with one summary line, the cache checkpointed whole, no process left.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.integration.test_receiver_sdk import genai_spans, span_ids
from tests.reliability.faultkit import (
    DEADLINE,
    LLMDECK,
    check_cache,
    cli,
    kill_tree,
    process_tree,
    readline,
    sha,
    spawn,
    tmpfs,
    wait_gone,
    write_traffic,
)

KILLS = 3
BATCHES = 24
LISTENING = re.compile(r"llmdeck: receiving OTLP/HTTP traces on (http://127\.0\.0\.1:\d+)/v1/traces;"
                       r" OTEL_EXPORTER_OTLP_ENDPOINT=\1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ReceiverProcess:
    """`llmdeck receive` on a fixed loopback port, in its own session; every process it ran is
    remembered so that none can be left behind unnoticed."""

    def __init__(self, cache: Path, port: int) -> None:
        self.cache, self.port = cache, port
        self.seen: dict[int, int] = {}
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> str:
        self.proc = spawn("--cache", self.cache, "receive", "--listen", f"127.0.0.1:{self.port}")
        process_tree(self.proc.pid, self.seen)
        assert self.proc.stdout is not None
        line = readline(self.proc.stdout)
        assert LISTENING.fullmatch(line.strip()), line
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def kill9(self) -> None:
        """SIGKILL the receiver's own process only, as `kill -9 PID` does: its mapping workers
        must go by themselves (they watch their parent)."""
        assert self.proc is not None
        tree = process_tree(self.proc.pid, self.seen)
        self.proc.kill()
        self.proc.wait(DEADLINE)
        left = wait_gone(tree)
        assert left == {}, f"left behind by a kill -9 of the receiver: {left}"
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()
        self.proc.stderr.close()

    def terminate(self) -> tuple[int, str]:
        assert self.proc is not None
        process_tree(self.proc.pid, self.seen)
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, err

    def cleanup(self) -> None:
        if self.proc is not None:
            kill_tree(process_tree(self.proc.pid, self.seen), deadline=5)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[ReceiverProcess]:
    r = ReceiverProcess(tmp_path / "cache.duckdb", free_port())
    yield r
    r.cleanup()


def stored_ids(cache: Path) -> set[tuple[str, str]]:
    from console.cache.store import Cache

    with Cache.open(cache, read_only=True) as c:
        return {(t, s) for t, s in c.cursor().execute("SELECT trace_id, span_id FROM spans").fetchall()}


class Exporting(threading.Thread):
    """Exports `batches` with the SDK exporter, each until it reports SUCCESS; records what was."""

    def __init__(self, url: str, batches: list[list[ReadableSpan]]) -> None:
        super().__init__(daemon=True)
        self.exporter = OTLPSpanExporter(endpoint=url, timeout=30)
        self.batches = batches
        self.acked: set[tuple[str, str]] = set()
        self.acked_batches = 0
        self.failures = 0
        self.stop = threading.Event()
        self.changed = threading.Condition()

    def run(self) -> None:
        for batch in self.batches:
            while not self.stop.is_set():
                if self.exporter.export(batch) is SpanExportResult.SUCCESS:
                    with self.changed:
                        self.acked |= span_ids(batch)
                        self.acked_batches += 1
                        self.changed.notify_all()
                    break
                self.failures += 1  # retries ran out (the receiver was down): send it again
        self.exporter.shutdown()

    def wait_for(self, batches: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.acked_batches >= batches or not self.is_alive(),
                                         timeout=120), f"only {self.acked_batches} batches exported"


def test_kill_9_mid_traffic_loses_no_acknowledged_span_and_stores_none_twice(receiver) -> None:
    spans = genai_spans(BATCHES * 50)  # 2 spans a turn: batches of 100
    batches = [spans[i:i + 100] for i in range(0, len(spans), 100)]
    url = receiver.start()
    client = Exporting(url, batches)
    client.start()
    try:
        for kill in range(KILLS):
            client.wait_for(2 + kill * 6)  # some acknowledged since the last restart
            receiver.kill9()
            receiver.start()
        client.wait_for(len(batches))
        client.join(DEADLINE)
        assert not client.is_alive()
    finally:
        client.stop.set()
    code, err = receiver.terminate()
    assert code == 128 + signal.SIGTERM, err
    assert wait_gone(receiver.seen) == {}, "a receiver process was left behind"

    stored = check_cache(receiver.cache, closed=True)  # each span once, rollups = spans
    ids = stored_ids(receiver.cache)
    assert client.acked == span_ids(spans), "every batch was exported in the end"
    assert client.acked <= ids, f"{len(client.acked - ids)} acknowledged spans lost"
    assert stored.spans == len(ids) == len(spans)


def _fill(directory: Path) -> Path:
    """A file that takes every free byte of the file system holding `directory`."""
    filler = directory / "filler"
    chunk = b"\0" * (1 << 20)
    with filler.open("wb", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1):
            while True:
                try:
                    f.write(chunk[:size])
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    return filler


def test_a_full_disk_is_503_with_retry_after_never_200_and_recovers_by_itself(tmp_path) -> None:
    with tmpfs(tmp_path / "disk", "24m") as mount:
        r = ReceiverProcess(mount / "cache.duckdb", free_port())
        try:
            url = r.start()
            turns = genai_spans(20 * 100)
            batches = [turns[i:i + 200] for i in range(0, len(turns), 200)]
            acked: set[tuple[str, str]] = set()
            proto = {"Content-Type": "application/x-protobuf"}
            with httpx.Client(timeout=60) as client:

                def post(batch: list[ReadableSpan]) -> httpx.Response:
                    response = client.post(url, content=encode_spans(batch).SerializeToString(),
                                           headers=proto)
                    assert response.status_code in (200, 503), response
                    if response.status_code == 200:
                        acked.update(span_ids(batch))
                    else:
                        assert int(response.headers["retry-after"]) >= 1
                    return response

                assert post(batches[0]).status_code == 200
                filler = _fill(mount)
                refused = None
                for batch in batches[1:]:
                    if post(batch).status_code == 503:
                        refused = batch
                        break
                assert refused is not None, "the full disk never refused a request"
                # while it cannot write, every request is refused
                for batch in batches[-3:]:
                    assert post(batch).status_code == 503
                filler.unlink()
                deadline = time.monotonic() + 120
                while post(refused).status_code != 200:  # recovers without a restart
                    assert time.monotonic() < deadline, "the receiver did not recover"
                    time.sleep(0.5)
                for batch in batches[-3:]:
                    assert post(batch).status_code == 200
            code, err = r.terminate()
            assert code == 128 + signal.SIGTERM, err
            assert "llmdeck: receive: cannot write the cache: no space left on the device" in err
            assert "llmdeck: receive: the cache can be written again; receiving" in err
            assert "Traceback" not in err
            assert wait_gone(r.seen) == {}
            check_cache(r.cache)
            ids = stored_ids(r.cache)
            assert acked <= ids, f"{len(acked - ids)} acknowledged spans were not stored"
            assert span_ids(refused) <= ids
        finally:
            r.cleanup()


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("healthy")
    traffic = write_traffic(base / "t.jsonl", 3_000, seed=5)
    cache = base / "c.duckdb"
    result = cli("--cache", cache, "ingest", traffic.path)
    assert result.returncode == 0, result.stderr
    return cache


@pytest.mark.parametrize("damage", ["header-zeroed", "cut-short"])
def test_a_corrupt_cache_refuses_to_start_with_the_standard_line(healthy, tmp_path, damage) -> None:
    data = healthy.read_bytes()
    cache = tmp_path / "c.duckdb"
    cache.write_bytes(bytes(4096) + data[4096:] if damage == "header-zeroed" else data[: len(data) // 2])
    before = sha(cache)
    status = cli("--cache", cache, "status")
    result = cli("--cache", cache, "receive", "--listen", f"127.0.0.1:{free_port()}", timeout=60)
    assert result.returncode == status.returncode == 3, result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == status.stderr.splitlines()
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"llmdeck: {cache} is corrupt: ")
    assert sha(cache) == before


def test_sigterm_mid_traffic_stops_cleanly_with_a_summary_and_leaves_no_process(receiver) -> None:
    spans = genai_spans(20 * 50)
    batches = [spans[i:i + 100] for i in range(0, len(spans), 100)]
    client = Exporting(receiver.start(), batches)
    client.start()
    try:
        client.wait_for(3)
        code, err = receiver.terminate()
    finally:
        client.stop.set()
    client.join(60)
    assert code == 128 + signal.SIGTERM
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert re.fullmatch(r"llmdeck: receive stopped by SIGTERM: [\d,]+ requests?, [\d,]+ spans stored,"
                        r" [\d,]+ duplicates, 0 rejected", lines[0]), lines[0]
    assert wait_gone(receiver.seen) == {}
    stored = check_cache(receiver.cache, closed=True)
    ids = stored_ids(receiver.cache)
    assert client.acked <= ids and stored.spans == len(ids) >= 300


def test_a_second_receiver_on_the_same_cache_says_who_holds_it(receiver, tmp_path) -> None:
    receiver.start()
    other = cli("--cache", receiver.cache, "receive", "--listen", f"127.0.0.1:{free_port()}",
                timeout=60)
    assert other.returncode == 3 and other.stdout == ""
    line = other.stderr.strip()
    assert line.startswith(f"llmdeck: {receiver.cache} is in use by ") and "\n" not in line
    assert f"(PID {receiver.proc.pid})" in line  # type: ignore[union-attr]


def test_a_port_in_use_is_one_line_and_exit_1(tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = cli("--cache", tmp_path / "c.duckdb", "receive", "--listen", f"127.0.0.1:{port}",
                     timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == (f"llmdeck: receive: cannot listen on 127.0.0.1:{port}:"
                                     " Address already in use")


def test_a_non_loopback_address_needs_a_token(tmp_path) -> None:
    result = cli("--cache", tmp_path / "c.duckdb", "receive", "--listen", "0.0.0.0:0", timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert "refusing to listen on 0.0.0.0:0, which is not loopback, without a bearer token" in result.stderr
    assert not (tmp_path / "c.duckdb").exists(), "it refused before touching the cache"


def test_the_token_is_required_and_never_printed(tmp_path) -> None:
    secret = "rcv-" + os.urandom(12).hex()
    config = tmp_path / "config.toml"
    config.write_text('[receiver]\ntoken = "env:LLMDECK_TEST_RECEIVER_TOKEN"\n')
    port = free_port()
    env = {"LLMDECK_TEST_RECEIVER_TOKEN": secret}
    proc = subprocess.Popen(
        [*LLMDECK, "--config", str(config), "--cache", str(tmp_path / "c.duckdb"), "receive",
         "--listen", f"127.0.0.1:{port}"], cwd=Path(__file__).resolve().parents[2], text=True,
        env={**os.environ, **env}, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True)
    seen = process_tree(proc.pid)
    try:
        assert proc.stdout is not None
        line = readline(proc.stdout)
        assert "(bearer token required)" in line and secret not in line
        body = encode_spans(genai_spans(2)).SerializeToString()
        url = f"http://127.0.0.1:{port}/v1/traces"
        proto = {"Content-Type": "application/x-protobuf"}
        with httpx.Client(timeout=30) as client:
            assert client.post(url, content=body, headers=proto).status_code == 401
            wrong = client.post(url, content=body, headers={**proto, "Authorization": "Bearer nope"})
            assert wrong.status_code == 401 and secret not in wrong.text
            ok = client.post(url, content=body, headers={**proto, "Authorization": f"Bearer {secret}"})
            assert ok.status_code == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + signal.SIGTERM
        assert secret not in out + err + line
        assert "4 spans stored" in err
    finally:
        kill_tree(process_tree(proc.pid, seen), deadline=5)


def test_a_disk_the_spans_themselves_fill_is_503_until_it_grows_then_stored_once(tmp_path) -> None:
    """No filler file: the receiver's own WAL and checkpoints fill a small tmpfs (DuckDB may
    invalidate the database when a checkpoint fails); room made by growing the file system,
    the same receiver stores again, without a restart."""
    from tests.reliability.faultkit import remount
    from tests.unit.test_receiver import protobuf_request

    def ids(i: int) -> set[tuple[str, str]]:
        return {(f"{i + 1:032x}", f"{j + 1:016x}") for j in range(500 * i, 500 * i + 500)}

    with tmpfs(tmp_path / "disk", "20m") as mount:
        r = ReceiverProcess(mount / "cache.duckdb", free_port())
        try:
            url = r.start()
            proto = {"Content-Type": "application/x-protobuf"}
            acked: set[tuple[str, str]] = set()
            refused = None
            with httpx.Client(timeout=120) as client:

                def post(i: int) -> int:
                    body = protobuf_request(500, first=500 * i, trace=i + 1)
                    response = client.post(url, content=body, headers=proto)
                    assert response.status_code in (200, 503), response
                    if response.status_code == 200:
                        acked.update(ids(i))
                    else:
                        assert int(response.headers["retry-after"]) >= 1
                    return response.status_code

                for i in range(2_000):
                    if post(i) == 503:
                        refused = i
                        break
                assert refused is not None and refused > 0, "the disk never filled"
                assert post(refused + 1) == 503  # still full: refused, not acknowledged
                remount(mount, "size=256m")
                deadline = time.monotonic() + 120
                while post(refused) != 200:
                    assert time.monotonic() < deadline, "the receiver did not recover"
                    time.sleep(0.5)
                for i in range(refused + 1, refused + 4):
                    assert post(i) == 200
            code, err = r.terminate()
            assert code == 128 + signal.SIGTERM, err
            assert "the cache can be written again; receiving" in err and "Traceback" not in err
            assert wait_gone(r.seen) == {}
            stored = check_cache(r.cache)  # whole: each span once, rollups = spans
            have = stored_ids(r.cache)
            assert acked <= have, f"{len(acked - have)} acknowledged spans were not stored"
            assert stored.spans == len(have) == 500 * (refused + 4)
        finally:
            r.cleanup()


def test_in_process_a_full_disk_at_a_checkpoint_recovers_with_nothing_lost(tmp_path) -> None:
    """The Receiver on its own (DuckDB's default 16 MB checkpoint threshold, as inside the
    console): 22 MB fills while DuckDB folds the WAL into the file, a failed checkpoint that
    invalidates the database (every later statement fails; `llmdeck receive`'s 64 MB threshold
    meets the full disk at a WAL commit instead, tested above). 503s, then, once the file system
    grows, the writer abandons the connection and reopens the file by itself."""
    import asyncio

    from connectors.otlp_http import ExportRequest
    from console.cache.store import Cache
    from console.config import Config
    from console.receiver import Receiver
    from tests.reliability.faultkit import remount
    from tests.unit.test_receiver import protobuf_request

    def ids(i: int) -> set[tuple[str, str]]:
        return {(f"{i + 1:032x}", f"{j + 1:016x}") for j in range(500 * i, 500 * i + 500)}

    with tmpfs(tmp_path / "disk", "22m") as mount:
        path = mount / "cache.duckdb"
        reasons: list[str | None] = []
        receiver = Receiver(Cache.open(path), Config(), on_fault=reasons.append)
        receiver.start()
        acked: set[tuple[str, str]] = set()

        async def post(i: int) -> int:
            body = protobuf_request(500, first=500 * i, trace=i + 1)
            result = await receiver.handle(ExportRequest(body, "protobuf", "127.0.0.1:9"))
            assert result.status in (200, 503), result
            if result.status == 200:
                acked.update(ids(i))
            else:
                assert result.retry_after is not None and result.retry_after >= 1
            return result.status

        async def run() -> int:
            refused = None
            for i in range(2_000):
                if await post(i) == 503:
                    refused = i
                    break
            assert refused is not None and refused > 0, "the disk never filled"
            assert await post(refused + 1) == 503
            remount(mount, "size=256m")
            deadline = time.monotonic() + 120
            while await post(refused) != 200:
                assert time.monotonic() < deadline, "the receiver did not recover"
                await asyncio.sleep(0.25)
            for i in range(refused + 1, refused + 4):
                assert await post(i) == 200
            return refused

        try:
            refused = asyncio.run(run())
        finally:
            receiver.close()
            receiver.cache.close()
        assert reasons[0] is not None and "no space left on the device" in reasons[0]
        assert "checkpoint" in reasons[0]
        assert reasons[-1] is None  # it said when it could write again
        stored = check_cache(path)
        have = stored_ids(path)
        assert acked <= have, f"{len(acked - have)} acknowledged spans were not stored"
        assert stored.spans == len(have) == 500 * (refused + 4)


def test_a_second_sigterm_exits_at_once_leaving_a_whole_cache_and_no_process(receiver) -> None:
    spans = genai_spans(10 * 50)
    client = Exporting(receiver.start(), [spans[i:i + 100] for i in range(0, len(spans), 100)])
    client.start()
    try:
        client.wait_for(2)
        assert receiver.proc is not None
        process_tree(receiver.proc.pid, receiver.seen)
        receiver.proc.send_signal(signal.SIGTERM)
        receiver.proc.send_signal(signal.SIGTERM)  # impatient: no waiting for the clean stop
        _, err = receiver.proc.communicate(timeout=60)
    finally:
        client.stop.set()
    client.join(60)
    assert receiver.proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert wait_gone(receiver.seen) == {}
    check_cache(receiver.cache)  # committed whole or not at all, each span once
    assert client.acked <= stored_ids(receiver.cache)
