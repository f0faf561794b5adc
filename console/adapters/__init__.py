"""Runbook action adapters, by kind (`litellm.key_limits`, `http.request`, `shell.exec`, ...).

An adapter module registers a factory for each kind it implements with `register`; the
choke point (`console.runbooks.ActionDesk`) builds adapters through `build` and is the only
caller of their `send`. `load_builtin_adapters` imports the modules that register.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from console.action_types import ActionError, Adapter

if TYPE_CHECKING:
    import httpx

    from console.config import Config

BUILTIN_MODULES = (
    "console.adapters.litellm",
    "console.adapters.http_action",
    "console.adapters.shell_action",
    "console.adapters.alertmanager",
)


@dataclass(frozen=True)
class AdapterContext:
    """What a factory may use: the config, which configured system the action names, how to
    read a secret reference (raises `console.secrets.SecretError`), and (tests) a transport."""

    config: Config
    gateway: str
    """The `name` of the `[[actions.litellm]]` / `[[actions.http]]` entry ("" for shell)."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """The runbook action's `[action.options]` table (templates, paths, argv), validated by the factory."""
    secret: Callable[[str], str] | None = None
    transport: httpx.AsyncBaseTransport | None = None
    secret_params: frozenset[str] = frozenset()
    """The action's params declared `secret = true`: an adapter masks their values in
    `PlannedRequest.text` and refuses them where they would show (a URL path, an argv)."""


AdapterFactory = Callable[[AdapterContext], Adapter]
_REGISTRY: dict[str, AdapterFactory] = {}


def register(kind: str, factory: AdapterFactory) -> None:
    """Make `kind` buildable (an adapter module calls this at import)."""
    _REGISTRY[kind] = factory


def load_builtin_adapters() -> None:
    """Import every built-in adapter module (each registers its kinds); missing ones are skipped
    only while they are being written (issue 12) — the list is checked by a test."""
    for name in BUILTIN_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


def kinds() -> tuple[str, ...]:
    load_builtin_adapters()
    return tuple(sorted(_REGISTRY))


def build(kind: str, context: AdapterContext) -> Adapter:
    """The adapter for `kind`; ActionError naming the known kinds if there is none."""
    load_builtin_adapters()
    factory = _REGISTRY.get(kind)
    if factory is None:
        raise ActionError(f"unknown adapter {kind!r} (known: {', '.join(sorted(_REGISTRY)) or 'none'})")
    return factory(context)
