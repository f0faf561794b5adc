"""In-process microbench of the receiver's store step (`BatchStore.store`), per commit.

    python bench/store_step.py [--prefill 1000000] [--batch 2048] [--commits 60] [--profile]

A fresh cache (temp dir) is filled with --prefill GenAI spans from the demo's traffic model
(mapped by the receiver's protobuf path, unique ids stamped per copy), in 64k-span commits;
then --commits commits of --batch new spans each are timed one by one (wall and process CPU).
Prints the median and quartiles per commit and per span. The receive process's DuckDB
settings (console.receiver_pool.WRITER_SETTINGS) are applied unless --default-settings.
--profile splits one store step into its statements (timing each `cur.execute`).
Spans start in the last hour (as bench/receiver.py sends them), so the dedupe reads every
stored span of the hours a batch touches: --spread-hours H spreads the prefill over H hours.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402


def base_table(spans: int) -> pa.Table:
    """`spans` mapped GenAI spans (the receiver's protobuf mapping of the demo's traffic)."""
    from bench.otlp_load import build_templates
    from console.cache.batching import BatchBuilder
    from console.config import Config
    from console.receiver_pool import map_protobuf

    builder = BatchBuilder(Config())
    tables = []
    for i, t in enumerate(build_templates(max(1, -(-spans // 512)))):
        mapped = map_protobuf(builder, t.body, "otlp-http 127.0.0.1", i)
        assert isinstance(mapped, tuple) and mapped[0] is not None
        tables.append(mapped[0])
    return pa.concat_tables(tables).slice(0, spans).combine_chunks()


def stamped(table: pa.Table, serial: int, shift_ns: int = 0, window_s: float = 0.0) -> pa.Table:
    """`table` with ids unique to `serial` (and start times moved back `shift_ns`, or with
    `window_s`, folded into the last `window_s` seconds: live traffic)."""
    n = table.num_rows
    # The serial goes at the END of the trace id: real trace ids are random, so a batch's
    # min..max covers every stored row group (a serial in front would let DuckDB's join
    # filter skip the stored spans' row groups, hiding what the dedupe costs).
    trace = pc.binary_join_element_wise(pc.utf8_slice_codeunits(table["trace_id"], 0, 20),
                                        f"{serial:012x}", "")
    span = pc.binary_join_element_wise(pa.array([f"{i:08x}" for i in range(n)]), f"{serial:08x}", "")
    table = table.set_column(table.schema.get_field_index("trace_id"), "trace_id", trace)
    table = table.set_column(table.schema.get_field_index("span_id"), "span_id", span)
    i = table.schema.get_field_index("start_time")
    col = table["start_time"]
    if window_s:
        window = int(window_s * 1e9)
        ns = pc.cast(col, pa.int64())
        folded = pc.subtract(time.time_ns(), pc.subtract(ns, pc.multiply(pc.divide(ns, window), window)))
        table = table.set_column(i, "start_time", pc.cast(folded, col.type))
    elif shift_ns:
        moved = pc.cast(pc.subtract(pc.cast(col, pa.int64()), shift_ns), col.type)
        table = table.set_column(i, "start_time", moved)
    return table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefill", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--commits", type=int, default=60)
    ap.add_argument("--spread-hours", type=int, default=1)
    ap.add_argument("--batch-seconds", type=float, default=0.0,
                    help="fold each timed batch's start times into the last N seconds (live traffic);"
                         " default: the traffic model's last hour, as bench/receiver.py sends")
    ap.add_argument("--default-settings", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    from console.cache.ingest_writer import Batch, BatchStore
    from console.cache.store import Cache
    from console.receiver_pool import tune_writer

    fill = base_table(65_536)
    batch = base_table(args.batch)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        cache = Cache.open(Path(tmp) / "cache.duckdb")
        if not args.default_settings:
            tune_writer(cache)
        cur = cache.cursor()
        store = BatchStore()
        serial = 1
        began = time.perf_counter()
        filled = 0
        while filled < args.prefill:
            rows = min(fill.num_rows, args.prefill - filled)
            shift = (serial % args.spread_hours) * 3_600_000_000_000
            store.store(cur, Batch([stamped(fill.slice(0, rows), serial, shift)], [], None))
            filled += rows
            serial += 1
        store.compact(cur)
        cur.execute("CHECKPOINT")
        print(f"prefill: {filled:,} spans in {time.perf_counter() - began:.1f} s", flush=True)

        tables = [stamped(batch, serial + i, window_s=args.batch_seconds) for i in range(args.commits + 5)]
        walls, cpus = [], []
        for i, table in enumerate(tables):
            w0, c0 = time.perf_counter(), time.process_time()
            counts = store.store(cur, Batch([table], [], None))
            w1, c1 = time.perf_counter(), time.process_time()
            assert counts.spans == table.num_rows, counts
            if i >= 5:  # warm-up
                walls.append(w1 - w0)
                cpus.append(c1 - c0)
        n = args.batch

        def q(values: list[float]) -> str:
            qs = statistics.quantiles(values, n=4)
            return (f"median {qs[1] * 1e3:7.2f} ms ({qs[1] / n * 1e6:5.1f} us/span)"
                    f"  q1 {qs[0] * 1e3:6.2f}  q3 {qs[2] * 1e3:6.2f}")

        print(f"store() of {n} spans, {len(walls)} commits after {filled:,} stored:")
        print(f"  wall {q(walls)}")
        print(f"  cpu  {q(cpus)}")
        if args.profile:
            profile(cur, store, stamped(batch, 10**9, window_s=args.batch_seconds))
        cache.close()
    return 0


def profile(cur: object, store: object, table: pa.Table) -> None:
    """Time each statement of one store step (a wrapper around the cursor's execute)."""
    from console.cache.ingest_writer import Batch, BatchStore

    assert isinstance(store, BatchStore)
    timings: list[tuple[float, str]] = []

    class Timed:
        def __init__(self, inner: object) -> None:
            self.inner = inner

        def execute(self, sql: str, *a: object) -> object:
            t0 = time.perf_counter()
            out = self.inner.execute(sql, *a)  # type: ignore[attr-defined]
            timings.append((time.perf_counter() - t0, " ".join(sql.split())[:90]))
            return out

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

    store.store(Timed(cur), Batch([table], [], None))
    for seconds, sql in timings:
        print(f"  {seconds * 1e3:7.2f} ms  {sql}")


if __name__ == "__main__":
    raise SystemExit(main())
