"""`llmdeck incidents`: (being built for issue 12; the owner replaces this docstring)."""

from __future__ import annotations

import argparse
from typing import TextIO

EXIT_PROBLEM = 2


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("incidents", help="(issue 12, being built)")


def main_incidents(args: argparse.Namespace, parser: argparse.ArgumentParser, out: TextIO,
                   err: TextIO) -> int:
    err.write("llmdeck incidents: not built yet\n")
    return EXIT_PROBLEM
