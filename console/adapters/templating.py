"""`$param` templates for the templated adapters (`http.request`, `shell.exec`).

A runbook action's options carry templates written by whoever wrote the runbook; the
parameters come from the operator (or a suggestion, or an automatic revert) and are
never trusted. So a value is only ever placed through an encoder that fits where it
goes: URL-quoted in a path, JSON-encoded in a body, one whole argument in an argv. Never
raw concatenation. `string.Template` syntax: `$name`, `${name}`, `$$` for a dollar sign.

Pure functions, no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from string import Template
from typing import Any

from console.action_types import ActionError

_BARE = re.compile(rf"\$(?:({Template.idpattern})|\{{({Template.idpattern})\}})", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_template(text: Any, where: str) -> str:
    """`text` if it is a usable template string; ActionError naming `where` otherwise."""
    if not isinstance(text, str):
        raise ActionError(f"{where}: expected a string template, got {type(text).__name__}")
    if not Template(text).is_valid():
        raise ActionError(f"{where}: bad placeholder in {text!r} (use $name, ${{name}}, or $$ for a dollar)")
    return text


def names_in(node: Any) -> set[str]:
    """Every parameter a template (a string, or a table / list of them) names."""
    if isinstance(node, str):
        return set(Template(node).get_identifiers())
    if isinstance(node, Mapping):
        return set().union(*(names_in(v) for v in node.values())) if node else set()
    if isinstance(node, Sequence):
        return set().union(*(names_in(v) for v in node)) if node else set()
    return set()


def bare_name(node: Any) -> str | None:
    """The parameter name when the template is exactly one placeholder (`"$version"`), else None."""
    if not isinstance(node, str):
        return None
    m = _BARE.fullmatch(node)
    return (m.group(1) or m.group(2)) if m else None


def _value(params: Mapping[str, Any], name: str, where: str) -> Any:
    if name not in params:
        known = ", ".join(sorted(params)) or "none"
        raise ActionError(f"{where}: no parameter named {name!r} (known: {known})")
    return params[name]


def json_value(value: Any) -> Any:
    """A parameter as JSON takes it: a duration in seconds, a list as a list, the rest as is."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        return int(seconds) if seconds.is_integer() else seconds
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return value


def value_text(value: Any, name: str, where: str) -> str:
    """A scalar parameter as text (`true`/`false` for booleans, seconds for a duration)."""
    if isinstance(value, (list, tuple, dict)):
        raise ActionError(f"{where}: parameter {name!r} is a list; it cannot stand inside text")
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(json_value(value))


def substitute(template: str, params: Mapping[str, Any], where: str,
               encode: Callable[[str, Any], str]) -> str:
    """`template` with each `$name` replaced by `encode(name, params[name])`."""
    names = Template(template).get_identifiers()
    values = {name: encode(name, _value(params, name, where)) for name in names}
    try:
        return Template(template).substitute(values)
    except (KeyError, ValueError) as exc:
        raise ActionError(f"{where}: cannot fill {template!r}: {exc}") from None


def text(template: str, params: Mapping[str, Any], where: str) -> str:
    """Plain text (a target, a label): values as text, nothing encoded."""
    return substitute(template, params, where, lambda name, v: value_text(v, name, where))


def url_path(template: str, params: Mapping[str, Any], where: str) -> str:
    """A path (and query) with every value percent-encoded as one segment: `/` `?` `&` `#` and
    `%` in a value cannot change the path's shape, and `.`/`..`/empty are refused (a value must
    not climb out of or drop the segment it fills)."""
    from urllib.parse import quote

    def encode(name: str, value: Any) -> str:
        plain = value_text(value, name, where)
        if plain in ("", ".", ".."):
            raise ActionError(f"{where}: parameter {name!r} is {plain!r},"
                              " which cannot fill a URL path segment")
        return quote(plain, safe="")

    return substitute(template, params, where, encode)


