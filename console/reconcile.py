"""Billed against estimated: per provider, model and UTC day, with each gap's likely causes.

Billed comes from the cache's billing tables (`console.cache.billing_store`: exact Decimal
sums of what the providers reported); estimated from the hour rollups (traces x price
table, float USD as stored by ingest, converted ONCE per provider/model/day sum to Decimal
through its shortest repr, so no further float arithmetic happens). Only completed UTC days
are compared ([today - days, today)): today's figures are still moving on both sides.

Models are matched after `pricing.normalise_model` (`gpt-4o-mini-2024-07-18` and
`gpt-4o-mini` are one row) and providers after `pricing.normalise_provider`.

A row's `status`:
- "ok"             billed and estimated within the threshold share;
- "gap"            the difference is over the threshold share (of billed; of the estimate when
                   nothing was billed on a day the provider's figures cover): `causes` says why;
- "no_estimate"    billed, but no trace of that provider/model on that day (or a billed line
                   with no model, which no trace can be compared with);
- "not_billed"     estimated, and the provider's figures do not reach that day yet (its last
                   synced day is older, or its first sync started later);
- "not_configured" estimated for a provider no billing source has ever synced.

Causes are computed from stored data only; each carries the dollars of the gap it explains
(signed like the gap, billed - estimated) when that is computable; one pointing against the
gap is dropped, and the rest are ranked by that amount (largest first; uncomputable ones last):
- "unpriced":       the traces had requests of that model with no price that day (estimated
                    at $0): explains billed x unpriced / requests.
- "price_changed":  the provider's own token counts (billing_usage) priced with the table's
                    price of that day (cached tokens at the cache price, batch at half) differ
                    from what it billed by more than the threshold: the implied price is
                    r x the table's (effective date shown); explains estimated x (r - 1).
- "missing_hours":  hours of the day with no span of that provider at all while it billed
                    the day: explains the model's traced hourly rate x the untraced hours.
- "unseen_usage":   provider usage or billing lines by project / api key that match no
                    tenant, route or service in that provider's traces of that day (only when
                    at least one project/key of the provider does match one, so the mapping is
                    known to be in use): explains their billed amount (or their tokens at the
                    table price when the lines carry no project).
- "discount":       cached input tokens the provider counted beyond the cache-read tokens the
                    traces reported (the estimate priced them at the full input price), and
                    batch usage (priced at list by the estimate when the traces saw as many
                    requests as the provider counted, batch included): explains the negative
                    difference.
- "unexplained":    flagged, and none of the above applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from console.cache import billing_store
from console.pricing import Price, PriceTable, normalise_model, normalise_provider

if TYPE_CHECKING:
    import duckdb

Status = Literal["ok", "gap", "no_estimate", "not_billed", "not_configured"]
CauseCode = Literal["unpriced", "price_changed", "missing_hours", "unseen_usage", "discount",
                    "unexplained"]
DEFAULT_THRESHOLD = 0.05
BATCH_DISCOUNT = Decimal("0.5")
"""OpenAI's and Anthropic's Batch APIs bill half the list price."""
_PER_TOKEN = Decimal("0.000001")
_ZERO = Decimal(0)
NO_MODEL = "(no model)"


@dataclass(frozen=True)
class Cause:
    code: CauseCode
    detail: str
    explains: Decimal | None = None
    """Dollars of the gap (billed - estimated, same sign) this cause accounts for, when computable."""


@dataclass(frozen=True)
class Row:
    provider: str
    model: str
    day: date
    billed: Decimal | None
    estimated: Decimal | None
    status: Status
    causes: tuple[Cause, ...] = ()
    note: str = ""

    @property
    def gap(self) -> Decimal | None:
        if self.billed is None or self.estimated is None:
            return None
        return self.billed - self.estimated

    @property
    def share(self) -> Decimal | None:
        """The gap as a share of billed (of estimated when nothing was billed)."""
        gap = self.gap
        if gap is None:
            return None
        base = self.billed if self.billed else self.estimated
        if not base:
            return None
        return gap / base

    @property
    def flagged(self) -> bool:
        return self.status == "gap"


@dataclass
class _Est:
    cost: Decimal = _ZERO
    requests: int = 0
    unpriced: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0


@dataclass
class _Usage:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached: int = 0
    batch_requests: int = 0
    batch_in: int = 0
    batch_out: int = 0
    batch_cached: int = 0
    by_who: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    """project or api key -> (input, output, cached) tokens."""


def to_decimal(cost: float) -> Decimal:
    """A rollup's float USD as a Decimal: once, through its shortest repr."""
    return Decimal(repr(float(cost)))


