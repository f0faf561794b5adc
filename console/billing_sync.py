"""Fetch each configured provider billing source and store what it brought back.

`sync` reads every `[[sources.*_billing]]` (or those of one provider) concurrently
through the billing connectors (`connectors/billing_<provider>.py`, each an
`async fetch(client, source_name, start, end) -> BillingFetch`), then stores each
complete fetch in the cache (`console.cache.billing_store.store_fetch`: one
transaction per source). A source that fails stores nothing: its rows stay as they
were, and its `SyncResult` carries the provider, the HTTP status and a clean reason
(a 401/403 names the admin key's reference, never its value).

Which days: from the day after the last stored one, less `refetch_days` (providers
revise recent figures), never further back than `since_days`; the first sync reads
`since_days`; `since` (the CLI's `--since`) overrides. Today (UTC) is always read again.
Never before what the provider still keeps (OpenRouter: 30 days): the sync replaces every
stored row of the days it asks for, and days the provider no longer serves must stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from console.billing import BillingFetch, Provider
from console.timeutil import utc_now

if TYPE_CHECKING:
    import httpx

    from connectors.http import SourceClient
    from console.cache.billing_store import StoredSync
    from console.cache.store import Cache
    from console.config import BillingSource, Config

Fetcher = Callable[["SourceClient", str, date, date], Awaitable[BillingFetch]]
"""A connector's `fetch(client, source_name, start, end)`: days [start, end), UTC."""

ANTHROPIC_VERSION = "2023-06-01"


@dataclass(frozen=True)
class SyncResult:
    """One source's sync: what was stored, or why nothing was."""

    provider: Provider
    source: str
    start: date
    end: date
    """Exclusive."""
    stored: StoredSync | None = None
    pages: int = 0
    seconds: float = 0.0
    error: str | None = None
    """One clean line naming the provider and source (and the status); None when stored."""
    kind: str | None = None
    """`secret`, `store`, or the SourceError kind (`auth`, `http`, `timeout`, `decode`, ...)."""
    status: int | None = None
    secret_ref: str | None = None
    """The admin key's reference, on an auth or secret failure (what to check)."""
    totals: dict[str, Decimal] = field(default_factory=dict)
    last_stored: date | None = None
    """On a failure: the last day stored before (kept as it was); None when nothing was."""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def days(self) -> int:
        return (self.end - self.start).days


def auth_headers(provider: Provider, key: str) -> tuple[dict[str, str], dict[str, str]]:
    """(plain headers, secret headers) for a provider's admin API: a Bearer key for OpenAI and
    OpenRouter, `x-api-key` with `anthropic-version` for Anthropic."""
    if provider == "anthropic":
        return {"anthropic-version": ANTHROPIC_VERSION}, {"x-api-key": key}
    return {}, {"Authorization": f"Bearer {key}"}


def sources_of(config: Config, provider: str | None = None,
               names: Collection[str] | None = None) -> list[BillingSource]:
    """The configured billing sources: all, one provider's, or those named `names`."""
    return [s for s in config.sources.billing()
            if (provider is None or s.provider == provider) and (names is None or s.name in names)]


def days_to_fetch(source: BillingSource, last: date | None, today: date,
                  since: date | None = None) -> tuple[date, date]:
    """[start, end) for the next sync of `source` whose last stored day is `last`."""
    end = today + timedelta(days=1)
    kept = None if source.history_days is None else today - timedelta(days=source.history_days)
    deepest = end - timedelta(days=source.since_days)
    if since is not None:
        start = since
    elif last is None:
        start = deepest
    else:
        start = max(last + timedelta(days=1 - source.refetch_days), deepest)
    if kept is not None:  # asking for days the provider no longer has would blank them here
        start = max(start, kept)
    return min(start, today), end


def connector(provider: Provider) -> Fetcher:
    """`connectors.billing_<provider>.fetch`."""
    module = importlib.import_module(f"connectors.billing_{provider}")
    fetch: Fetcher = module.fetch
    return fetch


def _client(source: BillingSource, key: str, transport: httpx.AsyncBaseTransport | None) -> SourceClient:
    from connectors.http import HttpPolicy, SourceClient

    plain, secret = auth_headers(source.provider, key)
    policy = HttpPolicy(read_timeout=source.timeout_seconds, deadline=3 * source.timeout_seconds)
    return SourceClient(source.name, source.url, headers=plain, secret_headers=secret, policy=policy,
                        transport=transport)


def _where(source: BillingSource) -> str:
    return f"{source.provider} (source {source.name!r})"


def _auth_advice(source: BillingSource) -> str:
    what = {"openai": "an OpenAI Admin key (sk-admin-...)",
            "anthropic": "an Anthropic Admin key (sk-ant-admin...)",
            "openrouter": "an OpenRouter Management key"}[source.provider]
    return f"check the secret {source.admin_key_ref} (admin_key_ref): it must hold {what}"


