"""`llmdeck cache info|prune`, and opening the cache for any command with one clear line on failure."""

from __future__ import annotations

import argparse
import dataclasses
import json
from datetime import datetime
from pathlib import Path
from typing import TextIO

from console.cache.store import Cache, CacheError
from console.cli import EXIT_CACHE, EXIT_OK
from console.config import Config
from console.timeutil import utc_now


def open_for_cli(path: Path, *, read_only: bool, err: TextIO) -> Cache | None:
    """The cache opened for a command, or None after writing why not (one line)."""
    try:
        cache = Cache.open(path, read_only=read_only, create=not read_only)
    except CacheError as exc:
        err.write(f"llmdeck: {exc}\n")
        return None
    if cache.recovery is not None:
        err.write(f"llmdeck: warning: {cache.recovery.message()}\n")
    return cache


def main_cache(config: Config, args: argparse.Namespace, parser: argparse.ArgumentParser,
               out: TextIO, err: TextIO) -> int:
    if args.cache_command is None:
        parser.parse_args(["cache", "--help"])
    read_only = args.cache_command == "info"
    cache = open_for_cli(config.cache_file(args.cache), read_only=read_only, err=err)
    if cache is None:
        return EXIT_CACHE
    try:
        if args.cache_command == "info":
            return _cache_info(cache, args, out)
        return _prune(cache, args, out)
    finally:
        cache.close()


def _cache_info(cache: Cache, args: argparse.Namespace, out: TextIO) -> int:
    from console.cache.queries import cache_info

    info = cache_info(cache.cursor(), str(cache.path))
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
        f"rollups        {info.rollup_minutes:,} minute rows since {info.rollup_first or '-'}\n"
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
