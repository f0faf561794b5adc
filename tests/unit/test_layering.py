"""The layers import only downwards (DESIGN.md), each module checked alone in a fresh interpreter.

- every `panels.*` module loads no `duckdb`, `console.cache` or `connectors`;
- every `connectors.*` module loads no `textual`, `panels` or `console.cache`;
- every `console.*` module but `console.app` loads no `textual` or `panels`.

Modules are found by walking the packages, so a new file is covered the day it lands.
One interpreter per module: a module imported alongside others could hide what it pulls in.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN: dict[str, tuple[str, ...]] = {
    "panels": ("duckdb", "console.cache", "connectors"),
    "connectors": ("textual", "panels", "console.cache"),
    "console": ("textual", "panels"),
}
"""What each package's modules must never load (as a package or any of its submodules)."""

EXEMPT = {"console.app"}
"""The one console module that wires the panels in."""

# The child imports the module and prints {module: [forbidden modules now loaded]}.
_CHILD = """
import importlib, json, sys
modules, forbidden = json.loads(sys.argv[1]), json.loads(sys.argv[2])
found = {}
for name in modules:
    importlib.import_module(name)
    found[name] = sorted(m for m in sys.modules
                         if any(m == f or m.startswith(f + ".") for f in forbidden))
print(json.dumps(found))
"""


def modules_of(package: str) -> list[str]:
    """`package` and every module under it, found on disk."""
    path = ROOT / package
    if not path.is_dir():
        return []
    names = [package]
    for info in pkgutil.walk_packages([str(path)], prefix=f"{package}."):
        names.append(info.name)
    return sorted(n for n in names if n not in EXEMPT)


def loaded_forbidden(module: str, forbidden: tuple[str, ...]) -> list[str]:
    """The forbidden modules that importing `module` alone, in a fresh interpreter, loads."""
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps([module]), json.dumps(list(forbidden))],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )
    assert result.returncode == 0, f"importing {module} failed:\n{result.stderr}"
    found: list[str] = json.loads(result.stdout.strip().splitlines()[-1])[module]
    return found


CASES = [
    pytest.param(module, forbidden, id=module)
    for package, forbidden in FORBIDDEN.items()
    for module in modules_of(package)
]


def test_every_package_has_modules_to_check() -> None:
    assert {p for p in FORBIDDEN if modules_of(p)} >= {"panels", "console"}
    assert "panels.messages" in modules_of("panels")
    assert "console.app" not in modules_of("console")


@pytest.mark.parametrize(("module", "forbidden"), CASES)
def test_module_imports_only_its_own_layer_and_below(module: str, forbidden: tuple[str, ...]) -> None:
    loaded = loaded_forbidden(module, forbidden)
    # the top-level names only: "duckdb" rather than its 300 submodules
    roots = sorted({next(f for f in forbidden if m == f or m.startswith(f + ".")) for m in loaded})
    assert not roots, f"{module} loads {', '.join(roots)} (e.g. {loaded[0]})"
