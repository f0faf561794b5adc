"""Read-only, missing and wrong places: one clear line each, never a traceback, nothing lost.

The places are real: a read-only tmpfs mount, directories and files without
permission bits (as root the commands run with CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH dropped via `setpriv`, so the kernel applies the bits to
them as to any user), a directory where a file should be, `XDG_*` variables
naming paths that do not exist. Every command is a real `llmdeck` process.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.reliability.faultkit import cli, needs, remount, sha, tmpfs, write_traffic

SPANS = 3_000
IS_ROOT = os.geteuid() == 0
SETPRIV = shutil.which("setpriv")
NO_DAC = [SETPRIV or "setpriv", "--bounding-set", "-dac_override,-dac_read_search"] if IS_ROOT else []
"""A command prefix under which permission bits apply even to root."""


def one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The single line on stderr (asserting no traceback and the exit code)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.returncode == code, (result.returncode, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a cache holding SPANS spans from a real ingest, the trace file)."""
    base = tmp_path_factory.mktemp("places")
    traces = write_traffic(base / "traffic.jsonl", SPANS, seed=5, spans_per_request=100,
                           hours=1).path
    cache = base / "stored.duckdb"
    result = cli("--cache", cache, "ingest", traces)
    assert result.returncode == 0, result.stderr
    return cache, traces


def _spans(cache: Path, prefix: list[str] | None = None) -> int:
    result = cli("--cache", cache, "cache", "info", "--json", prefix=prefix or [])
    assert result.returncode == 0, result.stderr
    return int(json.loads(result.stdout)["spans"])


@contextmanager
def read_only_mount(where: Path, fill: dict[str, Path]) -> Iterator[Path]:
    """A tmpfs at `where` holding copies of `fill` (name -> source), then remounted read-only."""
    with tmpfs(where, "16m"):
        for name, source in fill.items():
            (where / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, where / name)
        remount(where, "ro")
        with pytest.raises(OSError) as refused:
            (where / "probe").write_text("x")
        assert refused.value.errno == errno.EROFS
        yield where


@pytest.fixture
def no_dac() -> None:
    needs(not IS_ROOT or SETPRIV is not None, "as root, permission bits need setpriv")


# ---------------------------------------------------------------------------
# The cache's place
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_cache_on_a_read_only_mount_is_read_and_never_written(stored, tmp_path):
    healthy, traces = stored
    with read_only_mount(tmp_path / "ro", {"c.duckdb": healthy}) as ro:
        cache = ro / "c.duckdb"
        before = sha(cache)
        for args in (["ingest", traces], ["cache", "prune", "--older-than", "1d"]):
            line = one_line(cli("--cache", cache, *args), 3)
            assert line.startswith(f"llmdeck: cannot write {cache} (")
            assert "Read-only file system" in line and "writable" in line
        line = one_line(cli("--cache", cache, "cache", "reset"), 3)
        assert line == (f"llmdeck: cannot move {cache} aside: Read-only file system;"
                        " nothing was moved")
        # reading still works: status and cache info need no write
        status = cli("--cache", cache, "status")
        assert status.returncode in (0, 1, 2) and status.stderr == "", status.stderr
        assert _spans(cache) == SPANS
        assert sha(cache) == before and sorted(p.name for p in ro.iterdir()) == ["c.duckdb"]


@pytest.mark.slow
def test_a_new_cache_on_a_read_only_mount(stored, tmp_path):
    _, traces = stored
    with read_only_mount(tmp_path / "ro", {}) as ro:
        line = one_line(cli("--cache", ro / "sub" / "c.duckdb", "ingest", traces), 3)
        assert line == (f"llmdeck: cannot create the cache directory {ro / 'sub'}: Read-only"
                        " file system; make it creatable or point --cache at a writable place")
        line = one_line(cli("--cache", ro / "c.duckdb", "ingest", traces), 3)
        assert line.startswith(f"llmdeck: cannot write {ro / 'c.duckdb'} (")
        assert "Read-only file system" in line
        for args in (["status"], ["cache", "info"], ["cache", "prune", "--older-than", "1d"]):
            line = one_line(cli("--cache", ro / "c.duckdb", *args), 3)
            assert line == f"llmdeck: no cache at {ro / 'c.duckdb'}; run `llmdeck ingest` first"
        reset = cli("--cache", ro / "c.duckdb", "cache", "reset")
        assert reset.returncode == 0 and "nothing to move" in reset.stdout
        assert list(ro.iterdir()) == []


