"""The one HTTP policy every connector uses: timeouts, deadline, retries, breaker, safe errors.

A `SourceClient` owns one reused `httpx.AsyncClient` for one source. Every call runs
under an overall deadline (`asyncio.timeout` around the whole retry loop), holds the
endpoint's lock (one request in flight per method + path), passes the source's circuit
breaker, and retries only idempotent requests on connection errors and 408/429/5xx
with capped, fully jittered exponential backoff (`Retry-After` is a floor). Failures
are `SourceError`s whose text names the source and never carries a URL query or a
header value. httpx's own loggers are quieted and filtered at import (`http_logging`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json as jsonlib
import logging
import os
import random as _random
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from connectors.http_breaker import CircuitBreaker
from connectors.http_logging import mask_in_logs, quiet_httpx_loggers
from connectors.http_text import (
    MASK,
    Redactor,
    clean,
    html_title,
    retry_after_seconds,
    says_quota_exhausted,
    short_reason,
    strip_query,
)
from connectors.http_types import ErrorKind as ErrorKind
from connectors.http_types import HttpPolicy as HttpPolicy
from connectors.http_types import SourceError as SourceError

if TYPE_CHECKING:
    from console.config import HttpSource

Params = Mapping[str, str] | Sequence[tuple[str, str]] | None

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key"})
_log = logging.getLogger(__name__)


quiet_httpx_loggers(__name__)


# ---------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------


DEFAULT_POLICY = HttpPolicy()
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


@functools.cache
def shared_tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every source's client: building one loads the CA bundle
    (80-160 ms here), which each new `httpx.AsyncClient` would otherwise do again."""
    return httpx.create_ssl_context()


