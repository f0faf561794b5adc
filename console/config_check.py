"""`llmdeck config check`: validate the config file, the environment and the runbook files
(built-ins + `[actions] runbook_dir`), and say what is wrong, at file:line."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from console.config import Config, ConfigError, ConfigProblem, read_config


def check(path: Path | None, env: Mapping[str, str]) -> list[ConfigProblem]:
    """Every problem in the config `load_config(path, env)` would read; empty when it is usable."""
    try:
        read_config(path, env)
    except ConfigError as exc:
        return list(exc.problems)
    return []


def runbook_problems(config: Config) -> list[str]:
    """Every problem in the runbook files the desk would load, as `<file>:<line>: <key>: <message>`."""
    from console.runbook_files import RunbookError, load_catalog, user_runbook_dir

    try:
        load_catalog(user_runbook_dir(config.actions.runbook_dir))
    except RunbookError as exc:
        return list(exc.problems)
    return []


def main_check(path: Path | None, env: Mapping[str, str], out: TextIO) -> int:
    """Print `ok: ...` and return 0, or print every problem (config, then runbook files), one
    per line, and return 1."""
    try:
        loaded = read_config(path, env)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=out)
        return 1
    runbooks = runbook_problems(loaded.config)
    for line in runbooks:
        print(line, file=out)
    if runbooks:
        return 1
    if loaded.file_found:
        count = len(loaded.file_sections)
        print(f"ok: {loaded.file} ({count} section{'' if count == 1 else 's'})", file=out)
    else:
        print(f"no config file at {loaded.file}; defaults apply", file=out)
    if loaded.env_overrides:
        print(f"environment overrides: {', '.join(loaded.env_overrides)}", file=out)
    return 0
