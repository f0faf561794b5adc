"""Part C of the source benchmarks: console start-up with six configured sources vs none.

    python bench/sources.py startup [--workdir /work/bench-caches] [--spans 1000000] [--repeat 7]

bench/startup.py's method and harness (`run_in_pty`): `llmdeck --cache FILE` as a
fresh process on a pseudo-terminal (120x40), timed from just before the spawn to
the end of the frame that first shows the overview's data (an SLO name, a budget
name and the spend line), on the 1M-span cache with the demo's 9 SLOs and 4
budgets and a pinned clock. "six" adds bench/fake_sources.py's six sources (two
Prometheus with three PromQL SLOs, two Alertmanagers, vLLM and LiteLLM
`/metrics`), served by a child process on loopback, every answer after 200 ms;
"none" is the same config without them. Also noted: the console's CPU time (all
threads, /proc) when that frame has arrived, less sensitive to the machine's load
than wall time. One unmeasured warm-up of each, then
`--repeat` alternating runs (none, six, none, ...); medians compared. `--diagnose`
adds a third configuration, "nohub": the six sources configured but
`console.launch.source_hub` replaced by one returning None (the config's cost alone,
without the hub's start after the first paint).
Goal (issue 9 §9): start-up not made slower by configured sources (six / none,
within the noise of the two; ~1.0). The structural half of the goal (no socket
connect before the first paint) is tests/unit/test_no_io_before_first_paint.py.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

import bench.startup
from bench.console_common import AT, SIZE, console_env, ensure_cache, loadavg
from bench.fake_sources import serving
from bench.startup import LLMDECK_MARKERS, run_in_pty

CHILD = """
import json, sys
from datetime import datetime
from pathlib import Path
import console.config
import console.launch
from console.demo.config import demo_config
cache, at, urls = Path(sys.argv[1]), datetime.fromisoformat(sys.argv[2]), json.loads(sys.argv[3])
if sys.argv[4:] == ["nohub"]:  # diagnostic: the sources configured, the hub never built or started
    console.launch.source_hub = lambda config: None
def load(path=None, env=None):
    config = demo_config(cache)
    if not urls:
        return config
    from bench.fake_sources import sources_config
    return sources_config(config, urls)
console.config.load_config = load
console.launch.wall_clock = lambda: at
from console.cli import main
sys.exit(main(["--cache", str(cache)]))
"""
GOAL = 1.1
"""Read as "not slower": the two medians within 10%, about the run-to-run noise of start-up here."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU a live process has used so far (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def record_cpu_at_paint(into: list[float]) -> None:
    """Note the console's CPU time when run_in_pty has seen the data frame, just before it
    quits the app (bench.startup._stop): the work done up to the first data paint, a figure
    far less sensitive to the machine's load than wall time."""
    stop = bench.startup._stop

    def noting(proc: Any, master: int) -> None:
        into.append(cpu_seconds(proc.pid))
        stop(proc, master)

    bench.startup._stop = noting


def run(workdir: Path, spans: int, repeat: int, diagnose: bool = False) -> int:
    cache = ensure_cache(workdir, spans)
    env = console_env(workdir)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(var, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    load_start = loadavg()
    print(f"startup with sources: {SIZE[0]}x{SIZE[1]} pty, cache {cache.name} ({spans:,} spans),"
          f" six sources answering after 200 ms vs none; load {load_start}", flush=True)
    times: dict[str, list[float]] = {"none": [], "six": [], "nohub": []}
    cpu: dict[str, list[float]] = {"none": [], "six": [], "nohub": []}
    noted: list[float] = []
    record_cpu_at_paint(noted)
    with serving(0.2) as urls:
        configs = {"none": ["{}"], "six": [json.dumps(urls)], "nohub": [json.dumps(urls), "nohub"]}
        if not diagnose:
            del configs["nohub"]
        for args in configs.values():  # warm-up: file cache, .pyc files
            run_in_pty(CHILD, [str(cache), AT.isoformat(), *args], LLMDECK_MARKERS, env)
        for i in range(repeat):
            for name, args in configs.items():
                load = loadavg()
                paint = run_in_pty(CHILD, [str(cache), AT.isoformat(), *args], LLMDECK_MARKERS, env)
                times[name].append(paint.seconds)
                cpu[name].append(noted[-1])
                print(f"  run {i + 1} {name:5} {paint.seconds * 1000:7.0f} ms, CPU {noted[-1] * 1000:4.0f} ms"
                      f" (markers {paint.marker_seconds * 1000:.0f} ms,"
                      f" {'synchronized' if paint.synchronized else 'unsynchronized'} frame)  load {load}",
                      flush=True)
    none, six = (statistics.median(times[n]) for n in ("none", "six"))
    ratio = six / none
    print(f"  median none {none * 1000:.0f} ms (min {min(times['none']) * 1000:.0f}),"
          f" six {six * 1000:.0f} ms (min {min(times['six']) * 1000:.0f}); ratio {ratio:.3f}"
          f" (goal <= {GOAL}) {'ok' if ratio <= GOAL else 'MISSED'}")
    cpu_none, cpu_six = (statistics.median(cpu[n]) for n in ("none", "six"))
    print(f"  console CPU up to the data frame (median): none {cpu_none * 1000:.0f} ms,"
          f" six {cpu_six * 1000:.0f} ms; ratio {cpu_six / cpu_none:.3f}")
    if times["nohub"]:
        nohub = statistics.median(times["nohub"])
        print(f"  (diagnostic) six configured, hub never started: median {nohub * 1000:.0f} ms,"
              f" ratio to none {nohub / none:.3f}; six / nohub {six / nohub:.3f};"
              f" CPU {statistics.median(cpu['nohub']) * 1000:.0f} ms")
    print(f"RESULT startup_sources_ratio={ratio:.3f} six_ms={six * 1000:.0f} none_ms={none * 1000:.0f}"
          f" cpu_ratio={cpu_six / cpu_none:.3f} cpu_six_ms={cpu_six * 1000:.0f}"
          f" cpu_none_ms={cpu_none * 1000:.0f}"
          f" (goal<={GOAL}) runs={repeat} spans={spans} load_start={load_start} load_end={loadavg()}")
    return 0
