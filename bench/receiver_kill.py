"""Receiver kill benchmark: kill -9 `llmdeck receive` 20 times while real SDK exporters retry.

    python bench/receiver_kill.py [--kills 20] [--processes 3] [--rate 1000] [--min-up 1.0] [--max-up 3.0]

`llmdeck receive` runs on a fresh cache and a fixed loopback port. --processes child processes
each run the real OpenTelemetry SDK (TracerProvider + BatchSpanProcessor + OTLPSpanExporter,
protobuf over HTTP, timeout --exporter-timeout s so its retries outlast a restart) making GenAI
spans at --rate spans/s; each records every (trace_id, span_id) for which export() returned
SUCCESS. Meanwhile the receiver is killed with SIGKILL --kills times, each after a random
--min-up..--max-up seconds of serving, and restarted on the same port and cache at once.
Then the exporters stop making spans and flush (retrying what is unacknowledged), the last
receiver is stopped with SIGTERM, and the cache is read:

  lost        acknowledged (trace_id, span_id) not in the cache            goal 0
  duplicated  rows of the spans table beyond one per (trace_id, span_id)  goal 0
  left        processes of any receiver (or its children) still alive     goal none
Spans stored but never acknowledged (the answer died with the receiver and the exporter gave
up) are allowed and counted.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.measure import child_env  # noqa: E402
from bench.otlp_load import (  # noqa: E402
    ReceiverProcess,
    descendants,
    finish_sdk,
    free_port,
    load_average,
    start_sdk,
    wait_gone,
)
from bench.receiver import git_commit  # noqa: E402


def stored_ids(cache: Path) -> tuple[int, set[tuple[str, str]]]:
    import duckdb

    with duckdb.connect(str(cache), read_only=True) as con:
        rows = con.execute("SELECT trace_id, span_id FROM spans").fetchall()
    return len(rows), {(str(t), str(s)) for t, s in rows}


def acked_ids(ids_dir: Path) -> tuple[int, set[tuple[str, str]]]:
    n, ids = 0, set()
    for path in sorted(ids_dir.glob("acked-*.txt")):
        with open(path) as f:
            for line in f:
                trace, span = line.split()
                ids.add((trace, span))
                n += 1
    return n, ids


def strays(marker: str, own: int) -> list[int]:
    """Processes other than this one whose command line mentions `marker` (the cache path)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != own:
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(name))
            except OSError:
                continue
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--processes", type=int, default=3, help="SDK exporter processes")
    ap.add_argument("--rate", type=float, default=1000.0, help="spans/s made by each SDK process")
    ap.add_argument("--min-up", type=float, default=1.0, help="least seconds served before a kill")
    ap.add_argument("--max-up", type=float, default=3.0, help="most seconds served before a kill")
    ap.add_argument("--exporter-timeout", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="llmdeck-bench-kill-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = child_env(workdir)
    cache, port, log = workdir / "kill.duckdb", free_port(), workdir / "receiver.log"
    stop_file = workdir / "stop"
    loads = [load_average()]
    print(f"commit {git_commit()}; {args.kills} kills, {args.processes} SDK processes x"
          f" {args.rate:.0f} spans/s, port {port}", flush=True)

    receiver = ReceiverProcess(cache, port, env, log)
    ready = [receiver.start()]
    began = time.monotonic()
    sdk = start_sdk(receiver.url, 3600.0, args.processes, rate=args.rate, ids_dir=workdir,
                    timeout=args.exporter_timeout, env=env, stop_file=stop_file, log_dir=workdir)
    seen: set[int] = set()
    left_after_kill: list[int] = []
    codes = []
    for _ in range(args.kills):
        time.sleep(rng.uniform(args.min_up, args.max_up))
        tree = descendants(receiver.pid)
        seen.update(tree)
        os.kill(receiver.pid, signal.SIGKILL)
        codes.append(receiver.stop())  # reaps it (already dead: no signal sent)
        left_after_kill += wait_gone(tree, timeout=5.0)
        receiver = ReceiverProcess(cache, port, env, log)
        ready.append(receiver.start())
    time.sleep(args.max_up)  # one last stretch of serving
    killing = time.monotonic() - began
    stop_file.touch()  # the exporters stop making spans, flush (retrying) and exit
    run = finish_sdk(sdk, began)
    tree = descendants(receiver.pid)
    seen.update(tree)
    last_code = receiver.stop()
    left = sorted(set(left_after_kill) | set(wait_gone(sorted(seen), timeout=5.0)))
    stray = strays(str(cache), os.getpid())
    loads.append(load_average())

    acked_n, acked = acked_ids(workdir)
    rows, stored = stored_ids(cache)
    lost = acked - stored
    duplicated = rows - len(stored)
    unacked_stored = len(stored - acked)
    killed = "SIGKILL" if all(c == -signal.SIGKILL for c in codes) else str(codes)
    retries = sum(p.read_text().count("retrying in") for p in workdir.glob("sdk-*.log"))
    print(f"  {args.kills} kills in {killing:.0f} s (exit status of each: {killed});"
          f" restart to listening: median {sorted(ready)[len(ready) // 2]:.2f} s, worst {max(ready):.2f} s;"
          f" last receiver's exit code {last_code}")
    print(f"  SDK: {run.created:,} spans made, export() SUCCESS for {acked_n:,} ({len(acked):,} distinct),"
          f" FAILURE for {run.failed:,}, never exported {run.created - acked_n - run.failed:,};"
          f" {retries} exporter retries logged;"
          f" all flushed after {run.seconds:.0f} s")
    print(f"  cache: {rows:,} rows, {len(stored):,} distinct (trace_id, span_id);"
          f" stored but never acknowledged: {unacked_stored:,}")
    print(f"  lost (acknowledged, not stored) {len(lost):8,}  goal 0   {'MISSED' if lost else 'ok'}")
    print(f"  duplicated rows                 {duplicated:8,}  goal 0   {'MISSED' if duplicated else 'ok'}")
    print(f"  processes left behind           {len(left) + len(stray):8,}  goal 0   "
          f"{'ok' if not left and not stray else 'MISSED ' + str(left + stray)}"
          f"  ({len(seen)} receiver processes seen)")
    print(f"  load average (1 min) {' -> '.join(f'{x:.2f}' for x in loads)}")
    good = not lost and not duplicated and not left and not stray and acked_n == len(acked) and acked_n > 0
    print(f"RESULT kills={args.kills} acked={acked_n} stored={len(stored)} lost={len(lost)}"
          f" duplicated={duplicated} retries={retries} left={len(left) + len(stray)}"
          f" unacked_stored={unacked_stored} ok={'yes' if good else 'NO'}"
          f" commit={git_commit()} load={max(loads):.2f}")
    if args.keep:
        print(f"kept {workdir}")
    elif not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
