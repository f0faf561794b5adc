"""The worker-process ingest path stores exactly what the in-process path stores.

Big JSON-lines files (>= PARALLEL_MIN_BYTES) are cut into runs of lines that worker
processes read, decode and map (`batching.map_range`); small ones are mapped in the
ingesting process. Here the threshold is patched down so a small file takes the
worker path, and its cache is compared with the in-process path's on the same file:
every span row, every rollup row, the quarantine (file:line and reason), the stored
resume point and the run's report. The file has blank lines, CRLF line ends, a line
that is not JSON, a span without an id, repeated spans, and an unfinished last line
that the writer completes (and appends to) before the second run.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from console.cache import ingest as ingest_module
from console.cache import rollups
from console.cache.batching import BatchBuilder
from console.cache.ingest import Ingestor, IngestReport
from console.cache.ingest_writer import Batch, Writer
from console.cache.readers import decode_line
from console.cache.schema import ROLLUP_DIMS
from console.cache.store import Cache
from console.config import CacheSettings, Config, IngestSettings
from console.demo.traffic import TrafficModel, export_requests

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
BATCH = 100  # spans per batch in process; workers get runs of ~110 kB (see _ingest_parallel)

ROLLUPS = ("rollup_minute", "rollup_hour", "rollup_minute_svc", "rollup_hour_svc")


def _requests(spans: int, seed: int, start_ns: int) -> list[bytes]:
    end = start_ns + 2 * 3600 * 10**9
    return [orjson.dumps(r) for r in export_requests(TrafficModel(seed=seed), start_ns, end,
                                                     spans, 20)]


def _drop_span_id(raw: bytes) -> bytes:
    """The same request with its first span's spanId removed (a span to quarantine)."""
    req = json.loads(raw)
    del req["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"]
    return json.dumps(req).encode()


class LiveFile:
    """A Collector JSON-lines file being written: its lines and what a full ingest should find."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bad_lines: list[int] = []  # 1-based line numbers of lines that are not JSON
        self.bad_span_lines: list[int] = []
        self.lines = 0

    def write(self, parts: list[bytes]) -> None:
        with self.path.open("ab") as f:
            for part in parts:
                f.write(part)

    def body(self, requests: list[bytes], lines_before: int) -> list[bytes]:
        """Requests as lines, with blank lines, CRLF ends, a bad line, a bad span and repeats."""
        out: list[bytes] = []
        n = lines_before
        for i, raw in enumerate(requests):
            if i % 7 == 3:
                out.append(b"\n" if i % 2 else b"  \r\n")  # blank lines still count as lines
                n += 1
            if i == len(requests) // 3:
                out.append(b'{"resourceSpans": [ this is not JSON\n')
                n += 1
                self.bad_lines.append(n)
            if i == len(requests) // 2:
                raw = _drop_span_id(raw)
                self.bad_span_lines.append(n + 1)
            out.append(raw + (b"\r\n" if i % 3 == 0 else b"\n"))
            n += 1
            if i in (5, len(requests) // 4):  # a retried export: the same spans again
                out.append(raw + b"\n")
                n += 1
        self.lines = n
        return out


def _config() -> Config:
    # No rollup retention: the test data has fixed dates.
    return Config(cache=CacheSettings(rollup_retention_days=None),
                  ingest=IngestSettings(batch_spans=BATCH))


Probe = Callable[[Ingestor, Cache], None]


def _run(
    cache_path: Path, config: Config, path: Path, probe: Probe | None = None, **kw: Any
) -> tuple[IngestReport, Ingestor]:
    """One in-process ingest run; `probe` is called on every progress tick."""
    with Cache.open(cache_path) as cache:
        ing = Ingestor(cache, config, **kw)
        if probe is not None:
            ing.progress = lambda _p: probe(ing, cache)
        return ing.run([path]), ing


def _normalised(row: tuple[Any, ...]) -> tuple[Any, ...]:
    # A histogram is a list of (bucket, count) pairs in no set order.
    return tuple(
        tuple(sorted((d["b"], d["n"]) for d in v)) if isinstance(v, list) else v for v in row
    )


def _exact(row: tuple[Any, ...]) -> str:
    return repr(tuple(None if isinstance(v, float) else v for v in row))


def _contents(cache_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with Cache.open(cache_path, read_only=True) as cache:
        cur = cache.cursor()

        def rows(q: str) -> list[tuple[Any, ...]]:
            return sorted((_normalised(r) for r in cur.execute(q).fetchall()), key=_exact)

        data = {
            "spans": rows("SELECT * FROM spans"),
            "quarantine": rows("SELECT source, line, reason FROM quarantine"),
            "files": rows("SELECT path, fingerprint, byte_offset, line FROM ingest_files"),
        }
        for table in ROLLUPS:
            data[table] = rows(f"SELECT * FROM {table}")
    return data


def _assert_same(got: dict[str, list[tuple[Any, ...]]], want: dict[str, list[tuple[Any, ...]]]
                 ) -> None:
    """Equal tables; doubles summed over differently cut batches may differ in the last bits."""
    assert got.keys() == want.keys()
    for table, rows in want.items():
        assert [_exact(r) for r in got[table]] == [_exact(r) for r in rows], table
        floats = [[v for v in r if isinstance(v, float)] for r in rows]
        assert [[v for v in r if isinstance(v, float)] for r in got[table]] == [
            pytest.approx(f, rel=1e-9) for f in floats], table


def _summary(report: IngestReport) -> dict[str, Any]:
    data = report.as_json()
    del data["seconds"]
    return data


@pytest.fixture
def parallel_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file takes the worker-process path."""
    monkeypatch.setattr(ingest_module, "PARALLEL_MIN_BYTES", 1)


