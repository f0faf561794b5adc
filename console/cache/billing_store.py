"""Provider billing in the cache: store a sync's fetch, read it back for the cost screen.

`store_fetch` replaces one source's rows for the fetch's days [start, end) in ONE
transaction: the old rows go and the new ones arrive together, or (on any error) nothing
changes. Callers store only a complete fetch; a failed fetch never reaches here, so what
was stored stays as it was and the source shows stale (`syncs` says since when).
Amounts are DECIMAL(38,10): exact `Decimal`s in, exact `Decimal`s (sums too) out.
Readers answer empty on a cache made before billing existed (schema v1, opened read-only).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING

from console.billing import BillingFetch, BillingLine, Provider, UsageLine
from console.cache.transactions import transaction

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

SCALE = Decimal("1e-10")
"""The stored precision (DECIMAL(38,10)): finer amounts are rounded half-even to it."""
_BILLING_COLUMNS = ("provider", "source", "day", "model", "line_item", "project", "service_tier",
                    "amount", "currency", "fetched_at")
_USAGE_COLUMNS = ("provider", "source", "day", "model", "project", "api_key", "batch", "requests",
                  "input_tokens", "output_tokens", "cached_input_tokens", "fetched_at")


def _arrow_types(columns: tuple[str, ...]) -> list[tuple[str, pa.DataType]]:
    """Arrow types for the columns (pyarrow loads only when something is stored)."""
    import pyarrow as pa

    special = {"day": pa.date32(), "amount": pa.decimal128(38, 10), "fetched_at": pa.timestamp("us"),
               "batch": pa.bool_()}
    counts = {"requests", "input_tokens", "output_tokens", "cached_input_tokens"}
    return [(c, special.get(c, pa.int64() if c in counts else pa.string())) for c in columns]


def _arrow(columns: tuple[str, ...], rows: list[tuple[object, ...]]) -> pa.Table:
    import pyarrow as pa

    types = _arrow_types(columns)
    return pa.table({name: pa.array([row[i] for row in rows], type=typ)
                     for i, (name, typ) in enumerate(types)})


class BillingStoreError(ValueError):
    """A fetch that cannot be stored as it is (a line outside its days, another source's line)."""


@dataclass(frozen=True)
class StoredSync:
    """What one `store_fetch` wrote."""

    provider: Provider
    source: str
    start: date
    end: date
    lines: int
    usage_lines: int
    replaced_lines: int
    """Rows of [start, end) that were there before and are gone now."""
    totals: dict[str, Decimal]
    """Currency -> the fetch's total amount, exact."""


@dataclass(frozen=True)
class BilledDay:
    """What one provider billed for one model (None: lines with no model) on one UTC day."""

    provider: str
    model: str | None
    day: date
    currency: str
    amount: Decimal


@dataclass(frozen=True)
class UsageDay:
    """The provider's token counts for one source, day, model, project, key and batch flag."""

    provider: str
    source: str
    day: date
    model: str | None
    project: str | None
    api_key: str | None
    batch: bool | None
    requests: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int


@dataclass(frozen=True)
class SyncRecord:
    """A source's last completed sync: the days it covered and when."""

    provider: str
    source: str
    start: date
    end: date
    fetched_at: datetime
    pages: int
    lines: int
    covered_from: date
    """The earliest day any completed sync of this source covered."""


def exact(amount: Decimal) -> Decimal:
    """`amount` at the stored scale (10 places), rounded half-even only when finer."""
    if not amount.is_finite():
        raise BillingStoreError(f"not a finite amount: {amount}")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -10:
        return amount
    return amount.quantize(SCALE, rounding=ROUND_HALF_EVEN)


def _check(fetch: BillingFetch) -> None:
    if fetch.end < fetch.start:
        raise BillingStoreError(f"{fetch.source}: days {fetch.start}..{fetch.end} end before they start")
    rows: Iterable[BillingLine | UsageLine] = (*fetch.lines, *fetch.usage)
    for row in rows:
        if row.provider != fetch.provider or row.source != fetch.source:
            raise BillingStoreError(f"{fetch.source}: a line of {row.provider}/{row.source} in its fetch")
        if not fetch.start <= row.day < fetch.end:
            raise BillingStoreError(f"{fetch.source}: a line for {row.day}, outside the fetched days"
                                    f" {fetch.start}..{fetch.end} (end exclusive)")


def _billing_table(fetch: BillingFetch) -> pa.Table:
    return _arrow(_BILLING_COLUMNS, [
        (x.provider, x.source, x.day, x.model, x.line_item, x.project, x.service_tier, exact(x.amount),
         x.currency.upper(), fetch.fetched_at) for x in fetch.lines])


def _usage_table(fetch: BillingFetch) -> pa.Table:
    return _arrow(_USAGE_COLUMNS, [
        (u.provider, u.source, u.day, u.model, u.project, u.api_key, u.batch, u.requests, u.input_tokens,
         u.output_tokens, u.cached_input_tokens, fetch.fetched_at) for u in fetch.usage])


def totals(lines: Iterable[BillingLine]) -> dict[str, Decimal]:
    """Currency (upper case) -> exact total of `lines`, as stored."""
    found: dict[str, Decimal] = {}
    for line in lines:
        currency = line.currency.upper()
        found[currency] = found.get(currency, Decimal(0)) + exact(line.amount)
    return found


def store_fetch(cur: duckdb.DuckDBPyConnection, fetch: BillingFetch) -> StoredSync:
    """Replace `fetch.source`'s billing and usage rows for [start, end) with the fetch's, in one
    transaction, and record the sync. BillingStoreError (before anything is touched) when a line
    lies outside those days or belongs to another source. An empty range (start == end: the
    provider keeps none of the days asked for) changes nothing."""
    _check(fetch)
    if fetch.start == fetch.end:  # the provider had none of the days asked for: nothing to replace
        return StoredSync(fetch.provider, fetch.source, fetch.start, fetch.end, 0, 0, 0, {})
    billing = _billing_table(fetch)
    usage = _usage_table(fetch)
    key = [fetch.provider, fetch.source, fetch.start, fetch.end]
    span = "provider = ? AND source = ? AND day >= ? AND day < ?"
    with transaction(cur):
        replaced = cur.execute(f"SELECT count(*) FROM billing WHERE {span}", key).fetchall()[0][0]
        cur.execute(f"DELETE FROM billing WHERE {span}", key)
        cur.execute(f"DELETE FROM billing_usage WHERE {span}", key)
        cur.register("_billing_new", billing)
        cur.register("_billing_usage_new", usage)
        try:
            cur.execute("INSERT INTO billing SELECT * FROM _billing_new")
            cur.execute("INSERT INTO billing_usage SELECT * FROM _billing_usage_new")
        finally:
            cur.unregister("_billing_new")
            cur.unregister("_billing_usage_new")
        cur.execute("INSERT INTO billing_syncs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [fetch.provider, fetch.source, fetch.start, fetch.end, fetch.fetched_at,
                     fetch.pages, len(fetch.lines), len(fetch.usage)])
    return StoredSync(fetch.provider, fetch.source, fetch.start, fetch.end, len(fetch.lines),
                      len(fetch.usage), int(replaced), totals(fetch.lines))


