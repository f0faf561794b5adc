"""Shared by the console benchmarks (startup.py, responsiveness.py, memory.py).

The benchmark caches are bench/query.py's: its `build` streams one 7-day run of
the demo traffic generator (seed 11) through `llmdeck ingest`, and the files are
named as query.py names them, so `bench/query.py --workdir DIR` and these
scripts share one set of caches in DIR (default /work/bench-caches).

The console is always given the demo configuration's SLOs and budgets
(console/demo/config.py) and a clock pinned to the end of the cached 7 days
(query.END), so every panel has full windows of traffic to compute: with the
wall clock, the data would be months old and most panels would be empty.

    python bench/console_common.py [--workdir DIR] [1000000 10000000]   # build only
"""

from __future__ import annotations

import math
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import query  # noqa: E402
from bench.measure import REPO, child_env  # noqa: E402

DEFAULT_WORKDIR = Path("/work/bench-caches")
SMALL = 1_000_000
LARGE = 10_000_000
AT: datetime = query.END - timedelta(minutes=1)
"""The console's pinned "now": the last minute of the caches' 7 days (naive UTC). Not query.END
itself, midnight of a new month: "today" and "this month" would be empty and the budgets idle."""
SIZE = (120, 40)
"""Terminal size for every console benchmark: "roomy", so the overview also draws its charts."""

__all__ = ["AT", "DEFAULT_WORKDIR", "LARGE", "REPO", "SIZE", "SMALL", "bench_config", "cache_path",
           "child_env", "console_env", "ensure_cache", "loadavg", "percentile", "summary"]


def cache_path(workdir: Path, spans: int) -> Path:
    """Where bench/query.py keeps the cache of `spans` spans in `workdir`."""
    return workdir / f"status-{spans}.duckdb"


def ensure_cache(workdir: Path, spans: int, per_file: int = 1_000_000) -> Path:
    """The cache of `spans` spans in `workdir`, built by bench/query.py's `build` if missing.

    A cache that already holds exactly `spans` spans is reused as it is.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    path = cache_path(workdir, spans)
    query.build(path, spans, per_file, workdir / "generated", child_env(workdir), keep=False)
    return path


def bench_config(path: Path, refresh_seconds: float = 1.0):  # -> console.config.Config
    """The demo's config (its 9 SLOs and 4 budgets) on the cache at `path`, refreshing every second."""
    from console.config import UiSettings
    from console.demo.config import demo_config

    config = demo_config(path)
    return config.model_copy(update={"ui": UiSettings(refresh_seconds=refresh_seconds)})


def loadavg() -> str:
    """`/proc/loadavg`'s three load averages: the machine is shared, so every figure carries them."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (the same definition as bench/query.py)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summary(samples: list[float]) -> str:
    """`p50 … p95 … p99 … max …` in milliseconds."""
    return (f"p50 {percentile(samples, 0.50):.1f} ms  p95 {percentile(samples, 0.95):.1f} ms"
            f"  p99 {percentile(samples, 0.99):.1f} ms  max {max(samples):.1f} ms")


def console_env(workdir: Path) -> dict[str, str]:
    """Environment for a console child: this checkout, an empty config dir, a colour terminal."""
    env = child_env(workdir)
    env.update(TERM="xterm-256color", COLORTERM="truecolor", LANG=os.environ.get("LANG", "C.UTF-8"))
    for var in ("TEXTUAL", "TEXTUAL_DRIVER", "TEXTUAL_FPS"):
        env.pop(var, None)
    return env


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="build (or reuse) the console benchmarks' caches")
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    ap.add_argument("sizes", type=int, nargs="*", default=[SMALL, LARGE])
    args = ap.parse_args()
    for n in args.sizes:
        print(ensure_cache(args.workdir, n), flush=True)
