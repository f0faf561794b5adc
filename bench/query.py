"""Query benchmark: `llmdeck status` on a 1M- and a 10M-span cache covering the same 7 days.

    python bench/query.py [--small 1000000] [--large 10000000] [--workdir DIR] [--keep]

Both caches are built through the real path: the demo traffic generator streams
one 7-day run of Collector JSON lines into files of --per-file spans, and each
file goes through `llmdeck ingest`. Both caches cover the same 7 days, so the
large one is 10x as dense: a status summary that reads rollups (not spans)
should cost the same on both. With --workdir, a cache
that already holds the right number of spans is reused, not rebuilt.

Times `status_groups(cursor, at)` in-process on a read-only cache, at the end of
the 7 days: 3 warm-up runs, then median and p95 of 20 runs. Also times
`llmdeck status --json` end to end, once per cache, for information.
Goals (issue 2): under 50 ms on the large cache, large/small ratio under 1.5.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.measure import child_env, llmdeck, mb, run_measured  # noqa: E402
from console.cache.queries import status_groups  # noqa: E402
from console.cache.store import Cache, CacheError  # noqa: E402
from console.demo.traffic import TrafficModel, export_requests, write_collector_jsonl  # noqa: E402

SEED = 11
DAYS = 7
SPANS_PER_LINE = 500
END = datetime(2026, 1, 1)  # naive UTC, like the cache; every public model is priced by then
START = END - timedelta(days=DAYS)
# The traffic generator's clock is a random walk that may stop a little short of the end of its
# range or pile its overshoot on the last instant; generating 2 h past END keeps every status
# window before END at full, even density (those 2 h hold ~1% of the spans, read by no window).
GEN_END = END + timedelta(hours=2)


def span_count(path: Path) -> int | None:
    """Spans in an existing cache, or None if there is no usable cache there."""
    if not path.exists():
        return None
    try:
        cache = Cache.open(path, read_only=True)
    except CacheError:
        return None
    try:
        return int(cache.cursor().execute("SELECT count(*) FROM spans").fetchall()[0][0])
    finally:
        cache.close()


def write_chunk(path: Path, requests: Iterator[dict[str, Any]], lines: int) -> int:
    """Stream the next `lines` export requests into `path`; the number of spans written."""
    spans = 0

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal spans
        for req in itertools.islice(requests, lines):
            spans += sum(len(ss["spans"]) for rs in req["resourceSpans"] for ss in rs["scopeSpans"])
            yield req

    write_collector_jsonl(str(path), counted())
    return spans


def build(cache: Path, spans: int, per_file: int, gen_dir: Path, env: dict[str, str],
          keep: bool) -> None:
    """Build `cache` with `spans` spans from one traffic stream, written and ingested file by file.

    The ingest of file i (a child process) overlaps writing file i+1; a file is
    deleted once ingested unless `keep`.
    """
    found = span_count(cache)
    if found == spans:
        print(f"reusing {cache} ({spans:,} spans)")
        return
    if cache.exists():
        print(f"{cache} holds {found} spans, not {spans:,}: rebuilding")
    for p in (cache, Path(f"{cache}.wal")):
        p.unlink(missing_ok=True)
    gen_dir.mkdir(parents=True, exist_ok=True)
    lines_per_file = max(1, per_file // SPANS_PER_LINE)
    chunks = math.ceil(spans / (lines_per_file * SPANS_PER_LINE))
    print(f"building {cache}: {spans:,} spans over {DAYS} days in {chunks} file(s)", flush=True)
    requests = export_requests(TrafficModel(seed=SEED), _ns(START), _ns(GEN_END), spans, SPANS_PER_LINE)
    started = time.perf_counter()

    def ingest(i: int, path: Path, count: int) -> None:
        run = run_measured(llmdeck("--cache", str(cache), "ingest", str(path), "--json"), env)
        stored = json.loads(run.stdout)["spans_stored"]
        if stored != count:
            raise SystemExit(f"bench: {path}: stored {stored} spans, expected {count}")
        print(f"  [{i + 1}/{chunks}] {count:,} spans ingested in {run.seconds:.1f} s"
              f" ({count / run.seconds:,.0f} spans/s, peak RSS {run.peak_rss_mb:.0f} MB)", flush=True)
        if not keep:
            path.unlink()

    with ThreadPoolExecutor(max_workers=1) as ingester:  # one writer: files are ingested in order
        running: list[Future[None]] = []
        for i in range(chunks):
            if i >= 2:
                running[i - 2].result()  # at most two files on disk: one ingesting, one being written
            path = gen_dir / f"{cache.stem}-part{i:03d}.jsonl"
            running.append(ingester.submit(ingest, i, path, write_chunk(path, requests, lines_per_file)))
        for future in running:
            future.result()
    if span_count(cache) != spans:
        raise SystemExit(f"bench: {cache} does not hold {spans:,} spans after the build")
    print(f"  built in {time.perf_counter() - started:.0f} s, {mb(cache.stat().st_size)}")


def _ns(t: datetime) -> int:
    return int(t.replace(tzinfo=UTC).timestamp()) * 10**9


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def time_status(cache_path: Path, warmup: int, runs: int) -> tuple[list[float], int, str]:
    """Milliseconds per `status_groups` call, the number of groups, and the rollup table sizes."""
    cache = Cache.open(cache_path, read_only=True)
    try:
        cur = cache.cursor()
        sizes = ", ".join(
            f"{cur.execute(f'SELECT count(*) FROM {t}').fetchall()[0][0]:,} {t} rows"
            for t in ("rollup_minute", "rollup_hour")
        )
        for _ in range(warmup):
            groups = status_groups(cur, END)
        samples = []
        for _ in range(runs):
            t = time.perf_counter()
            groups = status_groups(cur, END)
            samples.append((time.perf_counter() - t) * 1000)
    finally:
        cache.close()
    if not groups or not any(g.window == "5m" for g in groups):
        raise SystemExit(f"bench: status on {cache_path} found no traffic in the last 5 minutes")
    return samples, len(groups), sizes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=1_000_000, help="spans in the small cache")
    ap.add_argument("--large", type=int, default=10_000_000, help="spans in the large cache")
    ap.add_argument("--per-file", type=int, default=1_000_000, help="spans per generated file")
    ap.add_argument("--workdir", type=Path, help="keeps built caches for later runs (default: temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the generated JSON lines (and a temp dir)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="llmdeck-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = child_env(workdir)
    caches = {size: workdir / f"status-{size}.duckdb" for size in (args.small, args.large)}
    for size, path in caches.items():
        build(path, size, args.per_file, workdir / "generated", env, args.keep)

    at = END.isoformat() + "Z"
    print(f"status at {at} (end of the 7 days), {args.warmup} warm-up runs, then {args.runs}:")
    medians: dict[int, float] = {}
    for size, path in caches.items():
        samples, groups, sizes = time_status(path, args.warmup, args.runs)
        medians[size] = statistics.median(samples)
        cli = run_measured(llmdeck("--cache", str(path), "status", "--at", at, "--json"), env)
        print(f"  {size:>12,} spans: status_groups median {medians[size]:7.2f} ms"
              f"  p95 {percentile(samples, 0.95):7.2f} ms  ({groups} groups);"
              f" `llmdeck status --json` end to end {cli.seconds * 1000:,.0f} ms,"
              f" peak RSS {cli.peak_rss_mb:.0f} MB\n{'':19}({sizes})")
    small_ms, large_ms = medians[args.small], medians[args.large]
    ratio = large_ms / small_ms
    print(f"  large/small ratio {ratio:.2f} (goal < 1.5) {'ok' if ratio < 1.5 else 'MISSED'};"
          f" large median {large_ms:.2f} ms (goal < 50) {'ok' if large_ms < 50 else 'MISSED'}")
    print(f"RESULT status_10m_ms={large_ms:.2f} (goal<50) ratio_10m_1m={ratio:.2f} (goal<1.5)"
          f" small={args.small} large={args.large}")

    if args.keep:
        print(f"kept {workdir}")
    elif not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        shutil.rmtree(workdir / "xdg-config", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