def _compare_runs(
    tmp_path: Path, **parallel_kw: Any
) -> tuple[list[IngestReport], LiveFile]:
    """Ingest a live file twice (partial last line, then completed and appended) both ways.

    Returns the worker path's reports.
    """
    config = _config()
    live = LiveFile(tmp_path / "live.jsonl")
    first = _requests(700, seed=5, start_ns=T0)
    more = _requests(300, seed=6, start_ns=T0 + 3600 * 10**9)
    live.write(live.body(first, 0))
    unfinished = more[0] + b"\n"
    cut = len(unfinished) // 2
    live.write([unfinished[:cut]])  # the exporter is mid-line

    serial_cache, parallel_cache = tmp_path / "serial.duckdb", tmp_path / "parallel.duckdb"
    parallel: list[IngestReport] = []

    def both() -> None:
        s, s_ing = _run(serial_cache, config, live.path, workers=1)
        p, p_ing = _run(parallel_cache, config, live.path, **parallel_kw)
        assert s_ing._pool is None, "the serial run must map in process"
        assert p_ing._pool is not None, "the parallel run must map in worker processes"
        parallel.append(p)
        assert _summary(p) == _summary(s)
        _assert_same(_contents(parallel_cache), _contents(serial_cache))

    both()
    lines_before = live.lines
    # The exporter finishes its line and writes more, with another bad line and blank lines.
    live.write([unfinished[cut:]])
    live.write(live.body(more[1:], lines_before + 1))
    both()
    return parallel, live


