"""A loopback replay of the provider billing APIs (OpenAI, Anthropic, OpenRouter), with faults.

`BillingServer` generates `days` days of billing data from `start` (deterministic,
no randomness) and serves it in the documented shapes (API_SHAPES.md §1-3 and the
example payloads beside it) on a `FaultServer` (127.0.0.1, a free port):

- OpenAI  `/v1/organization/costs`, `/v1/organization/usage/completions`:
  `start_time`/`end_time` (Unix s), `limit` buckets per page, `page`/`next_page`,
  amounts as JSON numbers written exactly as the `Decimal` text (`0.1`, `1.234567890123456789`).
- Anthropic `/v1/organizations/cost_report`, `/v1/organizations/usage_report/messages`:
  `starting_at`/`ending_at` (RFC 3339), `has_more`/`next_page`, amounts as decimal strings in cents.
- OpenRouter `/api/v1/key`, `/api/v1/credits`, `/api/v1/activity` (the last 30 days before `today`).

A page holds at most `min(limit, page_days)` daily buckets, so 90 days make many
pages. Nulls appear where the docs allow them (`project_id`, `workspace_id` of the
default workspace, `model` of a code-execution line, `batch`...), and every result
carries an unknown field (`x_new_field`) that readers must ignore.

    with BillingServer(start=date(2026, 6, 1), days=90) as srv:
        srv.url                                     # http://127.0.0.1:PORT
        srv.expected_total("anthropic")             # Decimal dollars over all days
        srv.fault(COSTS, Reply(429, ..., headers={"Retry-After": "1"}))   # then the normal replay
        srv.fault(COSTS, Reset(), after=2)          # pages 1-2 fine, then a reset, then fine again
        srv.forbid("/api/v1/activity")              # 403 as for a non-management key
        srv.requests                                # every request (method, path, query, headers)

Faults are `FaultServer` behaviours (`Reply`, `Drip`, `Hang`, `Reset`, `html_page`).
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from connectors.http import HttpPolicy, SourceClient, SourceError
from console.billing import BillingFetch
from tests.faults.fault_server import Answer, Behaviour, FaultServer, RecordedRequest, Reply

OPENAI_COSTS = "/v1/organization/costs"
OPENAI_USAGE = "/v1/organization/usage/completions"
ANTHROPIC_COSTS = "/v1/organizations/cost_report"
ANTHROPIC_USAGE = "/v1/organizations/usage_report/messages"
OPENROUTER_KEY = "/api/v1/key"
OPENROUTER_CREDITS = "/api/v1/credits"
OPENROUTER_ACTIVITY = "/api/v1/activity"
PATHS = (
    OPENAI_COSTS,
    OPENAI_USAGE,
    ANTHROPIC_COSTS,
    ANTHROPIC_USAGE,
    OPENROUTER_KEY,
    OPENROUTER_CREDITS,
    OPENROUTER_ACTIVITY,
)

_DECIMAL = re.compile(r'"@@decimal:([-+0-9.eE]+)"')


def dumps(doc: Any) -> str:
    """JSON with every `Decimal` written as a JSON number with exactly its digits (`0.1`, never 0.1000001)."""
    text = json.dumps(doc, default=lambda v: f"@@decimal:{v}" if isinstance(v, Decimal) else _unknown(v))
    return _DECIMAL.sub(r"\1", text)


def _unknown(value: Any) -> Any:
    raise TypeError(f"not JSON: {type(value).__name__}")


def json_reply(doc: Any, status: int = 200) -> Reply:
    return Reply(status, dumps(doc), content_type="application/json")


def _cursor(offset: int) -> str:
    return "page_" + base64.urlsafe_b64encode(f"offset={offset}".encode()).decode()


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    return int(base64.urlsafe_b64decode(cursor.removeprefix("page_")).decode().split("=")[1])


def _day_of_unix(value: str) -> date:
    return datetime.fromtimestamp(int(value), UTC).date()


def _day_of_rfc3339(value: str) -> date:
    return datetime.fromisoformat(value).astimezone(UTC).date()


@dataclass(frozen=True)
class Cost:
    day: date
    dollars: Decimal
    model: str | None
    line_item: str | None
    project: str | None
    cents: Decimal | None = None
    """Anthropic only: the amount as sent (cents)."""


@dataclass(frozen=True)
class Usage:
    day: date
    model: str
    project: str | None
    requests: int
    input_tokens: int
    output_tokens: int
    cached: int
    batch: bool | None = None


@dataclass
class _Data:
    costs: list[Cost] = field(default_factory=list)
    usage: list[Usage] = field(default_factory=list)


# A few amounts whose float sums are wrong (0.1 + 0.2), very long ones (more digits than a
# double holds) and tiny ones: the sums over all pages must still be exact.
_OPENAI_AMOUNTS = tuple(
    Decimal(v)
    for v in ("0.1", "0.2", "1.234567890123456789", "0.000001", "12.5", "0.30000000000000004", "7", "99.99")
)
_ANTHROPIC_CENTS = tuple(
    Decimal(v) for v in ("123.45", "0.001", "50.00", "123.78912", "7", "0.1", "0.2", "9999.999999")
)
_OPENROUTER_AMOUNTS = tuple(Decimal(v) for v in ("0.1", "0.2", "0.0000123", "3.3333333333333333", "5"))


TEST_POLICY = HttpPolicy(
    connect_timeout=1.0, read_timeout=0.5, deadline=2.5, backoff_base=0.01, backoff_cap=0.02
)
"""Short timeouts for tests; backoff sleeps go through `Sleeps` (recorded, not slept)."""


class Sleeps:
    """A `sleep` for `SourceClient` that records each wait (Retry-After, backoff) instead of sleeping."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


