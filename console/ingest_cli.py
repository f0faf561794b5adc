"""`llmdeck ingest`: the command line around `console.cache.ingest.Ingestor`."""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING, TextIO

import duckdb

from console.cache.faults import CacheCorruptError, CacheError, classify
from console.cache.store import Cache
from console.cache_cli import open_for_cli
from console.cli import EXIT_CACHE, EXIT_OK, EXIT_PROBLEM
from console.config import Config
from console.ingest_signals import StopOnSignals, reached, resume_note, say
from console.safe_text import cell

if TYPE_CHECKING:
    from console.cache.ingest import Ingestor


def main_ingest(config: Config, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with StopOnSignals(err) as stopper:
        cache = open_for_cli(config.cache_file(args.cache), read_only=False, err=err)
        if cache is None:
            return EXIT_CACHE
        try:
            return _ingest(cache, config, args, out, err, stopper)
        finally:
            if stopper.fault is None:
                cache.close()
            else:  # no closing checkpoint: it could rewrite a damaged file; the WAL is kept
                cache.abandon()


def _ingest(cache: Cache, config: Config, args: argparse.Namespace, out: TextIO,
            err: TextIO, stopper: StopOnSignals) -> int:
    from console.cache.clock import describe
    from console.cache.ingest import Ingestor, IngestStopped, Progress

    show = err.isatty() and not args.json

    def progress(p: Progress) -> None:
        pct = f" {100 * p.bytes_done / p.bytes_total:5.1f}%" if p.bytes_total else ""
        name = cell(os.path.basename(p.path), 40)
        err.write(f"\r[{p.file_index}/{p.files}] {name}{pct}  spans read {p.spans_read:,}"
                  f"  stored {p.spans_stored:,}\x1b[K")
        err.flush()

    ingestor = Ingestor(cache, config, progress if show else None)
    stopper.watch(ingestor)
    missing = [p for p in args.paths if not p.exists()]
    try:
        report = ingestor.run([p for p in args.paths if p.exists()], args.format)
    except IngestStopped:
        if show:
            say(err, "")
        return stopper.stopped()
    except (duckdb.Error, OSError) as exc:
        stopper.fault = classify(exc, cache.path)
        if stopper.fault is None:  # not a fault of the cache file: a bug, shown as it is
            raise
        if show:
            say(err, "")
        say(err, _fault_line(stopper.fault, ingestor))
        return EXIT_CACHE
    report.errors[:0] = [f"{p}: no such file or directory" for p in missing]
    report.files += len(missing)
    if show:
        err.write("\n")
    if args.json:
        out.write(json.dumps(report.as_json()) + "\n")
    else:
        out.write(
            f"{report.files} file(s): {report.spans_read:,} spans read, {report.spans_stored:,}"
            f" stored, {report.duplicates:,} duplicates, {report.quarantined:,} quarantined,"
            f" {report.unpriced:,} unpriced, {report.seconds:.2f}s\n"
        )
        for reason in report.quarantine_reasons:
            out.write(f"  quarantined {cell(reason, 300)}\n")
        for note in report.pending_partial_lines:
            out.write(f"  pending {cell(note, 300)}\n")
        skew = describe(report.future, report.past, report.future_latest, report.past_before)
        if skew:
            out.write(f"  {skew}\n")
    for e in report.errors:
        err.write(f"llmdeck: error: {cell(e, 500)}\n")
    return EXIT_PROBLEM if report.errors else EXIT_OK


def _fault_line(fault: CacheError, ingestor: Ingestor) -> str:
    """The one line for a cache fault that ended the run: the fault, what it did, what next.

    After a full disk or an unwritable file the same command resumes; a corrupt cache is
    reset first (the fault says so), so no resume is promised there.
    """
    what = cell(str(fault).rstrip().rstrip("."), 1000)
    text = f"llmdeck: {what}. Before it failed: {reached(ingestor)}"
    if isinstance(fault, CacheCorruptError):
        return text
    return f"{text}; {resume_note(ingestor)}"
