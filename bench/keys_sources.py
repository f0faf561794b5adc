"""Part B of the source benchmarks: key press -> repaint with six sources (one hung) vs none.

    python bench/sources.py keys [--workdir /work/bench-caches] [--spans 1000000]
                                 [--presses 100] [--rounds 6] [--hung am-b]

bench/responsiveness.py's machinery (its BenchApp `_display` hook, VirtualScreen,
per-key checks and key sequence, `drive`), without the ingest, on the 1M-span
cache opened read-only as `llmdeck --cache FILE` opens it (the 10M cache takes
~30 min to build here; the figure compared is a ratio of two configurations on the
same cache). Three configurations, alternated round by round in this one process
(none, five, six, none, ...), each round a fresh app of `--presses` presses:

- none: the demo's 9 SLOs and 4 budgets, no outside source, no hub;
- six: the same plus bench/fake_sources.py's six sources (two Prometheus with three
  PromQL SLOs, two Alertmanagers, vLLM and LiteLLM `/metrics`), all with
  refresh_seconds=1 (the minimum, so the hub polls all the time), served by a child
  process on loopback, every answer after 200 ms, except `--hung` (default am-b),
  which accepts, reads the request and never answers. The hub is built as
  `console.launch.run_console` builds it (`source_hub(config)` passed to Backend)
  and started by the app after its first paint;
- five: six without the hung source (and without its SLOs, if it has any): the
  issue's "run without it";
- hung (with `--configs`): the hung source alone, no other.

The panels refresh every second in both. Latencies of each configuration are pooled
over its rounds; the figure is p99(six) / p99(none) (the brief's reading, stricter),
and p99(six) / p99(five) is printed too, as is the median over rounds of each round's
p99(six) / p99(none) (a round's three apps run within ~1.5 min of each other, so a
change in the machine's load hurts this pairing less than the pooled figure).
Goal (issue 9 §9): <= 1.1.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

from bench.console_common import AT, SIZE, bench_config, ensure_cache, loadavg, percentile, summary
from bench.fake_sources import SOURCES, loopback_only, serving, sources_config
from bench.responsiveness import IngestThread, Recorder, VirtualScreen, drive, make_app

GOAL = 1.1


def thread_cpu_seconds(hub: Any) -> float:
    """CPU time (user + system) the hub's thread has used, from /proc (Linux)."""
    thread = getattr(hub, "_thread", None)
    tid = getattr(thread, "native_id", None)
    try:
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_round(cache: Any, config: Any, presses: int, seed: int) -> tuple[list[float], dict[str, Any]]:
    """One fresh console on `config`: its key-press latencies (ms) and what the hub did."""
    from console.backend import Backend
    from console.launch import CacheProbe, source_hub

    hub = source_hub(config)
    backend = Backend(cache, config, lambda: AT, [CacheProbe(cache)], hub=hub)
    recorder = Recorder(VirtualScreen(*SIZE))
    app = make_app(backend, recorder)
    no_ingest = IngestThread(cache, config, None)
    log: list[str] = []
    facts: dict[str, Any] = {}

    async def run() -> dict[str, list[float]]:
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            no_ingest.start()
            latencies, info = await drive(app, recorder, presses, random.Random(seed), no_ingest, log)
            facts["timeouts"] = info["timeouts"]
            facts["cpu_ms"] = [x for xs in info["cpu_ms"].values() for x in xs]
            if hub is not None:
                facts["hub_cpu_s"] = thread_cpu_seconds(hub)
                facts["polls"] = hub.polls
                facts["states"] = {s.name: s.state for s in hub.statuses()}
                facts["errors"] = {s.name: s.last_error for s in hub.statuses() if s.last_error}
            await pilot.pause()
            return latencies

    started = time.perf_counter()
    latencies = asyncio.run(run())
    facts["seconds"] = time.perf_counter() - started
    no_ingest.join()
    return [x for xs in latencies.values() for x in xs], facts


