"""The demo's provider billing APIs on loopback: OpenAI's costs / usage and Anthropic's cost / usage reports.

Served by console/demo/endpoints.py next to the other demo servers, read by the
console through the real billing connectors (`[[sources.openai_billing]]` and
`[[sources.anthropic_billing]]` in the demo's config). Figures come from the
simulator's own traffic (console/demo/billing_ledger.py): per UTC day, the tokens of
every billed call at the shipped price table, exact decimals (OpenAI: dollars as
JSON numbers; Anthropic: cents as decimal strings), the latest hour not billed yet.

The ONE real gap (chosen: a price change, not an untraced batch job): from three days
before the demo's start, Anthropic bills `claude-haiku-4-5` output at $6 per million
tokens while the shipped table (dated 2025-10-15) still says $5, so those days are
billed ~10% above the estimate and the reconciliation names `price_changed` as the cause.

Pages hold at most PAGE_DAYS daily buckets (`has_more` / `next_page`). Each API
checks its admin key (OpenAI `Authorization: Bearer`, Anthropic `x-api-key`)
against a random one the demo process put in its own environment (`ENV_KEYS`) for
the config's `env:` refs; a wrong or missing key gets 401. Keys are never printed.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from console.demo.billing_ledger import BillingLedger, Usage

PAGE_DAYS = 2
"""Daily buckets per page (below the documented limits, so a week takes several pages)."""
ENV_KEYS = {"openai": "LLMDECK_DEMO_OPENAI_ADMIN_KEY", "anthropic": "LLMDECK_DEMO_ANTHROPIC_ADMIN_KEY"}
"""The environment variables the demo's billing sources name (`env:VAR`)."""
MAX_DAYS = 400
_OPENAI_KIND = {"input": "input", "cached": "cached input", "output": "output"}
_ANTHROPIC_TYPE = {"input": "uncached_input_tokens", "cached": "cache_read_input_tokens",
                   "output": "output_tokens"}
_ANTHROPIC_WORD = {"input": "Input Tokens", "cached": "Cache Read Tokens", "output": "Output Tokens"}
_RAW = re.compile(r'"\\u0000([-0-9.]+)\\u0000"')

Reply = tuple[int, str, str]


class BillingError(Exception):
    """An answer other than 200: status and the provider-shaped error body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def install_keys() -> dict[str, str]:
    """Fresh random admin keys in this process's environment (for the config's `env:` refs)."""
    keys = {p: f"demo-admin-{secrets.token_urlsafe(24)}" for p in ENV_KEYS}
    for provider, var in ENV_KEYS.items():
        os.environ[var] = keys[provider]
    return keys


def forget_keys(keys: dict[str, str]) -> None:
    """Take `install_keys`' keys out of the environment again (those still holding them)."""
    for provider, var in ENV_KEYS.items():
        if provider in keys and os.environ.get(var) == keys[provider]:
            del os.environ[var]


def dumps(value: Any) -> str:
    """JSON with `Decimal`s written as exact JSON numbers (never through a float)."""
    def raw(o: object) -> str:
        if isinstance(o, Decimal):
            return f"\x00{o:f}\x00"
        raise TypeError(type(o).__name__)

    return _RAW.sub(r"\1", json.dumps(value, default=raw))


