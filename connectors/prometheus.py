"""Prometheus HTTP API client (Prometheus, Thanos, Mimir, VictoriaMetrics): queries, alerts and rules.

Every call goes through `connectors.http.SourceClient` (retries, breaker, deadline).
The API's envelope is checked here: `status: "error"` becomes a `SourceError` whose
reason is `errorType: error` (the HTTP policy already words 4xx/5xx envelopes that
way), and `warnings` / `infos` travel on the result so the panel and CLI show them.
Sample values arrive as strings so NaN and ±Inf survive; they are parsed with `float`.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

from connectors.http import SourceClient, SourceError
from console.alerts import ActiveAlert
from console.config import HttpSource
from console.timeutil import naive_utc, to_unix

MAX_GET_QUERY = 6000
"""Longest URL-encoded instant query sent as GET; longer ones are POSTed as a form."""
MAX_POINTS = 11_000
"""Prometheus refuses a range query with (end - start) / step above this."""
NICE_STEPS: tuple[timedelta, ...] = tuple(
    timedelta(seconds=s) for s in (
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
    )
)
ResultType = Literal["vector", "matrix", "scalar", "string"]
Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class PromSeries:
    """One series of a query result: its labels and (unix seconds, value) points."""

    labels: Labels
    points: tuple[tuple[float, float], ...]

    def label(self, name: str) -> str:
        """One label's value, '' when absent."""
        return dict(self.labels).get(name, "")

    @property
    def value(self) -> float:
        """The last point's value (an instant vector or scalar has exactly one)."""
        return self.points[-1][1]


@dataclass(frozen=True)
class QueryResult:
    """A parsed query answer; `warnings` and `infos` are the API's annotations, shown to the user."""

    result_type: ResultType
    series: tuple[PromSeries, ...]
    warnings: tuple[str, ...] = ()
    infos: tuple[str, ...] = ()
    text: str = ""
    """The value of a `string` result."""


@dataclass(frozen=True)
class AlertRule:
    """One rule from `/api/v1/rules` (alerting or recording)."""

    group: str
    name: str
    type: str
    """alerting | recording."""
    query: str
    state: str
    """firing | pending | inactive for alerting rules, '' for recording rules."""
    health: str
    last_error: str


def _fail(source: str, reason: str, kind: str = "decode", status: int | None = None) -> SourceError:
    return SourceError(source=source, kind=kind, status=status, reason=reason[:300])  # type: ignore[arg-type]


def sample_value(raw: object, source: str = "prometheus") -> float:
    """A sample value as the API sends it ("1.5", "NaN", "+Inf", "-Inf", "2.4e+00") as a float."""
    if isinstance(raw, str | int | float) and not isinstance(raw, bool):
        try:
            return float(raw)
        except ValueError:
            pass
    raise _fail(source, f"bad sample value {str(raw)[:40]!r}")


def _point(raw: object, source: str) -> tuple[float, float]:
    if not isinstance(raw, list | tuple) or len(raw) != 2:
        raise _fail(source, "a sample is not a [time, value] pair")
    ts = sample_value(raw[0], source)
    return ts, sample_value(raw[1], source)


def _labels(raw: object, source: str) -> Labels:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise _fail(source, "series labels are not an object")
    return tuple(sorted((str(k), str(v)) for k, v in raw.items()))


def unwrap(body: Any, source: str, status: int | None = None) -> tuple[Any, tuple[str, ...], tuple[str, ...]]:
    """(data, warnings, infos) of an API envelope; `status: error` raises SourceError `errorType: error`."""
    if not isinstance(body, dict) or "status" not in body:
        raise _fail(source, "not a Prometheus API answer (no status field)")
    if body["status"] != "success":
        kind = str(body.get("errorType") or "error")
        reason = f"{kind}: {body.get('error') or 'no error message'}"
        raise _fail(source, reason, kind="http", status=status)
    return body.get("data"), _strings(body.get("warnings")), _strings(body.get("infos"))


def _strings(raw: object) -> tuple[str, ...]:
    return tuple(str(w) for w in raw) if isinstance(raw, list) else ()


def parse_query(body: Any, source: str = "prometheus") -> QueryResult:
    """A `/api/v1/query` or `/api/v1/query_range` answer: vector, matrix, scalar or string."""
    data, warnings, infos = unwrap(body, source)
    if not isinstance(data, dict):
        raise _fail(source, "query answer has no data object")
    kind, result = data.get("resultType"), data.get("result")
    series: tuple[PromSeries, ...] = ()
    text = ""
    if kind == "vector" and isinstance(result, list):
        series = tuple(
            PromSeries(_labels(s.get("metric"), source), (_point(s.get("value"), source),))
            for s in result if isinstance(s, dict) and "value" in s  # native histograms skipped
        )
    elif kind == "matrix" and isinstance(result, list):
        series = tuple(
            PromSeries(_labels(s.get("metric"), source),
                       tuple(_point(p, source) for p in s.get("values") or ()))
            for s in result if isinstance(s, dict)
        )
    elif kind == "scalar":
        series = (PromSeries((), (_point(result, source),)),)
    elif kind == "string" and isinstance(result, list) and len(result) == 2:
        text = str(result[1])
    else:
        raise _fail(source, f"unknown result type {str(kind)[:20]!r}")
    return QueryResult(kind, series, warnings, infos, text)


def _rfc3339(raw: object) -> datetime | None:
    """Go's RFC 3339 with up to 9 fractional digits, as naive UTC; None when absent or unreadable."""
    if not isinstance(raw, str) or not raw:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", raw.strip()).replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return None if parsed.year < 1971 else naive_utc(parsed)  # Go's zero time means "not set"


