"""The store step's figures computed on the Arrow batch instead of by a query equal the
query's: the hours a batch starts in (`rollups.hours_of_table` vs `hours_of`, whatever the
timestamp unit, a span from before 1970 included) and the unpriced spans stored (with and
without spans already stored in the batch). The batch is varied: NULL dimensions, NULL /
zero / negative durations, errors, unpriced spans, several hours, a span from 1969.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from console.cache import rollups
from console.cache.ingest_writer import Batch, BatchStore
from console.cache.store import Cache

BASE = datetime(2026, 3, 2, 9, 58, 30)


def varied_spans(schema: pa.Schema, n: int, seed: int) -> pa.Table:
    rng = random.Random(seed)

    def pick(*values: Any) -> Any:
        return rng.choice(values)

    rows = []
    for i in range(n):
        start = BASE + timedelta(seconds=rng.uniform(-200, 7400), microseconds=pick(0, 1, 999_999))
        if i == 0:
            start = datetime(1969, 12, 31, 23, 59, 59, 500_000)
        duration = pick(None, 0.0, -3.0, 0.0005, 1e9, *(rng.lognormvariate(6, 1.5) for _ in range(6)))
        model = pick("gpt-4o", "claude-sonnet", None)
        rows.append({
            "trace_id": f"{seed:08x}{i:024x}", "span_id": f"{i:016x}", "service": pick("api", "batch", None),
            "kind": 3, "provider": pick("openai", "anthropic", None),
            "request_model": model, "response_model": pick(model, "gpt-4o-2024", None),
            "start_time": start, "duration_ms": duration,
            "ttft_ms": pick(None, None, 0.0, rng.uniform(1, 900)),
            "status": pick("ok", "ok", "error", "unset"), "rate_limited": rng.random() < 0.1,
            "input_tokens": pick(None, rng.randint(0, 5000)),
            "output_tokens": pick(None, rng.randint(0, 900)),
            "cache_read_tokens": pick(None, 0, rng.randint(0, 4000)),
            "tenant": pick("acme", "globex", None, ""), "route": pick("/chat", "/summarize", None),
            "prompt_version": pick("v1", "v2", None), "fallback": rng.random() < 0.05,
            "cost_usd": pick(None, rng.uniform(0, 0.2), 1e-9), "unpriced": rng.random() < 0.1,
            "redactions": 0, "source": "test",
        })
    return pa.Table.from_pylist(rows, schema)


def test_hours_of_an_arrow_table_equal_the_query(tmp_path: Path) -> None:
    with Cache.open(tmp_path / "c.duckdb") as cache:
        cur = cache.cursor()
        schema = cur.sql("SELECT * FROM spans LIMIT 0").to_arrow_table().schema
        table = varied_spans(schema, 3000, 1)
        cur.register("_varied", table)
        expected = rollups.hours_of(cur, "_varied")
        assert len(expected) >= 4 and 0 in expected  # several hours, and the span from 1969
        assert rollups.hours_of_table(table) == expected
        micro = table.set_column(table.schema.get_field_index("start_time"), "start_time",
                                 table["start_time"].cast(pa.timestamp("us")))
        assert rollups.hours_of_table(micro) == expected


def test_store_counts_unpriced_spans_with_and_without_repeats(tmp_path: Path) -> None:
    with Cache.open(tmp_path / "c.duckdb") as cache:
        cur = cache.cursor()
        schema = cur.sql("SELECT * FROM spans LIMIT 0").to_arrow_table().schema
        table = varied_spans(schema, 900, 2)
        first, second = table.slice(0, 600), table.slice(300)  # 300 spans repeated
        store = BatchStore()
        a = store.store(cur, Batch([first], [], None))
        b = store.store(cur, Batch([second], [], None))
        unpriced = [r["unpriced"] for r in table.to_pylist()]
        assert (a.spans, a.duplicates, a.unpriced) == (600, 0, sum(unpriced[:600]))
        assert (b.spans, b.duplicates, b.unpriced) == (300, 300, sum(unpriced[600:]))
        assert 0 < b.unpriced < 300
        assert store.touched == rollups.hours_of(cur, "spans")
        assert cur.execute("SELECT count(*) FILTER (WHERE unpriced) FROM spans").fetchall()[0][0] \
            == sum(unpriced)