def client_for(
    server: BillingServer,
    module: Any,
    key: str,
    *,
    name: str | None = None,
    policy: HttpPolicy = TEST_POLICY,
    sleep: Sleeps | None = None,
) -> SourceClient:
    """A `SourceClient` for a connector module (`connectors.billing_openai`...) against `server`,
    built the way the sync builds it: non-secret `HEADERS`, the key only in `secret_headers(key)`."""
    return SourceClient(
        name or module.PROVIDER,
        server.url,
        headers=module.HEADERS,
        secret_headers=module.secret_headers(key),
        policy=policy,
        sleep=sleep or Sleeps(),
    )


async def fetch_with(
    server: BillingServer,
    module: Any,
    key: str,
    name: str,
    start: date,
    end: date,
    *,
    now: datetime,
    sleep: Sleeps | None = None,
    policy: HttpPolicy | None = None,
) -> BillingFetch:
    """`module.fetch` of the UTC days [start, end) as source `name`, through `client_for`."""
    policy = policy or TEST_POLICY
    async with client_for(server, module, key, name=name, sleep=sleep, policy=policy) as client:
        fetched: BillingFetch = await module.fetch(client, name, start, end, now=now)
        return fetched


async def fetch_error(fetching: Awaitable[object], name: str, key: str) -> SourceError:
    """The SourceError `fetching` must end with. Its text starts with the source's name and holds
    neither the key nor any 20 characters of it, nor a query string (`?start_time=...`)."""
    try:
        got = await fetching
    except SourceError as exc:
        error = exc
    else:
        raise AssertionError(f"expected a SourceError, got {got!r}")
    text = str(error)
    assert text.startswith(f"{name}: "), text
    assert not any(key[i : i + 20] in text for i in range(len(key) - 19)), "the key is in the error"
    assert not re.search(r"[?&][\w\[\]]+=|\b(?:key|_at|_time)=", text), text
    return error