def _failed(source: BillingSource, start: date, end: date, error: str, kind: str, *,
            status: int | None = None, secret_ref: str | None = None) -> SyncResult:
    return SyncResult(source.provider, source.name, start, end, error=f"{_where(source)}: {error}",
                      kind=kind, status=status, secret_ref=secret_ref)


async def _fetch_one(source: BillingSource, start: date, end: date, fetch: Fetcher,
                     transport: httpx.AsyncBaseTransport | None) -> BillingFetch | SyncResult:
    """The source's complete fetch, or a SyncResult saying why there is none."""
    from connectors.http import SourceError
    from console.secrets import SecretError, header_secret

    try:
        key = await asyncio.to_thread(header_secret, source.admin_key_ref, timeout=10.0)
    except SecretError as exc:
        return _failed(source, start, end, str(exc), "secret", secret_ref=source.admin_key_ref)
    client = _client(source, key, transport)
    del key
    try:
        return await fetch(client, source.name, start, end)
    except SourceError as exc:
        if exc.kind == "auth":
            reason = exc.reason.split("; check the credentials reference")[0]
            return _failed(source, start, end, f"HTTP {exc.status}: {reason}; {_auth_advice(source)}",
                           "auth", status=exc.status, secret_ref=source.admin_key_ref)
        text = str(exc).removeprefix(f"{source.name}: ")
        return _failed(source, start, end, text, exc.kind, status=exc.status)
    except (KeyError, TypeError, ValueError, InvalidOperation, AttributeError) as exc:
        # a connector that met a shape it did not expect: the answer, not llmdeck, is at fault
        return _failed(source, start, end, f"decode: unexpected answer ({type(exc).__name__}: {exc})",
                       "decode")
    finally:
        await client.aclose()


Outcome = tuple[BillingFetch | SyncResult, float]
"""A source's fetch (or why there is none) and the seconds it took."""


async def _fetch_all(jobs: Sequence[tuple[BillingSource, date, date]], fetchers: Mapping[str, Fetcher],
                     transport: httpx.AsyncBaseTransport | None) -> list[Outcome]:
    async def timed(source: BillingSource, start: date, end: date) -> Outcome:
        began = time.monotonic()
        got = await _fetch_one(source, start, end, fetchers[source.provider], transport)
        return got, time.monotonic() - began

    return list(await asyncio.gather(*(timed(*job) for job in jobs)))


def sync(config: Config, cache: Cache, *, provider: str | None = None,
         names: Collection[str] | None = None, since: date | None = None,
         today: date | None = None, fetchers: Mapping[str, Fetcher] | None = None,
         transport: httpx.AsyncBaseTransport | None = None,
         gate: Callable[[], AbstractContextManager[object]] | None = None) -> list[SyncResult]:
    """Fetch every configured billing source (or `provider`'s) now and store each complete fetch.

    `names`: only the sources of those names (the console's poller: the ones due). Sources are
    read concurrently; each is stored in its own transaction once its fetch is
    whole. A failing source stores nothing and its rows stay as they were. Cache faults (a
    full disk) raise (`duckdb.Error`), for the caller's one-line cache message.
    `fetchers` and `transport` replace the connectors and the network (tests). `gate`: held
    around every use of the cache (the reads of what is stored, each store), not around the
    fetches: the lock of a process with other writers of the cache (the console's receiver).
    """
    from console.cache import billing_store

    day = today or utc_now().date()
    sources = sources_of(config, provider, names)
    wanted = {s.provider for s in sources}
    fetch_by: dict[str, Fetcher] = {p: (fetchers or {}).get(p) or connector(p) for p in wanted}
    hold = gate or contextlib.nullcontext
    cur = cache.con
    with hold():
        lasts = [billing_store.last_day(cur, s.name, s.provider) for s in sources]
    jobs = [(s, *days_to_fetch(s, last, day, since)) for s, last in zip(sources, lasts, strict=True)]
    fetched = asyncio.run(_fetch_all(jobs, fetch_by, transport)) if jobs else []
    results: list[SyncResult] = []
    for (source, start, end), last, (got, seconds) in zip(jobs, lasts, fetched, strict=True):
        if isinstance(got, SyncResult):
            results.append(_with(got, seconds=seconds, last_stored=last))
            continue
        began = time.monotonic()
        try:
            with hold():
                stored = billing_store.store_fetch(cur, got)
        except billing_store.BillingStoreError as exc:
            results.append(_with(_failed(source, start, end, f"not stored: {exc}", "store"),
                                 pages=got.pages, seconds=seconds, last_stored=last))
            continue
        results.append(SyncResult(source.provider, source.name, got.start, got.end, stored=stored,
                                  pages=got.pages, seconds=seconds + time.monotonic() - began,
                                  totals=stored.totals))
    return results


def _with(result: SyncResult, **changes: Any) -> SyncResult:
    from dataclasses import replace

    return replace(result, **changes)
