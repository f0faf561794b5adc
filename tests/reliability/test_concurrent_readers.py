"""One writer and many reader threads on one cache (RELIABILITY.md R2.2), briefly."""

from __future__ import annotations

import faulthandler
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from console.cache.ingest import Ingestor
from console.cache.queries import status_groups
from console.cache.store import Cache
from console.config import Config, IngestSettings
from console.demo.traffic import TrafficModel, export_requests, write_collector_jsonl

READERS = 8


def _files(tmp_path: Path, count: int) -> list[Path]:
    end_ns = int(datetime(2026, 11, 20, 12, tzinfo=UTC).timestamp() * 1e9)
    out = []
    for i in range(count):
        path = tmp_path / f"part{i}.jsonl"
        start = end_ns - (count - i) * 3_600 * 10**9
        model = TrafficModel(seed=100 + i)
        write_collector_jsonl(str(path), export_requests(model, start, start + 3_600 * 10**9, 4_000, 200))
        out.append(path)
    return out


def test_eight_reader_cursors_and_one_writer_never_crash_and_see_monotonic_counts(tmp_path: Path) -> None:
    faulthandler.enable()
    files = _files(tmp_path, 6)
    cache = Cache.open(tmp_path / "cache.duckdb")
    config = Config(ingest=IngestSettings(batch_spans=1_000))
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: list[list[int]] = [[] for _ in range(READERS)]

    def reader(i: int) -> None:
        cur = cache.cursor()
        try:
            while not stop.is_set():
                n = cur.execute("SELECT count(*) FROM spans").fetchall()[0][0]
                seen[i].append(int(n))
                status_groups(cur, datetime(2026, 11, 20, 12))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(READERS)]
    for t in threads:
        t.start()
    try:
        report = Ingestor(cache, config, workers=1).run(files)
        time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not errors, errors
    assert report.spans_stored == 24_000
    for counts in seen:
        assert counts, "a reader never completed a query"
        assert counts == sorted(counts), "a reader saw the span count go backwards"
    assert max(max(c) for c in seen) <= 24_000
    total = cache.cursor().execute("SELECT sum(requests) FROM rollup_minute").fetchall()[0][0]
    assert total == 24_000
    cache.close()
