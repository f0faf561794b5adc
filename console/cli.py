"""`llmdeck` command line: argument parsing and output only; the work lives elsewhere."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from console.cache.faults import CacheError
from console.timeutil import naive_utc, utc_now

if TYPE_CHECKING:
    from console.cache.store import Cache
    from console.config import Config

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_CACHE = 3

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """`7d`, `12h`, `30m`, `90s`, `2w`."""
    m = _DURATION.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 7d, 12h, 30m)")
    return timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})


def parse_timestamp(text: str) -> datetime:
    """ISO 8601 (naive means UTC) or unix seconds; returned as naive UTC."""
    try:
        return datetime.fromtimestamp(float(text), UTC).replace(tzinfo=None)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a timestamp: {text!r}") from exc
    return naive_utc(dt)


def _cache_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache", type=Path, default=argparse.SUPPRESS,
                   help="cache file (default $XDG_CACHE_HOME/llmdeck/cache.duckdb)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmdeck",
        description="Terminal operations console for the people on call for LLM-backed services.",
    )
    parser.add_argument("--config", type=Path, default=None,
                        help="config file (default $XDG_CONFIG_HOME/llmdeck/config.toml)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="cache file (default $XDG_CACHE_HOME/llmdeck/cache.duckdb)")
    parser.add_argument("--theme", default=None,
                        help="console theme: llmdeck-dark (default), llmdeck-light, llmdeck-high-contrast")
    parser.add_argument("--read-only", dest="global_read_only", action="store_true",
                        help="send nothing that changes anything, from any command or key"
                        " (as LLMDECK_READONLY=1)")
    parser.add_argument("--write", dest="global_write", action="store_true",
                        help="allow runbook actions in an environment marked [actions] prod = true"
                        " (read-only there otherwise); --read-only and LLMDECK_READONLY=1 still win")
    parser.add_argument("--dry-run", dest="global_dry_run", action="store_true",
                        help="the console's runbook actions are dry runs: planned, confirmed and"
                        " recorded, nothing sent")
    parser.add_argument("--insecure-storage", action="store_true",
                        help="keep keyring: secrets in plaintext 0600 files under"
                        " $XDG_CONFIG_HOME/llmdeck/secrets (no OS keyring here; shown as a badge)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="the full console on its embedded simulator (no config, no network)")
    demo.add_argument("--seed", type=int, default=7, help="traffic seed (same seed, same data)")
    demo.add_argument("--speed", type=float, default=10.0,
                      help="simulated seconds per wall-clock second (default 10)")
    demo.add_argument("--start", type=parse_timestamp, default=None,
                      help="simulated start time (default now)")
    demo.add_argument("--workdir", type=Path, default=None,
                      help="keep the demo cache and spool here instead of a temp dir")

    ing = sub.add_parser("ingest", help="read trace files into the cache")
    ing.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                     help="files or directories (every file inside)")
    ing.add_argument("--format", default="auto",
                     choices=["auto", "otlp-json", "otlp-proto", "jsonl", "parquet"])
    ing.add_argument("--json", action="store_true", help="print one JSON object")
    _cache_arg(ing)

    rcv = sub.add_parser(
        "receive", help="receive OTLP/HTTP traces into the cache until stopped",
        description="Listen for OTLP/HTTP exporters (POST /v1/traces, protobuf or JSON, gzip or"
        " not) and store their spans as `llmdeck ingest` stores files. A span is acknowledged"
        " only once stored. Loopback only unless [receiver] token is set.")
    rcv.add_argument("--listen", default=None, metavar="HOST:PORT",
                     help="address to listen on (default [receiver] listen, else 127.0.0.1:4318)")
    rcv.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                     help="config file (default $XDG_CONFIG_HOME/llmdeck/config.toml)")
    _cache_arg(rcv)

    st = sub.add_parser(
        "status",
        help="traffic of the last 5m/1h/6h/24h, SLO and budget states",
        description="Traffic per provider and model over the last 5m/1h/6h/24h, then every"
        " configured SLO and budget. Exit code: 0 all well, 1 any SLO ticket or budget"
        " warning, 2 any SLO page or critical budget.",
    )
    st.add_argument("--at", type=parse_timestamp, default=None,
                    help="summarise relative to this time (ISO 8601 or unix seconds; default now)")
    st.add_argument("--json", action="store_true")
    _cache_arg(st)

    gen = sub.add_parser("generate", help="write synthetic GenAI traces (Collector JSON lines)")
    gen.add_argument("out", type=Path, metavar="FILE")
    gen.add_argument("--spans", type=int, default=20_000)
    gen.add_argument("--hours", type=float, default=24.0, help="time range covered, ending --end")
    gen.add_argument("--end", type=parse_timestamp, default=None, help="default now")
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--spans-per-line", type=int, default=500)
    gen.add_argument("--incident", metavar="PROVIDER", default=None,
                     help="make PROVIDER fail (429/529, slow) during the last 20 minutes")

    cfg = sub.add_parser("config", help="configuration")
    cfg_sub = cfg.add_subparsers(dest="config_command", metavar="ACTION")
    chk = cfg_sub.add_parser("check", help="validate the config file")
    chk.add_argument("--config", type=Path, default=argparse.SUPPRESS)

    srcs = sub.add_parser("sources", help="the outside sources (Prometheus, Alertmanager, scrapes)")
    srcs_sub = srcs.add_subparsers(dest="sources_command", metavar="ACTION")
    srcs_check = srcs_sub.add_parser(
        "check", help="read every source once: exit 0 all live, 1 some stale, 2 some down")
    srcs_check.add_argument("--json", action="store_true")

    cache = sub.add_parser("cache", help="the local trace cache")
    cache_sub = cache.add_subparsers(dest="cache_command", metavar="ACTION")
    info = cache_sub.add_parser("info", help="size, span count, time range, schema version")
    info.add_argument("--json", action="store_true")
    _cache_arg(info)
    prune = cache_sub.add_parser("prune", help="delete spans older than a duration")
    prune.add_argument("--older-than", type=parse_duration, required=True, metavar="DURATION")
    _cache_arg(prune)
    reset = cache_sub.add_parser(
        "reset", help="move the cache file aside (kept, not deleted); the next ingest starts afresh",
        description="Move the cache file and its WAL aside to <file>.corrupt-<UTC time> (or"
        " .reset-<UTC time> when it reads back whole) and list the trace files it had ingested,"
        " to ingest again. Refuses while another process has the cache open.")
    reset.add_argument("--json", action="store_true")
    _cache_arg(reset)
    from console.secrets_cli import add_parser as add_secrets_parser

    add_secrets_parser(sub)
    from console.alerts_cli import add_parsers as add_alert_parsers

    add_alert_parsers(sub)
    from console.billing_cli import add_parser as add_billing_parser

    add_billing_parser(sub)
    from console.reconcile_cli import add_parser as add_cost_parser

    add_cost_parser(sub)
    from console.incidents_cli import add_parser as add_incidents_parser

    add_incidents_parser(sub)
    from console.audit_cli import add_parser as add_audit_parser

    add_audit_parser(sub)
    from console.runbook_cli import add_parser as add_runbook_parser

    add_runbook_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # `llmdeck status | head`: the reader left; exit quietly like other Unix tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        sys.stderr.write("llmdeck: interrupted\n")
        return 130
    except CacheError as exc:  # a cache fault no command caught on the way: still one line
        from console.safe_text import cell

        sys.stderr.write(f"llmdeck: {cell(exc, 2000)}\n")
        return EXIT_CACHE
    except OSError as exc:  # a place that cannot be read or written: one line, not a traceback
        from console.cli_errors import os_error_line

        sys.stderr.write(f"llmdeck: {os_error_line(exc)}\n")
        return EXIT_PROBLEM


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out, err = sys.stdout, sys.stderr
    if args.global_read_only:  # every guarded action reads this when it is about to send
        os.environ["LLMDECK_READONLY"] = "1"
    if args.insecure_storage:
        from console import secrets

        secrets.enable_insecure_storage()
    if args.command == "secrets":
        from console.secrets_cli import main_secrets

        return main_secrets(args, parser, out, err)
    if args.command == "demo":
        from console.launch import run_demo

        if args.speed <= 0:
            parser.error("--speed must be positive")
        return run_demo(args.seed, args.speed, args.start, args.theme, args.workdir)
    if args.command == "generate":
        return _generate(args, out)
    if args.command == "incidents":  # the state directory only: works with a broken config
        from console.incidents_cli import main_incidents

        return main_incidents(args, parser, out, err)
    if args.command == "audit":
        from console.audit_cli import main_audit

        return main_audit(args, parser, out, err)
    if args.command == "config":
        if args.config_command != "check":
            parser.parse_args(["config", "--help"])
        from console.config_check import main_check

        return main_check(args.config, os.environ, out)

    from console.config import ConfigError, load_config

    try:
        config = load_config(args.config, os.environ)
    except ConfigError as exc:
        from console.cli_errors import config_error_text

        err.write(config_error_text(exc))
        return EXIT_PROBLEM
    if args.command in ("alerts", "silences"):
        from console import alerts_cli

        main = alerts_cli.main_alerts if args.command == "alerts" else alerts_cli.main_silences
        return main(config, args, out, err)
    if args.command == "runbook":
        from console.runbook_cli import main_runbook

        return main_runbook(config, args, parser, out, err)
    if args.command == "billing":
        from console.billing_cli import main_billing

        return main_billing(config, args, parser, out, err)
    if args.command == "cost":
        from console.reconcile_cli import main_cost

        return main_cost(config, args, parser, out, err)
    if args.command == "silence":
        from console.silence_cli import main_silence

        return main_silence(config, args, parser, out, err)
    if args.command == "sources":
        if args.sources_command != "check":
            parser.parse_args(["sources", "--help"])
        from console.sources_cli import main_check as sources_check

        return sources_check(config, args.json, out)
    if args.command is None:
        from console.cache.store import CacheError
        from console.launch import run_console

        try:
            return run_console(config, config.cache_file(args.cache), args.theme, err,
                               write=args.global_write, dry_run=args.global_dry_run)
        except CacheError as exc:
            err.write(f"llmdeck: {exc}\n")
            return EXIT_CACHE
    if args.command == "ingest":
        from console.ingest_cli import main_ingest

        return main_ingest(config, args, out, err)
    if args.command == "receive":
        from console.receive_cli import main_receive

        return main_receive(config, args, out, err)
    if args.command == "cache":
        from console.cache_cli import main_cache

        return main_cache(config, args, parser, out, err)
    return _main_status(config, args, out, err)


def _main_status(config: Config, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from console.cache_cli import run_on_cache

    cache_path = config.cache_file(args.cache)
    if any(s.promql for s in config.slos) and not _exists(cache_path):
        return _status(None, config, args, out, cache_path)  # PromQL SLOs need no trace cache
    return run_on_cache(cache_path, read_only=True, err=err,
                        body=lambda cache: _status(cache, config, args, out))


def _exists(path: Path) -> bool:
    """Whether `path` exists; True when that cannot be told (the open then says why)."""
    try:
        return path.exists()
    except OSError:
        return True


def _generate(args: argparse.Namespace, out: TextIO) -> int:
    from console.demo.traffic import Incident, TrafficModel, export_requests, write_collector_jsonl

    end = args.end or utc_now()
    end_ns = int(end.replace(tzinfo=UTC).timestamp() * 1e9)
    start_ns = end_ns - int(args.hours * 3.6e12)
    incidents = []
    if args.incident:
        incidents.append(Incident(args.incident, end_ns - 20 * 60 * 10**9, end_ns))
    model = TrafficModel(seed=args.seed, incidents=incidents)
    lines = write_collector_jsonl(
        str(args.out), export_requests(model, start_ns, end_ns, args.spans, args.spans_per_line)
    )
    out.write(f"wrote {args.spans:,} spans in {lines:,} lines to {args.out}\n")
    return EXIT_OK


def _status(cache: Cache | None, config: Config, args: argparse.Namespace, out: TextIO,
            missing: Path | None = None) -> int:
    from console import status_report

    at = args.at or utc_now()
    if cache is None:
        assert missing is not None
        report = status_report.gather_without_cache(config, at, missing)
    else:
        report = status_report.gather(cache.cursor(), config, at)
    if args.json:
        out.write(json.dumps(status_report.as_json(report)) + "\n")
    else:
        status_report.write_text(report, out)
    return report.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
