"""Memory benchmark: peak RSS of the console on the 10M-span cache, refreshing on every screen.

    python bench/memory.py [--workdir /work/bench-caches] [--spans 10000000] [--refreshes 5]
                           [--cycles 2]

The console runs in its own process, opened as `llmdeck --cache FILE` opens it
(`Cache.open(path, read_only=True)`, a Backend with a CacheProbe source), with the
demo's 9 SLOs and 4 budgets, the clock pinned to the end of the cached week and
refresh_seconds=1, headless at 120x40 (`App.run_test`: the same widgets, data and
rendering; only the terminal output is skipped). It visits every screen in turn:
overview, 2 (SLOs), 3 (cost), 4 (traces breakdown by provider), Enter (the top
provider by model), f (its failed requests), Enter (the span tree of the first one),
1 (back to the overview), --cycles
times, and on each screen waits for --refreshes fetched snapshots to be shown (one
per second).

Peak RSS is the child's `ru_maxrss` from `os.wait4`, taken by bench/measure.py's
tiny launcher (so this script's own memory is not inherited into the figure); the
child also reports its VmHWM and DuckDB's own buffer use at the end.

Goal (issue 2): peak RSS under 300 MB.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.console_common import (  # noqa: E402
    AT,
    DEFAULT_WORKDIR,
    LARGE,
    SIZE,
    console_env,
    ensure_cache,
    loadavg,
)
from bench.measure import run_measured  # noqa: E402

CHILD = """
import asyncio, collections, json, sys, time
from datetime import datetime
from pathlib import Path

from console.app import LlmdeckApp
from console.backend import Backend
from console.cache.store import Cache
from console.demo.config import demo_config
from console.launch import CacheProbe
from panels.cost_screen import CostScreen
from panels.overview import OverviewScreen
from panels.slo_screen import SloScreen
from panels.traces_screen import RequestsScreen, TraceScreen, TracesScreen

path, at = Path(sys.argv[1]), datetime.fromisoformat(sys.argv[2])
refreshes, cycles = int(sys.argv[3]), int(sys.argv[4])
size = (int(sys.argv[5]), int(sys.argv[6]))
shown = collections.Counter()
orig = OverviewScreen.__mro__[1].on_snapshot_ready  # DeckScreen.on_snapshot_ready

def on_snapshot_ready(self, message):
    orig(self, message)
    if self.last is message.fetched:
        shown[id(self)] += 1

OverviewScreen.__mro__[1].on_snapshot_ready = on_snapshot_ready

def hwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

cache = Cache.open(path, read_only=True, create=False)
backend = Backend(cache, demo_config(path), lambda: at, [CacheProbe(cache)])
app = LlmdeckApp(backend)
visits = []

async def until(cond, timeout=120):
    t = time.monotonic()
    while not cond():
        if time.monotonic() - t > timeout:
            raise SystemExit(f"memory bench: timed out on {type(app.screen).__name__}")
        await asyncio.sleep(0.05)

async def visit(pilot, keys, cls):
    before = app.screen
    if keys:
        await pilot.press(*keys)
    await until(lambda: isinstance(app.screen, cls) and (not keys or app.screen is not before))
    screen = app.screen
    start = shown[id(screen)]
    await until(lambda: shown[id(screen)] >= start + refreshes)
    visits.append((cls.__name__, round(hwm_mb())))

async def main():
    async with app.run_test(size=size) as pilot:
        for _ in range(cycles):
            await visit(pilot, (), OverviewScreen)
            await visit(pilot, ("2",), SloScreen)
            await visit(pilot, ("3",), CostScreen)
            await visit(pilot, ("4",), TracesScreen)
            await visit(pilot, ("enter",), TracesScreen)
            await visit(pilot, ("f",), RequestsScreen)
            await visit(pilot, ("enter",), TraceScreen)
            await visit(pilot, ("1",), OverviewScreen)

asyncio.run(main())
duck = cache.cursor().execute(
    "SELECT sum(memory_usage_bytes), current_setting('memory_limit'), current_setting('threads')"
    " FROM duckdb_memory()").fetchall()[0]
cache.close()
print(json.dumps({"vmhwm_mb": hwm_mb(), "visits": visits, "refreshes": sum(shown.values()),
                  "duckdb_buffers_mb": (duck[0] or 0) / 2**20, "duckdb_memory_limit": duck[1],
                  "duckdb_threads": duck[2]}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    ap.add_argument("--spans", type=int, default=LARGE, help="spans in the cache (default 10M)")
    ap.add_argument("--refreshes", type=int, default=5, help="snapshots shown per screen visit")
    ap.add_argument("--cycles", type=int, default=2, help="rounds over all screens")
    args = ap.parse_args()

    cache = ensure_cache(args.workdir, args.spans)
    env = console_env(args.workdir)
    load_start = loadavg()
    print(f"memory: console on {cache.name} ({args.spans:,} spans), {args.cycles} rounds over 7 screens,"
          f" {args.refreshes} refreshes each, 1 s apart; load {load_start}", flush=True)
    run = run_measured([sys.executable, "-c", CHILD, str(cache), AT.isoformat(), str(args.refreshes),
                        str(args.cycles), str(SIZE[0]), str(SIZE[1])], env)
    report = json.loads(run.stdout.strip().splitlines()[-1])
    load_end = loadavg()
    print("  VmHWM after each visit: " + ", ".join(f"{n} {mb} MB" for n, mb in report["visits"]))
    print(f"  {report['refreshes']} snapshots shown in {run.seconds:.0f} s; DuckDB at the end:"
          f" {report['duckdb_buffers_mb']:.0f} MB of buffers, memory_limit"
          f" {report['duckdb_memory_limit']}, {report['duckdb_threads']} threads")
    peak = run.peak_rss_mb
    print(f"  peak RSS {peak:.0f} MB (ru_maxrss; VmHWM {report['vmhwm_mb']:.0f} MB)"
          f" (goal < 300) {'ok' if peak < 300 else 'MISSED'}; load {load_start} → {load_end}")
    print(f"RESULT peak_rss_mb={peak:.0f} (goal<300) refreshes={report['refreshes']}"
          f" spans={args.spans} duckdb_limit={report['duckdb_memory_limit']}"
          f" load_start={load_start} load_end={load_end}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