def labels_fingerprint(labels: Labels) -> str:
    """A stable hash of an alert's label set (Prometheus's API has no fingerprint)."""
    text = "\x00".join(f"{k}\x01{v}" for k, v in sorted(labels))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_alerts(body: Any, source: str = "prometheus") -> tuple[ActiveAlert, ...]:
    """A `/api/v1/alerts` answer as ActiveAlert rows, firing first, then by name."""
    data, _, _ = unwrap(body, source)
    raw = data.get("alerts") if isinstance(data, dict) else None
    if not isinstance(raw, list):
        raise _fail(source, "alerts answer has no data.alerts list")
    rows = []
    for a in raw:
        if not isinstance(a, dict):
            continue
        labels = _labels(a.get("labels"), source)
        raw_notes = a.get("annotations")
        notes: dict[str, Any] = raw_notes if isinstance(raw_notes, dict) else {}
        by_name = dict(labels)
        rows.append(ActiveAlert(
            source=source, origin="prometheus", name=by_name.get("alertname", ""),
            state=str(a.get("state", "")), severity=by_name.get("severity", ""), labels=labels,
            summary=str(notes.get("summary") or notes.get("description") or ""),
            started=_rfc3339(a.get("activeAt")), fingerprint=labels_fingerprint(labels),
            value=str(a.get("value", "")),
        ))
    return tuple(sorted(rows, key=lambda r: (r.state != "firing", r.name, r.labels)))


def parse_rules(body: Any, source: str = "prometheus") -> tuple[AlertRule, ...]:
    """A `/api/v1/rules` answer as one row per rule, in group order."""
    data, _, _ = unwrap(body, source)
    groups = data.get("groups") if isinstance(data, dict) else None
    if not isinstance(groups, list):
        raise _fail(source, "rules answer has no data.groups list")
    return tuple(
        AlertRule(group=str(g.get("name", "")), name=str(r.get("name", "")), type=str(r.get("type", "")),
                  query=str(r.get("query", "")), state=str(r.get("state", "")),
                  health=str(r.get("health", "")), last_error=str(r.get("lastError", "")))
        for g in groups if isinstance(g, dict)
        for r in g.get("rules") or () if isinstance(r, dict)
    )


def choose_step(start: datetime, end: datetime, target_points: int = 250) -> timedelta:
    """A round step giving about `target_points` points over [start, end], always under 11,000."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    if target_points < 1:
        raise ValueError(f"target_points must be >= 1, got {target_points}")
    span = end - start
    wanted = span / min(target_points, MAX_POINTS - 1)
    for step in NICE_STEPS:
        if step >= wanted:
            return step
    return timedelta(days=math.ceil(wanted / timedelta(days=1)))


def duration(window: timedelta) -> str:
    """A PromQL duration for `window` in its largest exact unit: 5m, 1h, 28d, 90s, 1500ms."""
    ms = round(window / timedelta(milliseconds=1))
    if ms <= 0:
        raise ValueError(f"a PromQL duration must be positive, got {window}")
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _time(at: datetime) -> str:
    return f"{to_unix(at):.3f}"


class PrometheusClient:
    """The Prometheus HTTP API of one configured source."""

    def __init__(self, http: SourceClient) -> None:
        self.http = http
        self.name = http.name
        self.post_long_queries = True
        """False once the server refused a POST (405): long queries go as GET."""

    @classmethod
    def for_source(cls, source: HttpSource, secret_headers: Mapping[str, str],
                   **kw: Any) -> PrometheusClient:
        """A client with the source's URL, path prefix, headers, secrets and HTTP policy."""
        return cls(SourceClient.for_source(source, secret_headers, **kw))

    async def _get(self, path: str, params: list[tuple[str, str]] | None = None) -> Any:
        return await self.http.get_json(path, params)

    async def query(self, expr: str, at: datetime) -> QueryResult:
        """An instant query evaluated at `at` (naive UTC); POSTed as a form when too long for a URL.

        A server that refuses the POST with 405 is asked with GET from then on.
        """
        params = {"query": expr, "time": _time(at)}
        if self.post_long_queries and len(quote(expr, safe="")) > MAX_GET_QUERY:
            try:
                return parse_query(await self.http.post_form("/api/v1/query", params), self.name)
            except SourceError as err:
                if err.status != 405:
                    raise
                self.post_long_queries = False
        return parse_query(await self._get("/api/v1/query", list(params.items())), self.name)

    async def query_range(self, expr: str, start: datetime, end: datetime,
                          step: timedelta | None = None) -> QueryResult:
        """A range query; the step is `choose_step`'s when None, and never finer than 11,000 points allow."""
        finest = choose_step(start, end, MAX_POINTS - 1)
        step = choose_step(start, end) if step is None else max(step, finest)
        params = [("query", expr), ("start", _time(start)), ("end", _time(end)),
                  ("step", f"{step.total_seconds():g}")]
        return parse_query(await self._get("/api/v1/query_range", params), self.name)

    async def alerts(self) -> tuple[ActiveAlert, ...]:
        """Active (pending and firing) alerts of the server's alerting rules."""
        return parse_alerts(await self._get("/api/v1/alerts"), self.name)

    async def rules(self, kind: Literal["alert", "record"] | None = None) -> tuple[AlertRule, ...]:
        """Every rule with its health and last error."""
        return parse_rules(await self._get("/api/v1/rules", [("type", kind)] if kind else None), self.name)

    async def aclose(self) -> None:
        await self.http.aclose()
