"""The demo's Alertmanager: alerts from rules over the simulator's traffic, silences in memory.

The JSON is Alertmanager's API v2 (0.25): `GET /api/v2/alerts` gives
GettableAlerts (labels, annotations, startsAt, endsAt, updatedAt, fingerprint,
receivers, generatorURL, status {state active|suppressed, silencedBy,
inhibitedBy}); silences are GettableSilences (id, matchers {name, value,
isRegex, isEqual}, startsAt, endsAt, updatedAt, createdBy, comment, status
{state pending|active|expired}). Rules are evaluated on the simulated clock
over the last RECENT of finished calls; timestamps in the API are wall-clock
times, as a real Alertmanager's are (the console creates silences with them).
A resolved alert leaves the list, as in Alertmanager.
"""

from __future__ import annotations

import hashlib
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from console.demo.telemetry import Call, Telemetry
from console.timeutil import naive_utc

RESOLVE_TIMEOUT = timedelta(minutes=5)
BURN_PAGE = 14.4
"""Burn rate that pages: 14.4x the 0.5% error budget of `anthropic availability` (7.2% failing)."""
SLO_ERROR_BUDGET = 0.005
LATENCY_P95_SECONDS = 10.0
MIN_CALLS = 10


class ApiError(Exception):
    """A request Alertmanager would refuse: its status and message (sent as a JSON string)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Rule:
    """An alerting rule over the recent calls: `firing(calls)` returns a value when it fires."""

    name: str
    severity: str
    labels: tuple[tuple[str, str], ...]
    summary: str
    firing: Callable[[list[Call]], float | None]
    receiver: str


def _anthropic(calls: list[Call]) -> list[Call]:
    return [c for c in calls if c.provider == "anthropic"]


def _burn(calls: list[Call]) -> float | None:
    mine = _anthropic(calls)
    if len(mine) < MIN_CALLS:
        return None
    burn = sum(1 for c in mine if not c.ok) / len(mine) / SLO_ERROR_BUDGET
    return burn if burn >= BURN_PAGE else None


def _p95(calls: list[Call]) -> float | None:
    mine = sorted(c.end - c.start for c in _anthropic(calls))
    if len(mine) < MIN_CALLS:
        return None
    p95 = mine[int(0.95 * (len(mine) - 1))]
    return p95 if p95 >= LATENCY_P95_SECONDS else None


RULES: tuple[Rule, ...] = (
    Rule("AnthropicErrorBudgetBurn", "page",
         (("provider", "anthropic"), ("service", "llm-gateway"), ("slo", "anthropic availability")),
         "anthropic is burning its error budget {value:.0f}x too fast (5m window)", _burn, "oncall-pager"),
    Rule("AnthropicLatencyHigh", "ticket", (("provider", "anthropic"), ("service", "llm-gateway")),
         "anthropic p95 latency is {value:.1f} s (5m window)", _p95, "team-tickets"),
)


@dataclass
class _Firing:
    rule: Rule
    labels: dict[str, str]
    starts: datetime
    value: float


@dataclass
class _Silence:
    id: str
    matchers: list[dict[str, Any]]
    starts: datetime
    ends: datetime
    created_by: str
    comment: str
    updated: datetime
    compiled: list[tuple[str, Callable[[str], bool]]] = field(default_factory=list)

    def state(self, now: datetime) -> str:
        return "pending" if now < self.starts else "active" if now < self.ends else "expired"

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(test(labels.get(name, "")) for name, test in self.compiled)


class AlertmanagerState:
    """Alerts evaluated from `telemetry` on demand, and the silences posted to the API."""

    def __init__(self, telemetry: Telemetry, wall: Callable[[], datetime],
                 generator_url: str = "") -> None:
        self.telemetry = telemetry
        self.wall = wall
        self.generator_url = generator_url
        self._firing: dict[str, _Firing] = {}
        self._silences: dict[str, _Silence] = {}
        self._lock = threading.Lock()

    def alerts(self, query: Mapping[str, list[str]] | None = None) -> list[dict[str, Any]]:
        """`GET /api/v2/alerts` with its filters: active, silenced, inhibited (true/false), filter."""
        query = query or {}
        self.telemetry.catch_up()
        with self.telemetry.lock:
            recent = list(self.telemetry.recent)
        now = self.wall()
        show = {k: _flag(query, k) for k in ("active", "silenced", "inhibited")}
        wanted = [_matcher_from_text(text) for text in query.get("filter", [])]
        with self._lock:
            self._evaluate(recent, now)
            out = []
            pages = [f for f in self._firing.values() if f.rule.severity == "page"]
            for fp, f in sorted(self._firing.items(), key=lambda kv: kv[1].rule.name):
                silenced = [s.id for s in self._silences.values()
                            if s.state(now) == "active" and s.matches(f.labels)]
                inhibited = [_fingerprint(p.labels) for p in pages if f.rule.severity == "ticket"
                             and p.labels.get("provider") == f.labels.get("provider")]
                if not _shown(show, silenced, inhibited):
                    continue
                if not all(test(f.labels.get(name, "")) for name, test in wanted):
                    continue
                out.append(self._alert_json(fp, f, now, silenced, inhibited))
        return out

    def silences(self) -> list[dict[str, Any]]:
        now = self.wall()
        with self._lock:
            return [self._silence_json(s, now) for s in self._silences.values()]

    def silence(self, silence_id: str) -> dict[str, Any]:
        now = self.wall()
        with self._lock:
            s = self._silences.get(silence_id)
            if s is None:
                raise ApiError(404, f"silence {silence_id} not found")
            return self._silence_json(s, now)

    def post_silence(self, body: Any) -> str:
        """`POST /api/v2/silences` (a new one, or an update when `id` names one); its id."""
        if not isinstance(body, dict):
            raise ApiError(400, "silence must be a JSON object")
        now = self.wall()
        missing = [k for k in ("matchers", "startsAt", "endsAt", "createdBy", "comment") if k not in body]
        if missing:
            raise ApiError(400, f"{', '.join(missing)} in body is required")
        matchers = body["matchers"]
        if not isinstance(matchers, list) or not matchers:
            raise ApiError(400, "silence invalid: at least one matcher required")
        compiled = [_compile(m) for m in matchers]
        starts, ends = _parse_time(body["startsAt"], "startsAt"), _parse_time(body["endsAt"], "endsAt")
        if ends <= starts:
            raise ApiError(400, "silence invalid: end time must not be before start time")
        if ends < now:
            raise ApiError(400, "silence invalid: end time can't be in the past")
        with self._lock:
            silence_id = body.get("id") or str(uuid.uuid4())
            if body.get("id") and silence_id not in self._silences:
                raise ApiError(404, f"silence {silence_id} not found")
            self._silences[silence_id] = _Silence(
                silence_id, [{"name": m["name"], "value": m["value"], "isRegex": bool(m.get("isRegex")),
                              "isEqual": bool(m.get("isEqual", True))} for m in matchers],
                max(starts, now), ends, str(body["createdBy"]), str(body["comment"]), now, compiled)
        return silence_id

    def expire(self, silence_id: str) -> None:
        """`DELETE /api/v2/silence/{id}`: it ends now."""
        now = self.wall()
        with self._lock:
            s = self._silences.get(silence_id)
            if s is None:
                raise ApiError(404, f"silence {silence_id} not found")
            if s.state(now) != "expired":
                s.ends = now
                s.starts = min(s.starts, now)
                s.updated = now

    # -- internals ------------------------------------------------------------

    def _evaluate(self, recent: list[Call], now: datetime) -> None:
        for rule in RULES:
            labels = {"alertname": rule.name, "severity": rule.severity, **dict(rule.labels)}
            fp = _fingerprint(labels)
            value = rule.firing(recent)
            if value is None:
                self._firing.pop(fp, None)
            elif fp in self._firing:
                self._firing[fp].value = value
            else:
                self._firing[fp] = _Firing(rule, labels, now, value)

    def _alert_json(self, fp: str, f: _Firing, now: datetime, silenced: list[str],
                    inhibited: list[str]) -> dict[str, Any]:
        return {
            "labels": f.labels,
            "annotations": {"summary": f.rule.summary.format(value=f.value),
                            "runbook_url": f"https://runbooks.example/{f.rule.name}"},
            "startsAt": _time(f.starts), "endsAt": _time(now + RESOLVE_TIMEOUT), "updatedAt": _time(now),
            "generatorURL": f"{self.generator_url}/graph?g0.expr=ALERTS%7Balertname%3D%22{f.rule.name}%22%7D",
            "fingerprint": fp, "receivers": [{"name": f.rule.receiver}],
            "status": {"state": "suppressed" if silenced or inhibited else "active",
                       "silencedBy": silenced, "inhibitedBy": inhibited},
        }

    @staticmethod
    def _silence_json(s: _Silence, now: datetime) -> dict[str, Any]:
        return {"id": s.id, "status": {"state": s.state(now)}, "updatedAt": _time(s.updated),
                "matchers": s.matchers, "startsAt": _time(s.starts), "endsAt": _time(s.ends),
                "createdBy": s.created_by, "comment": s.comment}


def _fingerprint(labels: Mapping[str, str]) -> str:
    text = "\xff".join(f"{k}\xff{v}" for k, v in sorted(labels.items()))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _shown(show: Mapping[str, bool], silenced: list[str], inhibited: list[str]) -> bool:
    if silenced and not show["silenced"]:
        return False
    if inhibited and not show["inhibited"]:
        return False
    return bool(silenced or inhibited or show["active"])


def _flag(query: Mapping[str, list[str]], name: str) -> bool:
    values = query.get(name)
    if not values:
        return True
    if values[-1] not in ("true", "false"):
        raise ApiError(400, f"{name} in query must be of type boolean: {values[-1]!r}")
    return values[-1] == "true"


def _compile(m: Any) -> tuple[str, Callable[[str], bool]]:
    if not isinstance(m, dict) or not isinstance(m.get("name"), str) or not isinstance(m.get("value"), str):
        raise ApiError(400, "silence invalid: a matcher needs a string name and value")
    if not m["name"]:
        raise ApiError(400, "silence invalid: invalid label name \"\"")
    return m["name"], _test(m["value"], bool(m.get("isRegex")), bool(m.get("isEqual", True)))


def _test(value: str, is_regex: bool, is_equal: bool) -> Callable[[str], bool]:
    if is_regex:
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise ApiError(400, f"silence invalid: invalid regular expression {value!r}: {exc}") from None
        return lambda v: bool(pattern.fullmatch(v)) == is_equal
    return lambda v: (v == value) == is_equal


_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')


def _matcher_from_text(text: str) -> tuple[str, Callable[[str], bool]]:
    """A `filter` query parameter: `name="value"`, `name!="v"`, `name=~"re"`, `name!~"re"`."""
    m = _MATCHER.match(text)
    if m is None:
        raise ApiError(400, f"bad matcher format: {text}")
    name, op, value = m.groups()
    return name, _test(value, "~" in op, not op.startswith("!"))


def _parse_time(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise ApiError(400, f"{what} in body must be of type date-time")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{what} in body must be of type date-time: {value!r}") from None
    return naive_utc(t)


def _time(t: datetime) -> str:
    return f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}Z"

