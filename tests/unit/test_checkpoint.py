"""`Cache.checkpoint` is best effort: a refused CHECKPOINT never fails an ingest that stored its data.

At the end of a 2M-span ingest inside the console (bench/responsiveness.py), DuckDB
refused the final CHECKPOINT ("other write transactions active") while polls ran, and
the whole ingest was reported as failed although every batch was committed. The
condition is a race inside DuckDB; here the refusal is injected at the connection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from console.cache.store import Cache


class RefusingCheckpoint:
    """The cache's connection, except that CHECKPOINT is refused as DuckDB refused it."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.strip().upper() == "CHECKPOINT":
            raise duckdb.TransactionException(
                "TransactionContext Error: Cannot CHECKPOINT: there are other write"
                " transactions active.")
        return self._con.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def test_a_refused_checkpoint_keeps_the_data_and_a_later_one_folds_it(tmp_path: Path):
    path = tmp_path / "cache.duckdb"
    cache = Cache.open(path)
    real = cache.con
    cache.cursor().execute("CREATE TABLE kept AS SELECT range AS i FROM range(1000)")
    cache.con = RefusingCheckpoint(real)  # type: ignore[assignment]
    assert cache.checkpoint() is False  # refused: no exception
    cache.con = real
    assert cache.checkpoint() is True
    cache.close()
    with Cache.open(path, read_only=True) as again:
        assert again.cursor().execute("SELECT count(*) FROM kept").fetchall() == [(1000,)]
