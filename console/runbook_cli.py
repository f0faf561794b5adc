"""`llmdeck runbook`: (being built for issue 12; the owner replaces this docstring)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from console.config import Config

EXIT_PROBLEM = 2


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("runbook", help="(issue 12, being built)")


def main_runbook(config: Config, args: argparse.Namespace, parser: argparse.ArgumentParser,
                 out: TextIO, err: TextIO) -> int:
    err.write("llmdeck runbook: not built yet\n")
    return EXIT_PROBLEM
