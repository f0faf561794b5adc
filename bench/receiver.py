"""Receiver benchmark: spans per second STORED by `llmdeck receive`, its peak RSS, and Arize Phoenix's rate.

    python bench/receiver.py [--seconds 60] [--connections 4] [--sdk-seconds 20] [--sdk-processes 3]
                             [--phoenix-seconds 60] [--no-phoenix]

Measured in one run, on loopback only (bench/otlp_load.py has the pieces):
  (a) llmdeck, pre-encoded load: `llmdeck receive` started as a subprocess on a fresh cache
      and a free port; a light load generator posts OTLP protobuf ExportTraceServiceRequests of
      512 GenAI spans (the demo's traffic model, encoded before the clock starts; each send
      stamps unique trace/span ids into a copy) over a few keep-alive connections for
      --seconds. A 200 from llmdeck means the spans are committed. The receiver is then
      stopped with SIGTERM and the cache's spans table is counted: stored spans / load seconds
      is the rate (and stored must equal acknowledged, with no duplicate (trace_id, span_id)).
      Peak memory: the receiver and every child of it, sampled from /proc (sum of VmHWM).
  (b) llmdeck, real SDK exporters: --sdk-processes processes, each a TracerProvider with a
      BatchSpanProcessor (512-span batches) and the OTLP/HTTP protobuf exporter, making GenAI
      spans as fast as they can for --sdk-seconds; stored spans / seconds until all flushed.
      The SDK costs far more CPU per span than the receiver, so this shows the client's limit.
  (c) Arize Phoenix (its own virtualenv, `phoenix serve`, SQLite, gRPC off) fed the same
      pre-encoded requests the same way for --phoenix-seconds. Phoenix acknowledges before it
      stores, so its rate is the spans in its database at the end of the window / seconds;
      the generator holds back while more than --phoenix-backlog acknowledged spans are not
      yet stored (Phoenix stays saturated without its queue growing without bound).
Goals (issue 11 section 5): >= 20,000 spans/s stored, peak RSS < 300 MB, >= 100x Phoenix.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.measure import child_env  # noqa: E402
from bench.otlp_load import (  # noqa: E402
    LoadResult,
    Phoenix,
    ReceiverProcess,
    SdkRun,
    Stamper,
    Template,
    TreeMemory,
    build_templates,
    count_stored,
    descendants,
    drive,
    finish_sdk,
    free_port,
    load_average,
    start_sdk,
    wait_gone,
)


def git_commit() -> str:
    import subprocess

    repo = Path(__file__).resolve().parent.parent
    out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, check=False)
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return out.stdout.strip() + ("+" if dirty else "")


def statuses(result: LoadResult) -> str:
    parts = [f"{k}x{v}" for k, v in sorted(result.statuses.items())]
    parts += [f"{k}x{v}" for k, v in sorted(result.errors.items())]
    return " ".join(parts) or "none"


def run_ours(name: str, workdir: Path, env: dict[str, str], body: Any) -> dict[str, Any]:
    """Start a receiver on a fresh cache, run `body(receiver)`, stop it, count what it stored."""
    cache = workdir / f"{name}.duckdb"
    receiver = ReceiverProcess(cache, free_port(), env, workdir / f"{name}.log")
    ready = receiver.start()
    with TreeMemory(receiver.pid) as memory:
        memory.mark()
        out: dict[str, Any] = body(receiver)
        tree = descendants(receiver.pid)
        memory.sample()
        cpu = memory.cpu_seconds
        curve = memory.rss_at((0.0, 0.25, 0.5, 0.75, 1.0))
        code = receiver.stop()
    left = wait_gone(sorted(memory.pids | set(tree)))
    rows, distinct = count_stored(cache)
    out.update(ready=ready, exit_code=code, left=left, rows=rows, distinct=distinct, hwm=memory.hwm_mb,
               rss=memory.rss_mb, procs=len(memory.pids), cpu=cpu, curve=curve, pss=memory.pss_mb,
               each=memory.hwm_each_mb(),
               said=(receiver.log.read_text().strip().splitlines() or [""])[-1])
    return out


def report_a(args: argparse.Namespace, a: dict[str, Any], la: LoadResult, rate: float, same: bool) -> None:
    print(f"(a) llmdeck receive, pre-encoded, {args.connections} connections, {la.seconds:.1f} s:"
          f" {a['rows']:,} spans stored = {rate:,.0f} spans/s; acknowledged {la.acked_spans:,}"
          f" (rejected {la.rejected_spans}); distinct ids {a['distinct']:,}; stored == acknowledged:"
          f" {'yes' if same else 'NO'}", flush=True)
    per_s = [b - a_ for (_, a_), (_, b) in zip([(0.0, 0), *la.timeline], la.timeline, strict=False)]
    if per_s:
        print(f"    acknowledged per second: min {min(per_s):,}, max {max(per_s):,};"
              f" answers {statuses(la)}; {la.retries} retries after 429/503")
    each = " + ".join(f"{x:.0f}" for x in a["each"])
    print(f"    peak memory: sum of VmHWM {a['hwm']:.0f} MB over {a['procs']} process(es) ({each}),"
          f" highest summed RSS {a['rss']:.0f} MB, highest summed PSS {a['pss']:.0f} MB;"
          f" ready in {a['ready']:.2f} s; exit code {a['exit_code']};"
          f" processes left: {a['left'] or 'none'}\n    its last line: {a['said']}", flush=True)
    curve = " / ".join(f"{x:.0f}" for x in a["curve"])
    print(f"    receiver RSS at 0/25/50/75/100% of the run: {curve} MB")
    print(f"    receiver CPU time during the load {a['cpu']:.1f} s = {a['rows'] / max(a['cpu'], 1e-9):,.0f}"
          f" spans per CPU-second (less sensitive to other load on the machine than spans/s);"
          f" the load generator's own CPU {a['generator_cpu']:.1f} s", flush=True)


def report_b(args: argparse.Namespace, b: dict[str, Any], run: SdkRun, rate: float, same: bool) -> None:
    made = sum(r["created"] / r["made_seconds"] for r in run.reports)
    print(f"(b) llmdeck receive, real SDK exporters ({args.sdk_processes} processes, {args.sdk_seconds:.0f} s"
          f" + flush = {run.seconds:.1f} s): {b['rows']:,} stored = {rate:,.0f} spans/s; the SDK made"
          f" {run.created:,} spans ({made:,.0f}/s), export() SUCCESS for {run.acked:,}, FAILURE for"
          f" {run.failed:,}; stored == acknowledged: {'yes' if same else 'NO'}; peak VmHWM"
          f" {b['hwm']:.0f} MB; receiver CPU {b['cpu']:.1f} s ({b['rows'] / max(b['cpu'], 1e-9):,.0f}"
          f" spans per CPU-second); processes left: {b['left'] or 'none'}", flush=True)


def run_phoenix(args: argparse.Namespace, workdir: Path, templates: list[Template]) -> tuple[float, float]:
    """(c): Phoenix's stored spans/s over the window, and its spans stored per CPU-second."""
    pdir = workdir / "phoenix"
    pdir.mkdir(exist_ok=True)
    phoenix = Phoenix(pdir)
    ready = phoenix.start()
    assert phoenix.proc is not None
    stored = {"n": 0}

    async def gate(result: LoadResult) -> None:
        while result.acked_spans - stored["n"] > args.phoenix_backlog:
            await asyncio.sleep(0.5)
            stored["n"] = await asyncio.to_thread(phoenix.stored)

    try:
        with TreeMemory(phoenix.proc.pid) as pmem:
            pmem.mark()
            result = asyncio.run(drive(phoenix.url, Stamper(templates), args.phoenix_seconds,
                                       args.connections, gate=gate))
            at_end = phoenix.stored()
            drain_began, drained = time.monotonic(), at_end
            while drained < result.acked_spans and time.monotonic() - drain_began < args.phoenix_drain:
                time.sleep(1.0)
                drained = phoenix.stored()
            drain = time.monotonic() - drain_began
            pmem.sample()
    finally:
        phoenix.stop()
    rate = at_end / result.seconds
    done = "yes" if drained >= result.acked_spans else f"not all ({drained:,}) after"
    print(f"(c) Phoenix, the same pre-encoded requests, {result.seconds:.1f} s (ready in {ready:.0f} s):"
          f" {at_end:,} spans stored = {rate:,.1f} spans/s; acknowledged {result.acked_spans:,}"
          f" (answers {statuses(result)}); all acknowledged stored: {done} {drain:.0f} s later;"
          f" peak VmHWM {pmem.hwm_mb:.0f} MB; Phoenix CPU {pmem.cpu_seconds:.1f} s (window and drain) ="
          f" {drained / max(pmem.cpu_seconds, 1e-9):,.0f} spans stored per CPU-second", flush=True)
    return rate, drained / max(pmem.cpu_seconds, 1e-9)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="pre-encoded load on llmdeck (default 60)")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--templates", type=int, default=16, help="distinct pre-encoded requests to cycle")
    ap.add_argument("--sdk-seconds", type=float, default=20.0)
    ap.add_argument("--sdk-processes", type=int, default=3)
    ap.add_argument("--phoenix-seconds", type=float, default=60.0)
    ap.add_argument("--phoenix-backlog", type=int, default=20_000)
    ap.add_argument("--phoenix-drain", type=float, default=60.0, help="s given Phoenix to catch up")
    ap.add_argument("--parts", default="abc", help="which of (a) (b) (c) to run, e.g. 'ac' (default abc)")
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="llmdeck-bench-receiver-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = child_env(workdir)
    loads = [load_average()]
    began = time.perf_counter()
    templates: list[Template] = build_templates(args.templates)
    size = sum(len(t.body) for t in templates) / len(templates)
    print(f"{len(templates)} pre-encoded requests of {templates[0].spans} spans ({size / 1e3:.0f} kB each),"
          f" built in {time.perf_counter() - began:.1f} s; commit {git_commit()}", flush=True)
    ok = True

    def pre_encoded(receiver: ReceiverProcess) -> dict[str, Any]:
        before = time.process_time()
        load = asyncio.run(drive(receiver.url, Stamper(templates), args.seconds, args.connections))
        return {"load": load, "generator_cpu": time.process_time() - before}

    def sdk(receiver: ReceiverProcess) -> dict[str, Any]:
        t0 = time.monotonic()
        return {"sdk": finish_sdk(start_sdk(receiver.url, args.sdk_seconds, args.sdk_processes, env=env), t0)}

    rate = hwm = seconds = sdk_rate = phoenix_rate = per_cpu = phoenix_per_cpu = 0.0
    if "a" in args.parts:
        a = run_ours("pre-encoded", workdir, env, pre_encoded)
        loads.append(load_average())
        la: LoadResult = a["load"]
        rate, hwm, seconds = a["rows"] / la.seconds, a["hwm"], la.seconds
        per_cpu = a["rows"] / max(a["cpu"], 1e-9)
        same = a["rows"] == la.acked_spans == a["distinct"]
        ok = ok and same and not a["left"]
        report_a(args, a, la, rate, same)
    if "b" in args.parts:
        b = run_ours("sdk", workdir, env, sdk)
        loads.append(load_average())
        run: SdkRun = b["sdk"]
        sdk_rate = b["rows"] / run.seconds
        same = b["rows"] == run.acked == b["distinct"]
        ok = ok and same and not b["left"]
        report_b(args, b, run, sdk_rate, same)
    if "c" in args.parts:
        if Phoenix.available():
            phoenix_rate, phoenix_per_cpu = run_phoenix(args, workdir, templates)
            loads.append(load_average())
        else:
            print("(c) Phoenix: not installed (see bench/README.md: a virtualenv at /work/.phoenix-venv)")

    ratio = rate / phoenix_rate if phoenix_rate else float("nan")
    verdict = "ok" if ratio >= 100 else "MISSED" if phoenix_rate and rate else "not measured"
    fast, small = "ok" if rate >= 20_000 else "MISSED", "ok" if hwm < 300 else "MISSED"
    print(f"  stored spans/s (pre-encoded)  {rate:10,.0f}     goal >= 20,000  {fast}")
    print(f"  peak RSS of the receiver      {hwm:10,.0f} MB  goal < 300      {small}")
    print(f"  llmdeck / Phoenix stored      {ratio:10,.0f}x    goal >= 100x    {verdict}")
    cpu_ratio = per_cpu / phoenix_per_cpu if phoenix_per_cpu else float("nan")
    print(f"  the same per CPU-second       {cpu_ratio:10,.0f}x    (spans stored per CPU-second of each"
          f" server's processes: {per_cpu:,.0f} / {phoenix_per_cpu:,.0f})")
    print(f"  every acknowledged span stored once, no process left: {'yes' if ok else 'NO'}")
    print(f"  load average (1 min) {' -> '.join(f'{x:.2f}' for x in loads)}")
    print(f"RESULT stored_spans_per_s={rate:.0f} (goal>=20000) peak_rss_mb={hwm:.0f} (goal<300)"
          f" phoenix_spans_per_s={phoenix_rate:.1f} ratio={ratio:.0f} (goal>=100) cpu_ratio={cpu_ratio:.0f}"
          f" sdk_stored_per_s={sdk_rate:.0f} seconds={seconds:.0f} exact={'yes' if ok else 'NO'}"
          f" commit={git_commit()} load={max(loads):.2f}")
    if args.keep:
        print(f"kept {workdir}")
    elif not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