def match_key(provider: str | None, model: str | None) -> tuple[str, str]:
    """(provider, model) as billed and estimated amounts are matched (and billed budgets scoped):
    after `normalise_provider` / `normalise_model`; a blank model is `NO_MODEL`."""
    p = normalise_provider(provider) or ""
    return p, (normalise_model(model) if model and model.strip() else NO_MODEL)


def _estimates(cur: duckdb.DuckDBPyConnection, start: date, end: date) -> tuple[
        dict[tuple[str, str, date], _Est], dict[tuple[str, date], int],
        dict[tuple[str, date], set[str]]]:
    """Per (provider, model, day) spend and tokens; per (provider, day) traced hours and the
    tenants/routes/services seen."""
    rows = cur.execute(
        "SELECT provider, model, ts::DATE AS day, sum(cost_usd)::DOUBLE, sum(requests)::BIGINT,"
        " sum(unpriced)::BIGINT, sum(input_tokens)::BIGINT, sum(output_tokens)::BIGINT,"
        " sum(cache_read_tokens)::BIGINT FROM rollup_hour WHERE ts >= ? AND ts < ?"
        " GROUP BY ALL", [datetime.combine(start, datetime.min.time()),
                          datetime.combine(end, datetime.min.time())]).fetchall()
    est: dict[tuple[str, str, date], _Est] = {}
    floats: dict[tuple[str, str, date], float] = {}
    for provider, model, day, cost, req, unpriced, tin, tout, tcache in rows:
        p, m = match_key(provider, model)
        k = (p, m, day)
        e = est.setdefault(k, _Est())
        floats[k] = floats.get(k, 0.0) + float(cost or 0.0)
        e.requests += int(req)
        e.unpriced += int(unpriced)
        e.input_tokens += int(tin)
        e.output_tokens += int(tout)
        e.cache_read_tokens += int(tcache)
    for k, total in floats.items():
        est[k].cost = to_decimal(total)
    hours: dict[tuple[str, date], set[datetime]] = {}
    seen: dict[tuple[str, date], set[str]] = {}
    for provider, ts, tenant, route, service in cur.execute(
            "SELECT DISTINCT provider, ts, tenant, route, service FROM rollup_hour"
            " WHERE ts >= ? AND ts < ?", [datetime.combine(start, datetime.min.time()),
                                          datetime.combine(end, datetime.min.time())]).fetchall():
        k2 = (normalise_provider(provider) or "", ts.date())
        hours.setdefault(k2, set()).add(ts)
        seen.setdefault(k2, set()).update(v for v in (tenant, route, service) if v)
    return est, {k: len(v) for k, v in hours.items()}, seen


def _usage(cur: duckdb.DuckDBPyConnection, start: date, end: date) -> dict[tuple[str, str, date], _Usage]:
    out: dict[tuple[str, str, date], _Usage] = {}
    for u in billing_store.usage(cur, start, end):
        p, m = match_key(u.provider, u.model)
        x = out.setdefault((p, m, u.day), _Usage())
        x.requests += u.requests
        x.input_tokens += u.input_tokens
        x.output_tokens += u.output_tokens
        x.cached += u.cached_input_tokens
        if u.batch:
            x.batch_requests += u.requests
            x.batch_in += u.input_tokens
            x.batch_out += u.output_tokens
            x.batch_cached += u.cached_input_tokens
        for who in (u.project, u.api_key):
            if who:
                a, b, c = x.by_who.get(who, (0, 0, 0))
                x.by_who[who] = (a + u.input_tokens, b + u.output_tokens, c + u.cached_input_tokens)
    return out


def _cost(price: Price, tin: int, tout: int, cached: int) -> Decimal:
    """The table's price of these tokens, in exact Decimal arithmetic (input includes cached)."""
    cache_price = price.input if price.cache_read is None else price.cache_read
    uncached = max(tin - max(cached, 0), 0)
    return (Decimal(repr(price.input)) * uncached + Decimal(repr(cache_price)) * max(cached, 0)
            + Decimal(repr(price.output)) * max(tout, 0)) * _PER_TOKEN


def _money(d: Decimal) -> str:
    return f"${d:,.4f}"


