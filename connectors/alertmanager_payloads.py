"""Alertmanager API v2 JSON -> `ActiveAlert` / `Silence` rows, checked field by field.

Every shape problem raises `PayloadError` naming where it is (`alerts[3].status.state`)
and what was expected; the payload's own text never goes into the message, so a
hostile server cannot put escape sequences or secrets into an error line.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from console.alerts import ActiveAlert, Silence, SilenceMatcher
from console.timeutil import naive_utc

ALERT_STATES = frozenset({"active", "suppressed", "unprocessed"})
SILENCE_STATES = frozenset({"active", "pending", "expired"})
_ZERO_TIME = datetime(1, 1, 1)


class PayloadError(ValueError):
    """A response body that does not have the documented shape."""

    def __init__(self, where: str, expected: str) -> None:
        super().__init__(f"{where}: expected {expected}")
        self.where = where
        self.expected = expected


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(where, f"an object, got {_type_name(value)}")
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise PayloadError(where, f"a list, got {_type_name(value)}")
    return value


def _str(obj: Mapping[str, Any], key: str, where: str, *, default: str | None = None) -> str:
    value = obj.get(key, default)
    if not isinstance(value, str):
        raise PayloadError(f"{where}.{key}", f"a string, got {_type_name(value)}")
    return value


def _bool(obj: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise PayloadError(f"{where}.{key}", f"true or false, got {_type_name(value)}")
    return value


def _str_map(obj: Mapping[str, Any], key: str, where: str) -> dict[str, str]:
    value = _object(obj.get(key, {}), f"{where}.{key}")
    for text in value.values():
        if not isinstance(text, str):
            raise PayloadError(f"{where}.{key}", f"string values, got {_type_name(text)}")
    return dict(value)


def _str_tuple(obj: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = obj.get(key)
    items = [] if value is None else _list(value, f"{where}.{key}")
    if not all(isinstance(i, str) for i in items):
        raise PayloadError(f"{where}.{key}", "a list of strings")
    return tuple(items)


def parse_time(value: object, where: str) -> datetime | None:
    """An RFC 3339 time as naive UTC; None for a missing or zero (`0001-01-01`) time."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PayloadError(where, f"an RFC 3339 time, got {_type_name(value)}")
    try:
        parsed = naive_utc(datetime.fromisoformat(value))
    except ValueError:
        raise PayloadError(where, "an RFC 3339 time") from None
    return None if parsed <= _ZERO_TIME else parsed


def parse_alert(source: str, value: object, where: str) -> ActiveAlert:
    """One item of `GET /api/v2/alerts`."""
    obj = _object(value, where)
    labels = _str_map(obj, "labels", where)
    annotations = _str_map(obj, "annotations", where)
    status = _object(obj.get("status"), f"{where}.status")
    state = _str(status, "state", f"{where}.status")
    if state not in ALERT_STATES:
        raise PayloadError(f"{where}.status.state", "active, suppressed or unprocessed")
    return ActiveAlert(
        source=source,
        origin="alertmanager",
        name=labels.get("alertname", ""),
        state=state,
        severity=labels.get("severity", ""),
        labels=tuple(sorted(labels.items())),
        summary=annotations.get("summary") or annotations.get("description", ""),
        started=parse_time(obj.get("startsAt"), f"{where}.startsAt"),
        fingerprint=_str(obj, "fingerprint", where),
        silenced_by=_str_tuple(status, "silencedBy", f"{where}.status"),
        inhibited_by=_str_tuple(status, "inhibitedBy", f"{where}.status"),
    )


def parse_alerts(source: str, payload: object) -> tuple[ActiveAlert, ...]:
    """The whole `GET /api/v2/alerts` body (a JSON list)."""
    items = _list(payload, "alerts")
    return tuple(parse_alert(source, item, f"alerts[{i}]") for i, item in enumerate(items))


def parse_matcher(value: object, where: str) -> SilenceMatcher:
    """One `{name, value, isRegex, isEqual}` matcher (`isEqual` defaults to true, as in 0.21-)."""
    obj = _object(value, where)
    return SilenceMatcher(
        name=_str(obj, "name", where),
        value=_str(obj, "value", where),
        is_regex=_bool(obj, "isRegex", where, False),
        is_equal=_bool(obj, "isEqual", where, True),
    )


def parse_silence(source: str, value: object, where: str = "silence") -> Silence:
    """One silence (`GET /api/v2/silence/{id}` or an item of `/api/v2/silences`)."""
    obj = _object(value, where)
    status = _object(obj.get("status"), f"{where}.status")
    state = _str(status, "state", f"{where}.status")
    if state not in SILENCE_STATES:
        raise PayloadError(f"{where}.status.state", "active, pending or expired")
    matchers = _list(obj.get("matchers"), f"{where}.matchers")
    starts = parse_time(obj.get("startsAt"), f"{where}.startsAt")
    ends = parse_time(obj.get("endsAt"), f"{where}.endsAt")
    if starts is None or ends is None:
        raise PayloadError(f"{where}.startsAt/endsAt", "both times")
    return Silence(
        source=source,
        id=_str(obj, "id", where),
        state=state,
        matchers=tuple(parse_matcher(m, f"{where}.matchers[{i}]") for i, m in enumerate(matchers)),
        starts=starts,
        ends=ends,
        created_by=_str(obj, "createdBy", where, default=""),
        comment=_str(obj, "comment", where, default=""),
    )


def parse_silences(source: str, payload: object) -> tuple[Silence, ...]:
    """The whole `GET /api/v2/silences` body (a JSON list)."""
    items = _list(payload, "silences")
    return tuple(parse_silence(source, item, f"silences[{i}]") for i, item in enumerate(items))


def parse_silence_id(payload: object) -> str:
    """The `{"silenceID": "..."}` answer to `POST /api/v2/silences`."""
    obj = _object(payload, "response")
    silence_id = _str(obj, "silenceID", "response")
    if not silence_id:
        raise PayloadError("response.silenceID", "a non-empty id")
    return silence_id


def matcher_json(matcher: SilenceMatcher) -> dict[str, object]:
    """A matcher as the API takes it."""
    return {"name": matcher.name, "value": matcher.value,
            "isRegex": matcher.is_regex, "isEqual": matcher.is_equal}


def matcher_filter(matcher: SilenceMatcher) -> str:
    """A matcher in the `filter=` syntax of `GET /api/v2/alerts` (value quoted and escaped)."""
    op = ("=~" if matcher.is_regex else "=") if matcher.is_equal else ("!~" if matcher.is_regex else "!=")
    value = matcher.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{matcher.name}{op}"{value}"'
