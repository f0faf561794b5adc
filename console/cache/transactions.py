"""One explicit DuckDB transaction: BEGIN, COMMIT when the block ends, ROLLBACK if it raises."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb


@contextmanager
def transaction(cur: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the `with` block in one transaction on `cur`; any exception rolls it back and re-raises.

    Anything created in the transaction (temporary tables included) goes with a rollback.
    The exception raised is always the first one: when the rollback fails too (a failed
    COMMIT has already ended the transaction; a database DuckDB invalidated refuses
    everything), its error is dropped, since it would only hide the cause.
    """
    cur.execute("BEGIN")
    try:
        yield
        cur.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):
            cur.execute("ROLLBACK")
        raise
