"""OpenAI Admin API: what an organisation was billed (`/v1/organization/costs`) and its token usage.

Costs come grouped by `line_item` and `project_id` in 1-day buckets; usage
(`/v1/organization/usage/completions`) grouped by `model`, `project_id` and `batch`.
Array parameters are repeated keys (`group_by=line_item&group_by=project_id`).
Amounts are dollars as JSON numbers, decoded straight to `Decimal` (never a float).
Both endpoints page with `page=<next_page>` while `has_more`. The admin key travels
only in the `Authorization` header (a secret header of the `SourceClient`).
Shapes: API_SHAPES.md section 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any

from connectors.billing_pages import (
    PayloadError,
    bucket_results,
    costs_and_usage,
    count,
    currency,
    flag,
    money,
    obj,
    text,
    unix_day,
)
from connectors.http import SourceClient
from console.billing import BillingFetch, BillingLine, Provider, UsageLine

PROVIDER: Provider = "openai"
DEFAULT_URL = "https://api.openai.com"
HEADERS: dict[str, str] = {}
COSTS_PATH = "/v1/organization/costs"
USAGE_PATH = "/v1/organization/usage/completions"
COSTS_LIMIT = 180  # buckets per page: the documented maximum for costs
USAGE_LIMIT = 31  # ... and for 1d usage buckets
_COST_OBJECT = "organization.costs.result"
_USAGE_OBJECT = "organization.usage.completions.result"


def secret_headers(key: str) -> dict[str, str]:
    """The admin key as the API takes it (a bearer token)."""
    return {"Authorization": f"Bearer {key}"}


def _unix(day: date) -> str:
    return str(int(datetime.combine(day, time(), UTC).timestamp()))


def _window(start: date, end: date, limit: int, group_by: tuple[str, ...]) -> list[tuple[str, str]]:
    return [
        ("start_time", _unix(start)),
        ("end_time", _unix(end)),
        ("bucket_width", "1d"),
        ("limit", str(limit)),
        *(("group_by", g) for g in group_by),
    ]


async def fetch(
    client: SourceClient, source_name: str, start: date, end: date, *, now: datetime | None = None
) -> BillingFetch:
    """Costs and completions usage for the UTC days [start, end); SourceError on any failure."""
    return await costs_and_usage(
        client, PROVIDER, source_name, start, end, now,
        (COSTS_PATH, _window(start, end, COSTS_LIMIT, ("line_item", "project_id")),
         lambda doc: _cost_lines(doc, source_name, start, end)),
        (USAGE_PATH, _window(start, end, USAGE_LIMIT, ("model", "project_id", "batch")),
         lambda doc: _usage_lines(doc, source_name, start, end)),
    )


def model_of(line_item: str | None) -> str | None:
    """`gpt-4o-mini-2024-07-18, input` -> `gpt-4o-mini-2024-07-18`; None when the item names no model.

    The line item's format is not documented (API_SHAPES.md marks it illustrative):
    only the `model, kind` form is read as naming a model.
    """
    if not line_item or ", " not in line_item:
        return None
    head = line_item.split(", ", 1)[0].strip()
    return head if head and " " not in head else None


def _day(bucket: Mapping[str, Any], at: str) -> date:
    return unix_day(bucket, "start_time", at)


def _cost_lines(doc: dict[str, Any], source: str, start: date, end: date) -> list[BillingLine]:
    lines = []
    for day, path, result in bucket_results(doc, start, end, _day, _COST_OBJECT):
        if "amount" not in result:
            raise PayloadError(f"{path}.amount: missing")
        amount = obj(result["amount"], f"{path}.amount")
        if "value" not in amount:
            raise PayloadError(f"{path}.amount.value: missing")
        value = money(amount["value"], f"{path}.amount.value")
        line_item = text(result, "line_item", path)
        lines.append(
            BillingLine(
                provider=PROVIDER,
                source=source,
                day=day,
                amount=value,
                currency=currency(amount.get("currency"), f"{path}.amount.currency", default="USD"),
                model=model_of(line_item),
                line_item=line_item,
                project=text(result, "project_id", path),
            )
        )
    return lines


def _usage_lines(doc: dict[str, Any], source: str, start: date, end: date) -> list[UsageLine]:
    usage = []
    for day, path, result in bucket_results(doc, start, end, _day, _USAGE_OBJECT):
        usage.append(
            UsageLine(
                provider=PROVIDER,
                source=source,
                day=day,
                model=text(result, "model", path),
                project=text(result, "project_id", path),
                requests=count(result, "num_model_requests", path, required=True),
                input_tokens=count(result, "input_tokens", path, required=True),
                output_tokens=count(result, "output_tokens", path, required=True),
                cached_input_tokens=count(result, "input_cached_tokens", path, required=False),
                batch=flag(result, "batch", path),
                api_key=text(result, "api_key_id", path),
            )
        )
    return usage
