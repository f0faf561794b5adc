"""An ingest with worker processes started from inside the running console.

Textual replaces sys.stderr while the app runs; multiprocessing's resource tracker
is handed `sys.stderr.fileno()` when the first worker is spawned, and that failed
("bad value(s) in fds_to_keep"), so the ingest stored nothing. The console must be
able to ingest a big file in a worker process while it keeps polling.
"""

from __future__ import annotations

import asyncio

import orjson

from console.backend import Backend
from console.cache import ingest as ingest_module
from console.cache.ingest import Ingestor
from console.cache.store import Cache
from console.demo.traffic import TrafficModel, export_requests
from tests.tui.conftest import WALL

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


async def test_a_worker_process_ingest_runs_while_the_console_runs(tmp_path, make_config,
                                                                  monkeypatch):
    from console.app import LlmdeckApp

    monkeypatch.setattr(ingest_module, "PARALLEL_MIN_BYTES", 1)
    feed = tmp_path / "spans.jsonl"
    feed.write_bytes(b"\n".join(
        orjson.dumps(r) for r in export_requests(TrafficModel(seed=3), T0, T0 + 3600 * 10**9,
                                                 2_000, 50)) + b"\n")
    config = make_config()
    with Cache.open(tmp_path / "cache.duckdb") as cache:
        app = LlmdeckApp(Backend(cache, config, lambda: WALL), wall_clock=lambda: WALL)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            ingestor = Ingestor(cache, config, workers=1, processes=True)
            report = await asyncio.to_thread(ingestor.run, [feed])
            await pilot.pause()
            assert app.is_running
        assert report.errors == []
        assert report.spans_stored == 2_000
        rows = cache.cursor().execute("SELECT count(*) FROM spans").fetchall()
        assert rows == [(2_000,)]
