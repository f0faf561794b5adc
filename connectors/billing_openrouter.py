"""OpenRouter: daily spend per model (`/api/v1/activity`), the key's own spend (`/api/v1/key`), credits.

`/api/v1/activity` (last 30 completed UTC days, one item per day, model and
provider endpoint) and `/api/v1/credits` need a *management* key. With an ordinary
key they answer 403; the fetch then degrades to what `/api/v1/key` gives — the
calling key's spend today (`usage_daily`) as one line with no model, whose
`line_item` says why (`KEY_ONLY_LINE_ITEM`) — instead of failing. Amounts are
dollars as JSON numbers, decoded straight to `Decimal`. The key travels only in the
`Authorization` header. No pagination is documented: each endpoint is one page.
Shapes: API_SHAPES.md section 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import MAX_PREC, Decimal, localcontext
from typing import Any, Literal

from connectors.billing_pages import (
    PayloadError,
    check_days,
    count,
    decode_error,
    fetch_time,
    get_page,
    iso_day,
    items,
    money,
    obj,
    text,
)
from connectors.http import SourceClient, SourceError
from console.billing import BillingFetch, BillingLine, Provider, UsageLine

PROVIDER: Provider = "openrouter"
DEFAULT_URL = "https://openrouter.ai"
HEADERS: dict[str, str] = {}
KEY_PATH = "/api/v1/key"
CREDITS_PATH = "/api/v1/credits"
ACTIVITY_PATH = "/api/v1/activity"
ACTIVITY_DAYS = 30
"""`/api/v1/activity` covers the last 30 completed UTC days (not today)."""
KEY_ONLY_LINE_ITEM = "key usage today (no per-model detail: /api/v1/activity needs a management key)"
"""The `line_item` of the one line a fetch without a management key stores."""


def secret_headers(key: str) -> dict[str, str]:
    """The API (or management) key as a bearer token."""
    return {"Authorization": f"Bearer {key}"}


@dataclass(frozen=True)
class Balance:
    """What is left to spend: from `/credits` (management key) or the calling key's limit (`/key`)."""

    remaining: Decimal | None
    """Dollars; None when the key has no limit and `/credits` cannot be read."""
    used: Decimal
    total: Decimal | None
    """Credits bought (`/credits`) or the key's limit (`/key`); None for a key without a limit."""
    basis: Literal["credits", "key"]
    note: str
    """One line saying what the figures are."""


def _forbidden(err: SourceError) -> bool:
    return err.kind == "auth" and err.status == 403


async def _key(client: SourceClient) -> dict[str, Any]:
    doc = await get_page(client, KEY_PATH)
    try:
        return obj(obj(doc, "$").get("data"), "data")
    except PayloadError as exc:
        raise decode_error(client, f"GET {KEY_PATH}", str(exc)) from None


async def fetch(
    client: SourceClient, source_name: str, start: date, end: date, *, now: datetime | None = None
) -> BillingFetch:
    """Daily spend per model for the UTC days [start, end) that OpenRouter knows.

    `/activity` covers the last 30 completed days, so the fetch's own [start, end) is
    narrowed to them (possibly empty: start == end): a store that replaces the fetch's
    days never wipes older rows, nor today's, with "nothing". Without a management key
    (403 on `/activity`): one line, today's spend of the calling key, and the fetch covers
    only today.
    """
    check_days(start, end)
    fetched_at = fetch_time(now)
    today = fetched_at.date()
    key = await _key(client)
    try:
        doc = await get_page(client, ACTIVITY_PATH)
    except SourceError as err:
        if not _forbidden(err):
            raise
        # only today's line is known: the fetch covers only today (nothing stored for other days is replaced)
        line = _key_line(client, key, source_name, today)
        return BillingFetch(
            PROVIDER, source_name, today, today + timedelta(days=1), (line,), (), fetched_at, 1
        )
    # /activity knows the last ACTIVITY_DAYS completed days: the fetch claims only those
    known_start, known_end = max(start, today - timedelta(days=ACTIVITY_DAYS)), min(end, today)
    known_start = min(known_start, known_end)
    try:
        lines, usage = _activity(doc, source_name, known_start, known_end)
    except PayloadError as exc:
        raise decode_error(client, f"GET {ACTIVITY_PATH}", str(exc)) from None
    return BillingFetch(PROVIDER, source_name, known_start, known_end, lines, usage, fetched_at, 2)


