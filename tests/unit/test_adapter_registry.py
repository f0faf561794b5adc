"""Every built-in adapter module imports and registers its kinds (a typo in
`console.adapters.BUILTIN_MODULES` would otherwise be skipped silently while modules are written)."""

from __future__ import annotations

import importlib

from console import adapters


def test_every_builtin_module_imports_and_registers_a_kind() -> None:
    for name in adapters.BUILTIN_MODULES:
        module = importlib.import_module(name)
        assert any(factory.__module__ == module.__name__ for factory in adapters._REGISTRY.values()), name


def test_the_templated_and_silence_kinds_are_known() -> None:
    assert {"http.request", "shell.exec", "alertmanager.silence"} <= set(adapters.kinds())
