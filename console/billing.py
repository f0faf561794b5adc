"""What the providers actually bill: one row per provider source, UTC day and line.

The billing connectors (`connectors/billing_*.py`) turn each provider's pages into
these records; the cache stores them (a `billing` table) so the cost screen and
the reconciliation work offline afterwards. Amounts are `Decimal`s in the
currency's main unit (dollars), converted exactly from what the provider sent:
OpenAI sends dollars as JSON numbers, Anthropic cents as decimal strings
(`"123.45"` is $1.2345), OpenRouter dollars as numbers. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

Provider = Literal["openai", "anthropic", "openrouter"]
PROVIDERS: tuple[Provider, ...] = ("openai", "anthropic", "openrouter")


@dataclass(frozen=True)
class BillingLine:
    """One billed amount: a provider's cost for one UTC day, model / line item and project."""

    provider: Provider
    source: str
    """The configured source's name (two OpenAI organisations are two sources)."""
    day: date
    """The UTC day the amount belongs to (the bucket's start)."""
    amount: Decimal
    """In `currency`'s main unit (dollars), exact."""
    currency: str
    """Upper-case ISO 4217 (`USD`)."""
    model: str | None = None
    """The model, when the provider names it (Anthropic's `model`, OpenRouter's `model`,
    or parsed from OpenAI's line item such as `gpt-4o-mini, input`)."""
    line_item: str | None = None
    """OpenAI `line_item`, Anthropic `description` (or `token_type`), OpenRouter `endpoint`."""
    project: str | None = None
    """OpenAI `project_id`, Anthropic `workspace_id` (None: the default workspace),
    OpenRouter workspace."""
    service_tier: str | None = None
    """`batch`, `standard`, `priority`, ... when the provider says (for discount causes)."""


@dataclass(frozen=True)
class UsageLine:
    """One day's token usage as the provider counted it (for the reconciliation's causes)."""

    provider: Provider
    source: str
    day: date
    model: str | None
    project: str | None
    requests: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    batch: bool | None = None
    api_key: str | None = None
    """The provider's key id (never a key), when grouped by it."""


@dataclass(frozen=True)
class BillingFetch:
    """Everything one sync of one source brought back for the days [start, end)."""

    provider: Provider
    source: str
    start: date
    end: date
    """Exclusive."""
    lines: tuple[BillingLine, ...]
    usage: tuple[UsageLine, ...]
    fetched_at: datetime
    """Naive UTC."""
    pages: int
    """HTTP pages read (every endpoint)."""