class SourceClient:
    """One reused httpx.AsyncClient per source; retries, breaker, one request in flight per endpoint."""

    def __init__(self, name: str, base_url: str, *, path_prefix: str = "",
                 headers: Mapping[str, str] = _NO_HEADERS, secret_headers: Mapping[str, str] = _NO_HEADERS,
                 policy: HttpPolicy = DEFAULT_POLICY,
                 transport: httpx.AsyncBaseTransport | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 random: Callable[[], float] = _random.random,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.policy = policy
        self._prefix = path_prefix.rstrip("/")
        self._secret_names = frozenset(h.lower() for h in secret_headers)
        self._redact = Redactor(secret_headers.values())
        mask_in_logs(self._redact)
        self._sleep, self._random, self._monotonic = sleep, random, monotonic
        url = httpx.URL(base_url)
        self._where = f"{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"
        timeout = httpx.Timeout(connect=policy.connect_timeout, read=policy.read_timeout,
                                write=policy.read_timeout, pool=policy.connect_timeout)
        self._client = httpx.AsyncClient(base_url=base_url, headers={**headers, **secret_headers},
                                         timeout=timeout, transport=transport, follow_redirects=False,
                                         verify=shared_tls_context())
        self._breaker = CircuitBreaker(policy.breaker_failures, policy.breaker_open_seconds, monotonic)
        self._endpoints: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @classmethod
    def for_source(cls, source: HttpSource, secret_headers: Mapping[str, str], **kw: Any) -> SourceClient:
        """A client for a configured source (policy from its timeout unless `policy=` is given)."""
        kw.setdefault("policy", HttpPolicy.for_source(source))
        return cls(source.name, str(source.url), path_prefix=source.path_prefix, headers=source.headers,
                   secret_headers=secret_headers, **kw)

    @property
    def breaker(self) -> CircuitBreaker:
        """This source's circuit breaker (read it for status; tests may inspect it)."""
        return self._breaker

    async def get_json(self, path: str, params: Params = None) -> Any:
        """GET `path` and decode its JSON body (retried; SourceError on any failure)."""
        return self._json(await self._call("GET", path, params=params, idempotent=True))

    async def post_form(self, path: str, form: Mapping[str, str]) -> Any:
        """POST `form` url-encoded to `path` (a read too long for a URL); its JSON body (retried)."""
        return self._json(await self._call("POST", path, json=_Form(form), idempotent=True))

    def _json(self, response: httpx.Response) -> Any:
        content_type = response.headers.get("content-type", "")
        media = content_type.split(";")[0].strip().lower()
        if media and "json" not in media:
            title = html_title(response.text[:65536]) if "html" in media else None
            detail = f" ({clean(title, self._redact, 80)})" if title else ""
            raise SourceError(self.name, "content_type", clean(f"expected JSON, got {media}{detail}",
                                                               self._redact), status=response.status_code)
        try:
            return orjson.loads(self.masked_body(response))
        except orjson.JSONDecodeError as exc:
            error = SourceError(self.name, "decode", clean(f"malformed JSON: {exc}", self._redact),
                                status=response.status_code)
        raise error from None

    def masked_body(self, response: httpx.Response) -> bytes:
        """The answer's body with this source's secret values masked (a server that echoes the
        request's headers into alert labels or metric labels must not put them on screen)."""
        return self._redact.known_bytes(response.content)

    async def get_text(self, path: str, params: Params = None) -> tuple[str, str]:
        """GET `path`: (body text, secret values masked; content type)."""
        response = await self._call("GET", path, params=params, idempotent=True)
        return self._redact.known(response.text), response.headers.get("content-type", "")

    async def send(self, method: str, path: str, *, json: Any = None, params: Params = None,
                   idempotent: bool = False, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """Send one request; retried only when `idempotent` (or GET); SourceError on >= 300.
        `headers` (an `Idempotency-Key`, a `LiteLLM-Changed-By`) go on this request only, over
        the client's own; like those, their values are never logged or put in an error."""
        method = method.upper()
        return await self._call(method, path, json=json, params=params,
                                idempotent=idempotent or method in ("GET", "HEAD"), headers=headers)

    def describe_request(self, method: str, path: str, *, json: Any = None, params: Params = None,
                         headers: Mapping[str, str] | None = None) -> str:
        """The exact request as text for a plan preview: method, URL, headers (secrets masked), body."""
        request = self._client.build_request(method.upper(), self._path(path), json=json,
                                             params=_query(params), headers=headers)
        lines = [f"{request.method} {self._redact.known(str(request.url))}"]
        for name, value in request.headers.items():
            secret = name.lower() in self._secret_names or name.lower() in SENSITIVE_HEADERS
            lines.append(f"{name}: {MASK if secret else self._redact.known(value)}")
        if json is not None:
            lines += ["", self._redact.known(jsonlib.dumps(json, indent=2, ensure_ascii=False))]
        return "\n".join(lines)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def __aenter__(self) -> SourceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- one call: breaker -> deadline -> endpoint lock -> attempts ---------------------------

    def _path(self, path: str) -> str:
        return self._prefix + ("/" + path.lstrip("/") if path else "")

    async def _call(self, method: str, path: str, *, json: Any = None, params: Params = None,
                    idempotent: bool, headers: Mapping[str, str] | None = None) -> httpx.Response:
        probe = self._breaker.admit()
        if probe is None:
            raise self._breaker_error()
        try:
            response = await self._within_deadline(method, self._path(path), json, params,
                                                   attempts=1 if probe else self.policy.max_attempts,
                                                   idempotent=idempotent, headers=headers)
        except SourceError as err:
            if err.kind in ("connect", "timeout") or (err.kind == "http" and (
                    err.status is None or err.status >= 500 or err.status in RETRY_STATUSES)):
                self._breaker.failed(probe, err.reason)
            else:
                self._breaker.succeeded(probe)
            raise
        except BaseException:
            self._breaker.released(probe)
            raise
        self._breaker.succeeded(probe)
        return response

    def _breaker_error(self) -> SourceError:
        breaker = self._breaker
        last = f"; last error: {breaker.last_failure}" if breaker.last_failure else ""
        reason = (f"not asked: {breaker.consecutive_failures} failed calls in a row, "
                  f"next try in {breaker.seconds_until_probe():.0f} s{last}")
        return SourceError(self.name, "breaker_open", clean(reason, self._redact))

    async def _within_deadline(self, method: str, path: str, json: Any, params: Params, *,
                               attempts: int, idempotent: bool,
                               headers: Mapping[str, str] | None = None) -> httpx.Response:
        deadline = self.policy.deadline
        start = self._monotonic()
        try:
            async with asyncio.timeout(deadline):
                async with self._endpoint(method, path):
                    return await self._attempts(method, path, json, params, attempts, idempotent, start,
                                                headers)
        except TimeoutError:
            reason = f"no complete answer within the {deadline:g} s deadline"
            error = SourceError(self.name, "timeout", reason, maybe_sent=True)
        raise error from None

    @contextlib.asynccontextmanager
    async def _endpoint(self, method: str, path: str) -> AsyncIterator[None]:
        """Hold the endpoint's lock, forgotten when no call uses it (ids in paths keep the map small)."""
        key = (method, path)
        lock, users = self._endpoints.get(key, (asyncio.Lock(), 0))
        self._endpoints[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._endpoints[key]
            if users > 1:
                self._endpoints[key] = (lock, users - 1)
            else:
                del self._endpoints[key]

    async def _attempts(self, method: str, path: str, json: Any, params: Params, attempts: int,
                        idempotent: bool, start: float,
                        headers: Mapping[str, str] | None = None) -> httpx.Response:
        policy = self.policy
        for attempt in range(max(1, attempts)):
            outcome = await self._attempt(method, path, json, params, headers)
            if isinstance(outcome, httpx.Response):
                return outcome
            error, retryable = outcome
            if not (idempotent and retryable) or attempt + 1 >= attempts:
                raise error from None
            delay = self._random() * min(policy.backoff_cap, policy.backoff_base * 2 ** attempt)
            if error.retry_after is not None:
                delay = max(delay, min(error.retry_after, policy.retry_after_cap))
            if delay > policy.deadline - (self._monotonic() - start):
                raise error from None
            _log.debug("%s: %s %s failed (%s); retry %d in %.2f s", self.name, method, path,
                       error.kind if error.status is None else error.status, attempt + 1, delay)
            await self._sleep(delay)
        raise AssertionError("unreachable: the last attempt raises")

    async def _attempt(self, method: str, path: str, json: Any, params: Params,
                       headers: Mapping[str, str] | None = None) -> httpx.Response | tuple[SourceError, bool]:
        """One request: the response when it is a success, else (error, retryable)."""
        maybe_sent = True  # only a failure to connect proves the request never left
        try:
            if isinstance(json, _Form):
                response = await self._client.request(method, path, data=dict(json.fields),
                                                      params=_query(params), headers=headers)
            else:
                response = await self._client.request(method, path, json=json, params=_query(params),
                                                      headers=headers)
        except httpx.ConnectTimeout:
            failure = ("connect", f"cannot connect to {self._where} within {self.policy.connect_timeout:g} s",
                       True)
            maybe_sent = False
        except httpx.PoolTimeout:
            failure = ("timeout", f"no free connection within {self.policy.connect_timeout:g} s", False)
            maybe_sent = False
        except httpx.TimeoutException:
            failure = ("timeout", f"no answer within {self.policy.read_timeout:g} s (read timeout)", False)
        except httpx.ConnectError as exc:
            failure = ("connect", f"cannot connect to {self._where}: {_os_reason(exc)}", True)
            maybe_sent = False
        except httpx.ReadError:
            failure = ("connect", "connection reset by the server", True)
        except httpx.RemoteProtocolError:
            failure = ("connect", "the server closed the connection without a complete answer", True)
        except httpx.HTTPError as exc:
            failure = ("connect", f"request failed ({type(exc).__name__})", False)
        else:
            if response.status_code < 300:
                return response
            return self._status_error(response)
        kind, reason, retryable = failure
        error = SourceError(self.name, kind, clean(reason, self._redact), maybe_sent=maybe_sent)  # type: ignore[arg-type]
        return error, retryable

    def _status_error(self, response: httpx.Response) -> tuple[SourceError, bool]:
        status = response.status_code
        retry_after = retry_after_seconds(response.headers)
        fallback = response.reason_phrase or f"status {status}"
        if 300 <= status < 400:
            where = strip_query(response.headers.get("location", "")) or "elsewhere"
            reason = clean(f"redirected to {where} (not followed: check url and path_prefix)", self._redact)
            return SourceError(self.name, "http", reason, status=status), False
        content_type = response.headers.get("content-type", "")
        body = short_reason(response.content, content_type, self._redact, fallback)
        if status in (401, 403):
            reason = (f"{clean(body, self._redact, 110)}; check the credentials reference configured "
                      f"for source {self.name}")
            return SourceError(self.name, "auth", reason, status=status), False
        if status == 429 and says_quota_exhausted(response.content, response.headers):
            return SourceError(self.name, "quota", body, status=status, retry_after=retry_after), False
        error = SourceError(self.name, "http", body, status=status, retry_after=retry_after)
        return error, status in RETRY_STATUSES


@dataclass(frozen=True)
class _Form:
    """A url-encoded form body; it travels where a JSON body would (`post_form`)."""

    fields: Mapping[str, str]


def _query(params: Params) -> httpx.QueryParams | None:
    """Query parameters as httpx takes them (a mapping, or pairs for repeated names)."""
    if params is None:
        return None
    return httpx.QueryParams(dict(params) if isinstance(params, Mapping) else list(params))


def _os_reason(exc: BaseException) -> str:
    """'connection refused' and the like, from the OS error under an httpx ConnectError."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            break
        if isinstance(seen, socket.gaierror):
            return "host name not resolved"
        if isinstance(seen, ssl.SSLError):
            return "TLS handshake failed"
        if isinstance(seen, OSError) and isinstance(seen.errno, int) and seen.errno > 0:
            return os.strerror(seen.errno).lower()
        seen = seen.__cause__ or seen.__context__
    return "connection failed"
