"""Billing sync benchmark: 90 days x 3 providers through `console.billing_sync.sync` into a fresh cache.

    python bench/billing_sync.py [--days 90] [--page-days 7] [--lines-per-day 12] [--repeat 3]

The providers are the loopback replay of the OpenAI, Anthropic and OpenRouter billing APIs
(tests/faults/billing_server.py: the documented shapes, several pages, decimal-string cents),
served from a separate process so that neither its CPU in this process nor its memory is
counted against the sync. Each measured sync runs in its own fresh process:

  (a) wall time: `sync(config, cache, since=...)` for the three sources (fetch every page
      concurrently, parse, store each source in one transaction), after imports and cache
      creation; the stored totals are checked against the replay's exact Decimal sums;
  (b) memory flat in pages: the same sync under tracemalloc, the same 90 days served as pages
      of 1, 7 and 30 days (many pages vs few); then 30/60/90 days at 1-day pages, where memory
      may grow with the data (the fetched lines are kept until stored) but not with pages.
Goals (issue 11 section 5): wall time < 5 s; peak traced memory with 1-day pages <= 1.25x the
30-day pages' (+256 KiB), the same rule as tests/unit/test_billing_pages.py used to assert.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.measure import REPO, child_env  # noqa: E402
from bench.otlp_load import load_average  # noqa: E402

PROVIDERS = ("openai", "anthropic", "openrouter")
KEY_VARS = {"openai": "LLMDECK_BENCH_OPENAI_ADMIN", "anthropic": "LLMDECK_BENCH_ANTHROPIC_ADMIN",
            "openrouter": "LLMDECK_BENCH_OPENROUTER_MGMT"}
SECTIONS = {"openai": "openai_billing", "anthropic": "anthropic_billing", "openrouter": "openrouter_billing"}


def today_utc() -> date:
    from console.timeutil import utc_now

    return utc_now().date()


# -- the replay server, in its own process ------------------------------------------------------


def serve_main(start: date, days: int, page_days: int, lines_per_day: int, today: date) -> None:
    """Child mode: serve the replay on 127.0.0.1, print its URL, stop when stdin closes."""
    from tests.faults.billing_server import BillingServer

    with BillingServer(start=start, days=days, page_days=page_days, lines_per_day=lines_per_day,
                       today=today) as server:
        print(server.url, flush=True)
        sys.stdin.read()


class Replay:
    """The replay server process: `with Replay(...) as url:`."""

    def __init__(self, start: date, days: int, page_days: int, lines_per_day: int, today: date) -> None:
        self.args = ["--serve", "--start", start.isoformat(), "--days", str(days), "--page-days",
                     str(page_days), "--lines-per-day", str(lines_per_day), "--today", today.isoformat()]
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> str:
        env = child_env(Path(tempfile.gettempdir()))
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *self.args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env, cwd=REPO)
        assert self.proc.stdout is not None
        url = self.proc.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            self.__exit__()
            raise SystemExit(f"bench: the replay server did not start (said {url!r})")
        return url

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- one sync, in its own process ----------------------------------------------------------------


def config_text(url: str) -> str:
    parts = []
    for p in PROVIDERS:
        parts.append(f'[[sources.{SECTIONS[p]}]]\nname = "bench-{p}"\nadmin_key_ref = "env:{KEY_VARS[p]}"\n'
                     f'url = "{url}"\ntimeout_seconds = 10\nsince_days = 400\n')
    return "".join(parts)


def sync_main(url: str, start: date, today: date, traced: bool) -> None:
    """Child mode: one sync of the three sources into a fresh cache; print a JSON report."""
    from console.billing_sync import sync
    from console.cache.store import Cache
    from console.config import load_config

    with tempfile.TemporaryDirectory(prefix="llmdeck-bench-billing-") as tmp:
        cfg = Path(tmp) / "config.toml"
        cfg.write_text(config_text(url))
        config = load_config(cfg, env={})
        cache = Cache.open(Path(tmp) / "cache.duckdb")
        try:
            if traced:
                import gc
                import tracemalloc

                gc.collect()
                tracemalloc.start()
            began = time.perf_counter()
            results = sync(config, cache, since=start, today=today)
            seconds = time.perf_counter() - began
            peak = 0
            if traced:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
            rows = cache.con.execute(
                "SELECT provider, count(*), sum(amount) FROM billing GROUP BY ALL").fetchall()
        finally:
            cache.close()
    report: dict[str, Any] = {
        "seconds": seconds, "peak": peak,
        "errors": [r.error for r in results if not r.ok],
        "pages": {r.provider: r.pages for r in results},
        "days": {r.provider: r.days for r in results},
        "totals": {r.provider: str(r.totals.get("USD", Decimal(0))) for r in results},
        "stored": {str(p): [int(n), str(s)] for p, n, s in rows},
    }
    print(json.dumps(report))


def expected_totals(start: date, days: int, lines_per_day: int,
                    today: date) -> dict[str, tuple[int, Decimal]]:
    """What the cache must hold per provider: lines and exact dollars (at the stored 10 places)
    of the generated costs from the first day each source asks for through today."""
    from console.cache.billing_store import exact
    from tests.faults.billing_server import BillingServer

    server = BillingServer(start=start, days=days, lines_per_day=lines_per_day, today=today)
    out = {}
    for p in PROVIDERS:
        first = max(start, today - timedelta(days=30)) if p == "openrouter" else start
        costs = [c for c in server.data[p].costs if first <= c.day <= today]
        out[p] = (len(costs), sum((exact(c.dollars) for c in costs), Decimal(0)))
    return out


def run_sync(url: str, start: date, today: date, traced: bool) -> dict[str, Any]:
    env = child_env(Path(tempfile.gettempdir()))
    env.update({v: f"bench-key-{p}-{'x' * 24}" for p, v in KEY_VARS.items()})
    cmd = [sys.executable, str(Path(__file__).resolve()), "--sync", url, "--start", start.isoformat(),
           "--today", today.isoformat(), *(["--traced"] if traced else [])]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"bench: the sync child failed (exit {proc.returncode})")
    report: dict[str, Any] = json.loads(proc.stdout)
    if report["errors"]:
        raise SystemExit(f"bench: sync errors: {report['errors']}")
    return report


def check(report: dict[str, Any], want: dict[str, tuple[int, Decimal]]) -> bool:
    for p, (lines, total) in want.items():
        n, s = report["stored"].get(p, [0, "0"])
        if n != lines or Decimal(s) != total or Decimal(report["totals"][p]) != total:
            print(f"  MISMATCH {p}: stored {n} lines / {s}, expected {lines} / {total}")
            return False
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--page-days", type=int, default=7, help="days per page for the timed run")
    ap.add_argument("--lines-per-day", type=int, default=12, help="cost lines per provider per day")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs (best and median shown)")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--sync", metavar="URL", help=argparse.SUPPRESS)
    ap.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--start", help=argparse.SUPPRESS)
    ap.add_argument("--today", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve_main(date.fromisoformat(args.start), args.days, args.page_days, args.lines_per_day,
                   date.fromisoformat(args.today))
        return 0
    if args.sync:
        sync_main(args.sync, date.fromisoformat(args.start), date.fromisoformat(args.today), args.traced)
        return 0

    today = today_utc()
    loads = [load_average()]
    ok = True

    def window(days: int) -> tuple[date, int]:
        return today - timedelta(days=days - 1), days  # `days` days ending with today

    # (a) wall time
    start, days = window(args.days)
    want = expected_totals(start, days, args.lines_per_day, today)
    lines = sum(n for n, _ in want.values())
    print(f"{args.days} days x 3 providers ({lines:,} cost lines; OpenRouter keeps 30 days),"
          f" {args.page_days}-day pages, {args.repeat} timed runs, each in a fresh process and cache")
    times: list[float] = []
    with Replay(start, days, args.page_days, args.lines_per_day, today) as url:
        for _ in range(args.repeat):
            r = run_sync(url, start, today, traced=False)
            ok = check(r, want) and ok
            times.append(r["seconds"])
            loads.append(load_average())
    pages = sum(r["pages"].values())
    print(f"  (a) sync wall time   best {min(times):.3f} s, median {statistics.median(times):.3f} s,"
          f" worst {max(times):.3f} s  ({pages} pages: {r['pages']})")
    with Replay(start, days, 1, args.lines_per_day, today) as url:  # the most pages: one day each
        r1 = run_sync(url, start, today, traced=False)
    ok = check(r1, want) and ok
    loads.append(load_average())
    print(f"      with 1-day pages {r1['seconds']:.3f} s ({sum(r1['pages'].values())} pages), once")

    # (b) memory against pages at a fixed 90 days, then against days at 1-day pages
    peaks: dict[tuple[int, int], tuple[int, int]] = {}
    for d, pd in ((args.days, 1), (args.days, 7), (args.days, 30), (30, 1), (60, 1)):
        s, n = window(d)
        with Replay(s, n, pd, args.lines_per_day, today) as url:
            r = run_sync(url, s, today, traced=True)
        ok = check(r, expected_totals(s, n, args.lines_per_day, today)) and ok
        peaks[(d, pd)] = (r["peak"], sum(r["pages"].values()))
        loads.append(load_average())
    print("  (b) peak traced memory of the sync (tracemalloc, this process only):")
    for (d, pd), (peak, pg) in sorted(peaks.items()):
        print(f"      {d:3d} days, {pd:2d}-day pages: {pg:4d} pages  peak {peak / 2**20:6.2f} MiB")
    many, few = peaks[(args.days, 1)][0], peaks[(args.days, 30)][0]
    ratio = many / few
    flat = many <= few * 1.25 + 256 * 1024
    best = min(times)
    print(f"  sync wall time             {best:6.3f} s   goal < 5 s     {'ok' if best < 5 else 'MISSED'}"
          f" (worst {max(times):.3f} s)")
    print(f"  peak 1-day / 30-day pages  {ratio:6.2f}     goal <= 1.25   {'ok' if flat else 'MISSED'}"
          f" ({peaks[(args.days, 1)][1]} vs {peaks[(args.days, 30)][1]} pages)")
    print(f"  stored lines and exact totals match the replay: {'yes' if ok else 'NO'}")
    print(f"  load average (1 min) {' -> '.join(f'{x:.2f}' for x in loads)}")
    print(f"RESULT billing_sync_s={best:.3f} (goal<5) worst_s={max(times):.3f}"
          f" one_day_pages_s={r1['seconds']:.3f} peak_1d_over_30d_pages={ratio:.2f} (goal<=1.25)"
          f" peak_mib_90d={many / 2**20:.2f}"
          f" peak_mib_30d_1dpages={peaks[(30, 1)][0] / 2**20:.2f} pages={pages} exact={'yes' if ok else 'NO'}"
          f" load={max(loads):.2f} cpus={os.cpu_count()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
