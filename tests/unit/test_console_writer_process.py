"""`llmdeck --config C --cache F` as a writer, in a real process on a pseudo-terminal.

With billing sources and `[receiver] listen` in the config, the console opens its cache
read-write, listens (the real SDK exporter's spans are stored), polls the billing API (the
loopback replay), shows both on the sources screen, and on `q` exits 0 with no process left,
the cache closed with the spans and the billing rows in it. Started while another process reads
the cache, it runs read-only and the billing and receiver lines say why they are idle.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import duckdb
import httpx
import pytest

from console.cache.store import Cache
from console.timeutil import utc_now
from tests.faults.billing_server import BillingServer
from tests.reliability.faultkit import DEADLINE, LLMDECK, PtyProcess, alive, kill_tree, process_tree

KEY = "sk-admin-canary-process-7a8b9c0d1e2f"
ENV = "LLMDECK_T_PROCESS_OPENAI_ADMIN"
TODAY = utc_now().date()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server() -> Iterator[BillingServer]:
    with BillingServer(start=TODAY - timedelta(days=4), days=5, page_days=3, today=TODAY) as srv:
        yield srv


def setup(tmp_path: Path, server: BillingServer) -> tuple[Path, Path, int]:
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[receiver]\nlisten = "127.0.0.1:{port}"\n'
        f'[[sources.openai_billing]]\nname = "oa"\nadmin_key_ref = "env:{ENV}"\nurl = "{server.url}"\n'
        'timeout_seconds = 2\nsince_days = 5\n')
    cache = tmp_path / "cache.duckdb"
    Cache.open(cache).close()
    return config, cache, port


def start(config: Path, cache: Path) -> PtyProcess:
    return PtyProcess(*LLMDECK[1:], "--config", str(config), "--cache", str(cache),
                      env={ENV: KEY, "NO_COLOR": "1"})


def wait_listening(port: int, console: PtyProcess) -> None:
    end = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert console.poll() is None, bytes(console.output)[-2000:]
            assert time.monotonic() < end, "the console's receiver never listened"
            time.sleep(0.1)


def select(console: PtyProcess, line: bytes) -> None:
    """Move the sources table's cursor down until the line under it (the selected source's
    whole status) matches `line`."""
    for _ in range(6):
        end = time.monotonic() + 3
        while time.monotonic() < end:
            if re.search(line, bytes(console.output)):
                return
            assert console.poll() is None, bytes(console.output)[-2000:]
            time.sleep(0.1)
        os.write(console.fd, b"\x1b[B")  # Down
    console.wait_for(line, deadline=DEADLINE)


def test_the_console_receives_polls_billing_and_exits_with_nothing_left(
        tmp_path: Path, server: BillingServer) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    from tests.unit.test_console_writer import _sdk_spans

    config, cache, port = setup(tmp_path, server)
    console = start(config, cache)
    try:
        wait_listening(port, console)
        exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces", timeout=30)
        try:
            assert exporter.export(_sdk_spans(7)) is SpanExportResult.SUCCESS
        finally:
            exporter.shutdown()  # type: ignore[no-untyped-call]
        # the cache is this console's now: another process cannot open it
        held = subprocess.run([*LLMDECK, "--cache", str(cache), "status"], capture_output=True,
                              text=True, timeout=120)
        assert held.returncode != 0 and f"(PID {console.pid})" in held.stderr, held.stderr
        os.write(console.fd, b"5")  # the sources screen
        console.wait_for(rb"otlp receiver")
        console.wait_for(rb"(?<!not )synced [0-9]", deadline=60)  # the first billing sync (5 s in)
        select(console, rb"otlp receiver \xe2\x97\x8f live \xc2\xb7 127\.0\.0\.1:%d: 1 requests,"
                        rb" 7 spans stored" % port)
        tree = process_tree(console.pid, console.tree)
        os.write(console.fd, b"q")
        assert console.wait() == 0, bytes(console.output)[-2000:]
        left = {pid for pid in alive(tree)}
        assert not left, f"processes of the console outlived it: {left}"
    finally:
        kill_tree(console.tree)
        console.kill()
    with duckdb.connect(str(cache), read_only=True) as con:  # closed: anyone may open it
        assert con.execute("SELECT count(*), min(provider) FROM spans").fetchall() == [(7, "openai")]
        assert con.execute("SELECT source FROM billing_syncs").fetchall() == [("oa",)]
    assert not Path(f"{cache}.wal").exists()  # checkpointed on the way out
    with pytest.raises(OSError):  # nothing listens any more
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert KEY.encode() not in console.output


def test_started_while_another_process_reads_the_cache_it_runs_read_only_and_says_why(
        tmp_path: Path, server: BillingServer) -> None:
    config, cache, port = setup(tmp_path, server)
    code = ("import duckdb, sys\n"
            f"c = duckdb.connect({str(cache)!r}, read_only=True)\n"
            "print('ready', flush=True)\nsys.stdin.read()\n")
    reader = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    console: PtyProcess | None = None
    try:
        assert reader.stdout is not None and reader.stdout.readline() == "ready\n"
        console = start(config, cache)
        os.write(console.fd, b"5")
        console.wait_for(rb"otlp receiver", deadline=DEADLINE * 3)
        select(console, rb"oa \xe2\x9c\x96 down \xc2\xb7 not polling: the cache is open read-only here")
        select(console, rb"otlp receiver \xe2\x9c\x96 down since [0-9:]+Z \xc2\xb7 127\.0\.0\.1:%d: not"
                        rb" listening: the" % port)
        with pytest.raises(OSError):  # read-only here: the receiver does not listen
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        with pytest.raises(httpx.ConnectError):
            httpx.post(f"http://127.0.0.1:{port}/v1/traces", content=b"", timeout=2)
        os.write(console.fd, b"q")
        assert console.wait() == 0, bytes(console.output)[-2000:]
    finally:
        if console is not None:
            console.kill()
        assert reader.stdin is not None
        reader.stdin.close()
        reader.wait(timeout=30)
    assert server.requests == []  # nothing polled