def _causes(provider: str, model: str, day: date, billed: Decimal, est: _Est, use: _Usage | None,
            hours: int, seen: set[str], lines_by_project: dict[str, Decimal], table: PriceTable,
            threshold: float) -> list[Cause]:
    found: list[Cause] = []
    gap = billed - est.cost
    price = table.lookup(provider, model, day)
    # (a) unpriced requests of this model in the traces
    if est.unpriced > 0:
        share = Decimal(est.unpriced) / Decimal(max(est.requests, 1))
        found.append(Cause("unpriced", f"{est.unpriced:,} of {est.requests:,} traced requests of {model}"
                           " had no price (estimated at $0)", billed * share))
    if use is not None and price is not None:
        # (b) the provider's own tokens at the table's price vs what it billed
        batch_list = _cost(price, use.batch_in, use.batch_out, use.batch_cached)
        expected = (_cost(price, use.input_tokens, use.output_tokens, use.cached)
                    - batch_list * BATCH_DISCOUNT)
        tokens = use.input_tokens + use.output_tokens
        if expected > 0 and tokens > 0:
            ratio = billed / expected
            if abs(ratio - 1) > Decimal(repr(threshold)):
                implied = billed / tokens * 1_000_000
                table_rate = expected / tokens * 1_000_000
                found.append(Cause(
                    "price_changed",
                    f"the provider billed {_money(billed)} for its {tokens:,} tokens: ${implied:.4f}/M tokens"
                    f" against the table's ${table_rate:.4f}/M (x{ratio:.3f}; table price effective"
                    f" {price.effective})", est.cost * (ratio - 1)))
        # (e) cached tokens the estimate priced at list; batch usage
        extra_cached = use.cached - est.cache_read_tokens
        if extra_cached > 0 and price.cache_read is not None and price.cache_read < price.input:
            saved = Decimal(extra_cached) * (Decimal(repr(price.input)) - Decimal(repr(price.cache_read))) \
                * _PER_TOKEN
            found.append(Cause("discount", f"{extra_cached:,} cached input tokens the provider counted"
                               " were priced at the full input price by the estimate", -saved))
        if use.batch_requests > 0 or use.batch_in + use.batch_out > 0:
            traced_all = use.requests > 0 and est.requests >= use.requests
            if traced_all:
                found.append(Cause("discount", f"batch usage ({use.batch_requests:,} requests) billed at"
                                   " half the list price the estimate used", -batch_list * BATCH_DISCOUNT))
            else:
                found.append(Cause("discount", f"batch usage ({use.batch_requests:,} requests, billed at"
                                   " half price) that the traces do not show",
                                   batch_list * (1 - BATCH_DISCOUNT)))
    # (c) hours of the day with no span of this provider
    if 0 < hours < 24:
        missing = 24 - hours
        found.append(Cause("missing_hours", f"{missing} of 24 hours have no {provider} span while"
                           " the provider billed the day", est.cost / hours * missing))
    # (d) projects / keys the traces never see
    whos = set(lines_by_project) | (set(use.by_who) if use is not None else set())
    if whos and whos & seen:
        unseen = sorted(whos - seen)
        if unseen:
            amount = sum((lines_by_project.get(w, _ZERO) for w in unseen), _ZERO)
            if not amount and use is not None and price is not None:
                amount = sum((_cost(price, *use.by_who[w]) for w in unseen if w in use.by_who), _ZERO)
            found.append(Cause("unseen_usage", "usage from " + ", ".join(unseen[:5])
                               + (" ..." if len(unseen) > 5 else "")
                               + " (provider project/api key matching no tenant, route or service"
                               f" in the {provider} traces that day)", amount or None))
    # A cause whose dollars point against the gap (it would widen it) cannot explain it: drop
    # it. The rest are ranked by how much of the gap each explains; uncomputable ones last.
    found = [c for c in found if c.explains is None or not c.explains or (c.explains > 0) == (gap > 0)]
    found.sort(key=lambda c: (1, _ZERO) if c.explains is None else (0, -abs(c.explains)))
    if not found:
        found.append(Cause("unexplained", "none of the computed causes applies"))
    return found


