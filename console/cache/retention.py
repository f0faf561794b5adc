"""How long the cache keeps what it stores: the retention after an ingest, and `prune`."""

from __future__ import annotations

from datetime import datetime, timedelta

from console.cache import rollups
from console.cache.store import Cache
from console.cache.transactions import transaction
from console.config import Config
from console.timeutil import utc_now


def apply_retention(cache: Cache, config: Config) -> None:
    """Prune spans and rollups older than the configured retention (none set: nothing)."""
    days = config.cache.retention_days
    rollup_days = config.cache.rollup_retention_days
    if days is None and rollup_days is None:
        return
    now = utc_now()
    prune(
        cache,
        spans_before=now - timedelta(days=days) if days else None,
        rollups_before=now - timedelta(days=rollup_days) if rollup_days else None,
    )


def prune(
    cache: Cache, *, spans_before: datetime | None, rollups_before: datetime | None
) -> tuple[int, int]:
    """Delete spans (and, separately, rollups) older than the given times; rollups outlive spans."""
    cur = cache.cursor()
    spans = rolled = 0
    with transaction(cur):
        if spans_before is not None:
            spans = cur.execute(
                "DELETE FROM spans WHERE start_time < ?", [spans_before]
            ).fetchall()[0][0]
        if rollups_before is not None:
            for table, _, _ in rollups.all_tables():
                rolled += cur.execute(
                    f"DELETE FROM {table} WHERE ts < ?", [rollups_before]
                ).fetchall()[0][0]
    return int(spans), int(rolled)