def run(workdir: Path, spans: int, presses: int, rounds: int, hung: str,
        names: tuple[str, ...] = ("none", "five", "six")) -> int:
    from console.cache.store import Cache

    loopback_only()
    path = ensure_cache(workdir, spans)
    load_start = loadavg()
    print(f"keys with sources: {rounds} rounds x {presses} presses per configuration ({', '.join(names)}),"
          f" alternated; cache {path.name} ({spans:,} spans, read-only), {SIZE[0]}x{SIZE[1]}, panels refresh"
          f" 1 s; sources every 1 s, answers after 200 ms, {hung} hung; load {load_start}", flush=True)
    cache = Cache.open(path, read_only=True, create=False)
    pooled: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    """UI-thread CPU per press (time.thread_time, t0 -> t1): the work itself, not the waits."""
    per_round: list[str] = []
    round_p99: dict[str, list[float]] = {n: [] for n in names}
    try:
        with serving(0.2, hung=(hung,)) as urls:
            base = bench_config(path, refresh_seconds=1)
            configs = {n: configuration(n, base, urls, hung) for n in names}
            for i in range(rounds):
                for name, config in configs.items():
                    load = loadavg()
                    xs, facts = one_round(cache, config, presses, seed=i + 1)
                    pooled[name] += xs
                    cpu[name] += facts["cpu_ms"]
                    line = (f"  round {i + 1} {name:4}: {summary(xs)} (n={len(xs)},"
                            f" {facts['seconds']:.0f} s) load {load}")
                    if "polls" in facts:
                        line += (f"; hub polls {facts['polls']}, hub thread CPU {facts['hub_cpu_s']:.2f} s"
                                 f" ({facts['hub_cpu_s'] / facts['seconds'] * 100:.1f}% of the round),"
                                 f" states {facts['states']}")
                    if facts["timeouts"]:
                        line += f"; {len(facts['timeouts'])} presses showed nothing within 5 s"
                    print(line, flush=True)
                    per_round.append(f"{name}:{percentile(xs, 0.99):.1f}")
                    round_p99[name].append(percentile(xs, 0.99))
                    if facts.get("errors"):
                        print(f"    errors: {facts['errors']}", flush=True)
    finally:
        cache.close()
    p99 = {n: percentile(xs, 0.99) for n, xs in pooled.items()}
    for name, xs in pooled.items():
        print(f"  {name:4} pooled: {summary(xs)} (n={len(xs)}); UI-thread CPU per press:"
              f" median {statistics.median(cpu[name]):.1f} ms, p99 {percentile(cpu[name], 0.99):.1f} ms")
    figures = []
    for name, over in [(n, "none") for n in names if n != "none"] + [("six", "five")]:
        if name not in p99 or over not in p99:
            continue
        ratio = p99[name] / p99[over]
        paired = [a / b for a, b in zip(round_p99[name], round_p99[over], strict=True)]
        print(f"  p99 {name} / {over} = {p99[name]:.1f} / {p99[over]:.1f} = {ratio:.3f} (goal <= {GOAL})"
              f" {'ok' if ratio <= GOAL else 'MISSED'}; per round {', '.join(f'{r:.2f}' for r in paired)},"
              f" median {statistics.median(paired):.3f}")
        figures.append(f"{name}/{over}={ratio:.3f} (rounds median {statistics.median(paired):.3f})")
    print(f"RESULT keys_sources p99 {' '.join(figures)} (goal<={GOAL})"
          f" p99_ms={','.join(f'{n}:{v:.1f}' for n, v in p99.items())}"
          f" p50_ms={','.join(f'{n}:{percentile(xs, 0.5):.1f}' for n, xs in pooled.items())}"
          f" per_round_p99={','.join(per_round)}"
          f" presses={'/'.join(str(len(xs)) for xs in pooled.values())} hung={hung} spans={spans}"
          f" load_start={load_start} load_end={loadavg()}")
    return 0


def configuration(name: str, base: Any, urls: dict[str, str], hung: str) -> Any:
    """none: no sources; six: all six; five: without the hung one; hung: the hung one only."""
    if name == "none":
        return base
    drop = {"six": (), "five": (hung,), "hung": tuple(n for n in SOURCES if n != hung)}[name]
    return sources_config(base, urls, refresh_seconds=1, drop=drop)