class BillingApi:
    """One provider's billing API over a `BillingLedger`."""

    def __init__(self, provider: str, ledger: BillingLedger, key: str) -> None:
        self.provider = provider
        self.ledger = ledger
        self._key = key

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any, headers: Any) -> Reply:
        """The demo endpoints' route (`console.demo.endpoints._handler`): GETs only."""
        if method != "GET":
            return 501, "text/plain; charset=utf-8", f"unsupported method {method}\n"
        return self.route(path, query, headers)

    def route(self, path: str, query: dict[str, list[str]], headers: Any) -> Reply:
        """GET `path?query`: the page, or a provider-shaped error."""
        try:
            self._check_key(headers)
            if self.provider == "openai":
                if path == "/v1/organization/costs":
                    return self._page(query, "start_time", "end_time", self._openai_costs)
                if path == "/v1/organization/usage/completions":
                    return self._page(query, "start_time", "end_time", self._openai_usage)
            else:
                if path == "/v1/organizations/cost_report":
                    return self._page(query, "starting_at", "ending_at", self._anthropic_costs)
                if path == "/v1/organizations/usage_report/messages":
                    return self._page(query, "starting_at", "ending_at", self._anthropic_usage)
            raise self._error(404, "not_found_error", f"no such endpoint: {path[:80]}")
        except BillingError as err:
            return err.status, "application/json", json.dumps(err.body)

    # -- pages ------------------------------------------------------------------

    def _page(self, query: dict[str, list[str]], start_key: str, end_key: str,
              results: Callable[[list[Usage]], list[dict[str, Any]]]) -> Reply:
        start = self._day(query, start_key)
        assert start is not None  # required
        end = self._day(query, end_key, required=False) or start + timedelta(days=7)
        if not start < end or (end - start).days > MAX_DAYS:
            raise self._error(400, "invalid_request_error", f"{end_key} must be after {start_key}")
        limit = self._int(query, "limit", PAGE_DAYS)
        offset = self._cursor(query)
        days = [start + timedelta(days=i) for i in range((end - start).days)]
        shown = days[offset:offset + max(1, min(limit, PAGE_DAYS))]
        self.ledger.catch_up()
        usage = self.ledger.usage(self.provider, shown[0], shown[-1] + timedelta(days=1)) if shown else []
        data = [self._bucket(day, results([u for u in usage if u.day == day])) for day in shown]
        more = offset + len(shown) < len(days)
        doc: dict[str, Any] = {"data": data, "has_more": more,
                               "next_page": f"page_{offset + len(shown)}" if more else None}
        if self.provider == "openai":
            doc = {"object": "page", **doc}
        return 200, "application/json", dumps(doc)

    def _bucket(self, day: date, results: list[dict[str, Any]]) -> dict[str, Any]:
        begin = datetime(day.year, day.month, day.day, tzinfo=UTC)
        if self.provider == "openai":
            return {"object": "bucket", "start_time": int(begin.timestamp()),
                    "end_time": int((begin + timedelta(days=1)).timestamp()), "results": results}
        return {"starting_at": f"{day.isoformat()}T00:00:00Z",
                "ending_at": f"{(day + timedelta(days=1)).isoformat()}T00:00:00Z", "results": results}

    @staticmethod
    def _openai_costs(usage: list[Usage]) -> list[dict[str, Any]]:
        return [{"object": "organization.costs.result",
                 "amount": {"value": u.cost(kind), "currency": "usd"},
                 "line_item": f"{u.model}, {_OPENAI_KIND[kind]}", "project_id": u.project,
                 "api_key_id": None, "quantity": u.tokens[kind], "quantity_unit": "tokens"}
                for u in usage for kind in _OPENAI_KIND if u.tokens[kind]]

    @staticmethod
    def _openai_usage(usage: list[Usage]) -> list[dict[str, Any]]:
        return [{"object": "organization.usage.completions.result",
                 "input_tokens": u.tokens["input"] + u.tokens["cached"],
                 "input_cached_tokens": u.tokens["cached"], "input_uncached_tokens": u.tokens["input"],
                 "input_cache_write_tokens": 0, "output_tokens": u.tokens["output"],
                 "num_model_requests": u.requests, "project_id": u.project, "user_id": None,
                 "api_key_id": None, "model": u.model, "batch": False, "service_tier": "default"}
                for u in usage]

    @staticmethod
    def _anthropic_costs(usage: list[Usage]) -> list[dict[str, Any]]:
        return [{"amount": f"{u.cost(kind) * 100:f}", "context_window": "0-200k", "cost_type": "tokens",
                 "currency": "USD", "description": f"{_title(u.model)} Usage - {_ANTHROPIC_WORD[kind]}",
                 "inference_geo": "global", "model": u.model, "service_tier": "standard",
                 "token_type": _ANTHROPIC_TYPE[kind], "workspace_id": u.project}
                for u in usage for kind in _ANTHROPIC_TYPE if u.tokens[kind]]

    @staticmethod
    def _anthropic_usage(usage: list[Usage]) -> list[dict[str, Any]]:
        return [{"account_id": None, "api_key_id": None,
                 "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
                 "cache_read_input_tokens": u.tokens["cached"], "context_window": "0-200k",
                 "inference_geo": "global", "model": u.model, "output_tokens": u.tokens["output"],
                 "server_tool_use": {"web_search_requests": 0}, "service_account_id": None,
                 "service_tier": "standard", "uncached_input_tokens": u.tokens["input"],
                 "workspace_id": u.project}
                for u in usage]

    # -- checks -----------------------------------------------------------------

    def _check_key(self, headers: Any) -> None:
        if self.provider == "openai":
            given = str(headers.get("Authorization") or "").removeprefix("Bearer ")
        else:
            given = str(headers.get("x-api-key") or "")
        if not hmac.compare_digest(given.encode(), self._key.encode()):
            raise self._error(401, "authentication_error", "invalid admin key")

    def _error(self, status: int, kind: str, message: str) -> BillingError:
        if self.provider == "openai":
            return BillingError(status, {"error": {"message": message, "type": kind, "param": None,
                                                   "code": None}})
        return BillingError(status, {"type": "error", "error": {"type": kind, "message": message}})

    def _day(self, query: dict[str, list[str]], key: str, required: bool = True) -> date | None:
        values = query.get(key)
        if not values:
            if required:
                raise self._error(400, "invalid_request_error", f"{key} is required")
            return None
        value = values[-1]
        try:
            if self.provider == "openai":
                return datetime.fromtimestamp(int(value), UTC).date()
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).date()
        except (ValueError, OverflowError, OSError):
            raise self._error(400, "invalid_request_error", f"{key}: not a time") from None

    def _int(self, query: dict[str, list[str]], key: str, default: int) -> int:
        values = query.get(key)
        if not values:
            return default
        if not values[-1].isdigit():
            raise self._error(400, "invalid_request_error", f"{key}: not a number")
        return int(values[-1])

    def _cursor(self, query: dict[str, list[str]]) -> int:
        values = query.get("page")
        if not values:
            return 0
        got = values[-1].removeprefix("page_")
        if not got.isdigit():
            raise self._error(400, "invalid_request_error", "page: not a cursor this API gave")
        return int(got)


def _title(model: str) -> str:
    """`claude-haiku-4-5-20251001` -> `Claude Haiku 4.5` (the cost report's description)."""
    words = [w for w in model.split("-") if not (w.isdigit() and len(w) == 8)]
    name = [w.capitalize() for w in words if not w.isdigit()]
    version = ".".join(w for w in words if w.isdigit())
    return " ".join([*name, version] if version else name)
