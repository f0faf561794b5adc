"""Ingest benchmark: `llmdeck ingest` against the parse floor and DuckDB's own read_json.

    python bench/ingest.py [--spans 1000000] [--repeat 1] [--workdir DIR] [--keep]

Generates N spans in the Collector file exporter format (500 spans per line,
fixed seed), then measures, each step in its own process:
  (a) parse floor: read the file and decode every line with orjson, touching every span;
  (b) DuckDB read_json: typed read of the same file, flattened into a table with
      the columns of the cache's `spans` table (CREATE TABLE AS);
  (c) `llmdeck ingest --json` into a fresh cache, end to end (wall time of the process).
Goals (issue 2): ingest <= 3x parse floor, read_json >= 2x ingest, peak RSS < 1 GB.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.measure import Measured, child_env, llmdeck, mb, run_measured  # noqa: E402

SEED = 7
SPANS_PER_LINE = 500
END = "2026-01-01T00:00:00Z"  # every public model in the shipped price table is priced by then
HOURS = 24.0


def generate(path: Path, spans: int) -> None:
    """Write the benchmark file (atomically, so an existing file is always complete)."""
    from console.cli import parse_timestamp
    from console.demo.traffic import TrafficModel, export_requests, write_collector_jsonl

    end_ns = int(parse_timestamp(END).replace(tzinfo=UTC).timestamp()) * 10**9
    start_ns = end_ns - int(HOURS * 3600) * 10**9
    tmp = path.with_suffix(".partial")
    requests = export_requests(TrafficModel(seed=SEED), start_ns, end_ns, spans, SPANS_PER_LINE)
    write_collector_jsonl(str(tmp), requests)
    tmp.rename(path)


# -- (a) the parse floor ------------------------------------------------------


def parse_floor(path: Path) -> int:
    import orjson

    n = 0
    with open(path, "rb") as f:
        for line in f:
            for rs in orjson.loads(line).get("resourceSpans", ()):
                for ss in rs.get("scopeSpans", ()):
                    for sp in ss.get("spans", ()):
                        if sp["spanId"]:
                            n += 1
    return n


def step_main(step: str, path: Path, db: Path, max_object: int) -> None:
    """Child mode: run one baseline, print {"seconds", "spans"}; imports happen before the clock."""
    if step == "parse":
        import orjson  # noqa: F401

        start = time.perf_counter()
        spans = parse_floor(path)
    else:
        from bench.read_json_baseline import read_json

        start = time.perf_counter()
        spans = read_json(path, db, max_object)
    print(json.dumps({"seconds": time.perf_counter() - start, "spans": spans}))


# -- the run ------------------------------------------------------------------


@dataclass
class Step:
    """Runs of one measurement: the best time and the highest peak RSS."""

    label: str
    times: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)

    def add(self, seconds: float, run: Measured) -> None:
        self.times.append(seconds)
        self.rss.append(run.peak_rss_mb)

    def line(self, spans: int, extra: str = "") -> str:
        t = min(self.times)
        median = f" (median {statistics.median(self.times):.2f})" if len(self.times) > 1 else ""
        return (f"  {self.label:<27} {t:8.2f} s{median} {spans / t:>10,.0f} spans/s"
                f"  peak RSS {max(self.rss):5.0f} MB{extra}")


def load_average() -> str:
    """The 1-minute load average: other work on the machine changes every figure here."""
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[0]
    except OSError:
        return "?"


def checked(stdout: str, key: str, expected: int, what: str) -> dict[str, Any]:
    """A step's JSON output, after checking it handled every span."""
    result: dict[str, Any] = json.loads(stdout)
    if result.get(key) != expected:
        raise SystemExit(f"bench: {what} handled {result.get(key)} spans, expected {expected}")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=1, help="best of R runs of each measurement")
    ap.add_argument("--workdir", type=Path, help="where files go (default: a fresh temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the generated file and the databases")
    ap.add_argument("--step", choices=["parse", "read_json"], help=argparse.SUPPRESS)
    ap.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--max-object", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        step_main(args.step, args.file, args.db, args.max_object)
        return 0

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="llmdeck-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env, n = child_env(workdir), args.spans
    data = workdir / f"collector-{n}-seed{SEED}.jsonl"
    if data.exists():
        print(f"reusing {data}")
    else:
        print(f"generating {n:,} spans into {data} ...", flush=True)
        t = time.perf_counter()
        generate(data, n)
        print(f"  generated in {time.perf_counter() - t:.1f} s")
    with open(data, "rb") as f:
        lengths = [len(line) for line in f]
    # DuckDB's default maximum_object_size (16 MiB), raised only if a line needs it: a much
    # larger value than needed makes read_json markedly slower, which would not be fair.
    max_object = max(16 * 2**20, 2 * max(lengths))
    print(f"file: {n:,} spans, {len(lengths):,} lines (longest {max(lengths) / 1e3:,.0f} kB),"
          f" {mb(data.stat().st_size)}; best of {args.repeat} run(s)")

    me = [sys.executable, str(Path(__file__).resolve()), "--file", str(data)]
    cache, db = workdir / "ingest-cache.duckdb", workdir / "read_json.duckdb"
    made = [cache, Path(f"{cache}.wal"), db, Path(f"{db}.wal")]
    parse, rj = Step("(a) parse floor (orjson)"), Step("(b) DuckDB read_json")
    ing = Step("(c) llmdeck ingest (wall)")
    own: list[float] = []
    loads = [load_average()]
    for _ in range(args.repeat):
        for p in made:
            p.unlink(missing_ok=True)
        r = run_measured([*me, "--step", "parse"], env)
        parse.add(float(checked(r.stdout, "spans", n, "parse floor")["seconds"]), r)
        r = run_measured([*me, "--step", "read_json", "--db", str(db), "--max-object", str(max_object)], env)
        rj.add(float(checked(r.stdout, "spans", n, "read_json")["seconds"]), r)
        r = run_measured(llmdeck("--cache", str(cache), "ingest", str(data), "--json"), env)
        own.append(float(checked(r.stdout, "spans_stored", n, "llmdeck ingest")["seconds"]))
        ing.add(r.seconds, r)
        loads.append(load_average())

    print(parse.line(n))
    print(rj.line(n))
    print(ing.line(n, f"  (its own report: {min(own):.2f} s)"))
    from bench.read_json_baseline import agree  # not at the top: the parse child stays lean

    print(f"  cache file {mb(cache.stat().st_size)}, read_json db {mb(db.stat().st_size)};"
          f" same rows, errors, tokens and dimensions: {'yes' if agree(cache, db) else 'NO'}")
    t_parse, t_rj, t_ing, rss = min(parse.times), min(rj.times), min(ing.times), max(ing.rss)
    r1, r2 = t_ing / t_parse, t_rj / t_ing
    print(f"  ingest / parse floor   {r1:6.2f}     goal <= 3.0   {'ok' if r1 <= 3.0 else 'MISSED'}")
    print(f"  read_json / ingest     {r2:6.2f}     goal >= 2.0   {'ok' if r2 >= 2.0 else 'MISSED'}")
    print(f"  peak RSS of ingest     {rss:6.0f} MB  goal < 1024   {'ok' if rss < 1024 else 'MISSED'}")
    print(f"  load average (1 min)   {' -> '.join(loads)}  (2 cores: above ~0.5 the figures are noisy)")
    print(f"RESULT ingest/parse_floor={r1:.2f} (goal<=3.0) read_json/ingest={r2:.2f} (goal>=2.0)"
          f" peak_rss_mb={rss:.0f} (goal<1024) spans_per_s={n / t_ing:.0f} spans={n}"
          f" load={max(loads, key=lambda x: float(x) if x != '?' else 0.0)}")

    if args.keep:
        print(f"kept {workdir}")
    elif args.workdir:
        for p in (data, *made):
            p.unlink(missing_ok=True)
        shutil.rmtree(workdir / "xdg-config", ignore_errors=True)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
