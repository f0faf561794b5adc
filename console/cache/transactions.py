"""One explicit DuckDB transaction: BEGIN, COMMIT when the block ends, ROLLBACK if it raises."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb


@contextmanager
def transaction(cur: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the `with` block in one transaction on `cur`; any exception rolls it back and re-raises.

    Anything created in the transaction (temporary tables included) goes with a rollback.
    """
    cur.execute("BEGIN")
    try:
        yield
        cur.execute("COMMIT")
    except BaseException:
        cur.execute("ROLLBACK")
        raise
