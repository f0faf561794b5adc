"""PromQL SLOs evaluated at one instant in batched queries: one request per poll when they fit.

Every expression of an SLO (good, errors and total per window, see `console.promql_slo`)
is a part of a batched instant query (`console.promql_batch`), and the SLOs of one
source share it, split only where the text would pass `MAX_QUERY_CHARS`. Kept apart:

- quantile-method SLOs share a query of their own: their 1-minute subqueries are the
  expensive part of a poll, and a slow one then times out without the cheap SLOs;
- each SLO the server refused last time (`isolated`, by name) is asked alone, so a bad
  SLO costs one query of its own per poll, not a refused shared query and a retry of
  every SLO in it.

Bucket-method SLOs whose `le` matcher is not in `le_cache` are looked up first, in one
batched query too. A refused query of several SLOs is asked again one SLO at a time,
so the bad SLO gets its own `errorType: error` and the others their figures."""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from datetime import datetime, timedelta

from connectors.prometheus import duration
from console.config import ScopeFilter, SloSpec
from console.promql_batch import Answer, InstantApi, Part, ask, blames_query
from console.promql_slo import (
    LeCache,
    PromqlError,
    PromqlSloResult,
    SliQueries,
    known_queries,
    le_lookup,
    selector,
    single_value,
    window_counts,
    with_bucket,
)
from console.slo import REQUIRED_WINDOWS, evaluate_windows
from console.snapshots import SloStatus
from console.timeutil import naive_utc

Outcome = tuple[SloStatus, tuple[str, ...]] | Exception
"""An SLO's status and the API's warnings, or why it has none."""


def windows(spec: SloSpec) -> list[timedelta]:
    """The burn-rate windows and the SLO window, each once."""
    return list(dict.fromkeys((*REQUIRED_WINDOWS, timedelta(days=spec.window_days))))


def _quantile(q: SliQueries) -> bool:
    return q.sli.histogram is not None and q.sli.method == "quantile"


def slo_parts(group: int, spec: SloSpec, q: SliQueries) -> list[Part]:
    """The SLO's expressions keyed `good|W`, `errors|W`, `total|W` (and `requests`, quantile method)."""
    parts = []
    for w in windows(spec):
        d = duration(w)
        if q.counts_good:
            parts.append(Part(group, f"good|{d}", q.good(w)))
        errors = q.errors(w)
        if errors is not None:
            parts.append(Part(group, f"errors|{d}", errors))
        parts.append(Part(group, f"total|{d}", q.total(w)))
    if _quantile(q):
        parts.append(Part(group, "requests", q.requests(timedelta(days=spec.window_days))))
    return parts


def status_from(spec: SloSpec, q: SliQueries, answer: Answer) -> SloStatus:
    """The SLO's status from its parts' answers; PromqlError when one is unusable."""
    slo_window = timedelta(days=spec.window_days)
    counts = {}
    for w in windows(spec):
        d = duration(w)
        good = single_value(answer.of(f"good|{d}"), q.good(w)) if q.counts_good else None
        errors_expr = q.errors(w)
        errors = None if errors_expr is None else single_value(answer.of(f"errors|{d}"), errors_expr)
        total = single_value(answer.of(f"total|{d}"), q.total(w))
        counts[w] = window_counts(q.good_value(good), errors, total)
    histogram = q.sli.histogram
    if histogram is not None and not q.counts_good and counts[slo_window].total:
        raise PromqlError(f"{selector(histogram + '_bucket', q.sli.selector)} has no series"
                          f" but {histogram}_count has: is it a histogram?")
    if _quantile(q):
        requests = single_value(answer.of("requests"), q.requests(slo_window))
    else:
        requests = counts[slo_window].total
    ev = evaluate_windows(counts, spec.objective, slo_window)
    return SloStatus(
        name=spec.name, kind=spec.kind, objective=spec.objective, window=slo_window,
        filter=ScopeFilter(), threshold_ms=spec.threshold_ms, requests=round(requests or 0),
        compliance=ev.compliance, budget_remaining=ev.budget_remaining,
        time_to_exhaustion=ev.time_to_exhaustion, burn_rates=ev.burn_rates,
        level=ev.level, reason=ev.reason,
    )


