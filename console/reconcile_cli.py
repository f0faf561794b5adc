"""`llmdeck cost reconcile [--days N] [--json]`: billed against estimated, per provider, model and day.

A table of the completed UTC days (billed, estimated, gap, share, status or first cause) or,
with --json, `{"rows": [...], "not_configured": {...} | null, "threshold": ..., "exit_code": ...}`
with every amount as a string. Providers no billing source has synced (nothing to compare
with) are one summary line under the table, not a row per model and day; --json keeps their
rows (status `not_configured`) and sums them up in `not_configured`. Exit code: 0 no flagged
gap, 1 some gap over `[billing] reconcile_threshold`, 3 the cache could not be used. Provider
and model names reach the terminal through `cell` only.
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from console.safe_text import cell

if TYPE_CHECKING:
    from console.cache.store import Cache
    from console.config import Config
    from console.reconcile import Row, Unconfigured

EXIT_OK = 0
EXIT_GAPS = 1
RECONCILE_HELP = (
    "Compare what the providers billed (stored by `llmdeck billing sync`) with the spend estimated"
    " from traces and the price table, per provider, model and completed UTC day. A gap over"
    " [billing] reconcile_threshold (default 5%) is flagged with its likely causes, computed from the"
    " stored data. Exit code: 0 no flagged gap, 1 some, 3 the cache could not be used."
)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD)") from None


def _days(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 400:
        raise argparse.ArgumentTypeError(f"--days must be 1..400, got {text!r}")
    return n


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """`cost reconcile`."""
    cost = sub.add_parser("cost", help="spend: billed against estimated")
    actions = cost.add_subparsers(dest="cost_command", metavar="ACTION")
    rec = actions.add_parser("reconcile", help="billed vs estimated per provider, model and day",
                             description=RECONCILE_HELP)
    rec.add_argument("--days", type=_days, default=7, help="completed UTC days to compare (default 7)")
    rec.add_argument("--today", type=_day, default=None, metavar="DATE",
                     help="compare the days before this UTC day (default today)")
    rec.add_argument("--json", action="store_true", help="print one JSON object")
    rec.add_argument("--cache", type=Path, default=argparse.SUPPRESS,
                     help="cache file (default $XDG_CACHE_HOME/llmdeck/cache.duckdb)")


def _amount(d: Decimal | None) -> str:
    if d is None:
        return "-"
    text = f"{d:,.2f}"
    return "0.00" if text == "-0.00" else text


def _share(r: Row) -> str:
    s = r.share
    return "-" if s is None else f"{s * 100:+.1f}%"


def write_text(rows: list[Row], out: TextIO) -> None:
    """The table of the compared rows, their causes, then one line for the providers with no
    billing source synced (their rows are only in --json)."""
    from console.reconcile import unconfigured

    summary = unconfigured(rows)
    rows = [r for r in rows if r.status != "not_configured"]
    out.write(f"{'day':<10}  {'provider':<10}  {'model':<28}  {'billed':>12}  {'estimated':>12}"
              f"  {'gap':>11}  {'share':>7}  cause\n")
    for r in rows:
        if r.status == "gap":
            why = "; ".join(f"{c.code}" + (f" ({_amount(c.explains)})" if c.explains is not None else "")
                            for c in r.causes)
        elif r.status == "ok":
            why = ""
        else:
            why = f"{r.status.replace('_', ' ')}: {r.note}"
        out.write(f"{r.day.isoformat():<10}  {cell(r.provider, 10):<10}  {cell(r.model, 28):<28}"
                  f"  {_amount(r.billed):>12}  {_amount(r.estimated):>12}  {_amount(r.gap):>11}"
                  f"  {_share(r):>7}  {cell(why, 200)}\n")
    for r in rows:
        for c in r.causes:
            out.write(f"  {r.day} {cell(r.provider, 10)} {cell(r.model, 40)}: {c.code}:"
                      f" {cell(c.detail, 300)}\n")
    if summary is not None:
        out.write(unconfigured_line(summary) + "\n")


def unconfigured_line(u: Unconfigured) -> str:
    """`not compared: anthropic (3 rows), google (9 rows) ...`: one line for every not_configured row."""
    from console.billing import PROVIDERS

    who = ", ".join(f"{cell(p, 40)} ({n} row{'s' if n != 1 else ''})" for p, n in u.providers)
    days = u.first.isoformat() if u.first == u.last else f"{u.first}..{u.last}"
    line = (f"not compared: {who}, estimated ${_amount(u.estimated)} over {days}: no billing source"
            " of these providers has synced (--json lists the rows)")
    addable = [p for p, _ in u.providers if p in PROVIDERS]
    if addable:
        line += "; add " + ", ".join(f"[[sources.{p}_billing]]" for p in addable) + " and run"
        line += " `llmdeck billing sync`"
    return line


def main_cost(config: Config, args: argparse.Namespace, parser: argparse.ArgumentParser,
              out: TextIO, err: TextIO) -> int:
    if getattr(args, "cost_command", None) != "reconcile":
        parser.parse_args(["cost", "--help"])
    from console.cache_cli import run_on_cache
    from console.pricing import PriceTable
    from console.reconcile import flagged, reconcile, row_json, unconfigured, unconfigured_json
    from console.timeutil import utc_now

    threshold = config.billing.reconcile_threshold
    today = args.today or utc_now().date()

    def body(cache: Cache) -> int:
        table = PriceTable.load(config.pricing.overrides)
        rows = reconcile(cache.cursor(), today, args.days, table, threshold)
        code = EXIT_GAPS if flagged(rows) else EXIT_OK
        if args.json:
            out.write(json.dumps({"rows": [row_json(r) for r in rows],
                                  "not_configured": unconfigured_json(unconfigured(rows)),
                                  "threshold": threshold, "exit_code": code}) + "\n")
        else:
            write_text(rows, out)
        return code

    return run_on_cache(config.cache_file(args.cache), read_only=True, err=err, body=body)
