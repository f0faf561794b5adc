"""Runbook files: TOML that declares actions with typed, validated parameters.

Built-ins ship in `console/data/runbooks/*.toml`; the user's directory (`[actions]
runbook_dir`, default `$XDG_CONFIG_HOME/llmdeck/runbooks`) adds actions and overrides a
built-in by action name. Everything wrong is reported at once as `<file>:<line>: <key>:
<message>`, like the config, so a typo in a runbook is found before the incident, not
during it. Parameter values from the CLI (`--param k=v`, all text) and from the console
(typed values) go through the same `ActionSpec.validate`.

The format (only the names and `adapter` are required):

    [runbook]
    name = "litellm-limits"            # lowercase letters, digits, - and _
    title = "..."; description = "..."; tags = ["litellm"]

    [[action]]
    name = "throttle-team"             # what `llmdeck runbook apply NAME` and the console name
    title = "..."; description = "..."
    adapter = "litellm.team_limits"    # a registered kind (console/adapters)
    gateway = "prod-gw"                # [[actions.litellm]]/[[actions.http]] name; default: the only one
    role = "responder"                 # viewer | responder | admin (default responder)
    dangerous = false                  # true: confirm by typing the target, never "yes"
    for = "30m"                        # time box: reverted automatically when it ends
    revert = "restore"                 # restore (undo from the captured state) | none
    target = "team_id"                 # the param typed to confirm (default: the adapter's target)
    [action.params.team_id]
    type = "str"                       # str int float bool duration enum list json
    required = true; default = ...; choices = [...]; min = 0; max = 10
    help = "..."; secret = false       # secret: masked in plans, the store and the audit journal
    fixed = false                      # true: always the default (block-key's blocked = true)
    [action.options]                   # handed to the adapter (templates, argv, ...)

A duration param named `for` overrides the action's time box.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, cast

from console.action_types import ROLE_ORDER, ActionError, Role, jsonable
from console.config_toml import TomlLines
from console.runbook_params import (
    _NAME as _NAME,
)
from console.runbook_params import (
    MASK as MASK,
)
from console.runbook_params import (
    MAX_TEXT as MAX_TEXT,
)
from console.runbook_params import (
    PARAM_TYPES as PARAM_TYPES,
)
from console.runbook_params import (
    TIME_BOX_PARAM as TIME_BOX_PARAM,
)
from console.runbook_params import (
    ParamSpec as ParamSpec,
)
from console.runbook_params import (
    ParamType as ParamType,
)
from console.runbook_params import (
    format_duration as format_duration,
)
from console.runbook_params import (
    parse_duration as parse_duration,
)

_RUNBOOK_KEYS = {"name", "title", "description", "tags"}
_ACTION_KEYS = {"name", "title", "description", "adapter", "gateway", "dangerous", "role", "for",
                "revert", "target", "params", "options"}
_PARAM_KEYS = {"type", "required", "default", "choices", "min", "max", "help", "secret", "fixed"}


class RunbookError(ActionError):
    """Runbook files that cannot be used; `problems` lists each as `<file>:<line>: <key>: <message>`."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class ActionSpec:
    """One runbook action, as declared (what `ActionDesk.actions()` lists)."""

    name: str
    title: str
    description: str
    adapter: str
    gateway: str
    dangerous: bool
    role: Role
    time_box: timedelta | None
    revert: Literal["restore", "none"]
    target: str
    """The parameter whose value is typed to confirm ("" : the adapter names the target)."""
    params: tuple[ParamSpec, ...]
    options_json: str
    runbook: str
    where: str
    """`<file>:<line>` of the `[[action]]` header."""
    builtin: bool

    @property
    def options(self) -> dict[str, Any]:
        return dict(json.loads(self.options_json))

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)

    def validate(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Every parameter converted and checked, defaults filled; ActionError naming all problems."""
        problems: list[str] = []
        values: dict[str, Any] = {}
        known = {p.name for p in self.params}
        for name in raw:
            if name not in known:
                names = ", ".join(sorted(known)) or "none"
                problems.append(f"{self.name}: unknown param {name!r} (known: {names})")
        for spec in self.params:
            given = raw.get(spec.name)
            if spec.fixed and given is not None and spec.convert(given) != spec.default:
                problems.append(f"{self.name}: param {spec.name!r} is fixed by this action"
                                f" ({json.dumps(spec.default)})")
                continue
            if given is None or spec.fixed:
                if spec.default is not None:
                    values[spec.name] = spec.default
                elif spec.required:
                    problems.append(f"{self.name}: param {spec.name!r} is required ({spec.type})"
                                    + (f": {spec.help}" if spec.help else ""))
                continue
            try:
                values[spec.name] = spec.convert(given)
            except ActionError as exc:
                problems.append(f"{self.name}: {exc}")
        if problems:
            raise ActionError("; ".join(problems))
        return values

    def masked(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """`values` with every secret parameter's value replaced by MASK, and any value shaped like
        a key or token too (a runbook that forgot `secret = true` on a raw `sk-` key)."""
        from console.audit import redact_params

        redacted = redact_params(values, {p.name for p in self.params if p.secret})
        return {k: None if values[k] is None else redacted[k] for k in values}

    def time_box_for(self, values: Mapping[str, Any]) -> timedelta | None:
        """The `for` parameter when given, else the declared `for`."""
        if self.param(TIME_BOX_PARAM) is not None and values.get(TIME_BOX_PARAM) is not None:
            return timedelta(seconds=float(values[TIME_BOX_PARAM]))
        return self.time_box


@dataclass(frozen=True)
class Runbook:
    name: str
    title: str
    description: str
    tags: tuple[str, ...]
    actions: tuple[ActionSpec, ...]
    where: str


def builtin_dir() -> Path:
    """The runbooks shipped with llmdeck (package data)."""
    return Path(__file__).resolve().parent / "data" / "runbooks"


def user_runbook_dir(setting: str) -> Path:
    """`[actions] runbook_dir`, else `$XDG_CONFIG_HOME/llmdeck/runbooks`."""
    from console.paths import config_dir

    return Path(setting).expanduser() if setting else config_dir() / "runbooks"


def load_catalog(user_dir: Path | None) -> dict[str, ActionSpec]:
    """Every action by name: built-ins, then the user's files overriding by action name.

    RunbookError lists every problem in every file (a duplicate action name within the
    built-ins or within the user directory is one, naming both places)."""
    problems: list[str] = []
    builtin = _load_dir(builtin_dir(), True, problems)
    user = _load_dir(user_dir, False, problems) if user_dir is not None else []
    if problems:
        raise RunbookError(problems)
    catalog = {a.name: a for book in builtin for a in book.actions}
    catalog.update({a.name: a for book in user for a in book.actions})
    return dict(sorted(catalog.items()))


def _load_dir(directory: Path, builtin: bool, problems: list[str]) -> list[Runbook]:
    try:
        files = sorted(p for p in directory.glob("*.toml") if p.is_file())
    except OSError as exc:
        problems.append(f"{directory}: cannot list runbooks: {exc.strerror}")
        return []
    books: list[Runbook] = []
    seen: dict[str, str] = {}
    for file in files:
        book = load_file(file, builtin, problems)
        if book is None:
            continue
        for action in book.actions:
            if action.name in seen:
                problems.append(f"{action.where}: action.name: action {action.name!r} is also defined"
                                f" at {seen[action.name]}; names must be unique")
            seen[action.name] = action.where
        books.append(book)
    return books


def load_file(file: Path, builtin: bool, problems: list[str]) -> Runbook | None:
    """One runbook file; its problems are appended to `problems` (None when it has any)."""
    try:
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(f"{file}: not UTF-8 text ({exc.reason})")
        return None
    except OSError as exc:
        problems.append(f"{file}: cannot read: {exc.strerror}")
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        at = re.search(r"\(at line (\d+), column (\d+)\)$", str(exc))
        line = at[1] if at else "1"
        problems.append(f"{file}:{line}: invalid TOML: {re.sub(r' [(]at .*[)]$', '', str(exc))}")
        return None
    return _Reader(file, TomlLines(text), builtin, problems).runbook(data)


class _Reader:
    """Checks one parsed file, recording each problem with the line of the key it is about."""

    def __init__(self, file: Path, lines: TomlLines, builtin: bool, problems: list[str]) -> None:
        self.file, self.lines, self.builtin, self.problems = file, lines, builtin, problems
        self.count = len(problems)

    def at(self, loc: tuple[str | int, ...]) -> str:
        return f"{self.file}:{self.lines.line_of(loc) or 1}"

    def bad(self, loc: tuple[str | int, ...], message: str) -> None:
        key = ".".join(f"[{p}]" if isinstance(p, int) else p for p in loc).replace(".[", "[")
        self.problems.append(f"{self.at(loc)}: {key}: {message}")

    def unknown(self, table: Mapping[str, Any], allowed: set[str], loc: tuple[str | int, ...]) -> None:
        for key in table:
            if key not in allowed:
                self.bad((*loc, key), f"unknown key (known: {', '.join(sorted(allowed))})")

    def text(self, table: Mapping[str, Any], key: str, loc: tuple[str | int, ...], *,
             required: bool = False, default: str = "") -> str:
        value = table.get(key)
        if value is None:
            if required:
                self.bad((*loc, key), "required")
            return default
        if not isinstance(value, str):
            self.bad((*loc, key), f"expected text, got {type(value).__name__}")
            return default
        return value

    def flag(self, table: Mapping[str, Any], key: str, loc: tuple[str | int, ...]) -> bool:
        value = table.get(key, False)
        if not isinstance(value, bool):
            self.bad((*loc, key), "expected true or false")
            return False
        return value

    def runbook(self, data: Mapping[str, Any]) -> Runbook | None:
        self.unknown(data, {"runbook", "action"}, ())
        head = data.get("runbook")
        if not isinstance(head, dict):
            self.bad(("runbook",), "a runbook file starts with a [runbook] table (name, title)")
            head = {}
        self.unknown(head, _RUNBOOK_KEYS, ("runbook",))
        name = self.text(head, "name", ("runbook",), required=True)
        if name and not _NAME.fullmatch(name):
            self.bad(("runbook", "name"), "lowercase letters, digits, - and _ only")
        tags = head.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            self.bad(("runbook", "tags"), "expected a list of text")
            tags = []
        raw_actions = data.get("action", [])
        if not isinstance(raw_actions, list) or not raw_actions:
            self.bad(("action",), "a runbook declares at least one [[action]]")
            raw_actions = []
        actions = [a for i, t in enumerate(raw_actions) if (a := self.action(t, i, name)) is not None]
        if len(self.problems) > self.count:
            return None
        return Runbook(name, self.text(head, "title", ("runbook",), default=name),
                       self.text(head, "description", ("runbook",)), tuple(tags), tuple(actions),
                       self.at(("runbook",)))

    def action(self, table: Any, i: int, runbook: str) -> ActionSpec | None:
        loc: tuple[str | int, ...] = ("action", i)
        if not isinstance(table, dict):
            self.bad(loc, "expected a table")
            return None
        self.unknown(table, _ACTION_KEYS, loc)
        name = self.text(table, "name", loc, required=True)
        if name and not _NAME.fullmatch(name):
            self.bad((*loc, "name"), "lowercase letters, digits, - and _ only")
        adapter = self.text(table, "adapter", loc, required=True)
        if adapter and not re.fullmatch(r"[a-z0-9_]+\.[a-z0-9_]+", adapter):
            self.bad((*loc, "adapter"), "expected <family>.<kind>, for example litellm.key_limits")
        role = self.text(table, "role", loc, default="responder")
        if role not in ROLE_ORDER:
            self.bad((*loc, "role"), f"expected one of {', '.join(ROLE_ORDER)}, got {role!r}")
        revert = self.text(table, "revert", loc, default="restore")
        if revert not in ("restore", "none"):
            self.bad((*loc, "revert"), f"expected restore or none, got {revert!r}")
        time_box = None
        if "for" in table:
            try:
                time_box = parse_duration(self.text(table, "for", loc))
            except ValueError as exc:
                self.bad((*loc, "for"), str(exc))
            if revert == "none":
                self.bad((*loc, "for"), 'a time box needs revert = "restore" (it ends by reverting)')
        params = self.params(table.get("params", {}), loc)
        target = self.text(table, "target", loc)
        named = {p.name: p for p in params}
        if target and target not in named:
            self.bad((*loc, "target"), f"no param {target!r} (params: {', '.join(named) or 'none'})")
        elif target and named[target].secret:
            self.bad((*loc, "target"), f"param {target!r} is secret: it cannot be typed to confirm")
        options = table.get("options", {})
        if not isinstance(options, dict):
            self.bad((*loc, "options"), "expected a table")
            options = {}
        return ActionSpec(
            name=name, title=self.text(table, "title", loc, default=name),
            description=self.text(table, "description", loc), adapter=adapter,
            gateway=self.text(table, "gateway", loc), dangerous=self.flag(table, "dangerous", loc),
            role=cast(Role, role if role in ROLE_ORDER else "admin"), time_box=time_box,
            revert="none" if revert == "none" else "restore", target=target, params=tuple(params),
            options_json=jsonable(options), runbook=runbook, where=self.at(loc), builtin=self.builtin)

    def params(self, table: Any, loc: tuple[str | int, ...]) -> list[ParamSpec]:
        ploc = (*loc, "params")
        if not isinstance(table, dict):
            self.bad(ploc, "expected a table of [action.params.<name>] tables")
            return []
        specs = []
        for name, body in table.items():
            here = (*ploc, name)
            if not _NAME.fullmatch(name):
                self.bad(here, "param names are lowercase letters, digits, - and _")
            if not isinstance(body, dict):
                self.bad(here, "expected a table (type, required, default, ...)")
                continue
            spec = self.param(name, body, here)
            if spec is not None:
                specs.append(spec)
        return specs

    def param(self, name: str, body: Mapping[str, Any], loc: tuple[str | int, ...]) -> ParamSpec | None:
        self.unknown(body, _PARAM_KEYS, loc)
        kind = self.text(body, "type", loc, default="str")
        if kind not in PARAM_TYPES:
            self.bad((*loc, "type"), f"expected one of {', '.join(PARAM_TYPES)}, got {kind!r}")
            return None
        choices = body.get("choices", [])
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            self.bad((*loc, "choices"), "expected a list of text")
            choices = []
        if kind == "enum" and not choices:
            self.bad((*loc, "choices"), "an enum param needs choices")
        bounds: dict[str, float | None] = {}
        for key in ("min", "max"):
            value = body.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                self.bad((*loc, key), "expected a number")
                value = None
            bounds[key] = None if value is None else float(value)
        spec = ParamSpec(name=name, type=cast(ParamType, kind), required=self.flag(body, "required", loc),
                         choices=tuple(choices), min=bounds["min"], max=bounds["max"],
                         help=self.text(body, "help", loc), secret=self.flag(body, "secret", loc),
                         fixed=self.flag(body, "fixed", loc))
        if name == TIME_BOX_PARAM and kind != "duration":
            self.bad((*loc, "type"), f"the {TIME_BOX_PARAM!r} param is the time box: type = \"duration\"")
        if "default" in body:
            try:
                default = spec.convert(body["default"])
            except ActionError as exc:
                self.bad((*loc, "default"), str(exc))
                return None
            spec = ParamSpec(**{**spec.__dict__, "default_json": json.dumps(default)})
        elif spec.fixed:
            self.bad((*loc, "fixed"), "a fixed param needs a default (the value the action sets)")
        return spec
