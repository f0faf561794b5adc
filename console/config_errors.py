"""What is wrong with a config, said for a human: problems, error messages, and env overrides.

`ConfigProblem` and `ConfigError` carry located problems; pydantic validation errors
become short messages that never echo a secret-shaped value; and
`LLMDECK_<SECTION>__<KEY>` environment variables are merged into the parsed TOML,
remembering which key came from which variable. The root model is passed in
(`console.config.Config`), so this module does not import the models.
"""

from __future__ import annotations

import difflib
import inspect
import json
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

ENV_PREFIX = "LLMDECK_"
CONFIG_FILE_ENV = "LLMDECK_CONFIG"

Loc = tuple[str | int, ...]


# ---------------------------------------------------------------------------
# Secret-shaped values (rejected by the models, never shown in a message)
# ---------------------------------------------------------------------------

_SECRET_SHAPES = re.compile(
    r"(?<![A-Za-z0-9])(?:sk-|sk_|xox[abprs]-|ghp_|github_pat_|AIza)[A-Za-z0-9_\-]{8,}"
    r"|(?<![A-Za-z0-9])AKIA[0-9A-Z]{16}"
    r"|(?=[A-Za-z_\-]*[0-9])(?=[0-9_\-]*[A-Za-z])[A-Za-z0-9_\-]{32,}"
)
SECRET_MESSAGE = (
    "looks like a literal secret; store it in the keyring and reference it "
    "(keyring:SERVICE/NAME) or use env:VAR"
)


def looks_like_secret(value: str) -> bool:
    """True when `value` has the shape of an API key or token (never echo such a value)."""
    return _SECRET_SHAPES.search(value) is not None


# ---------------------------------------------------------------------------
# Problems
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the config, located for a human to fix."""

    where: str
    """`<file>:<line>`, `<file>`, or `env <VARIABLE>`."""
    key: str
    """Dotted key path with list indices (`sources.prometheus[0].url`); empty for the file."""
    message: str

    def __str__(self) -> str:
        if not self.key:
            return f"{self.where}: {self.message}"
        return f"{self.where}: {self.key}: {self.message}"


class ConfigError(Exception):
    """The config cannot be used; `problems` lists everything wrong, one per line in str()."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def dotted_key(loc: Loc) -> str:
    """`("sources", "prometheus", 0, "url")` -> `sources.prometheus[0].url`."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            bare = re.fullmatch(r"[A-Za-z0-9_-]+", part)
            text += ("." if text else "") + (part if bare else json.dumps(part))
    return text


# ---------------------------------------------------------------------------
# Environment overrides
# ---------------------------------------------------------------------------


def apply_env(
    data: dict[str, Any], env: Mapping[str, str], root: type[BaseModel]
) -> tuple[dict[Loc, str], list[ConfigProblem]]:
    """Merge `LLMDECK_<SECTION>__<KEY>` variables into `data`; returns which key came from where.

    `root` is the model whose fields are the sections (`Config`).
    """
    sections = root.model_fields
    overrides: list[tuple[list[str], str, str]] = []
    problems: list[ConfigProblem] = []
    for name, value in env.items():
        if not name.upper().startswith(ENV_PREFIX) or name.upper() == CONFIG_FILE_ENV:
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        parts = rest.split("__")
        if len(parts) == 1:
            # Other LLMDECK_ variables belong to other features; flag only a clear slip
            # such as LLMDECK_CACHE_RETENTION_DAYS.
            section, _, field = rest.partition("_")
            model = _model_in(sections[section].annotation) if section in sections else None
            if model is not None and field in model.model_fields:
                fix = f"{ENV_PREFIX}{section}__{field}".upper()
                problems.append(
                    ConfigProblem(f"env {name}", "", f"separate section and key with '__': {fix}")
                )
            continue
        if "" in parts:
            problems.append(ConfigProblem(f"env {name}", "", "empty key between '__'"))
            continue
        overrides.append((parts, name, value))
    origins: dict[Loc, str] = {}
    for parts, name, value in sorted(overrides, key=lambda o: (len(o[0]), o[1])):
        key = dotted_key(tuple(int(p) if p.isdigit() else p for p in parts))
        parsed: Any = value
        if value.strip()[:1] in ("[", "{"):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError as exc:
                problems.append(ConfigProblem(f"env {name}", key, f"not valid JSON: {exc.msg}"))
                continue
        loc = _set_path(data, parts, parsed)
        if isinstance(loc, str):
            problems.append(ConfigProblem(f"env {name}", key, loc))
        else:
            origins[loc] = name
    return origins, problems


def _set_path(data: dict[str, Any], parts: list[str], value: Any) -> Loc | str:
    """Set `value` at `parts` (list indices by number); the loc set, or why it could not be."""
    node: dict[Any, Any] | list[Any] = data
    loc: list[str | int] = []
    for i, part in enumerate(parts):
        key: Any = part
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                return f"no element [{part}] in the list (give the whole list as JSON)"
            key = int(part)
        loc.append(key)
        if i == len(parts) - 1:
            node[key] = value
            break
        child = node[key] if isinstance(node, list) else node.get(key)
        if not isinstance(child, dict | list):
            child = {}
            node[key] = child
        node = child
    return tuple(loc)


# ---------------------------------------------------------------------------
# Pydantic errors -> human messages
# ---------------------------------------------------------------------------

_EXPECTED = {
    "float_parsing": "a number",
    "float_type": "a number",
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "date_parsing": "a date (YYYY-MM-DD)",
    "date_type": "a date (YYYY-MM-DD)",
    "date_from_datetime_parsing": "a date (YYYY-MM-DD)",
    "date_from_datetime_inexact": "a date without a time",
    "path_type": "a path",
}
_BOUNDS = {
    "greater_than": ("gt", "must be greater than"),
    "greater_than_equal": ("ge", "must be at least"),
    "less_than": ("lt", "must be less than"),
    "less_than_equal": ("le", "must be at most"),
}


def error_message(error: ErrorDetails, where: str, root: type[BaseModel]) -> str:
    """A short message for one pydantic error at `where` (`env ...` or a file) against `root`."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_key(tuple(error["loc"]), root)
    if kind == "missing":
        return "missing required key"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind == "string_too_short":
        return "must not be empty"
    if kind in _BOUNDS:
        name, text = _BOUNDS[kind]
        bound = ctx[name]
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        return f"{text} {bound}"
    if kind in _EXPECTED:
        message = f"expected {_EXPECTED[kind]}, got {_shown(error.get('input'))}"
        if where.startswith("env ") and kind in ("list_type", "dict_type", "model_type"):
            message += ' (give it as JSON, e.g. ["a", "b"] or {"key": "value"})'
        return message
    return str(error["msg"])


def _shown(value: object) -> str:
    """A short rendering of a rejected value; secret-shaped text is never shown."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        if looks_like_secret(value):
            return "a value that looks like a secret"
        return json.dumps(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, date):
        return "a date"
    return type(value).__name__


def _unknown_key(loc: Loc, root: type[BaseModel]) -> str:
    model = _model_at(loc[:-1], root)
    key = loc[-1]
    if model is None or not isinstance(key, str):
        return "unknown key"
    known = list(model.model_fields)
    close = difflib.get_close_matches(key.lower(), known, n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean '{close[0]}'?)"
    return f"unknown key (known keys: {', '.join(known)})"


def _model_at(loc: Loc, root: type[BaseModel]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _model_in(model.model_fields[part].annotation)
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