def reconcile(cur: duckdb.DuckDBPyConnection, today: date, days: int, table: PriceTable,
              threshold: float = DEFAULT_THRESHOLD,
              syncs: Sequence[billing_store.SyncRecord] | None = None) -> list[Row]:
    """Rows for the completed UTC days [today - days, today), ordered by day, provider, model.

    `syncs`: `billing_store.syncs(cur)` when the caller has just read it (not read again)."""
    start, end = today - timedelta(days=days), today
    est, hours, seen = _estimates(cur, start, end)
    use = _usage(cur, start, end)
    billed: dict[tuple[str, str, date], Decimal] = {}
    for bd in billing_store.billed(cur, start, end):
        if bd.currency.upper() != "USD":
            continue
        k = (*match_key(bd.provider, bd.model), bd.day)
        billed[k] = billed.get(k, _ZERO) + bd.amount
    by_project: dict[tuple[str, str, date], dict[str, Decimal]] = {}
    for line in billing_store.billed_lines(cur, start, end):
        if line.project and line.currency.upper() == "USD":
            d = by_project.setdefault((*match_key(line.provider, line.model), line.day), {})
            d[line.project] = d.get(line.project, _ZERO) + line.amount
    coverage: dict[str, tuple[date, date]] = {}
    for s in billing_store.syncs(cur) if syncs is None else syncs:
        p = normalise_provider(s.provider) or s.provider
        last = s.end - timedelta(days=1)
        a, b2 = coverage.get(p, (s.covered_from, last))
        coverage[p] = (min(a, s.covered_from), max(b2, last))
    rows: list[Row] = []
    for k in sorted(billed.keys() | est.keys(), key=lambda x: (x[2], x[0], x[1])):
        provider, model, day = k
        b = billed.get(k)
        e = est.get(k)
        if e is None:
            assert b is not None
            note = "a billed line with no model" if model == NO_MODEL else "no trace of it that day"
            rows.append(Row(provider, model, day, b, None, "no_estimate", note=note))
            continue
        if b is None:
            cov = coverage.get(provider)
            if cov is None:
                rows.append(Row(provider, model, day, None, e.cost, "not_configured",
                                note="no billing source of this provider has synced"))
                continue
            if not cov[0] <= day <= cov[1]:
                rows.append(Row(provider, model, day, None, e.cost, "not_billed",
                                note=f"the provider's figures cover {cov[0]}..{cov[1]}"))
                continue
            b = _ZERO
        row = Row(provider, model, day, b, e.cost, "ok")
        share = row.share
        if share is not None and abs(share) > Decimal(repr(threshold)):
            causes = _causes(provider, model, day, b, e, use.get(k), hours.get((provider, day), 0),
                             seen.get((provider, day), set()), by_project.get(k, {}), table, threshold)
            row = Row(provider, model, day, b, e.cost, "gap", tuple(causes))
        rows.append(row)
    return rows


def flagged(rows: Sequence[Row]) -> list[Row]:
    return [r for r in rows if r.flagged]


@dataclass(frozen=True)
class Unconfigured:
    """The `not_configured` rows summed up: what the traces estimate for providers no billing
    source has synced (nothing to compare with; one line for them instead of a row each)."""

    rows: int
    providers: tuple[tuple[str, int], ...]
    """(provider, rows), by provider name."""
    estimated: Decimal
    first: date
    last: date


def unconfigured(rows: Sequence[Row]) -> Unconfigured | None:
    """The summary of `rows`' `not_configured` rows; None when there are none."""
    found = [r for r in rows if r.status == "not_configured"]
    if not found:
        return None
    counts: dict[str, int] = {}
    for r in found:
        counts[r.provider] = counts.get(r.provider, 0) + 1
    days = [r.day for r in found]
    return Unconfigured(len(found), tuple(sorted(counts.items())),
                        sum((r.estimated or _ZERO for r in found), _ZERO), min(days), max(days))


def unconfigured_json(u: Unconfigured | None) -> dict[str, object] | None:
    """`{"rows", "providers": {name: rows}, "estimated", "first_day", "last_day"}`, amounts as strings."""
    if u is None:
        return None
    return {"rows": u.rows, "providers": dict(u.providers), "estimated": str(u.estimated),
            "first_day": u.first.isoformat(), "last_day": u.last.isoformat()}


def row_json(r: Row) -> dict[str, object]:
    """Amounts as strings (exact)."""
    def s(d: Decimal | None) -> str | None:
        return None if d is None else str(d)

    share = r.share
    return {
        "provider": r.provider, "model": r.model, "day": r.day.isoformat(), "status": r.status,
        "billed": s(r.billed), "estimated": s(r.estimated), "gap": s(r.gap),
        "share": None if share is None else str(share.quantize(Decimal("0.0001"))),
        "note": r.note,
        "causes": [{"cause": c.code, "explains": s(c.explains), "detail": c.detail} for c in r.causes],
    }
