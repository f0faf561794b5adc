"""Helpers shared by the benchmarks: run a child process and measure it.

Every measured step runs in its own process and its peak memory is read from
`os.wait4`'s rusage (`ru_maxrss`, kilobytes on Linux). A child's ru_maxrss also
counts the memory of the process that spawned it (Linux carries the parent's
high-water mark across fork/vfork + exec), so a big benchmark process would
inflate every figure: children are therefore spawned by a tiny launcher (an
isolated `python -I -S`, ~8 MB) that times and reaps them and reports back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Measured:
    """One finished child process."""

    seconds: float
    peak_rss_mb: float
    stdout: str


def child_env(workdir: Path) -> dict[str, str]:
    """The environment for llmdeck children: this checkout, default config, no LLMDECK_* overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMDECK_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    config_home = workdir / "xdg-config"  # empty: no user config.toml changes the figures
    config_home.mkdir(parents=True, exist_ok=True)
    env["XDG_CONFIG_HOME"] = str(config_home)
    return env


def llmdeck(*args: str) -> list[str]:
    """The command line running this checkout's `llmdeck` with this interpreter."""
    return [sys.executable, "-m", "console.cli", *args]


_LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
code = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as f:
    f.write(f"{seconds} {usage.ru_maxrss} {code}")
sys.exit(code)
"""


def run_measured(cmd: list[str], env: dict[str, str]) -> Measured:
    """Run `cmd` to completion; its wall time, peak RSS and stdout. Exit on failure.

    stderr is inherited, so a failing child's message shows up as it happens.
    """
    with tempfile.NamedTemporaryFile("r", prefix="llmdeck-bench-", suffix=".rusage") as result:
        launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, result.name, *cmd]
        proc = subprocess.run(launcher, stdout=subprocess.PIPE, env=env, cwd=REPO, check=False)
        report = result.read().split()
    if proc.returncode != 0 or len(report) != 3:
        raise SystemExit(f"bench: exit code {proc.returncode} from: {' '.join(cmd)}")
    seconds, maxrss_kb = float(report[0]), int(report[1])
    return Measured(seconds, maxrss_kb / 1024, proc.stdout.decode())


def mb(nbytes: int) -> str:
    return f"{nbytes / 1e6:,.0f} MB"
