"""The versioned DuckDB schema of the trace cache and its migrations."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from console.cache.transactions import transaction

if TYPE_CHECKING:  # ingest's worker processes import this module for SPAN_COLUMNS only
    import duckdb

SCHEMA_VERSION = 2

# The dimensions every rollup row is keyed by, besides its time bucket.
ROLLUP_DIMS = ("service", "provider", "model", "tenant", "route", "prompt_version", "status")
# The coarse rollups behind the overview and `status`.
COARSE_DIMS = ("service", "provider", "model", "status")

SPAN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("trace_id", "VARCHAR NOT NULL"),
    ("span_id", "VARCHAR NOT NULL"),
    ("parent_span_id", "VARCHAR"),
    ("service", "VARCHAR"),
    ("name", "VARCHAR"),
    ("kind", "TINYINT"),
    ("operation", "VARCHAR"),
    ("provider", "VARCHAR"),
    ("request_model", "VARCHAR"),
    ("response_model", "VARCHAR"),
    ("start_time", "TIMESTAMP_NS NOT NULL"),
    ("duration_ms", "DOUBLE"),
    ("ttft_ms", "DOUBLE"),
    ("status", "VARCHAR NOT NULL"),
    ("status_message", "VARCHAR"),
    ("error_type", "VARCHAR"),
    ("http_status", "SMALLINT"),
    ("rate_limited", "BOOLEAN NOT NULL"),
    ("input_tokens", "BIGINT"),
    ("output_tokens", "BIGINT"),
    ("cache_read_tokens", "BIGINT"),
    ("tenant", "VARCHAR"),
    ("route", "VARCHAR"),
    ("prompt_id", "VARCHAR"),
    ("prompt_version", "VARCHAR"),
    ("fallback", "BOOLEAN NOT NULL"),
    ("cost_usd", "DOUBLE"),
    ("price_version", "VARCHAR"),
    ("unpriced", "BOOLEAN NOT NULL"),
    ("redactions", "INTEGER NOT NULL"),
    ("attributes", "VARCHAR"),
    ("events", "VARCHAR"),
    ("source", "VARCHAR NOT NULL"),
)

_HIST = "STRUCT(b SMALLINT, n INTEGER)[]"

ROLLUP_METRICS: tuple[tuple[str, str], ...] = (
    ("requests", "BIGINT NOT NULL"),
    ("errors", "BIGINT NOT NULL"),
    ("rate_limited", "BIGINT NOT NULL"),
    ("fallbacks", "BIGINT NOT NULL"),
    ("input_tokens", "BIGINT NOT NULL"),
    ("output_tokens", "BIGINT NOT NULL"),
    ("cache_read_tokens", "BIGINT NOT NULL"),
    ("cost_usd", "DOUBLE NOT NULL"),
    ("unpriced", "BIGINT NOT NULL"),
    ("latency_sum_ms", "DOUBLE NOT NULL"),
    ("latency_hist", _HIST),
    ("ttft_hist", _HIST),
)


def _rollup_ddl(table: str, dims: tuple[str, ...] = ROLLUP_DIMS) -> str:
    cols = ["ts TIMESTAMP NOT NULL"]
    cols += [f"{d} VARCHAR NOT NULL" for d in dims]
    cols += [f"{name} {typ}" for name, typ in ROLLUP_METRICS]
    return f"CREATE TABLE {table} ({', '.join(cols)})"


def _v1(con: duckdb.DuckDBPyConnection) -> None:
    cols = ", ".join(f"{n} {t}" for n, t in SPAN_COLUMNS)
    con.execute(f"CREATE TABLE spans ({cols})")
    con.execute(_rollup_ddl("rollup_minute"))
    con.execute(_rollup_ddl("rollup_hour"))
    con.execute(_rollup_ddl("rollup_minute_svc", COARSE_DIMS))
    con.execute(_rollup_ddl("rollup_hour_svc", COARSE_DIMS))
    con.execute(
        "CREATE TABLE quarantine (source VARCHAR NOT NULL, line BIGINT, reason VARCHAR NOT NULL,"
        " excerpt VARCHAR, quarantined_at TIMESTAMP NOT NULL)"
    )
    con.execute(
        "CREATE TABLE ingest_files (path VARCHAR PRIMARY KEY, fingerprint VARCHAR NOT NULL,"
        " byte_offset BIGINT NOT NULL, line BIGINT NOT NULL, updated TIMESTAMP NOT NULL)"
    )


BILLING_COLUMNS: tuple[tuple[str, str], ...] = (
    ("provider", "VARCHAR NOT NULL"),
    ("source", "VARCHAR NOT NULL"),
    ("day", "DATE NOT NULL"),
    ("model", "VARCHAR"),
    ("line_item", "VARCHAR"),
    ("project", "VARCHAR"),
    ("service_tier", "VARCHAR"),
    ("amount", "DECIMAL(38,10) NOT NULL"),
    ("currency", "VARCHAR NOT NULL"),
    ("fetched_at", "TIMESTAMP NOT NULL"),
)
"""What a provider billed: one row per source, UTC day and line (`console.billing.BillingLine`)."""

BILLING_USAGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("provider", "VARCHAR NOT NULL"),
    ("source", "VARCHAR NOT NULL"),
    ("day", "DATE NOT NULL"),
    ("model", "VARCHAR"),
    ("project", "VARCHAR"),
    ("api_key", "VARCHAR"),
    ("batch", "BOOLEAN"),
    ("requests", "BIGINT NOT NULL"),
    ("input_tokens", "BIGINT NOT NULL"),
    ("output_tokens", "BIGINT NOT NULL"),
    ("cached_input_tokens", "BIGINT NOT NULL"),
    ("fetched_at", "TIMESTAMP NOT NULL"),
)
"""The provider's own token counts per day (`console.billing.UsageLine`)."""