def has_billing(cur: duckdb.DuckDBPyConnection) -> bool:
    """Whether this cache has the billing tables (schema v2 on; a v1 cache opened read-only has not)."""
    return bool(cur.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main'"
        " AND table_name = 'billing_syncs'").fetchall()[0][0])


def last_day(cur: duckdb.DuckDBPyConnection, source: str, provider: str | None = None) -> date | None:
    """The last UTC day a completed sync of `source` covered (inclusive), or None before the first."""
    if not has_billing(cur):
        return None
    sql = "SELECT max(end_day) FROM billing_syncs WHERE source = ?"
    params: list[object] = [source]
    if provider is not None:
        sql += " AND provider = ?"
        params.append(provider)
    end: date | None = cur.execute(sql, params).fetchall()[0][0]
    return None if end is None else date.fromordinal(end.toordinal() - 1)


def syncs(cur: duckdb.DuckDBPyConnection) -> list[SyncRecord]:
    """Each source's last completed sync (for staleness), ordered by provider and source."""
    if not has_billing(cur):
        return []
    rows = cur.execute(
        "SELECT provider, source, arg_max(start_day, fetched_at), arg_max(end_day, fetched_at),"
        " max(fetched_at), arg_max(pages, fetched_at), arg_max(lines, fetched_at), min(start_day)"
        " FROM billing_syncs GROUP BY provider, source ORDER BY provider, source").fetchall()
    return [SyncRecord(*row) for row in rows]


def billed(cur: duckdb.DuckDBPyConnection, start: date, end: date, *,
           provider: str | None = None) -> list[BilledDay]:
    """Billed amounts per provider, model and UTC day in [start, end), every source summed (exact)."""
    if not has_billing(cur):
        return []
    sql = ("SELECT provider, model, day, currency, sum(amount) FROM billing"
           " WHERE day >= ? AND day < ?")
    params: list[object] = [start, end]
    if provider is not None:
        sql += " AND provider = ?"
        params.append(provider)
    sql += " GROUP BY provider, model, day, currency ORDER BY day, provider, model NULLS LAST, currency"
    return [BilledDay(p, m, d, c, Decimal(a)) for p, m, d, c, a in cur.execute(sql, params).fetchall()]


def billed_lines(cur: duckdb.DuckDBPyConnection, start: date, end: date, *,
                 provider: str | None = None) -> list[BillingLine]:
    """The stored lines of [start, end) as they came (for a detail view or an export)."""
    if not has_billing(cur):
        return []
    sql = ("SELECT provider, source, day, amount, currency, model, line_item, project, service_tier"
           " FROM billing WHERE day >= ? AND day < ?")
    params: list[object] = [start, end]
    if provider is not None:
        sql += " AND provider = ?"
        params.append(provider)
    sql += " ORDER BY day, provider, source, model NULLS LAST, line_item NULLS LAST, project NULLS LAST"
    return [BillingLine(p, s, d, Decimal(a), c, m, li, pr, t)
            for p, s, d, a, c, m, li, pr, t in cur.execute(sql, params).fetchall()]


def usage(cur: duckdb.DuckDBPyConnection, start: date, end: date, *,
          provider: str | None = None) -> list[UsageDay]:
    """The providers' token counts in [start, end), per source, day, model, project, key and batch."""
    if not has_billing(cur):
        return []
    sql = ("SELECT provider, source, day, model, project, api_key, batch, sum(requests),"
           " sum(input_tokens), sum(output_tokens), sum(cached_input_tokens) FROM billing_usage"
           " WHERE day >= ? AND day < ?")
    params: list[object] = [start, end]
    if provider is not None:
        sql += " AND provider = ?"
        params.append(provider)
    sql += (" GROUP BY ALL ORDER BY day, provider, source, model NULLS LAST, project NULLS LAST,"
            " api_key NULLS LAST, batch NULLS LAST")
    return [UsageDay(p, s, d, m, pr, k, b, int(r), int(i), int(o), int(c))
            for p, s, d, m, pr, k, b, r, i, o, c in cur.execute(sql, params).fetchall()]
