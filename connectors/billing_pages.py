"""Shared by the billing connectors: one page read with exact decimals, the cursor walk, field checks.

Money must never pass through a float: `SourceClient.get_json` decodes with orjson
(floats), so billing pages are read here as raw responses and decoded with
`json.loads(parse_float=Decimal)`: a JSON number such as `0.1` becomes
`Decimal("0.1")`, exactly as sent. A cursor walk (`walk`) reads page after page
(`page=<next_page>` while `has_more`), handing each to the caller before the next is
read, so memory holds one page at a time; it stops at `MAX_PAGES`, or with an error
when the server repeats a cursor. Every failure is a `SourceError` whose reason
starts with the endpoint (`GET /v1/organization/costs (page 3): ...`); a payload that
is not what the docs describe is `kind="decode"`, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn, TypeVar

import httpx

from connectors.http import SourceClient, SourceError
from connectors.http_text import Redactor, body_text, clean, html_title, looks_like_html
from console.billing import BillingFetch, BillingLine, Provider, UsageLine
from console.timeutil import naive_utc, utc_now

T = TypeVar("T")
MAX_PAGES = 1000
"""A walk reading more pages than this stops with an error (a server looping on its cursor)."""

_SHAPES = Redactor()
"""No known secret values (the client already masked its own): masks secret-shaped strings."""


class PayloadError(Exception):
    """A page that is not shaped as documented; the text names the field (`data[0].results[2].amount`)."""


def fail(path: str, problem: str) -> NoReturn:
    raise PayloadError(f"{path}: {problem}")


@dataclass(frozen=True)
class Page:
    """One decoded page of an endpoint: its JSON document and where it came from (for errors)."""

    doc: dict[str, Any]
    where: str
    """`GET /v1/organization/costs` or `GET /v1/organization/costs (page 3)`."""
    number: int


def where(path: str, number: int = 1) -> str:
    return f"GET {path}" if number <= 1 else f"GET {path} (page {number})"


def decode_error(client: SourceClient, at: str, problem: str, status: int | None = None) -> SourceError:
    return SourceError(client.name, "decode", clean(f"{at}: {problem}", _SHAPES, 300), status=status)


async def get_page(
    client: SourceClient, path: str, params: Sequence[tuple[str, str]] | None = None, *, number: int = 1
) -> Any:
    """GET one page (retried by the client's policy) and decode its JSON with exact decimals."""
    at = where(path, number)
    try:
        response = await client.send("GET", path, params=list(params) if params else None)
    except SourceError as err:
        raise SourceError(
            err.source, err.kind, f"{at}: {err.reason}", status=err.status, retry_after=err.retry_after
        ) from None
    return decode_json(client, response, at)


def decode_json(client: SourceClient, response: httpx.Response, at: str) -> Any:
    """The body as JSON, floats as `Decimal`s; SourceError (content_type / decode) naming `at`."""
    status = response.status_code
    body = client.masked_body(response)
    media = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media and "json" not in media:
        title = html_title(body_text(body)) if "html" in media else None
        detail = f" ({clean(title, _SHAPES, 80)})" if title else ""
        raise SourceError(
            client.name,
            "content_type",
            clean(f"{at}: expected JSON, got {media}{detail}", _SHAPES, 300),
            status=status,
        )
    try:
        return json.loads(body.decode("utf-8-sig"), parse_float=Decimal, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        text = body_text(body)
        if looks_like_html(text.lstrip(), media):
            title = html_title(text)
            problem = f"not JSON but an HTML page{f' ({title})' if title else ''}"
        elif not body.strip():
            problem = "empty answer, expected JSON"
        else:
            problem = f"malformed JSON: {_json_problem(exc)}"
        error = decode_error(client, at, problem, status)
    raise error from None


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _json_problem(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)


async def walk(
    client: SourceClient, path: str, params: Sequence[tuple[str, str]], *, max_pages: int | None = None
) -> AsyncGenerator[Page, None]:
    """Every page of a `has_more` / `next_page` endpoint, one at a time (`page=<next_page>`).

    The caller parses each page before the next is read. A repeated cursor, `has_more`
    without a `next_page`, a non-object page or more than `max_pages` pages end the walk
    with a decode error: data that may be incomplete is never handed on as complete.
    """
    max_pages = MAX_PAGES if max_pages is None else max_pages
    cursor: str | None = None
    seen: set[str] = set()
    for number in range(1, max_pages + 1):
        query = [*params, ("page", cursor)] if cursor is not None else list(params)
        doc = await get_page(client, path, query, number=number)
        at = where(path, number)
        if not isinstance(doc, dict):
            raise decode_error(client, at, f"expected a JSON object, got {json_type(doc)}")
        yield Page(doc, at, number)
        try:
            cursor = next_cursor(doc)
        except PayloadError as exc:
            raise decode_error(client, at, str(exc)) from None
        if cursor is None:
            return
        if cursor in seen:
            raise decode_error(client, at, "the server sent the same next_page cursor twice")
        seen.add(cursor)
    raise decode_error(
        client, where(path, max_pages), f"more than {max_pages} pages; stopped (narrow the date range)"
    )


async def collect(
    client: SourceClient,
    path: str,
    params: Sequence[tuple[str, str]],
    parse: Callable[[dict[str, Any]], Iterable[T]],
    into: list[T],
) -> int:
    """Walk every page of `path`, adding what `parse` makes of each to `into`; the number of pages.

    A `PayloadError` from `parse` becomes a decode error naming the endpoint and page.
    """
    pages = 0
    async with aclosing(walk(client, path, params)) as walker:
        async for page in walker:
            pages += 1
            try:
                into.extend(parse(page.doc))
            except PayloadError as exc:
                raise decode_error(client, page.where, str(exc)) from None
    return pages


Walk = tuple[str, Sequence[tuple[str, str]], Callable[[dict[str, Any]], Iterable[T]]]
"""One cursor walk: (path, query, what a page makes)."""


async def costs_and_usage(
    client: SourceClient,
    provider: Provider,
    source: str,
    start: date,
    end: date,
    now: datetime | None,
    costs: Walk[BillingLine],
    usage: Walk[UsageLine],
) -> BillingFetch:
    """The costs walk then the usage walk, whole, as one fetch of the UTC days [start, end)
    (OpenAI's and Anthropic's admin APIs); SourceError on any failure."""
    check_days(start, end)
    fetched_at = fetch_time(now)
    lines: list[BillingLine] = []
    used: list[UsageLine] = []
    pages = await collect(client, *costs, lines)
    pages += await collect(client, *usage, used)
    return BillingFetch(provider, source, start, end, tuple(lines), tuple(used), fetched_at, pages)


def bucket_results(
    doc: Mapping[str, Any],
    start: date,
    end: date,
    day_of: Callable[[Mapping[str, Any], str], date],
    result_object: str | None = None,
) -> Iterator[tuple[date, str, dict[str, Any]]]:
    """(day, path, result) of every result (`data[i].results[j]`) of the daily buckets inside
    [start, end); `day_of(bucket, path)` reads a bucket's day. Every bucket is checked, and with
    `result_object` every result's `object` (when present) must be it, inside the days or not."""
    for i, raw in enumerate(items(doc, "data")):
        at = f"data[{i}]"
        bucket = obj(raw, at)
        day = day_of(bucket, at)
        results = items(bucket, "results", at)
        if result_object is not None:
            for j, result in enumerate(results):
                kind = obj(result, f"{at}.results[{j}]").get("object")
                if kind is not None and kind != result_object:
                    fail(f"{at}.results[{j}].object", f"expected {result_object}, got {str(kind)[:60]!r}")
        if start <= day < end:
            for j, result in enumerate(results):
                path = f"{at}.results[{j}]"
                yield day, path, obj(result, path)


def next_cursor(doc: Mapping[str, Any]) -> str | None:
    """The cursor of the next page, or None on the last one (`has_more` rules when present)."""
    has_more = doc.get("has_more")
    next_page = doc.get("next_page")
    if has_more is not None and not isinstance(has_more, bool):
        fail("has_more", f"expected true or false, got {json_type(has_more)}")
    if next_page is not None and not isinstance(next_page, str):
        fail("next_page", f"expected a string or null, got {json_type(next_page)}")
    if has_more is False:
        return None
    if has_more is True and not next_page:
        fail("next_page", "missing while has_more is true")
    return next_page or None


# ---------------------------------------------------------------------------
# Field checks (each raises PayloadError naming the field's path)
# ---------------------------------------------------------------------------


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | Decimal | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        fail(path, f"expected an object, got {json_type(value)}")
    return value


def items(doc: Mapping[str, Any], key: str, path: str = "") -> list[Any]:
    """A required list field (`data`, `results`)."""
    at = f"{path}.{key}" if path else key
    if key not in doc:
        fail(at, "missing")
    value = doc[key]
    if not isinstance(value, list):
        fail(at, f"expected a list, got {json_type(value)}")
    return value


def count(doc: Mapping[str, Any], key: str, path: str, *, required: bool) -> int:
    """A non-negative integer count; an optional one missing or null is 0."""
    value = doc.get(key)
    if value is None:
        if required:
            fail(f"{path}.{key}", "missing" if key not in doc else "null")
        return 0
    if isinstance(value, Decimal) and value == value.to_integral_value():
        value = int(value)  # 12.0 from some serializer: still a whole count
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        fail(f"{path}.{key}", f"expected a whole number >= 0, got {json_type(value)}")
    return value


def text(doc: Mapping[str, Any], key: str, path: str) -> str | None:
    """A nullable string (dimension fields are null unless grouped by)."""
    value = doc.get(key)
    if value is None or isinstance(value, str):
        return value
    fail(f"{path}.{key}", f"expected a string or null, got {json_type(value)}")


def flag(doc: Mapping[str, Any], key: str, path: str) -> bool | None:
    value = doc.get(key)
    if value is None or isinstance(value, bool):
        return value
    fail(f"{path}.{key}", f"expected true, false or null, got {json_type(value)}")


def money(value: Any, path: str) -> Decimal:
    """An amount as sent: a JSON number (already a Decimal or int) or a decimal string; exact."""
    if isinstance(value, bool) or value is None:
        fail(path, f"expected an amount, got {json_type(value)}")
    if isinstance(value, Decimal | int):
        amount = Decimal(value)
    elif isinstance(value, str):
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            fail(path, f"not a decimal amount: {value[:40]!r}")
    else:
        fail(path, f"expected an amount, got {json_type(value)}")
    if not amount.is_finite():
        fail(path, f"not a finite amount: {value!s:.40}")
    return amount


def cents_to_dollars(cents: Decimal) -> Decimal:
    """`Decimal("123.45")` cents -> `Decimal("1.2345")` dollars, exactly (no context rounding)."""
    sign, digits, exponent = cents.as_tuple()
    assert isinstance(exponent, int)  # finite: money() checked
    return Decimal((sign, digits, exponent - 2))


def unix_day(doc: Mapping[str, Any], key: str, path: str) -> date:
    """A bucket's start as Unix seconds -> its UTC day."""
    value = doc.get(key)
    if isinstance(value, Decimal) and value == value.to_integral_value():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        fail(
            f"{path}.{key}", "missing" if key not in doc else f"expected Unix seconds, got {json_type(value)}"
        )
    try:
        return datetime.fromtimestamp(value, UTC).date()
    except (OverflowError, OSError, ValueError):
        fail(f"{path}.{key}", f"not a usable time: {value}")


def rfc3339_day(doc: Mapping[str, Any], key: str, path: str) -> date:
    """An RFC 3339 time (`2025-08-01T00:00:00Z`) -> its UTC day."""
    value = doc.get(key)
    if not isinstance(value, str):
        fail(
            f"{path}.{key}",
            "missing" if key not in doc else f"expected an RFC 3339 time, got {json_type(value)}",
        )
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        fail(f"{path}.{key}", f"not an RFC 3339 time: {value[:40]!r}")
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.date()


def iso_day(doc: Mapping[str, Any], key: str, path: str) -> date:
    """A `YYYY-MM-DD` day (or a time whose date part is one)."""
    value = doc.get(key)
    if not isinstance(value, str):
        fail(f"{path}.{key}", "missing" if key not in doc else f"expected a date, got {json_type(value)}")
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        fail(f"{path}.{key}", f"not a YYYY-MM-DD date: {value[:40]!r}")


def currency(value: Any, path: str, default: str | None = None) -> str:
    """ISO 4217, upper-cased (OpenAI sends `usd`)."""
    if value is None and default is not None:
        return default
    if not isinstance(value, str) or not (3 <= len(value.strip()) <= 8) or not value.strip().isalpha():
        got = repr(value[:12]) if isinstance(value, str) else json_type(value)
        fail(path, f"expected a currency code, got {got}")
    return value.strip().upper()


def fetch_time(now: datetime | None) -> datetime:
    """When a fetch happened, naive UTC: `now` when a test fixes it, else the wall clock."""
    return naive_utc(now) if now is not None else utc_now()


def check_days(start: date, end: date) -> None:
    """A caller's mistake, not a source's: ValueError."""
    if end <= start:
        raise ValueError(f"empty day range: {start} to {end} (end is exclusive)")
