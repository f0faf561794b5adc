"""`llmdeck audit verify|show|export`: check, read and hand over the audit journal.

`verify` walks the hash chain and the head anchor and names the first bad record (file:line,
seq, what kind of tampering). `show` lists records, actions whose outcome is unknown first and
loudly (a process stopped between the intent and the outcome). `export` writes one row per
action (intent joined with its outcome) or per event, as JSON or CSV: who, what, when, from
where, with what result. Everything that reaches the terminal goes through safe_text; the CSV
cells are made inert for spreadsheets too.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from console.audit import AuditError, AuditJournal, AuditRecord, Verification
from console.safe_text import cell
from console.timeutil import utc_now

EXIT_OK = 0
EXIT_TAMPERED = 1
EXIT_PROBLEM = 2
UNKNOWN = "outcome unknown"
AUDIT_HELP = (
    "The audit journal ($XDG_STATE_HOME/llmdeck/audit.jsonl): every mutating action's intent"
    " (written and synced before the request is sent) and outcome, and every refused, cancelled or"
    " dry-run attempt, hash-chained so an edit, deletion, insertion, reordering or cut tail is"
    " detected. Exit codes: 0 ok, 1 the journal fails verification (verify, export), 2 cannot read it"
    " or bad input."
)
EXPORT_FIELDS = ("started", "finished", "action_id", "action", "kind", "origin", "target", "gateway",
                 "incident_id", "params", "idempotency_key", "pre_state_hash", "user", "host",
                 "ssh_client", "status", "detail", "resolved_by")
_FORMULA = ("=", "+", "-", "@")


def parse_since(text: str) -> datetime:
    """`2h`, `30m`, `7d` (that long ago) or an ISO 8601 / unix time (naive = UTC)."""
    from console.cli import parse_duration, parse_timestamp

    try:
        return utc_now() - parse_duration(text)
    except argparse.ArgumentTypeError:
        pass
    try:
        return parse_timestamp(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (use e.g. 2h, 7d, 2026-12-05T02:00Z)") from None


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`audit verify|show|export`."""
    audit = sub.add_parser("audit", help="verify, show or export the audit journal of actions",
                           description=AUDIT_HELP)
    cmds = audit.add_subparsers(dest="audit_command", metavar="COMMAND")
    verify = cmds.add_parser("verify", help="check the hash chain and the head; name the first bad record",
                             description=AUDIT_HELP)
    show = cmds.add_parser("show", help="list records, actions with an unknown outcome first",
                           description=AUDIT_HELP)
    show.add_argument("--since", type=parse_since, default=None, metavar="WHEN",
                      help="only records since then: 2h, 7d, or an ISO time (UTC)")
    show.add_argument("--unknown", action="store_true", help="only actions whose outcome is unknown")
    show.add_argument("--limit", type=int, default=200, metavar="N",
                      help="the newest N records (default 200; 0 = all)")
    export = cmds.add_parser("export", help="one row per action or event: who, what, when, from where,"
                             " result", description=AUDIT_HELP)
    export.add_argument("--since", type=parse_since, default=None, metavar="WHEN",
                        help="from then (2h, 7d, ISO time; default: the start)")
    export.add_argument("--until", type=parse_since, default=None, metavar="WHEN",
                        help="before then (default: now)")
    export.add_argument("--format", choices=("json", "csv"), default="json")
    for p in (verify, show, export):
        p.add_argument("--journal", type=Path, default=None, metavar="PATH",
                       help="the journal file (default $XDG_STATE_HOME/llmdeck/audit.jsonl)")
    for p in (verify, show):
        p.add_argument("--json", action="store_true", help="print JSON")


def main_audit(args: argparse.Namespace, parser: argparse.ArgumentParser, out: TextIO,
               err: TextIO) -> int:
    command = getattr(args, "audit_command", None)
    if command is None:
        parser.parse_args(["audit", "--help"])
        return EXIT_PROBLEM
    journal = AuditJournal(args.journal)
    try:
        if command == "verify":
            return _verify(journal, args.json, out)
        if command == "show":
            return _show(journal, args, out, err)
        return _export(journal, args, out, err)
    except AuditError as exc:
        err.write(f"llmdeck: audit: {cell(exc, 500)}\n")
        return EXIT_PROBLEM


def verification_json(v: Verification) -> dict[str, Any]:
    return {"ok": v.ok, "records": v.records, "path": v.path, "line": v.line, "seq": v.seq,
            "kind": v.kind, "problem": v.problem, "warning": v.warning}


def _verify(journal: AuditJournal, as_json: bool, out: TextIO) -> int:
    v = journal.verify()
    if as_json:
        out.write(json.dumps(verification_json(v)) + "\n")
    elif v.ok:
        out.write(f"ok: {v.records} records, chain and head intact ({cell(v.path, 300)})\n")
        if v.warning:
            out.write(f"note: {cell(v.warning, 400)}\n")
    else:
        seq = f", seq {v.seq}" if v.seq is not None else ""
        out.write(f"TAMPERED ({v.kind}{seq}): {cell(v.problem, 600)}\n")
    return EXIT_OK if v.ok else EXIT_TAMPERED


def record_json(rec: AuditRecord, unknown: bool = False) -> dict[str, Any]:
    data = dict(rec.data)
    data["line"] = rec.line
    if unknown:
        data["outcome"] = UNKNOWN
    return data