async def _queries(client: InstantApi, specs: Sequence[SloSpec], at: datetime,
                   le_cache: LeCache | None, isolated: set[str]) -> list[SliQueries | Exception]:
    """Every SLO's queries; the `le` lookups that are needed, batched."""
    known = [known_queries(spec, le_cache) for spec in specs]
    lookups = {i: [Part(i, "le", le_lookup(spec.promql, timedelta(days=spec.window_days)))]
               for i, spec in enumerate(specs) if known[i] is None and spec.promql is not None}
    alone = {i for i in lookups if specs[i].name in isolated}
    answers = await ask(client, _lanes(lookups, set(), alone), at) if lookups else {}
    out: list[SliQueries | Exception] = []
    for i, spec in enumerate(specs):
        q = known[i]
        if q is None:
            answer = answers[i]
            if isinstance(answer, Exception):
                out.append(answer)
                continue
            try:
                q = with_bucket(spec, [s.label("le") for s in answer.of("le")], le_cache)
            except PromqlError as exc:
                out.append(exc)
                continue
        out.append(q)
    return out


def _lanes(parts: dict[int, list[Part]], heavy: AbstractSet[int],
           alone: AbstractSet[int]) -> list[dict[int, list[Part]]]:
    """The shared lane, the heavy SLOs' lane, then one lane per SLO asked alone; empty lanes left out."""
    shared = {i: p for i, p in parts.items() if i not in heavy and i not in alone}
    slow = {i: p for i, p in parts.items() if i in heavy and i not in alone}
    return [lane for lane in (shared, slow, *({i: parts[i]} for i in sorted(alone))) if lane]


async def outcomes(client: InstantApi, specs: Sequence[SloSpec], at: datetime,
                   le_cache: LeCache | None = None, isolated: set[str] | None = None) -> list[Outcome]:
    """Every SLO at `at`, in order; `isolated` (SLO names) is updated with who the server refused."""
    at = naive_utc(at)
    isolated = set() if isolated is None else isolated
    queries = await _queries(client, specs, at, le_cache, isolated)
    plans = {i: q for i, q in enumerate(queries) if isinstance(q, SliQueries)}
    parts = {i: slo_parts(i, specs[i], q) for i, q in plans.items()}
    heavy = {i for i, q in plans.items() if _quantile(q)}
    alone = {i for i in plans if specs[i].name in isolated}
    answers = await ask(client, _lanes(parts, heavy, alone), at) if parts else {}
    results: list[Outcome] = []
    for i, spec in enumerate(specs):
        q = queries[i]
        outcome: Outcome
        if isinstance(q, Exception):
            outcome = q
        else:
            got = answers[i]
            try:
                outcome = got if isinstance(got, Exception) else (status_from(spec, q, got), got.warnings)
            except Exception as exc:  # noqa: BLE001 - one SLO's unusable answer must not hide the others
                outcome = exc
        if not isinstance(outcome, Exception):
            isolated.discard(spec.name)
        elif blames_query(outcome):
            isolated.add(spec.name)
        results.append(outcome)
    return results


async def evaluate(client: InstantApi, spec: SloSpec, at: datetime,
                   le_cache: LeCache | None = None) -> tuple[SloStatus, tuple[str, ...]]:
    """One PromQL SLO at `at`: its status and the API's warnings; raises SourceError or PromqlError."""
    (outcome,) = await outcomes(client, [spec], at, le_cache)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


async def evaluate_many(client: InstantApi, specs: Sequence[SloSpec], at: datetime,
                        le_cache: LeCache | None = None, isolated: set[str] | None = None
                        ) -> tuple[PromqlSloResult, ...]:
    """Every SLO at `at`, batched; one failing SLO gets its error text, the others their status."""
    results = []
    for spec, outcome in zip(specs, await outcomes(client, specs, at, le_cache, isolated), strict=True):
        if isinstance(outcome, PromqlError):
            results.append(PromqlSloResult(spec.name, spec.source, None, str(outcome)[:500], "promql"))
        elif isinstance(outcome, Exception):
            kind = getattr(outcome, "kind", None)
            text = str(outcome) if kind is not None else f"{type(outcome).__name__}: {outcome}"
            results.append(PromqlSloResult(spec.name, spec.source, None, text[:500], kind or "internal"))
        else:
            status, warnings = outcome
            results.append(PromqlSloResult(spec.name, spec.source, status, warnings=warnings))
    return tuple(results)
