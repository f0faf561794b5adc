"""OTLP/HTTP load for the receiver benchmarks: pre-encoded requests, real SDK exporters, Phoenix.

Used by bench/receiver.py and bench/receiver_kill.py; it can also be run by itself against
any OTLP/HTTP endpoint on loopback:

    python bench/otlp_load.py http://127.0.0.1:4318/v1/traces --seconds 10

- `build_templates`: ExportTraceServiceRequests of 512 GenAI spans drawn from the demo's
  traffic model (console/demo/traffic.py), encoded to protobuf ONCE, before any clock starts.
  Each send copies one template and stamps a per-send counter into the first bytes of every
  trace id and span id (fixed-length fields, patched in place at offsets found once), so
  every span sent is unique to a dedupe on (trace_id, span_id) — and to Phoenix, whose
  span_id is unique on its own — at the cost of one 250 kB copy and ~1,000 small slice
  writes per request.
- `drive`: a few keep-alive httpx connections posting those bodies as fast as they are
  answered for N seconds; a 200's spans (less partial_success.rejected_spans) are counted as
  acknowledged; 429/503 are retried after Retry-After, as an exporter would.
- `TreeMemory`: the peak memory of a process and all its descendants, sampled from /proc
  (the sum of each process's VmHWM, and the highest sampled sum of VmRSS).
- `Phoenix`: Arize Phoenix (`phoenix serve`, its own virtualenv) on loopback with a temp
  working dir (SQLite), its stored-span count read from its database.
- `sdk_main`: a child process with the real OpenTelemetry SDK (TracerProvider +
  BatchSpanProcessor + OTLPSpanExporter) making GenAI spans; it counts what export() reported
  SUCCESS for, and can write every acknowledged (trace_id, span_id) to a file.
Traffic only ever goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SPANS_PER_REQUEST = 512
PHOENIX_VENV = Path(os.environ.get("LLMDECK_BENCH_PHOENIX_VENV", "/work/.phoenix-venv"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def load_average() -> float:
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError):
        return -1.0


def loopback_only(url: str) -> str:
    if not url.startswith(("http://127.0.0.1:", "http://localhost:")):
        raise SystemExit(f"bench: refusing to send traffic anywhere but loopback ({url})")
    return url


# -- pre-encoded requests ------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """One encoded ExportTraceServiceRequest and where its ids sit in the bytes."""

    body: bytes
    spans: int
    trace_offsets: tuple[int, ...]
    span_offsets: tuple[int, ...]


def build_templates(count: int, spans_per_request: int = SPANS_PER_REQUEST, seed: int = 11) -> list[Template]:
    """`count` protobuf requests of `spans_per_request` GenAI spans from the last hour."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from console.demo.otlp_encode import encode
    from console.demo.traffic import TrafficModel, export_requests

    end_ns = time.time_ns()
    start_ns = end_ns - 3600 * 10**9
    templates = []
    for doc in export_requests(TrafficModel(seed=seed), start_ns, end_ns, count * spans_per_request,
                               spans_per_request):
        body = encode(doc)  # the demo's live traffic encoder (~15x faster than json_format.ParseDict)
        msg = ExportTraceServiceRequest.FromString(body)
        traces: list[int] = []
        spans: list[int] = []
        for rs in msg.resource_spans:
            for ss in rs.scope_spans:
                for sp in ss.spans:
                    # Span.trace_id is field 1, span_id field 2: tag, length 16 / 8, then the bytes
                    at = body.find(b"\x0a\x10" + sp.trace_id + b"\x12\x08" + sp.span_id)
                    if at < 0:
                        raise SystemExit("bench: a span's ids were not found in its encoding")
                    traces.append(at + 2)
                    spans.append(at + 20)
        templates.append(Template(body, len(spans), tuple(traces), tuple(spans)))
    return templates