def json_body(template: Any, params: Mapping[str, Any], where: str) -> Any:
    """The body a template describes, as a JSON-ready value.

    A table (TOML) is walked: a string that is exactly `$name` becomes the parameter's own
    value (a number stays a number), any other string gets the values as text; keys are
    literal. A string template is JSON text whose placeholders stand where a JSON value
    goes (`{"version": $version}`); each value is inserted JSON-encoded, so a value can
    never add a key or end the document, and the result must parse.
    """
    if isinstance(template, str):
        def encode(name: str, value: Any) -> str:
            return json.dumps(json_value(value), ensure_ascii=False)

        filled = substitute(template, params, where, encode)
        try:
            return json.loads(filled)
        except json.JSONDecodeError as exc:
            raise ActionError(f"{where}: not JSON once filled ({exc.msg} at char {exc.pos}); placeholders"
                              ' stand for whole JSON values: write $name, not "$name"') from None
    return _walk(template, params, where)


def _walk(node: Any, params: Mapping[str, Any], where: str) -> Any:
    if isinstance(node, str):
        name = bare_name(node)
        if name is not None:
            return json_value(_value(params, name, where))
        return text(node, params, where)
    if isinstance(node, Mapping):
        return {str(k): _walk(v, params, f"{where}.{k}") for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_walk(v, params, f"{where}[{i}]") for i, v in enumerate(node)]
    return node


def check_body(template: Any, where: str) -> Any:
    """A body template (None, JSON text or a table of strings, numbers, booleans, lists)."""
    if template is None or isinstance(template, str):
        return None if template is None else check_template(template, where)
    if isinstance(template, Mapping):
        for key, value in template.items():
            check_body_value(value, f"{where}.{key}")
        return template
    raise ActionError(f"{where}: expected a table or JSON text, got {type(template).__name__}")


def check_body_value(node: Any, where: str) -> None:
    if isinstance(node, str):
        check_template(node, where)
    elif isinstance(node, Mapping):
        for key, value in node.items():
            check_body_value(value, f"{where}.{key}")
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            check_body_value(value, f"{where}[{i}]")
    elif not isinstance(node, (int, float, bool)) and node is not None:
        raise ActionError(f"{where}: {type(node).__name__} cannot be sent as JSON")


def check_pointer(pointer: Any, where: str) -> str:
    """A JSON pointer (RFC 6901): "" for the whole document, else `/a/0/b`."""
    if not isinstance(pointer, str) or (pointer and not pointer.startswith("/")):
        raise ActionError(f"{where}: a JSON pointer is \"\" or starts with / (like /labels/production)")
    return pointer


_MISSING = object()


def pointer_get(doc: Any, pointer: str, default: Any = _MISSING) -> Any:
    """The value at `pointer` in `doc`; `default`, or ActionError when a step is missing."""
    node = doc
    for raw in pointer.split("/")[1:] if pointer else ():
        step = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and step in node:
            node = node[step]
        elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        else:
            if default is not _MISSING:
                return default
            raise ActionError(f"nothing at {pointer} (no {step!r})")
    return node


def expected(template: Any, params: Mapping[str, Any], where: str) -> Any:
    """What a read-back should show: a bare `$name` keeps the value's type, else text."""
    return _walk(template, params, where)


def restore_from(template: Any, params: Mapping[str, Any], before: Mapping[str, Any],
                 field: str) -> dict[str, Any] | None:
    """Params that put `before[field]` back, when the expectation is exactly one parameter
    (`expect = "$version"`: run again with the version read before); None otherwise."""
    name = bare_name(template)
    if name is None or field not in before or name not in params:
        return None
    return {**params, name: before[field]}


def control_chars(value: str) -> bool:
    """Whether `value` holds a control character (NUL, newline, escape ...)."""
    return _CONTROL.search(value) is not None


MASKED = "[SECRET]"
"""What the secret detector (console.cache.redact) leaves in place of a secret."""


def secret_masker() -> Callable[[Any], Any]:
    """A function masking secrets (tokens, keys, `password: ...`) in every string of a read
    value, so it can become a plan's before-state (diff, state file, audit hash). Secrets
    only: a masked IP or digest would hide the very change a diff is for."""
    from console.cache.redact import Redactor
    from console.config import RedactionSettings

    redactor = Redactor(RedactionSettings(builtin=["secret"], rules=[]))

    def mask(value: Any) -> Any:
        if isinstance(value, str):
            return redactor.redact(value)[0]
        if isinstance(value, list):
            return [mask(v) for v in value]
        if isinstance(value, dict):
            return {k: mask(v) for k, v in value.items()}
        return value

    return mask


def masked_somewhere(value: Any) -> bool:
    """Whether a (read) value holds a masked secret: such a value cannot be put back."""
    return MASKED in json.dumps(value, default=str)