BILLING_SYNC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("provider", "VARCHAR NOT NULL"),
    ("source", "VARCHAR NOT NULL"),
    ("start_day", "DATE NOT NULL"),
    ("end_day", "DATE NOT NULL"),
    ("fetched_at", "TIMESTAMP NOT NULL"),
    ("pages", "INTEGER NOT NULL"),
    ("lines", "INTEGER NOT NULL"),
    ("usage_lines", "INTEGER NOT NULL"),
)
"""Each completed sync's days [start_day, end_day): what is covered even where nothing was billed."""


def _v2(con: duckdb.DuckDBPyConnection) -> None:
    """Provider billing: `billing`, `billing_usage` and the record of completed syncs."""
    for table, columns in (("billing", BILLING_COLUMNS), ("billing_usage", BILLING_USAGE_COLUMNS),
                           ("billing_syncs", BILLING_SYNC_COLUMNS)):
        con.execute(f"CREATE TABLE {table} ({', '.join(f'{n} {t}' for n, t in columns)})")


# MIGRATIONS[i] moves a cache from schema version i to i + 1.
MIGRATIONS: list[Callable[[duckdb.DuckDBPyConnection], None]] = [_v1, _v2]
assert len(MIGRATIONS) == SCHEMA_VERSION


class SchemaTooNewError(Exception):
    """The cache was written by a newer llmdeck than this one."""


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta'"
        " AND table_schema = 'main'"
    ).fetchall()[0][0]
    if not exists:
        return 0
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
    return int(row[0][0]) if row else 0


def migrate(con: duckdb.DuckDBPyConnection, path: str) -> int:
    """Bring the schema to SCHEMA_VERSION, one transaction per step; return the old version."""
    found = current_version(con)
    if found > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"{path} was written by a newer llmdeck (cache schema v{found}; this llmdeck reads up"
            f" to v{SCHEMA_VERSION}). Upgrade llmdeck, or point --cache at another file."
        )
    for version in range(found, SCHEMA_VERSION):
        with transaction(con):
            if version == 0:
                con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
            MIGRATIONS[version](con)
            con.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(version + 1)]
            )
    return found
