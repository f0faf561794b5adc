"""Runbook parameters: their types, durations, and the checks that turn a given value into a
typed one (with the param's name in every error). Split from console/runbook_files.py (file
loading) so each stays small; runbook_files re-exports these names."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from console.action_types import ActionError

ParamType = Literal["str", "int", "float", "bool", "duration", "enum", "list", "json"]
PARAM_TYPES: tuple[str, ...] = ("str", "int", "float", "bool", "duration", "enum", "list", "json")
MASK = "***"
"""What a secret parameter's value is replaced with in plans, the store and the audit."""
TIME_BOX_PARAM = "for"
"""A duration parameter with this name sets the time box (overriding the action's `for`)."""

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
MAX_TEXT = 1000


def parse_duration(text: str) -> timedelta:
    """`15m`, `1h30m`, `90s`, `2d` -> timedelta; ValueError saying what a duration looks like."""
    compact = text.strip().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 1h30m, 2d)")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"a duration must be positive: {text!r}")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """`timedelta(minutes=90)` -> `1h30m` (the inverse of `parse_duration` for whole seconds)."""
    seconds = int(value.total_seconds())
    out = ""
    for unit in ("d", "h", "m", "s"):
        n, seconds = divmod(seconds, _UNIT_SECONDS[unit])
        if n:
            out += f"{n}{unit}"
    return out or "0s"


@dataclass(frozen=True)
class ParamSpec:
    """One typed parameter of an action."""

    name: str
    type: ParamType
    required: bool = False
    default_json: str = "null"
    """The default as JSON (null: none); already converted and checked at load."""
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    help: str = ""
    secret: bool = False
    """Masked in plans, the store and the audit journal; never a target."""
    fixed: bool = False
    """Always the default: the action itself sets it (block-key's `blocked = true`)."""

    @property
    def default(self) -> Any:
        return json.loads(self.default_json)

    def convert(self, value: Any) -> Any:
        """`value` (text from the CLI, or a typed value) as this type; ActionError naming the param."""
        try:
            return self._convert(value)
        except (ValueError, TypeError) as exc:
            raise ActionError(f"param {self.name!r}: {exc}") from None

    def _convert(self, value: Any) -> Any:
        kind = self.type
        if kind == "json":
            parsed = json.loads(value) if isinstance(value, str) else value
            json.dumps(parsed)  # TypeError for anything JSON cannot hold
            return parsed
        if kind == "list":
            items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
            if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
                raise TypeError("expected a list of text (a,b,c)")
            return [self._text(i) for i in items if i]
        if kind == "bool":
            if isinstance(value, bool):
                return value
            word = str(value).strip().lower()
            if word in _TRUE | _FALSE:
                return word in _TRUE
            raise ValueError(f"expected true or false, got {_shown(value)}")
        if kind in ("int", "float"):
            return self._number(value)
        if kind == "duration":
            if isinstance(value, int | float) and not isinstance(value, bool):
                seconds = float(value)
            else:
                seconds = parse_duration(str(value)).total_seconds()
            return int(seconds) if seconds == int(seconds) else seconds
        text = self._text(value)
        if kind == "enum" and text not in self.choices:
            raise ValueError(f"expected one of {', '.join(self.choices)}, got {_shown(text)}")
        return text

    def _number(self, value: Any) -> int | float:
        if isinstance(value, bool):
            raise TypeError(f"expected a number, got {value}")
        try:
            number: int | float = int(value) if self.type == "int" else float(value)
        except (ValueError, TypeError):
            raise ValueError(f"expected {'an integer' if self.type == 'int' else 'a number'},"
                             f" got {_shown(value)}") from None
        if self.type == "int" and isinstance(value, float) and value != int(value):
            raise ValueError(f"expected an integer, got {value}")
        if isinstance(number, float) and not math.isfinite(number):
            raise ValueError(f"expected a finite number, got {value}")
        if self.min is not None and number < self.min:
            raise ValueError(f"{number} is below the minimum {_num(self.min)}")
        if self.max is not None and number > self.max:
            raise ValueError(f"{number} is above the maximum {_num(self.max)}")
        return number

    def _text(self, value: Any) -> str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise TypeError(f"expected text, got {type(value).__name__}")
        text = str(value)
        if _CONTROL.search(text):
            raise ValueError("control or bidi characters are not allowed")
        if len(text) > MAX_TEXT:
            raise ValueError(f"longer than {MAX_TEXT} characters")
        return text


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)