@dataclass(frozen=True)
class ConnectorCalls:
    """A connector's fetch as its tests make it: source `name` with `key`, days [start, end), at `now`."""

    module: Any
    key: str
    name: str
    start: date
    end: date
    now: datetime

    async def fetch(
        self,
        server: BillingServer,
        sleep: Sleeps | None = None,
        policy: HttpPolicy | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> BillingFetch:
        return await fetch_with(server, self.module, self.key, self.name, start or self.start,
                                end or self.end, now=self.now, sleep=sleep, policy=policy)

    async def error(self, server: BillingServer, policy: HttpPolicy | None = None) -> SourceError:
        """The SourceError the fetch must end with (see `fetch_error`)."""
        return await fetch_error(self.fetch(server, policy=policy), self.name, self.key)


class BillingReplay:
    """The three providers' billing endpoints as answers to requests, from generated data (no socket:
    `BillingServer` serves them on loopback; the canary test's server serves them behind its faults)."""

    def __init__(
        self,
        *,
        start: date = date(2026, 6, 1),
        days: int = 90,
        page_days: int = 7,
        lines_per_day: int = 6,
        today: date | None = None,
    ) -> None:
        self.start, self.days, self.page_days = start, days, page_days
        self.end = start + timedelta(days=days)
        self.today = today or self.end
        self.data: dict[str, _Data] = {"openai": _Data(), "anthropic": _Data(), "openrouter": _Data()}
        self._generate(lines_per_day)
        self.key = {
            "label": "sk-or-v1-au7...890",
            "limit": Decimal("100"),
            "limit_remaining": Decimal("74.5"),
            "limit_reset": "monthly",
            "include_byok_in_limit": False,
            "usage": Decimal("25.5"),
            "usage_daily": Decimal("1.25"),
            "usage_weekly": Decimal("9.1"),
            "usage_monthly": Decimal("25.5"),
            "byok_usage": Decimal("0"),
            "byok_usage_daily": 0,
            "byok_usage_weekly": 0,
            "byok_usage_monthly": 0,
            "is_free_tier": False,
            "is_management_key": False,
            "is_provisioning_key": False,
            "creator_user_id": None,
            "expires_at": None,
            "rate_limit": {"requests": 1000, "interval": "1h", "note": "deprecated"},
        }
        self.credits = {"total_credits": Decimal("100.5"), "total_usage": Decimal("25.75")}

    # -- data ---------------------------------------------------------------------------------

    def _days(self) -> Iterator[date]:
        for n in range(self.days):
            yield self.start + timedelta(days=n)

    def _generate(self, per_day: int) -> None:
        openai, anthropic, openrouter = (self.data[p] for p in ("openai", "anthropic", "openrouter"))
        i = 0
        for n, day in enumerate(self._days()):
            for k in range(per_day):
                i += 1
                model = ("gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06")[k % 2]
                kind = ("input", "output", "cached input")[k % 3]
                project = None if k % 4 == 3 else f"proj_{k % 3}"
                amount = _OPENAI_AMOUNTS[i % len(_OPENAI_AMOUNTS)]
                openai.costs.append(Cost(day, amount, model, f"{model}, {kind}", project))
                cents = _ANTHROPIC_CENTS[i % len(_ANTHROPIC_CENTS)]
                if k == per_day - 1:  # code execution: no model, default workspace
                    anthropic.costs.append(
                        Cost(day, cents.scaleb(-2), None, "Code Execution Usage", None, cents)
                    )
                else:
                    a_model = ("claude-opus-5", "claude-sonnet-5")[k % 2]
                    workspace = None if k % 3 == 2 else "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ"
                    anthropic.costs.append(
                        Cost(
                            day,
                            cents.scaleb(-2),
                            a_model,
                            f"{a_model} Usage - Input Tokens",
                            workspace,
                            cents,
                        )
                    )
            for k in range(2):
                batch = None if k == 0 else (n % 2 == 0)
                openai.usage.append(
                    Usage(
                        day,
                        ("gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06")[k],
                        None,
                        5 + n + k,
                        5000 + n,
                        1000 + k,
                        1800,
                        batch,
                    )
                )
                anthropic.usage.append(
                    Usage(
                        day,
                        ("claude-opus-5", "claude-sonnet-5")[k],
                        None if k else "wrkspc_1",
                        0,
                        1500 + n,
                        500 + k,
                        200,
                    )
                )
        for n in range(1, 31):
            day = self.today - timedelta(days=n)
            for k in range(3):
                amount = _OPENROUTER_AMOUNTS[(n + k) % len(_OPENROUTER_AMOUNTS)]
                openrouter.costs.append(
                    Cost(
                        day,
                        amount,
                        ("openai/gpt-4o", "anthropic/claude-sonnet-5")[k % 2],
                        ("OpenAI", "Anthropic", "Azure")[k],
                        None,
                    )
                )
                openrouter.usage.append(
                    Usage(
                        day,
                        ("openai/gpt-4o", "anthropic/claude-sonnet-5")[k % 2],
                        None,
                        3 + k,
                        100 * n,
                        10 * n,
                        0,
                    )
                )

    def expected_total(self, provider: str, start: date | None = None, end: date | None = None) -> Decimal:
        """The exact dollars of `provider`'s costs in [start, end) (default: everything generated)."""
        lo, hi = start or date.min, end or date.max
        return sum((c.dollars for c in self.data[provider].costs if lo <= c.day < hi), Decimal(0))

    def expected_lines(self, provider: str, start: date | None = None, end: date | None = None) -> int:
        lo, hi = start or date.min, end or date.max
        return sum(1 for c in self.data[provider].costs if lo <= c.day < hi)

    def answer(self, path: str) -> Answer:
        """The normal answer of an endpoint (`OPENAI_COSTS`...), computed from each request."""
        handlers = {
            OPENAI_COSTS: self._openai_costs,
            OPENAI_USAGE: self._openai_usage,
            ANTHROPIC_COSTS: self._anthropic_costs,
            ANTHROPIC_USAGE: self._anthropic_usage,
            OPENROUTER_KEY: lambda r: json_reply({"data": self.key}),
            OPENROUTER_CREDITS: lambda r: json_reply({"data": self.credits}),
            OPENROUTER_ACTIVITY: self._openrouter_activity,
        }
        return Answer(handlers[path])

    # -- the endpoints ------------------------------------------------------------------------

    def _window(
        self, request: RecordedRequest, starts: str, ends: str, parse: Any, max_limit: int
    ) -> tuple[list[date], int, int] | Reply:
        query = dict(request.query)
        if starts not in query:
            return json_reply(
                {
                    "error": {
                        "message": f"{starts} is required",
                        "type": "invalid_request_error",
                        "param": starts,
                        "code": None,
                    }
                },
                400,
            )
        first = parse(query[starts])
        last = parse(query[ends]) if ends in query else self.end
        days = [first + timedelta(days=n) for n in range((last - first).days)]
        limit = min(int(query.get("limit", "7")), max_limit)
        offset = _offset(query.get("page"))
        return days, offset, min(limit, self.page_days)

    def _page(self, days: list[date], offset: int, size: int) -> tuple[list[date], bool, str | None]:
        chunk = days[offset : offset + size]
        more = offset + size < len(days)
        return chunk, more, _cursor(offset + size) if more else None

    def _openai_costs(self, request: RecordedRequest) -> Reply:
        window = self._window(request, "start_time", "end_time", _day_of_unix, 180)
        if isinstance(window, Reply):
            return window
        chunk, more, cursor = self._page(*window)
        by_day: dict[date, list[Cost]] = {}
        for c in self.data["openai"].costs:
            by_day.setdefault(c.day, []).append(c)
        buckets = [
            {
                "object": "bucket",
                "start_time": _unix(d),
                "end_time": _unix(d + timedelta(days=1)),
                "results": [
                    {
                        "object": "organization.costs.result",
                        "amount": {"value": c.dollars, "currency": "usd"},
                        "line_item": c.line_item,
                        "project_id": c.project,
                        "api_key_id": None,
                        "quantity": None,
                        "quantity_unit": None,
                        "x_new_field": {"a": [1, 2]},
                    }
                    for c in by_day.get(d, [])
                ],
            }
            for d in chunk
        ]
        return json_reply({"object": "page", "data": buckets, "has_more": more, "next_page": cursor})

    def _openai_usage(self, request: RecordedRequest) -> Reply:
        window = self._window(request, "start_time", "end_time", _day_of_unix, 31)
        if isinstance(window, Reply):
            return window
        chunk, more, cursor = self._page(*window)
        by_day: dict[date, list[Usage]] = {}
        for u in self.data["openai"].usage:
            by_day.setdefault(u.day, []).append(u)
        buckets = [
            {
                "object": "bucket",
                "start_time": _unix(d),
                "end_time": _unix(d + timedelta(days=1)),
                "results": [
                    {
                        "object": "organization.usage.completions.result",
                        "input_tokens": u.input_tokens,
                        "input_cached_tokens": u.cached,
                        "output_tokens": u.output_tokens,
                        "num_model_requests": u.requests,
                        "project_id": u.project,
                        "user_id": None,
                        "api_key_id": None,
                        "model": u.model,
                        "batch": u.batch,
                        "service_tier": None,
                        "x_new_field": "ignored",
                    }
                    for u in by_day.get(d, [])
                ],
            }
            for d in chunk
        ]
        return json_reply({"object": "page", "data": buckets, "has_more": more, "next_page": cursor})

    def _anthropic_costs(self, request: RecordedRequest) -> Reply:
        window = self._window(request, "starting_at", "ending_at", _day_of_rfc3339, 31)
        if isinstance(window, Reply):
            return window
        chunk, more, cursor = self._page(*window)
        by_day: dict[date, list[Cost]] = {}
        for c in self.data["anthropic"].costs:
            by_day.setdefault(c.day, []).append(c)
        buckets = [
            {
                "starting_at": _rfc3339(d),
                "ending_at": _rfc3339(d + timedelta(days=1)),
                "results": [
                    {
                        "amount": str(c.cents),
                        "currency": "USD",
                        "cost_type": "tokens" if c.model else "code_execution",
                        "description": c.line_item,
                        "model": c.model,
                        "token_type": "uncached_input_tokens" if c.model else None,
                        "service_tier": "standard" if c.model else None,
                        "context_window": None,
                        "inference_geo": None,
                        "workspace_id": c.project,
                        "x_new_field": 1,
                    }
                    for c in by_day.get(d, [])
                ],
            }
            for d in chunk
        ]
        return json_reply({"data": buckets, "has_more": more, "next_page": cursor})

    def _anthropic_usage(self, request: RecordedRequest) -> Reply:
        window = self._window(request, "starting_at", "ending_at", _day_of_rfc3339, 31)
        if isinstance(window, Reply):
            return window
        chunk, more, cursor = self._page(*window)
        by_day: dict[date, list[Usage]] = {}
        for u in self.data["anthropic"].usage:
            by_day.setdefault(u.day, []).append(u)
        buckets = [
            {
                "starting_at": _rfc3339(d),
                "ending_at": _rfc3339(d + timedelta(days=1)),
                "results": [
                    {
                        "uncached_input_tokens": u.input_tokens,
                        "cache_read_input_tokens": u.cached,
                        "cache_creation": {"ephemeral_1h_input_tokens": 10, "ephemeral_5m_input_tokens": 5},
                        "output_tokens": u.output_tokens,
                        "server_tool_use": {"web_search_requests": 0},
                        "model": u.model,
                        "workspace_id": u.project,
                        "api_key_id": None,
                        "service_tier": "batch" if u.project is None else "standard",
                        "context_window": None,
                        "inference_geo": None,
                        "account_id": None,
                        "service_account_id": None,
                        "x_new_field": [None],
                    }
                    for u in by_day.get(d, [])
                ],
            }
            for d in chunk
        ]
        return json_reply({"data": buckets, "has_more": more, "next_page": cursor})

    def _openrouter_activity(self, request: RecordedRequest) -> Reply:
        data = self.data["openrouter"]
        items = [
            {
                "date": c.day.isoformat(),
                "model": c.model,
                "model_permaslug": f"{c.model}-2026",
                "endpoint_id": f"ep-{c.line_item}",
                "provider_name": c.line_item,
                "usage": c.dollars,
                "byok_usage_inference": Decimal("0"),
                "requests": u.requests,
                "prompt_tokens": u.input_tokens,
                "completion_tokens": u.output_tokens,
                "reasoning_tokens": 0,
                "x_new_field": True,
            }
            for c, u in zip(data.costs, data.usage, strict=True)
        ]
        return json_reply({"data": items})


class BillingServer(BillingReplay):
    """Replays the three providers' billing endpoints from generated data; faults can be injected."""

    @functools.cached_property
    def fs(self) -> FaultServer:
        """The loopback server (127.0.0.1, a free port), every endpoint answering normally."""
        server = FaultServer()
        for path in PATHS:
            server.route(path, self.answer(path))
        return server

    @property
    def url(self) -> str:
        return self.fs.url

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.fs.requests

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return self.fs.requests_to(path)

    def fault(self, path: str, *behaviours: Behaviour, after: int = 0, repeat: bool = False) -> None:
        """`after` normal answers, then `behaviours` in order, then normal answers again
        (`repeat=True`: the last behaviour repeats for ever instead)."""
        normal = self.answer(path)
        self.fs.route(path, *([normal] * after), *behaviours, *(() if repeat else (normal,)))

    def replace(self, path: str, *behaviours: Behaviour) -> None:
        """Serve only `behaviours` on `path` (the last repeats)."""
        self.fs.route(path, *behaviours)

    def forbid(self, path: str) -> None:
        """403 as OpenRouter answers a key that is not a management key."""
        self.fs.route(
            path, json_reply({"error": {"code": 403, "message": "Only management keys can use this"}}, 403)
        )

    def __enter__(self) -> BillingServer:
        self.fs.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.fs.stop()


def _unix(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _rfc3339(day: date) -> str:
    return f"{day.isoformat()}T00:00:00Z"