class Stamper:
    """Unique bodies from the templates: each send gets its own (salt, counter) in the ids.

    Each template is cut once around the id bytes being replaced; a send joins the pieces
    with the send's tags (about 0.1 ms for 512 spans)."""

    def __init__(self, templates: Sequence[Template]) -> None:
        self.templates = templates
        self.salt = random.getrandbits(32)
        self.sent = 0
        self.pieces: list[tuple[list[bytes], int]] = []
        for t in templates:
            cuts = sorted([(at, 8) for at in t.trace_offsets] + [(at, 4) for at in t.span_offsets])
            parts, pos = [], 0
            for at, length in cuts:  # alternate: trace id tag, span id tag (trace_id comes first)
                parts += [t.body[pos:at], b""]
                pos = at + length
            parts.append(t.body[pos:])
            self.pieces.append((parts, len(cuts) // 2))

    def next(self) -> tuple[bytes, int]:
        self.sent += 1
        i = self.sent % len(self.templates)
        parts, n = self.pieces[i]
        parts[1::4] = [struct.pack(">II", self.salt, self.sent)] * n
        parts[3::4] = [struct.pack(">I", self.sent)] * n
        return b"".join(parts), self.templates[i].spans


# -- the load ------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    seconds: float = 0.0
    """From the first send to the last answer."""
    requests: int = 0
    acked_spans: int = 0
    rejected_spans: int = 0
    retries: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    timeline: list[tuple[float, int]] = field(default_factory=list)
    """(seconds since start, acknowledged spans so far), one point per second."""


def _rejected(content: bytes) -> int:
    if not content:
        return 0
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    resp = ExportTraceServiceResponse()
    resp.ParseFromString(content)
    return int(resp.partial_success.rejected_spans)


def _retry_after(value: str | None) -> float:
    try:
        return min(max(float(value or 1), 0.05), 5.0)
    except ValueError:
        return 1.0


async def drive(url: str, stamper: Stamper, seconds: float, connections: int = 4, *,
                gate: Callable[[LoadResult], Awaitable[None]] | None = None) -> LoadResult:
    """Post stamped bodies over `connections` keep-alive connections for `seconds`."""
    import httpx

    loopback_only(url)
    result = LoadResult()
    headers = {"Content-Type": "application/x-protobuf"}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    timeout = httpx.Timeout(60.0, connect=10.0)
    began = time.perf_counter()
    deadline = began + seconds
    last = began

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal last
        while time.perf_counter() < deadline:
            if gate is not None:
                try:
                    await asyncio.wait_for(gate(result), timeout=max(deadline - time.perf_counter(), 0.0))
                except TimeoutError:
                    return
            body, spans = stamper.next()
            while True:
                try:
                    r = await client.post(url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    result.errors[type(exc).__name__] += 1
                    await asyncio.sleep(0.2)
                    break
                result.requests += 1
                result.statuses[r.status_code] += 1
                last = time.perf_counter()
                if r.status_code == 200:
                    rejected = _rejected(r.content)
                    result.rejected_spans += rejected
                    result.acked_spans += spans - rejected
                    break
                if r.status_code in (429, 502, 503, 504) and time.perf_counter() < deadline:
                    result.retries += 1
                    await asyncio.sleep(_retry_after(r.headers.get("retry-after")))
                    continue
                break

    async def ticker() -> None:
        while time.perf_counter() < deadline:
            await asyncio.sleep(1.0)
            result.timeline.append((time.perf_counter() - began, result.acked_spans))

    async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as client:
        tick = asyncio.create_task(ticker())
        await asyncio.gather(*(worker(client) for _ in range(connections)))
        tick.cancel()
    # the window: to the last answer, or to the deadline if a gate held the senders back until then
    result.seconds = max(last, min(time.perf_counter(), deadline)) - began
    return result


# -- memory of a process tree --------------------------------------------------------------------


def _status(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmHWM:", "VmRSS:", "PPid:")):
                    k, v = line.split(":", 1)
                    out[k] = int(v.split()[0])
    except (OSError, ValueError):
        pass
    return out


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _cpu_ticks(pid: int) -> int:
    """utime + stime + cutime + cstime of `pid`, in clock ticks (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15])
    except (OSError, ValueError, IndexError):
        return 0


def descendants(root: int) -> list[int]:
    """`root` and every live process below it."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


class TreeMemory:
    """Samples a process tree every `interval` s in a thread: peak VmHWM per process, peak summed RSS."""

    def __init__(self, root: int, interval: float = 0.25) -> None:
        self.root, self.interval = root, interval
        self.hwm_kb: dict[int, int] = {}
        self.peak_rss_kb = 0
        self.peak_pss_kb = 0
        """The highest sampled sum of PSS (shared pages split between the processes sharing them)."""
        self.pids: set[int] = set()
        self.ticks: dict[int, int] = {}
        self.began = time.monotonic()
        self.timeline: list[tuple[float, int]] = []
        """(seconds since the start, summed VmRSS in kB) per sample."""
        self.base: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        total = pss = 0
        for pid in descendants(self.root):
            st = _status(pid)
            if "VmHWM" in st:
                self.pids.add(pid)
                self.hwm_kb[pid] = max(self.hwm_kb.get(pid, 0), st["VmHWM"])
                total += st.get("VmRSS", 0)
                pss += _pss_kb(pid)
                self.ticks[pid] = max(self.ticks.get(pid, 0), _cpu_ticks(pid))
        self.peak_rss_kb = max(self.peak_rss_kb, total)
        self.peak_pss_kb = max(self.peak_pss_kb, pss)
        self.timeline.append((time.monotonic() - self.began, total))

    def rss_at(self, fractions: Sequence[float]) -> list[float]:
        """The tree's summed RSS (MB) at these fractions of the time sampled so far."""
        if not self.timeline:
            return []
        end = self.timeline[-1][0]
        out = []
        for f in fractions:
            t = end * f
            out.append(next(kb for at, kb in self.timeline if at >= t) / 1024)
        return out

    def mark(self) -> None:
        """Start counting CPU time from now (what the tree used before is left out)."""
        self.sample()
        self.base = dict(self.ticks)

    @property
    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the tree since `mark()` (or since it started)."""
        used = sum(t - self.base.get(pid, 0) for pid, t in self.ticks.items())
        return used / os.sysconf("SC_CLK_TCK")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> TreeMemory:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def hwm_mb(self) -> float:
        """Sum over the tree of each process's VmHWM (an upper bound of the tree's peak)."""
        return sum(self.hwm_kb.values()) / 1024

    @property
    def pss_mb(self) -> float:
        return self.peak_pss_kb / 1024

    def hwm_each_mb(self) -> list[float]:
        """Each process's VmHWM, the root first."""
        return [self.hwm_kb[p] / 1024 for p in sorted(self.hwm_kb, key=lambda p: (p != self.root, p))]

    @property
    def rss_mb(self) -> float:
        return self.peak_rss_kb / 1024


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
    """Stop `proc` by its pid (SIGTERM, then SIGKILL after `timeout`); its exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def wait_gone(pids: Sequence[int], timeout: float = 10.0) -> list[int]:
    """The pids still alive (not zombies of ours) after up to `timeout` s."""
    end = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < end:
        alive = [p for p in alive if _alive(p)]
        if alive:
            time.sleep(0.05)
    return alive


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


# -- llmdeck receive, as a subprocess ------------------------------------------------------------


class ReceiverProcess:
    """`llmdeck --cache CACHE receive --listen 127.0.0.1:PORT` of this checkout, run and stopped by pid."""

    def __init__(self, cache: Path, port: int, env: dict[str, str], log: Path) -> None:
        self.cache, self.port, self.env, self.log = cache, port, env, log
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "console.cli", "--cache", str(self.cache), "receive",
                "--listen", f"127.0.0.1:{self.port}"]

    def start(self, timeout: float = 60.0) -> float:
        """Start it and wait until the port accepts connections; the seconds that took."""
        began = time.monotonic()
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=log, text=True,
                                         env=self.env, cwd=Path(__file__).resolve().parent.parent)
        reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        reader.start()
        while time.monotonic() - began < timeout:
            if self.proc.poll() is not None:
                raise SystemExit(f"bench: llmdeck receive exited ({self.proc.returncode});"
                                 f" said {self.lines!r}; see {self.log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return time.monotonic() - began
            except OSError:
                time.sleep(0.02)
        raise SystemExit(f"bench: llmdeck receive not listening after {timeout:.0f} s; see {self.log}")

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        return stop_process(self.proc, sig, timeout=60.0)


def count_stored(cache: Path) -> tuple[int, int]:
    """(rows, distinct (trace_id, span_id)) in the cache's spans table, read-only."""
    import duckdb

    with duckdb.connect(str(cache), read_only=True) as con:
        row = con.execute("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


# -- Arize Phoenix -------------------------------------------------------------------------------

_PHOENIX_LAUNCHER = """
import sys
import phoenix.server.grpc_server as grpc_server

_init = grpc_server.GrpcServer.__init__


def _no_grpc(self, *args, **kwargs):  # gRPC binds [::] whatever PHOENIX_HOST says; OTLP/HTTP is enough
    kwargs["disabled"] = True
    _init(self, *args, **kwargs)


grpc_server.GrpcServer.__init__ = _no_grpc
from phoenix.server.main import main

sys.argv = ["phoenix", "serve"]
main()
"""


class Phoenix:
    """`phoenix serve` on 127.0.0.1 with a temp working dir (SQLite); its gRPC server disabled."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "phoenix.log"
        self._db: Any = None

    @staticmethod
    def available() -> bool:
        return (PHOENIX_VENV / "bin" / "python").exists() and (PHOENIX_VENV / "bin" / "phoenix").exists()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def start(self, timeout: float = 180.0) -> float:
        """Start and wait until it answers; the seconds that took."""
        import httpx

        env = {k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_", "PYTHON"))}
        env.update({"PHOENIX_HOST": "127.0.0.1", "PHOENIX_PORT": str(self.port),
                    "PHOENIX_GRPC_PORT": str(free_port()), "PHOENIX_WORKING_DIR": str(self.workdir),
                    "PHOENIX_TELEMETRY_ENABLED": "false", "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
                    "PHOENIX_DISABLE_AGENT_ASSISTANT": "true"})
        began = time.monotonic()
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([str(PHOENIX_VENV / "bin" / "python"), "-c", _PHOENIX_LAUNCHER],
                                         stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir)
        health = f"http://127.0.0.1:{self.port}/healthz"
        while time.monotonic() - began < timeout:
            if self.proc.poll() is not None:
                raise SystemExit(f"bench: phoenix exited ({self.proc.returncode}); see {self.log}")
            try:
                if httpx.get(health, timeout=1.0, trust_env=False).status_code == 200:
                    return time.monotonic() - began
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"bench: phoenix not ready after {timeout:.0f} s; see {self.log}")

    def stored(self) -> int:
        """Spans in Phoenix's database now (read-only SQLite connection)."""
        import sqlite3

        if self._db is None:
            db = self.workdir / "phoenix.db"
            self._db = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30.0, check_same_thread=False)
        n: int = self._db.execute("SELECT count(*) FROM spans").fetchone()[0]
        return n

    def stop(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, timeout=20.0)


# -- a real SDK exporter, in a child process -----------------------------------------------------


def _attr_value(value: dict[str, Any]) -> Any:
    (kind, v), = value.items()
    return int(v) if kind == "intValue" else v


def sdk_main(url: str, seconds: float, index: int, rate: float, ids_path: str | None, timeout: float,
             stop_file: str | None = None) -> None:
    """Child mode: make GenAI spans with the real SDK for `seconds` (at most `rate` spans/s if > 0;
    sooner if `stop_file` appears), export them with BatchSpanProcessor + OTLPSpanExporter, shut
    down (flushing), print a JSON report."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.trace import SpanKind, StatusCode

    from console.demo.traffic import SERVICES, TrafficModel

    loopback_only(url)
    ids = open(ids_path, "w") if ids_path else None  # noqa: SIM115 - closed below, after the flush

    class Counting(SpanExporter):
        def __init__(self) -> None:
            self.inner = OTLPSpanExporter(endpoint=url, timeout=timeout)
            self.acked = self.failed = self.batches = 0
            self.lock = threading.Lock()

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            result = self.inner.export(spans)
            with self.lock:
                self.batches += 1
                if result is SpanExportResult.SUCCESS:
                    self.acked += len(spans)
                    if ids is not None:
                        ids.writelines(f"{s.context.trace_id:032x} {s.context.span_id:016x}\n"
                                       for s in spans if s.context is not None)
                        ids.flush()
                else:
                    self.failed += len(spans)
            return result

        def shutdown(self) -> None:
            self.inner.shutdown()  # type: ignore[no-untyped-call]

    exporter = Counting()
    service = SERVICES[index % len(SERVICES)][0]
    provider = TracerProvider(resource=Resource.create({"service.name": service,
                                                        "deployment.environment.name": "bench"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=200_000,
                                                   max_export_batch_size=512, schedule_delay_millis=200))
    tracer = provider.get_tracer("llmdeck.bench")
    model = TrafficModel(seed=100 + index)
    now = time.time_ns()
    pool = []
    for _ in range(2000):
        sp = model.span(now, index % len(SERVICES))
        attrs = {a["key"]: _attr_value(a["value"]) for a in sp["attributes"]}
        duration = int(sp["endTimeUnixNano"]) - int(sp["startTimeUnixNano"])
        pool.append((sp["name"], attrs, duration, bool(sp["status"])))
    created = 0
    began = time.monotonic()
    look = 0.0
    while (elapsed := time.monotonic() - began) < seconds:
        if stop_file is not None and elapsed - look > 0.2:
            look = elapsed
            if os.path.exists(stop_file):
                break
        if rate > 0 and created > rate * elapsed:
            time.sleep(min(0.01, created / rate - elapsed))
            continue
        name, attrs, duration, failed = pool[created % len(pool)]
        start = time.time_ns() - duration
        span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs, start_time=start)
        if failed:
            span.set_status(StatusCode.ERROR)
        span.end(end_time=start + duration)
        created += 1
    made = time.monotonic() - began
    # export everything still queued (each export retrying within `timeout`): shutdown() alone
    # gives up after 30 s and drops the rest, which would be neither acknowledged nor failed
    provider.force_flush(timeout_millis=3_600_000)
    provider.shutdown()
    if ids is not None:
        ids.close()
    print(json.dumps({"created": created, "acked": exporter.acked, "failed": exporter.failed,
                      "batches": exporter.batches, "made_seconds": made,
                      "seconds": time.monotonic() - began}))


@dataclass
class SdkRun:
    created: int = 0
    acked: int = 0
    failed: int = 0
    seconds: float = 0.0
    reports: list[dict[str, Any]] = field(default_factory=list)


def start_sdk(url: str, seconds: float, processes: int, *, rate: float = 0.0, ids_dir: Path | None = None,
              timeout: float = 10.0, env: dict[str, str] | None = None,
              stop_file: Path | None = None, log_dir: Path | None = None) -> list[subprocess.Popen[str]]:
    """Start `processes` SDK children (stderr, where the exporter logs its retries, to
    `log_dir/sdk-I.log` if given)."""
    me = str(Path(__file__).resolve())
    procs = []
    for i in range(processes):
        cmd = [sys.executable, me, "--sdk", url, "--seconds", str(seconds), "--index", str(i),
               "--rate", str(rate), "--timeout", str(timeout)]
        if ids_dir is not None:
            cmd += ["--ids", str(ids_dir / f"acked-{i}.txt")]
        if stop_file is not None:
            cmd += ["--stop-file", str(stop_file)]
        if log_dir is None:
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env))
        else:
            with open(log_dir / f"sdk-{i}.log", "w") as log:
                procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env))
    return procs


def finish_sdk(procs: Sequence[subprocess.Popen[str]], began: float) -> SdkRun:
    run = SdkRun()
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"bench: an SDK exporter process failed (exit {p.returncode})")
        report = json.loads(out.strip().splitlines()[-1])
        run.reports.append(report)
        run.created += report["created"]
        run.acked += report["acked"]
        run.failed += report["failed"]
    run.seconds = time.monotonic() - began
    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url", nargs="?", help="an OTLP/HTTP traces endpoint on loopback")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--templates", type=int, default=16)
    ap.add_argument("--sdk", metavar="URL", help=argparse.SUPPRESS)
    ap.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--rate", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--ids", help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, default=10.0, help=argparse.SUPPRESS)
    ap.add_argument("--stop-file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sdk:
        sdk_main(args.sdk, args.seconds, args.index, args.rate, args.ids, args.timeout, args.stop_file)
        return 0
    if not args.url:
        ap.error("give an OTLP/HTTP endpoint, e.g. http://127.0.0.1:4318/v1/traces")
    templates = build_templates(args.templates)
    result = asyncio.run(drive(loopback_only(args.url), Stamper(templates), args.seconds, args.connections))
    print(f"{result.acked_spans:,} spans acknowledged in {result.seconds:.1f} s"
          f" ({result.acked_spans / max(result.seconds, 1e-9):,.0f}/s), {result.requests} requests,"
          f" statuses {dict(result.statuses)}, errors {dict(result.errors)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
