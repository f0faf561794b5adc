"""ruff and mypy --strict keep console/ and connectors/ honest (STYLE.md); they run with the tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _tool(name: str) -> list[str]:
    exe = Path(sys.executable).parent / name
    if exe.exists():
        return [str(exe)]
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (it comes with the [test] extra)")
    return [found]


def test_ruff_finds_nothing_in_core_and_connectors() -> None:
    result = subprocess.run(
        [*_tool("ruff"), "check", "console", "connectors"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_passes_on_core_and_connectors() -> None:
    result = subprocess.run(
        [*_tool("mypy"), "--strict", "console", "connectors"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