@pytest.mark.slow
def test_a_cache_directory_without_write_permission(stored, tmp_path, no_dac):
    healthy, traces = stored
    place = tmp_path / "locked"
    place.mkdir()
    cache = place / "c.duckdb"
    shutil.copyfile(healthy, cache)
    before = sha(cache)
    place.chmod(0o555)  # DuckDB cannot create the WAL next to the file
    try:
        for args in (["ingest", traces], ["cache", "prune", "--older-than", "1s"]):
            line = one_line(cli("--cache", cache, *args, prefix=NO_DAC), 3)
            assert line.startswith(f"llmdeck: cannot write {cache} (")
            assert "Permission denied" in line
        assert _spans(cache, prefix=NO_DAC) == SPANS  # still readable, nothing lost
        line = one_line(cli("--cache", cache, "cache", "reset", prefix=NO_DAC), 3)
        assert line.startswith(f"llmdeck: cannot move {cache} aside to ")
        assert line.endswith("Permission denied; nothing was moved")
    finally:
        place.chmod(0o755)
    assert sha(cache) == before and sorted(p.name for p in place.iterdir()) == ["c.duckdb"]


@pytest.mark.slow
def test_a_cache_file_without_permission_bits(stored, tmp_path, no_dac):
    healthy, traces = stored
    cache = tmp_path / "c.duckdb"
    shutil.copyfile(healthy, cache)
    cache.chmod(0o000)
    for args in (["status"], ["cache", "info"]):
        line = one_line(cli("--cache", cache, *args, prefix=NO_DAC), 3)
        assert line.startswith(f"llmdeck: cannot read {cache} (") and "Permission denied" in line
        assert line.endswith("check the permissions of the file and its directory")
    cache.chmod(0o444)  # readable, not writable
    line = one_line(cli("--cache", cache, "ingest", traces, prefix=NO_DAC), 3)
    assert line.startswith(f"llmdeck: cannot write {cache} (") and "Permission denied" in line
    assert _spans(cache, prefix=NO_DAC) == SPANS


@pytest.mark.slow
def test_a_cache_behind_a_directory_without_search_permission(stored, tmp_path, no_dac):
    healthy, traces = stored
    place = tmp_path / "closed"
    place.mkdir()
    cache = place / "c.duckdb"
    shutil.copyfile(healthy, cache)
    place.chmod(0o600)  # no x: nothing inside can be reached
    try:
        for args in (["status"], ["cache", "info"], ["ingest", traces], ["cache", "reset"]):
            line = one_line(cli("--cache", cache, *args, prefix=NO_DAC), 3)
            assert line == (f"llmdeck: cannot reach {cache}: Permission denied; check the"
                            " permissions of the directories above it")
        console = cli("--cache", cache, prefix=NO_DAC)  # the console's own check, then the net
        assert console.returncode in (1, 3) and "Traceback" not in console.stderr
        assert len(console.stderr.strip().splitlines()) == 1 and str(cache) in console.stderr
    finally:
        place.chmod(0o755)
    assert sha(cache) == sha(healthy)


CACHE_COMMANDS = {
    "ingest": ["ingest", "{traces}"],
    "status": ["status"],
    "cache info": ["cache", "info"],
    "cache prune": ["cache", "prune", "--older-than", "1d"],
    "console": [],
}


@pytest.mark.slow
@pytest.mark.parametrize("command", list(CACHE_COMMANDS))
def test_a_cache_path_that_is_a_directory(command, stored, tmp_path):
    _, traces = stored
    folder = tmp_path / "caches"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    args = [a.format(traces=traces) for a in CACHE_COMMANDS[command]]
    line = one_line(cli("--cache", folder, *args), 3)
    assert line == (f"llmdeck: {folder} is a directory, not a cache file; point --cache at a"
                    f" file (for example {folder / 'cache.duckdb'})")
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]


def test_cache_reset_on_a_directory_and_under_a_file(stored, tmp_path):
    _, traces = stored
    line = one_line(cli("--cache", tmp_path, "cache", "reset"), 3)
    assert line == f"llmdeck: {tmp_path} is a directory, not a cache file; nothing was moved"
    blocker = tmp_path / "plain"
    blocker.write_text("not a directory")
    line = one_line(cli("--cache", blocker / "c.duckdb", "ingest", traces), 3)
    assert line == (f"llmdeck: cannot create the cache directory {blocker}: {blocker} is a file,"
                    " not a directory; point --cache at a file in a directory")
    assert blocker.read_text() == "not a directory"


# ---------------------------------------------------------------------------
# The config file
# ---------------------------------------------------------------------------

CONFIG_COMMANDS = {
    "status": ["status"],
    "ingest": ["ingest", "{traces}"],
    "cache info": ["cache", "info"],
    "secrets list": ["secrets", "list"],
    "silences": ["silences"],
    "alerts": ["alerts"],
    "sources check": ["sources", "check"],
    "console": [],
}


@pytest.mark.slow
@pytest.mark.parametrize("command", list(CONFIG_COMMANDS))
def test_a_config_path_that_is_a_directory(command, stored, tmp_path):
    healthy, traces = stored
    folder = tmp_path / "conf"
    folder.mkdir()
    args = [a.format(traces=traces) for a in CONFIG_COMMANDS[command]]
    line = one_line(cli("--config", folder, "--cache", healthy, *args), 1)
    assert line == (f"llmdeck: bad config: {folder}: is a directory, not a config file (name the"
                    f" file itself, for example {folder / 'config.toml'})")


