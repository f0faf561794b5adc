"""`llmdeck cache info|prune|reset`, and opening the cache for any command with one clear line on failure."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TextIO

import duckdb

from console.cache.faults import cache_flag, classify
from console.cache.store import Cache, CacheError
from console.cli import EXIT_CACHE, EXIT_OK
from console.config import Config
from console.safe_text import cell
from console.timeutil import utc_now


def open_for_cli(path: Path, *, read_only: bool, err: TextIO, create: bool | None = None
                 ) -> Cache | None:
    """The cache opened for a command, or None after writing why not (one line).

    A missing cache is created unless `read_only` (or `create=False`)."""
    try:
        cache = Cache.open(path, read_only=read_only,
                           create=not read_only if create is None else create)
    except CacheError as exc:
        err.write(f"llmdeck: {cell(exc, 2000)}\n")
        return None
    if cache.recovery is not None:
        err.write(f"llmdeck: warning: {cell(cache.recovery.message(), 2000)}\n")
    return cache


def run_on_cache(path: Path, *, read_only: bool, err: TextIO, body: Callable[[Cache], int],
                 create: bool | None = None) -> int:
    """Open the cache, run `body` on it and close it; a cache fault met on the way (a corrupt
    block read by a query, a full disk) is one line and EXIT_CACHE. Other errors (bugs) surface."""
    cache = open_for_cli(path, read_only=read_only, err=err, create=create)
    if cache is None:
        return EXIT_CACHE
    fault = None
    try:
        return body(cache)
    except (duckdb.Error, OSError) as exc:
        fault = classify(exc, path)
        if fault is None:
            raise
        err.write(f"llmdeck: {cell(fault, 2000)}\n")
        return EXIT_CACHE
    finally:
        if fault is None:
            try:
                cache.close()
            except duckdb.Error:
                cache.abandon()  # a damaged file may refuse even to close
        else:  # no closing checkpoint: a damaged file is left exactly as it was
            cache.abandon()


def main_cache(config: Config, args: argparse.Namespace, parser: argparse.ArgumentParser,
               out: TextIO, err: TextIO) -> int:
    if args.cache_command is None:
        parser.parse_args(["cache", "--help"])
    path = config.cache_file(args.cache)
    if args.cache_command == "reset":
        return _reset(path, args, out, err)
    if args.cache_command == "info":
        horizon = config.cache.rollup_retention_days
        return run_on_cache(path, read_only=True, err=err,
                            body=lambda cache: _cache_info(cache, args, out, horizon))
    return run_on_cache(path, read_only=False, create=False, err=err,
                        body=lambda cache: _prune(cache, args, out))


def _reset(path: Path, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from console.cache.reset import reset

    try:
        report = reset(path)
    except CacheError as exc:
        err.write(f"llmdeck: {cell(exc, 2000)}\n")
        return EXIT_CACHE
    if args.json:
        out.write(json.dumps(report.as_json()) + "\n")
        return EXIT_OK
    if not report.moved:
        out.write(f"no cache at {cell(path, 500)}; nothing to move. `llmdeck ingest` starts a new one.\n")
        return EXIT_OK
    state = (f"was corrupt: {report.corrupt}" if report.corrupt is not None
             else "was not corrupt (every table read back)")
    out.write(f"{cell(path, 500)} {cell(state, 500)}\nmoved aside (kept, not deleted):\n")
    for src, dst in report.moved:
        out.write(f"  {cell(src, 500)} -> {cell(dst, 500)}\n")
    if report.files is None:
        out.write(f"its list of ingested files could not be read ({cell(report.files_error, 300)});"
                  " run `llmdeck ingest` again on your trace files to build a new cache\n")
    elif not report.files:
        out.write("it recorded no ingested files; `llmdeck ingest` starts a new cache\n")
    else:
        where = cache_flag(path)
        out.write(f"to rebuild it, ingest again the {len(report.files)} file(s) it had read"
                  f" (`llmdeck ingest{cell(where, 500)} FILE...`):\n")
        for f in report.files:
            gone = "  (no longer there)" if os.path.isabs(f) and not os.path.exists(f) else ""
            out.write(f"  {cell(f, 500)}{gone}\n")
        if any(not os.path.isabs(f) for f in report.files):
            out.write("  (relative paths are from the directory that ingest ran in)\n")
    return EXIT_OK


def _cache_info(cache: Cache, args: argparse.Namespace, out: TextIO,
                horizon_days: float | None) -> int:
    from console.cache.queries import cache_info

    info = cache_info(cache.cursor(), str(cache.path), horizon_days=horizon_days)
    if args.json:
        data = {k: (v.isoformat() if isinstance(v, datetime) else v)
                for k, v in dataclasses.asdict(info).items()}
        out.write(json.dumps(data) + "\n")
        return EXIT_OK
    out.write(
        f"cache          {info.path}\n"
        f"size           {info.size_bytes / 1e6:,.1f} MB (+ {info.wal_bytes / 1e6:,.1f} MB WAL)\n"
        f"schema         v{info.schema_version}\n"
        f"spans          {info.spans:,}\n"
        f"span range     {info.first_span or '-'} .. {info.last_span or '-'} (UTC)\n"
        + (f"outside range  {cell(info.outside_range(), 200)}\n" if info.outside_range() else "")
        + f"rollups        {info.rollup_minutes:,} minute rows since {info.rollup_first or '-'}\n"
        f"quarantined    {info.quarantined:,}\n"
        f"checkpoint     {info.last_checkpoint or '-'}\n"
    )
    return EXIT_OK


def _prune(cache: Cache, args: argparse.Namespace, out: TextIO) -> int:
    from console.cache.ingest import prune

    cutoff = utc_now() - args.older_than
    spans, _ = prune(cache, spans_before=cutoff, rollups_before=None)
    cache.checkpoint()
    out.write(f"pruned {spans:,} spans older than {cutoff:%Y-%m-%d %H:%M:%S}Z; rollups kept\n")
    return EXIT_OK
