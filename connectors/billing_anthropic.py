"""Anthropic Admin API: the cost report (`/v1/organizations/cost_report`) and the messages usage report.

Costs come grouped by `workspace_id` and `description` (`group_by[]=...`), usage
(`/v1/organizations/usage_report/messages`) by `model`, `workspace_id` and
`service_tier`, both in 1-day buckets, paged with `page=<next_page>` while
`has_more`. Amounts are decimal strings in cents: `"123.45"` is $1.2345, converted
by moving the decimal point (exact; never a float, never a rounding context).
`workspace_id: null` is the default workspace (kept as None). The admin key travels
only in `x-api-key`; `anthropic-version: 2023-06-01` is sent on every request.
The usage report has no request count: `UsageLine.requests` is 0 for Anthropic.
Shapes: API_SHAPES.md section 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from connectors.billing_pages import (
    PayloadError,
    bucket_results,
    cents_to_dollars,
    costs_and_usage,
    count,
    currency,
    money,
    obj,
    rfc3339_day,
    text,
)
from connectors.http import SourceClient
from console.billing import BillingFetch, BillingLine, Provider, UsageLine

PROVIDER: Provider = "anthropic"
DEFAULT_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
HEADERS: dict[str, str] = {"anthropic-version": API_VERSION}
COST_PATH = "/v1/organizations/cost_report"
USAGE_PATH = "/v1/organizations/usage_report/messages"
LIMIT = 31  # 1d buckets per page: the documented maximum of both endpoints


def secret_headers(key: str) -> dict[str, str]:
    """The admin key as the API takes it."""
    return {"x-api-key": key}


def _rfc3339(day: date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def _window(start: date, end: date, group_by: tuple[str, ...]) -> list[tuple[str, str]]:
    return [
        ("starting_at", _rfc3339(start)),
        ("ending_at", _rfc3339(end)),
        ("bucket_width", "1d"),
        ("limit", str(LIMIT)),
        *(("group_by[]", g) for g in group_by),
    ]


async def fetch(
    client: SourceClient, source_name: str, start: date, end: date, *, now: datetime | None = None
) -> BillingFetch:
    """The cost report and messages usage for the UTC days [start, end); SourceError on any failure."""
    return await costs_and_usage(
        client, PROVIDER, source_name, start, end, now,
        (COST_PATH, _window(start, end, ("workspace_id", "description")),
         lambda doc: _cost_lines(doc, source_name, start, end)),
        (USAGE_PATH, _window(start, end, ("model", "workspace_id", "service_tier")),
         lambda doc: _usage_lines(doc, source_name, start, end)),
    )


def _day(bucket: Mapping[str, Any], at: str) -> date:
    return rfc3339_day(bucket, "starting_at", at)


def _cost_lines(doc: dict[str, Any], source: str, start: date, end: date) -> list[BillingLine]:
    lines = []
    for day, path, result in bucket_results(doc, start, end, _day):
        if "amount" not in result:
            raise PayloadError(f"{path}.amount: missing")
        cents = money(result["amount"], f"{path}.amount")
        line_item = text(result, "description", path) or text(result, "token_type", path)
        lines.append(
            BillingLine(
                provider=PROVIDER,
                source=source,
                day=day,
                amount=cents_to_dollars(cents),
                currency=currency(result.get("currency"), f"{path}.currency", default="USD"),
                model=text(result, "model", path),
                line_item=line_item,
                project=text(result, "workspace_id", path),
                service_tier=text(result, "service_tier", path),
            )
        )
    return lines


def _usage_lines(doc: dict[str, Any], source: str, start: date, end: date) -> list[UsageLine]:
    usage = []
    for day, path, result in bucket_results(doc, start, end, _day):
        creation_raw = result.get("cache_creation")
        creation = obj(creation_raw, f"{path}.cache_creation") if creation_raw is not None else {}
        cache_read = count(result, "cache_read_input_tokens", path, required=False)
        written = count(
            creation, "ephemeral_1h_input_tokens", f"{path}.cache_creation", required=False
        ) + count(creation, "ephemeral_5m_input_tokens", f"{path}.cache_creation", required=False)
        tier = text(result, "service_tier", path)
        usage.append(
            UsageLine(
                provider=PROVIDER,
                source=source,
                day=day,
                model=text(result, "model", path),
                project=text(result, "workspace_id", path),
                requests=0,
                input_tokens=count(result, "uncached_input_tokens", path, required=True)
                + cache_read
                + written,
                output_tokens=count(result, "output_tokens", path, required=True),
                cached_input_tokens=cache_read,
                batch=None if tier is None else tier == "batch",
                api_key=text(result, "api_key_id", path),
            )
        )
    return usage
