"""What a user types for a silence: matchers (`NAME=VALUE`, `!=`, `=~`, `!~`), `--for` and the comment."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta

from console.alerts import SilenceMatcher


class SilenceInputError(ValueError):
    """A matcher, duration or comment that cannot make a valid silence; the message says which and why."""


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = (("=~", True, True), ("!~", True, False), ("!=", False, False), ("=", False, True))
"""Longest first: (operator, is_regex, is_equal)."""
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION = timedelta(days=366)


def parse_matcher(text: str) -> SilenceMatcher:
    """`NAME=VALUE`, `NAME!=VALUE`, `NAME=~RE` or `NAME!~RE`; a value in double quotes loses them."""
    name_match = _NAME.match(text)
    if name_match is None:
        raise SilenceInputError(
            f"matcher {text!r}: must start with a label name (letters, digits, _; not a digit first)"
        )
    name, rest = name_match.group(), text[name_match.end():]
    found = next((op for op in _OPERATORS if rest.startswith(op[0])), None)
    if found is None:
        raise SilenceInputError(
            f"matcher {text!r}: after the label name {name!r} comes =, !=, =~ or !~ (e.g. {name}=value)"
        )
    operator, is_regex, is_equal = found
    value = rest[len(operator):]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if is_regex:
        try:
            re.compile(value)
        except re.error as exc:
            raise SilenceInputError(f"matcher {text!r}: not a valid regular expression ({exc})") from None
    return SilenceMatcher(name=name, value=value, is_regex=is_regex, is_equal=is_equal)


def matches_empty(matcher: SilenceMatcher) -> bool:
    """True when the matcher also matches an alert without that label (`foo=""`, `foo=~".*"`, `foo!=x`).

    Alertmanager refuses a silence made only of the first two kinds; a silence made only
    of negative matchers it accepts, though it mutes nearly every alert, so we refuse it too.
    """
    if matcher.is_regex:
        hit = re.fullmatch(matcher.value, "") is not None
    else:
        hit = matcher.value == ""
    return hit == matcher.is_equal


def parse_matchers(texts: Iterable[str]) -> tuple[SilenceMatcher, ...]:
    """Every `--matcher`; at least one, and at least one that needs the label to be there."""
    matchers = tuple(parse_matcher(t) for t in texts)
    if not matchers:
        raise SilenceInputError("a silence needs at least one --matcher NAME=VALUE")
    if all(matches_empty(m) for m in matchers):
        raise SilenceInputError(
            "every matcher also matches alerts without that label, so the silence would mute"
            " everything; add one like alertname=NAME"
        )
    return matchers


def parse_for(text: str) -> timedelta:
    """A silence length: `2h`, `90m`, `1h30m`, `1d`, `1w`, `45s` (positive, at most 366 days)."""
    compact = text.strip().replace(" ", "")
    parts = _DURATION_PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise SilenceInputError(f"--for {text!r}: not a duration (use e.g. 2h, 90m, 1h30m, 1d)")
    length = timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))
    if length <= timedelta(0):
        raise SilenceInputError(f"--for {text!r}: a silence must last longer than zero")
    if length > MAX_DURATION:
        raise SilenceInputError(f"--for {text!r}: longer than 366 days; expire and recreate instead")
    return length


def check_comment(text: str) -> str:
    """The silence's comment: Alertmanager requires one; say why you silence."""
    comment = text.strip()
    if not comment:
        raise SilenceInputError("--comment must say why (Alertmanager refuses a silence without one)")
    return comment