@pytest.mark.usefixtures("parallel_threshold")
def test_worker_processes_store_what_the_serial_path_stores(tmp_path: Path) -> None:
    (first, second), live = _compare_runs(tmp_path, workers=2)
    assert len(live.bad_lines) == len(live.bad_span_lines) == 2  # one of each per run
    total = 1000 - len(live.bad_span_lines)  # every span once, less those without an id
    # The first run leaves the unfinished line; the second reads only what follows it.
    assert first.pending_partial_lines and str(live.path) in first.pending_partial_lines[0]
    assert second.pending_partial_lines == []
    assert first.spans_stored + second.spans_stored == total
    assert first.spans_read + second.spans_read == total + first.duplicates + second.duplicates
    assert first.duplicates > 0 and second.duplicates > 0
    assert first.quarantined == second.quarantined == 2
    reasons = {r.split(": ", 1)[0]: r for r in first.quarantine_reasons + second.quarantine_reasons}
    for n in live.bad_lines:
        assert "malformed JSON" in reasons[f"{live.path}:{n}"]
    for n in live.bad_span_lines:
        assert "missing spanId" in reasons[f"{live.path}:{n}"]
    # A third run finds nothing new on either path.
    again, _ = _run(tmp_path / "parallel.duckdb", _config(), live.path, workers=2)
    assert (again.spans_read, again.spans_stored, again.quarantined) == (0, 0, 0)
    with Cache.open(tmp_path / "parallel.duckdb", read_only=True) as cache:
        cur = cache.cursor()
        assert cur.execute("SELECT count(*) FROM spans").fetchall() == [(total,)]
        assert cur.execute("SELECT sum(requests) FROM rollup_minute").fetchall() == [(total,)]
        assert cur.execute("SELECT line FROM ingest_files").fetchall() == [(live.lines,)]


@pytest.mark.usefixtures("parallel_threshold")
def test_one_worker_process_for_an_ingest_inside_the_console(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []

    def probe(ing: Ingestor, cache: Cache) -> None:
        # On the ingesting thread while the pool maps: its size and the writer's DuckDB threads.
        pool = ing._pool
        threads = cache.cursor().execute("SELECT current_setting('threads')").fetchall()[0][0]
        seen.append((0 if pool is None else pool.executor._max_workers, int(threads)))  # type: ignore[attr-defined]

    _compare_runs(tmp_path, workers=1, processes=True, probe=probe)
    assert seen and set(seen) == {(1, 1)}, seen


def test_defaults_are_unchanged(tmp_path: Path) -> None:
    config = _config()
    with Cache.open(tmp_path / "c.duckdb") as cache:
        assert Ingestor(cache, config, workers=1).processes is False
        assert Ingestor(cache, config, workers=2).processes is True
        one = Ingestor(cache, config, workers=1, processes=True)
        assert one.processes is True and one._pool_size == 1
        assert Ingestor(cache, config, workers=8)._pool_size == ingest_module.MAX_WORKERS


def test_writer_threads_are_restored_after_a_confined_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest_module, "PARALLEL_MIN_BYTES", 1)
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(r + b"\n" for r in _requests(200, seed=9, start_ns=T0)))
    with Cache.open(tmp_path / "c.duckdb") as cache:
        cur = cache.cursor()
        cur.execute("SET threads = 3")
        report = Ingestor(cache, _config(), workers=1, processes=True).run([path])
        assert report.spans_stored == 200
        assert cur.execute("SELECT current_setting('threads')").fetchall() == [(3,)]



@pytest.mark.parametrize(("processes", "gc_off"), [(None, True), (True, False)])
def test_the_cyclic_gc_is_off_for_a_cli_ingest_and_on_inside_the_console(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processes: bool | None, gc_off: bool
) -> None:
    # A small file is mapped in this process either way; only the console's background mode
    # (processes=True asked for) keeps collecting, for the UI sharing the process.
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(r + b"\n" for r in _requests(50, seed=5, start_ns=T0)))
    disabled: list[bool] = []
    monkeypatch.setattr(ingest_module.gc, "disable", lambda: disabled.append(True))
    with Cache.open(tmp_path / "c.duckdb") as cache:
        report = Ingestor(cache, _config(), workers=2, processes=processes).run([path])
    assert report.spans_stored == 50
    assert bool(disabled) is gc_off


# -- the writer: several chunks in one transaction ------------------------------


def _table(requests: list[bytes]) -> Any:
    builder = BatchBuilder(_config())
    for n, raw in enumerate(requests, 1):
        builder.add(decode_line("otlp", n, raw), "t.jsonl")
    cols, quarantine, _ = builder.take()
    assert not quarantine
    return cols.to_arrow()


