"""Shared fixtures: an isolated XDG home for every test, and small cache helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT.parent / "shared" / "reference" / "examples"


@pytest.fixture(scope="session", autouse=True)
def _isolated_xdg_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The same for module- and session-scoped fixtures, which run before the per-test one: an
    app they build (its incident feed writes the state file) must not reach the real home."""
    base = tmp_path_factory.mktemp("xdg-session")
    with pytest.MonkeyPatch.context() as patch:
        for var, name in (("XDG_CONFIG_HOME", "config"), ("XDG_CACHE_HOME", "cache"),
                          ("XDG_STATE_HOME", "state"), ("HOME", "home")):
            patch.setenv(var, str(base / name))
        yield


@pytest.fixture(autouse=True)
def _isolated_xdg(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the real home: XDG dirs point at fresh temp dirs."""
    base = tmp_path_factory.mktemp("xdg")
    for var, name in (("XDG_CONFIG_HOME", "config"), ("XDG_CACHE_HOME", "cache"),
                      ("XDG_STATE_HOME", "state"), ("HOME", "home")):
        monkeypatch.setenv(var, str(base / name))
    for var in list(os.environ):
        if var.upper().startswith("LLMDECK_"):
            monkeypatch.delenv(var)
        # a proxy in the environment must not carry loopback test traffic anywhere else
        if var.lower() in ("http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def examples() -> Path:
    if not EXAMPLES.is_dir():
        pytest.skip(f"example payloads not found at {EXAMPLES}")
    return EXAMPLES


@pytest.fixture
def cache_file(tmp_path: Path) -> Path:
    return tmp_path / "cache.duckdb"


@pytest.fixture(scope="session")
def make_config() -> Callable[..., Any]:
    """make_config(**sections) -> Config without automatic rollup retention.

    Test data has fixed dates; the default 400-day rollup retention would otherwise prune
    it at ingest once the wall clock moves on.
    """
    from console.config import CacheSettings, Config

    def make(**sections: Any) -> Config:
        sections.setdefault("cache", CacheSettings(rollup_retention_days=None))
        return Config(**sections)

    return make


@pytest.fixture
def ingest(cache_file: Path, make_config: Callable[..., Any]) -> Callable[..., Any]:
    """ingest(paths, fmt="auto", config=None, cache=cache_file) -> IngestReport (in-process)."""
    from console.cache.ingest import Ingestor
    from console.cache.store import Cache

    def run(paths: Iterable[Path | str], fmt: str = "auto", config: Any = None,
            cache: Path | None = None) -> Any:
        with Cache.open(cache or cache_file) as c:
            return Ingestor(c, config or make_config()).run([Path(p) for p in paths], fmt)

    return run


@pytest.fixture
def sql(cache_file: Path) -> Callable[..., list[tuple[Any, ...]]]:
    """sql(query, params=None, cache=cache_file) -> rows, read through a read-only open."""
    from console.cache.store import Cache

    def q(query: str, params: list[Any] | None = None, cache: Path | None = None
          ) -> list[tuple[Any, ...]]:
        with Cache.open(cache or cache_file, read_only=True) as c:
            return c.cursor().execute(query, params or []).fetchall()

    return q


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """run_cli(*args) runs `python -m console.cli ARGS` in a fresh process."""

    def run(*args: str | Path, timeout: float = 120, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "console.cli", *map(str, args)],
            cwd=ROOT, capture_output=True, text=True, timeout=timeout,
            env={**os.environ, **(env or {})}, check=False,
        )

    return run