async def balance(client: SourceClient) -> Balance:
    """Credits left: `/credits` with a management key, else (403) the calling key's limit from `/key`."""
    try:
        doc = await get_page(client, CREDITS_PATH)
    except SourceError as err:
        if not _forbidden(err):
            raise
        key = await _key(client)
        try:
            used = money(key.get("usage"), "data.usage")
            limit = key.get("limit")
            total = None if limit is None else money(limit, "data.limit")
            left = key.get("limit_remaining")
            remaining = None if left is None else money(left, "data.limit_remaining")
        except PayloadError as exc:
            raise decode_error(client, f"GET {KEY_PATH}", str(exc)) from None
        note = (
            "this key's limit and spend (/api/v1/credits needs a management key)"
            if total is not None
            else "this key's spend; it has no limit (/api/v1/credits needs a management key)"
        )
        return Balance(remaining, used, total, "key", note)
    try:
        data = obj(obj(doc, "$").get("data"), "data")
        total = money(data.get("total_credits"), "data.total_credits")
        used = money(data.get("total_usage"), "data.total_usage")
    except PayloadError as exc:
        raise decode_error(client, f"GET {CREDITS_PATH}", str(exc)) from None
    with localcontext() as exact:
        exact.prec = MAX_PREC
        remaining = total - used
    return Balance(remaining, used, total, "credits", "the account's credits bought and used")


def _key_line(client: SourceClient, key: dict[str, Any], source: str, today: date) -> BillingLine:
    try:
        spent = money(key.get("usage_daily"), "data.usage_daily")
    except PayloadError as exc:
        raise decode_error(client, f"GET {KEY_PATH}", str(exc)) from None
    return BillingLine(PROVIDER, source, today, spent, "USD", line_item=KEY_ONLY_LINE_ITEM)


def _activity(
    doc: Any, source: str, start: date, end: date
) -> tuple[tuple[BillingLine, ...], tuple[UsageLine, ...]]:
    """Lines and usage summed per (day, model, provider, workspace): the API lists each endpoint."""
    money_by: dict[tuple[date, str | None, str | None, str | None], Decimal] = {}
    usage_by: dict[tuple[date, str | None, str | None], list[int]] = {}
    for i, raw in enumerate(items(obj(doc, "$"), "data")):
        path = f"data[{i}]"
        item = obj(raw, path)
        day = iso_day(item, "date", path)
        if not start <= day < end:
            continue
        model = text(item, "model", path)
        provider = text(item, "provider_name", path) or text(item, "endpoint_id", path)
        workspace = text(item, "workspace_id", path)
        if "usage" not in item:
            raise PayloadError(f"{path}.usage: missing")
        amount = money(item["usage"], f"{path}.usage")
        key = (day, model, provider, workspace)
        with localcontext() as exact:
            exact.prec = MAX_PREC  # a sum never rounds
            money_by[key] = money_by.get(key, Decimal(0)) + amount
        counts = usage_by.setdefault((day, model, workspace), [0, 0, 0])
        counts[0] += count(item, "requests", path, required=True)
        counts[1] += count(item, "prompt_tokens", path, required=True)
        counts[2] += count(item, "completion_tokens", path, required=True)
    lines = tuple(
        BillingLine(PROVIDER, source, day, amount, "USD", model=model, line_item=provider, project=workspace)
        for (day, model, provider, workspace), amount in money_by.items()
    )
    usage = tuple(
        UsageLine(
            PROVIDER, source, day, model, workspace, requests=c[0], input_tokens=c[1], output_tokens=c[2]
        )
        for (day, model, workspace), c in usage_by.items()
    )
    return lines, usage