def _rollups_match_spans(cur: Any) -> None:
    """Each rollup table, summed per key, equals the same rollup computed from the spans."""
    dims_sel = ", ".join(f"coalesce({d}, '') AS {d}" for d in ROLLUP_DIMS)  # '' for NULL, as stored
    for table, grain, dims in rollups.all_tables():
        keys = ", ".join(dims)
        want = cur.execute(f"""
            SELECT {rollups.truncate_sql(grain, "start_time")} AS ts, {keys}, count(*),
                   sum(coalesce(input_tokens, 0)), count(*) FILTER (WHERE status = 'error')
            FROM (SELECT start_time, input_tokens, {dims_sel}
                  FROM (SELECT *, coalesce(request_model, response_model) AS model FROM spans))
            GROUP BY ALL ORDER BY ALL
        """).fetchall()
        got = cur.execute(
            f"SELECT ts, {keys}, sum(requests), sum(input_tokens), sum(errors) FROM {table}"
            f" GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        assert want and got == want, table


def test_chunks_stored_together_dedupe_across_each_other_and_stored_spans(tmp_path: Path) -> None:
    requests = _requests(600, seed=21, start_ns=T0)  # 30 requests of 20 spans
    first = _table(requests[:10])
    second = _table(requests[8:20])  # repeats 2 requests of `first` (already stored)
    third = _table(requests[18:])  # repeats 2 requests of `second` (same transaction)
    report = IngestReport()
    with Cache.open(tmp_path / "c.duckdb") as cache:
        writer = Writer(cache, report, threading.Lock())
        cur = cache.cursor()
        writer._store(cur, Batch([first], [], ("t.jsonl", "fp", 100, 10)))
        writer._store(cur, Batch(
            [second, third], [("t.jsonl", 25, "bad line")], ("t.jsonl", "fp", 300, 30)))
        writer.store.compact(cur)
        assert report.spans_stored == 600
        assert report.duplicates == 80
        assert cur.execute("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans"
                           ).fetchall() == [(600, 600)]
        assert cur.execute("SELECT line, reason FROM quarantine").fetchall() == [(25, "bad line")]
        assert cur.execute("SELECT byte_offset, line FROM ingest_files").fetchall() == [(300, 30)]
        _rollups_match_spans(cur)
        # Compaction left one row per key.
        for table, _, dims in rollups.all_tables():
            keys = ", ".join(dims)
            assert cur.execute(
                f"SELECT count(*) FROM (SELECT ts, {keys} FROM {table} GROUP BY ALL HAVING count(*) > 1)"
            ).fetchall() == [(0,)], table
        # Nothing is left registered or in temporary tables.
        assert cur.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchall() == [(0,)]
        assert cur.execute(
            "SELECT count(*) FROM duckdb_views() WHERE view_name LIKE '_batch%'").fetchall() == [(0,)]


def test_a_failing_chunk_leaves_its_whole_batch_unstored(tmp_path: Path) -> None:
    requests = _requests(200, seed=22, start_ns=T0)
    good = _table(requests[:5])
    bad = _table(requests[5:]).drop_columns(["source"])  # the wrong shape: its INSERT fails
    report = IngestReport()
    with Cache.open(tmp_path / "c.duckdb") as cache:
        writer = Writer(cache, report, threading.Lock())
        cur = cache.cursor()
        with pytest.raises(duckdb.Error):
            writer._store(cur, Batch(
                [good, bad], [("t.jsonl", 3, "bad line")], ("t.jsonl", "fp", 500, 10)))
        for table in ("spans", "quarantine", "ingest_files", *ROLLUPS):
            assert cur.execute(f"SELECT count(*) FROM {table}").fetchall() == [(0,)], table
        assert report.spans_stored == 0
        # The writer goes on: the next batch stores as usual.
        writer._store(cur, Batch([good], [], ("t.jsonl", "fp", 250, 5)))
        assert cur.execute("SELECT count(*) FROM spans").fetchall() == [(100,)]
        _rollups_match_spans(cur)