def test_config_check_on_a_directory(tmp_path):
    result = cli("config", "check", "--config", tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    assert f"{tmp_path}: is a directory, not a config file" in result.stdout


def test_an_unreadable_config_file(stored, tmp_path, no_dac):
    healthy, _ = stored
    config = tmp_path / "config.toml"
    config.write_text("[ui]\nrefresh_seconds = 5\n")
    config.chmod(0o000)
    for args in (["status"], ["secrets", "list"]):
        line = one_line(cli("--config", config, "--cache", healthy, *args, prefix=NO_DAC), 1)
        assert line == f"llmdeck: bad config: {config}: cannot read: Permission denied"


# ---------------------------------------------------------------------------
# XDG places
# ---------------------------------------------------------------------------


def _xdg(base: Path) -> dict[str, str]:
    return {"XDG_CONFIG_HOME": str(base / "config"), "XDG_CACHE_HOME": str(base / "cache"),
            "XDG_STATE_HOME": str(base / "state")}


@pytest.mark.slow
def test_xdg_places_that_do_not_exist_are_created_when_needed(stored, tmp_path):
    _, traces = stored
    env = _xdg(tmp_path / "not" / "yet")
    ingest = cli("ingest", traces, env=env)
    assert ingest.returncode == 0 and ingest.stderr == "", ingest.stderr
    cache = tmp_path / "not" / "yet" / "cache" / "llmdeck" / "cache.duckdb"
    assert cache.exists() and _spans(cache) == SPANS
    for args in (["status"], ["cache", "info"], ["secrets", "list"], ["silences"], ["alerts"],
                 ["config", "check"]):
        result = cli(*args, env=env)
        assert result.returncode in (0, 1, 2) and "Traceback" not in result.stderr, args
        assert result.stderr == "", (args, result.stderr)


@pytest.mark.slow
def test_xdg_places_under_a_read_only_mount(stored, tmp_path):
    _, traces = stored
    with read_only_mount(tmp_path / "ro", {}) as ro:
        env = _xdg(ro / "home")
        cache = ro / "home" / "cache" / "llmdeck" / "cache.duckdb"
        line = one_line(cli("ingest", traces, env=env), 3)
        assert line == (f"llmdeck: cannot create the cache directory {cache.parent}: Read-only"
                        " file system; make it creatable or point --cache at a writable place")
        for args in (["status"], ["cache", "info"], ["cache", "prune", "--older-than", "1d"]):
            assert one_line(cli(*args, env=env), 3) == (
                f"llmdeck: no cache at {cache}; run `llmdeck ingest` first")
        console = one_line(cli(env=env), 1)
        assert console.startswith(f"llmdeck: no cache at {cache};")
        for args in (["secrets", "list"], ["silences"], ["alerts"], ["config", "check"],
                     ["cache", "reset"]):
            result = cli(*args, env=env)
            assert result.returncode == 0 and result.stderr == "", (args, result.stderr)
        demo = one_line(cli("demo", "--workdir", ro / "demo", env=env), 1)
        assert demo == f"llmdeck: cannot write (read-only place): {ro / 'demo'}: Read-only file system"
        assert list(ro.iterdir()) == []


def test_xdg_places_that_are_files(stored, tmp_path):
    _, traces = stored
    plain = tmp_path / "plain"
    plain.write_text("a file")
    line = one_line(cli("status", env={"XDG_CONFIG_HOME": str(plain)}), 1)
    assert line == (f"llmdeck: bad config: {plain / 'llmdeck' / 'config.toml'}: cannot read:"
                    f" {plain} is a file, not a directory")
    line = one_line(cli("ingest", traces, env={"XDG_CACHE_HOME": str(plain)}), 3)
    assert line == (f"llmdeck: cannot create the cache directory {plain / 'llmdeck'}: {plain} is"
                    " a file, not a directory; point --cache at a file in a directory")
    assert plain.read_text() == "a file"


# ---------------------------------------------------------------------------
# The last-resort net in cli.main
# ---------------------------------------------------------------------------


def test_an_os_error_escaping_a_command_is_one_line_and_a_bug_is_not_hidden(monkeypatch, capsys):
    from console import cli

    def fails(argv: list[str] | None) -> int:
        raise OSError(errno.EROFS, "Read-only file system", "/mnt/ro/x")

    monkeypatch.setattr(cli, "_main", fails)
    assert cli.main([]) == 1
    assert capsys.readouterr().err == (
        "llmdeck: cannot write (read-only place): /mnt/ro/x: Read-only file system\n")

    def bug(argv: list[str] | None) -> int:
        raise ValueError("a programming error")

    monkeypatch.setattr(cli, "_main", bug)
    with pytest.raises(ValueError, match="a programming error"):
        cli.main([])
