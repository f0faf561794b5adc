"""`labelled_source`: one scan per rollup table, each row labelled with its (disjoint) window."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pytest

from console.cache.queries import labelled_source, rings

T0 = datetime(2026, 3, 4, 0, 0)


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE TABLE m (ts TIMESTAMP, n INTEGER)")
    con.execute("CREATE TABLE h (ts TIMESTAMP, n INTEGER)")
    # one request per minute for 6 hours, and the same as hour rows (60 each)
    con.executemany("INSERT INTO m VALUES (?, 1)", [[T0 + timedelta(minutes=i)] for i in range(360)])
    con.executemany("INSERT INTO h VALUES (?, 60)", [[T0 + timedelta(hours=i)] for i in range(6)])
    return con


def counts(con: duckdb.DuckDBPyConnection, windows: list[tuple[int, datetime, datetime]]) -> dict:
    sql, params = labelled_source(windows, "h", "m", "n")
    return dict(con.execute(f"SELECT win, sum(n) FROM ({sql}) GROUP BY ALL", params).fetchall())


def test_each_window_counts_exactly_its_minutes_from_hours_and_ragged_edges(con):
    windows = [(0, T0 + timedelta(minutes=17), T0 + timedelta(hours=2, minutes=5)),
               (1, T0 + timedelta(hours=2, minutes=5), T0 + timedelta(hours=2, minutes=50)),
               (7, T0 + timedelta(hours=3), T0 + timedelta(hours=5))]
    assert counts(con, windows) == {0: 108, 1: 45, 7: 120}


def test_rings_of_nested_windows_add_up_to_each_window(con):
    end = T0 + timedelta(hours=5, minutes=43)
    widths = [timedelta(minutes=5), timedelta(hours=1), timedelta(hours=4)]
    got = counts(con, rings(widths, end))
    assert [sum(got.get(r, 0) for r in range(k + 1)) for k in range(3)] == [5, 60, 240]


def test_overlapping_windows_are_refused():
    with pytest.raises(ValueError, match="overlapping"):
        labelled_source([(0, T0, T0 + timedelta(hours=2)), (1, T0 + timedelta(hours=1),
                                                            T0 + timedelta(hours=3))], "h", "m", "n")
