"""Part A of the source benchmarks: one full refresh of six sources vs the slowest source alone.

    python bench/sources.py refresh [--delay 0.2] [--repeat 5]

Six fake sources (bench/fake_sources.py, served by a child process on loopback),
every HTTP answer sent `--delay` seconds after the request is read: prom-a (alerts
+ two ratio PromQL SLOs: 32 instant queries), prom-b (one latency-histogram SLO,
alerts off: 16 queries, plus the `le` lookup on a fresh poller), am-a and am-b
(alerts and silences, two requests each), vllm and litellm (`/metrics`, one request).
Polled through the real pollers (`console.source_setup.build_pollers`, the
console's LazyPoller -> Prometheus/Alertmanager/scrape pollers, `SourceClient`):

- cold: `run_pollers_once(build_pollers(config))` with fresh pollers, as
  `llmdeck sources check` does (new clients, connections, first-poll set-up);
  the baseline is `run_pollers_once([that one source's fresh poller])`;
- warm: `SourceHub.poll_once` of every poller concurrently (as the console's hub
  polls them), on pollers that have polled once already; the baseline is
  `SourceHub.poll_once` of the one poller alone.

Each round measures the full refresh and then every source alone (the order of the
full refresh, first or last in the round, alternates); the slowest single source
is the one with the highest median alone. Figures are medians of `--repeat` rounds
after one unmeasured warm-up. Goal (issue 9 §9): full / slowest alone <= 1.3.

Two configurations: "slos" (as above) and "flat" (no PromQL SLOs, alerts read on
both Prometheus sources: every source's poll is one round of requests, so the
full refresh should take one answer's delay, and any serial per-source cost shows).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from typing import Any

from bench.console_common import loadavg
from bench.fake_sources import SOURCES, loopback_only, serving, sources_config

GOAL = 1.3


def _check(readings: Sequence[Any], failures: list[str]) -> None:
    """Note every source that did not end its poll live (the figure would then be a failure's)."""
    for r in readings:
        if r.status.state != "live" or r.status.last_error:
            failures.append(f"{r.name}: {r.status.state} {r.status.last_error or ''}".strip())


def cold_round(config: Any, full_first: bool, failures: list[str]) -> tuple[float, dict[str, float]]:
    """(full refresh s, {source: s alone}) with fresh pollers through run_pollers_once."""
    from console.source_hub import run_pollers_once
    from console.source_setup import build_pollers

    def timed(names: Sequence[str]) -> float:
        pollers = [p for p in build_pollers(config) if p.name in names]
        start = time.perf_counter()
        readings = run_pollers_once(pollers)
        elapsed = time.perf_counter() - start
        _check(readings, failures)
        return elapsed

    full = timed(list(SOURCES)) if full_first else 0.0
    alone = {name: timed([name]) for name in SOURCES}
    if not full_first:
        full = timed(list(SOURCES))
    return full, alone


async def warm_rounds(config: Any, repeat: int, failures: list[str]) -> list[tuple[float, dict[str, float]]]:
    """`repeat` rounds of SourceHub.poll_once on one set of pollers, after one unmeasured poll of all."""
    from console.source_hub import SourceHub
    from console.source_setup import build_pollers

    pollers = build_pollers(config)
    hub = SourceHub(pollers)

    async def timed(chosen: Sequence[Any]) -> float:
        start = time.perf_counter()
        await asyncio.gather(*(hub.poll_once(p) for p in chosen))
        elapsed = time.perf_counter() - start
        _check([r for r in hub.readings() if r.name in {p.name for p in chosen}], failures)
        return elapsed

    rounds = []
    try:
        await timed(pollers)  # first polls: imports, connections, the le lookup
        for i in range(repeat):
            full = await timed(pollers) if i % 2 == 0 else 0.0
            alone = {p.name: await timed([p]) for p in pollers}
            if i % 2:
                full = await timed(pollers)
            rounds.append((full, alone))
    finally:
        await asyncio.gather(*(p.aclose() for p in pollers), return_exceptions=True)
    return rounds


def report(label: str, rounds: list[tuple[float, dict[str, float]]]) -> tuple[float, float, float, str]:
    """Print the rounds and medians; (full median, slowest-alone median, ratio, slowest name)."""
    for i, (full, alone) in enumerate(rounds, 1):
        singles = "  ".join(f"{n} {s * 1000:.0f}" for n, s in alone.items())
        print(f"  {label} round {i}: full {full * 1000:.0f} ms | alone: {singles}", flush=True)
    medians = {n: statistics.median(a[n] for _, a in rounds) for n in SOURCES}
    slowest = max(medians, key=lambda n: medians[n])
    full = statistics.median(f for f, _ in rounds)
    ratio = full / medians[slowest]
    per_round = [f / a[slowest] for f, a in rounds]
    print(f"  {label}: full refresh median {full * 1000:.0f} ms; alone (medians): "
          + ", ".join(f"{n} {m * 1000:.0f}" for n, m in medians.items())
          + f"; slowest alone {slowest} {medians[slowest] * 1000:.0f} ms;"
          f" ratio {ratio:.3f} (per round {min(per_round):.3f}-{max(per_round):.3f})"
          f" (goal <= {GOAL}) {'ok' if ratio <= GOAL else 'MISSED'}", flush=True)
    return full, medians[slowest], ratio, slowest


def run(delay: float, repeat: int) -> int:
    """Both configurations (with PromQL SLOs, then one request round per source), cold and warm."""
    from console.config import Config
    from console.source_hub import run_pollers_once
    from console.source_setup import build_pollers

    loopback_only()
    load_start = loadavg()
    print(f"refresh: six sources, every answer after {delay * 1000:.0f} ms, {repeat} rounds;"
          f" load {load_start}", flush=True)
    failures: list[str] = []
    figures: list[str] = []
    with serving(delay) as urls:
        for variant, slos in (("slos", True), ("flat", False)):
            config = sources_config(Config(), urls, slos=slos)
            print(f" {variant}: {'three PromQL SLOs (prom-a 2, prom-b 1)' if slos else 'no PromQL SLOs'}",
                  flush=True)
            for r in run_pollers_once(build_pollers(config)):  # warm-up: imports, .pyc
                print(f"  warm-up {r.name:8} {r.status.state:5} {r.status.detail}", flush=True)
            cold_rounds = [cold_round(config, i % 2 == 0, failures) for i in range(repeat)]
            cold = report(f"{variant} cold", cold_rounds)
            warm = report(f"{variant} warm", asyncio.run(warm_rounds(config, repeat, failures)))
            for mode, (full, slowest, ratio, name) in (("cold", cold), ("warm", warm)):
                figures.append(f"{variant}_{mode}_ratio={ratio:.3f}"
                               f" ({full * 1000:.0f}/{slowest * 1000:.0f} ms {name})")
            print(f"  load {loadavg()}", flush=True)
    if failures:
        print(f"  {len(failures)} polls did not end live (the figures include them): {failures[:5]}")
    print(f"RESULT refresh {' '.join(figures)} (goal<={GOAL}) delay_ms={delay * 1000:.0f}"
          f" rounds={repeat} failed_polls={len(failures)} load_start={load_start} load_end={loadavg()}")
    return 0
