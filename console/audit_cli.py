"""`llmdeck audit`: (being built for issue 12; the owner replaces this docstring)."""

from __future__ import annotations

import argparse
from typing import TextIO

EXIT_PROBLEM = 2


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("audit", help="(issue 12, being built)")


def main_audit(args: argparse.Namespace, parser: argparse.ArgumentParser, out: TextIO,
               err: TextIO) -> int:
    err.write("llmdeck audit: not built yet\n")
    return EXIT_PROBLEM
