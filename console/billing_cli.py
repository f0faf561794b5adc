"""`llmdeck billing sync [--provider P] [--since DATE] [--json]`: fetch provider billing now and store it.

Prints, per configured billing source, what it stored (days, lines, total per currency,
pages, seconds) or, on stderr, one line naming the provider, the status and a clean
reason; a 401/403 names the admin key's reference to check, never its value.
Exit code: 0 every source stored, 1 no billing source configured (or none of
`--provider`'s), 2 some source failed (the others are stored), 3 the cache could not be
used. Provider text reaches the terminal through `cell` only.
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from console.billing import PROVIDERS
from console.safe_text import cell

if TYPE_CHECKING:
    from console.billing_sync import SyncResult
    from console.cache.store import Cache
    from console.config import Config

EXIT_OK = 0
EXIT_NOTHING = 1
EXIT_SOURCE_FAILED = 2

SYNC_HELP = (
    "Fetch what the providers billed (OpenAI, Anthropic, OpenRouter admin APIs) for every"
    " [[sources.*_billing]] now and store it in the cache: new days since the last sync plus the"
    " last refetch_days again (providers revise recent figures); the first sync reads since_days."
    " A source that fails stores nothing and keeps what it had. Exit code: 0 all stored, 1 no"
    " billing source configured, 2 some source failed, 3 the cache could not be used."
)


def parse_day(text: str) -> date:
    """`YYYY-MM-DD` (a UTC day)."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD)") from None


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """`billing sync`."""
    billing = sub.add_parser("billing", help="what the providers billed (admin APIs)")
    actions = billing.add_subparsers(dest="billing_command", metavar="ACTION")
    sync = actions.add_parser("sync", help="fetch provider billing now and store it in the cache",
                              description=SYNC_HELP)
    sync.add_argument("--provider", choices=PROVIDERS, default=None, help="only this provider's sources")
    sync.add_argument("--since", type=parse_day, default=None, metavar="DATE",
                      help="fetch from this UTC day (YYYY-MM-DD) instead of where the last sync ended")
    sync.add_argument("--json", action="store_true", help="print one JSON object")
    sync.add_argument("--cache", type=Path, default=argparse.SUPPRESS,
                      help="cache file (default $XDG_CACHE_HOME/llmdeck/cache.duckdb)")


def money(totals: dict[str, Decimal]) -> str:
    """`USD 1,234.5678` per currency (every stored digit, trailing zeros dropped), or `-`."""
    if not totals:
        return "-"
    return ", ".join(f"{c} {_plain(a)}" for c, a in sorted(totals.items()))


def _plain(amount: Decimal) -> str:
    """Every stored digit, trailing zeros dropped, at least cents: `1,234.5678`, `0.10`."""
    whole, _, frac = f"{amount:,f}".partition(".")
    return f"{whole}.{frac.rstrip('0').ljust(2, '0')}"


def result_json(r: SyncResult) -> dict[str, Any]:
    return {
        "provider": r.provider, "source": r.source, "ok": r.ok,
        "start": r.start.isoformat(), "end": r.end.isoformat(), "days": r.days,
        "lines": r.stored.lines if r.stored else 0,
        "usage_lines": r.stored.usage_lines if r.stored else 0,
        "replaced_lines": r.stored.replaced_lines if r.stored else 0,
        "totals": {c: str(a) for c, a in sorted(r.totals.items())},
        "pages": r.pages, "seconds": round(r.seconds, 3),
        "error": r.error, "kind": r.kind, "status": r.status, "secret_ref": r.secret_ref,
        "last_stored_day": r.last_stored.isoformat() if r.last_stored else None,
    }


def error_line(r: SyncResult) -> str:
    """`llmdeck: billing sync: <provider (source)>: <status>: <reason>` and what was kept."""
    kept = f" (stored days kept as they were, through {r.last_stored})" if r.last_stored else ""
    return f"llmdeck: billing sync: {cell(r.error, 600)}{kept}\n"


def write_text(results: list[SyncResult], out: TextIO, err: TextIO) -> None:
    for r in results:
        if not r.ok:
            continue
        days = f"{r.start}..{date.fromordinal(r.end.toordinal() - 1)}" if r.days else "no days kept there"
        stored = r.stored
        assert stored is not None
        out.write(f"{r.provider:<10}  {cell(r.source, 24):<24}  {days:<22}  {r.days:>3} days"
                  f"  {stored.lines:>6,} lines  {stored.usage_lines:>6,} usage  {cell(money(r.totals), 60)}"
                  f"  {r.pages} pages  {r.seconds:.1f} s\n")
    for r in results:
        if r.error is not None:
            err.write(error_line(r))


def exit_code(results: list[SyncResult]) -> int:
    return EXIT_SOURCE_FAILED if any(not r.ok for r in results) else EXIT_OK


def main_billing(config: Config, args: argparse.Namespace, parser: argparse.ArgumentParser,
                 out: TextIO, err: TextIO) -> int:
    if getattr(args, "billing_command", None) != "sync":
        parser.parse_args(["billing", "--help"])
    from console.billing_sync import sources_of
    from console.cache_cli import run_on_cache
    from console.timeutil import utc_now

    if not sources_of(config, args.provider):
        which = f"{args.provider} " if args.provider else ""
        kinds = f"[[sources.{args.provider}_billing]]" if args.provider else (
            "[[sources.openai_billing]], [[sources.anthropic_billing]] or [[sources.openrouter_billing]]")
        err.write(f"llmdeck: billing sync: no {which}billing source configured: add {kinds} to the config\n")
        return EXIT_NOTHING
    if args.since is not None and args.since > utc_now().date():
        err.write(f"llmdeck: billing sync: --since {args.since} is after today (UTC)\n")
        return EXIT_NOTHING

    def body(cache: Cache) -> int:
        from console.billing_sync import sync

        results = sync(config, cache, provider=args.provider, since=args.since)
        code = exit_code(results)
        if args.json:
            out.write(json.dumps({"sources": [result_json(r) for r in results], "exit_code": code}) + "\n")
            for r in results:
                if r.error is not None:
                    err.write(error_line(r))
        else:
            write_text(results, out, err)
        return code

    return run_on_cache(config.cache_file(args.cache), read_only=False, err=err,
                        body=body)