def _show(journal: AuditJournal, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    every = journal.records()
    unknown = journal.unknown_outcomes()
    unknown_ids = {r.action_id for r in unknown}
    shown = unknown if args.unknown else [r for r in every
                                          if args.since is None or r.ts >= args.since]
    older = max(0, len(shown) - args.limit) if args.limit > 0 else 0
    shown = shown[older:]
    check = journal.verify()
    if args.json:
        out.write(json.dumps({
            "unknown": [record_json(r, True) for r in unknown],
            "records": [record_json(r, r.kind == "intent" and r.action_id in unknown_ids)
                        for r in shown],
            "verification": verification_json(check)}) + "\n")
        return EXIT_OK
    if not check.ok:
        err.write(f"llmdeck: audit: the journal FAILS verification ({check.kind}):"
                  f" {cell(check.problem, 400)}\n")
    if unknown:
        out.write(f"!!! OUTCOME UNKNOWN: {len(unknown)} action(s) with an intent and no outcome: the"
                  " process stopped between the two (or is sending right now); whether they took is"
                  " not known:\n")
        for r in unknown:
            out.write(f"!!! {_when(r.ts)}  {cell(r.action, 40)}  target {cell(r.get('target') or '-', 60)}"
                      f"  by {_who(r)}  action {r.action_id}: {UNKNOWN}\n")
        out.write("!!! Read the state back to settle each: `llmdeck runbook verify ACTION_ID`"
                  " (silences: `llmdeck silences`).\n")
        if args.unknown:
            return EXIT_OK
    elif args.unknown:
        out.write("no action with an unknown outcome\n")
        return EXIT_OK
    if not shown:
        out.write("no records" + (" in that window" if args.since else "") + "\n")
        return EXIT_OK
    targets = {r.action_id: r.get("target") for r in every if r.kind == "intent"}
    if older:
        out.write(f"({older} older record(s) not shown: --limit 0 shows all)\n")
    out.write(f"{'time (UTC)':<20} {'kind':<8} {'action':<24} {'target':<24} {'status':<16} who / detail\n")
    for r in shown:
        target = r.get("target") or targets.get(r.action_id, "") if r.action_id else r.get("target")
        status = UNKNOWN if r.kind == "intent" and r.action_id in unknown_ids else r.status
        if r.kind == "intent" and not status:
            status = "sent"
        detail = r.get("detail")
        out.write(f"{_when(r.ts):<20} {r.kind:<8} {cell(r.action, 24):<24}"
                  f" {cell(target or '-', 24):<24} {cell(status or '-', 16):<16}"
                  f" {_who(r)}{'  ' + cell(detail, 200) if detail else ''}\n")
    return EXIT_OK


def export_rows(records: Sequence[AuditRecord], since: datetime | None,
                until: datetime | None) -> list[dict[str, str]]:
    """One row per intent (joined with its outcome) and per event, started in [since, until)."""
    outcomes = {r.action_id: r for r in records if r.kind == "outcome"}
    rows = []
    for r in records:
        if r.kind == "outcome" or (since and r.ts < since) or (until and r.ts >= until):
            continue
        done = outcomes.get(r.action_id) if r.kind == "intent" else None
        status = r.status if r.kind == "event" else (done.status if done else UNKNOWN)
        params = r.data.get("params")
        rows.append({
            "started": _iso(r.ts), "finished": _iso(done.ts) if done else "",
            "action_id": r.action_id, "action": r.action,
            "kind": "action" if r.kind == "intent" else "attempt",
            "origin": r.get("origin"), "target": r.get("target"), "gateway": r.get("gateway"),
            "incident_id": r.get("incident_id"),
            "params": json.dumps(params, sort_keys=True, ensure_ascii=False) if params else "",
            "idempotency_key": r.get("idempotency_key"), "pre_state_hash": r.get("pre_state_hash"),
            "user": r.get("user"), "host": r.get("host"), "ssh_client": r.get("ssh_client"),
            "status": status, "detail": (done.get("detail") if done else r.get("detail")),
            "resolved_by": done.get("resolved_by") if done else ""})
    return rows


def _export(journal: AuditJournal, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.since and args.until and args.since >= args.until:
        err.write("llmdeck: audit export: --since must be before --until\n")
        return EXIT_PROBLEM
    check = journal.verify()
    rows = export_rows(journal.records(), args.since, args.until)
    if args.format == "json":
        out.write(json.dumps({"journal": str(journal.path), "exported_at": _iso(utc_now()),
                              "since": _iso(args.since) if args.since else None,
                              "until": _iso(args.until) if args.until else None,
                              "verification": verification_json(check), "rows": rows}, indent=1) + "\n")
    else:
        writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_cell(v) for k, v in row.items()})
    if not check.ok:
        err.write(f"llmdeck: audit export: the journal FAILS verification ({check.kind}):"
                  f" {cell(check.problem, 400)}\n")
        return EXIT_TAMPERED
    return EXIT_OK


def _csv_cell(value: str) -> str:
    """One line, no control characters, and never a spreadsheet formula."""
    text = cell(value, 4000)
    return "'" + text if text.startswith(_FORMULA) else text


def _who(r: AuditRecord) -> str:
    ssh = r.get("ssh_client")
    return cell(f"{r.get('user')}@{r.get('host')}" + (f" from {ssh}" if ssh else ""), 80)


def _when(t: datetime) -> str:
    return f"{t:%Y-%m-%d %H:%M:%S}Z"


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds") + "Z"
