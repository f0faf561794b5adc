"""`llmdeck incidents list|show|open|ack|note|mitigate|resolve`: incidents from the command line.

Works while a console is open on the same machine (the store is SQLite in WAL mode under
$XDG_STATE_HOME/llmdeck/, see console.incidents) and with a broken config (it reads none).
Ids: "INC-7", "inc-7" or "7". Lifecycle: open -> acknowledged -> mitigated -> resolved,
forward only (steps may be skipped).

    llmdeck incidents list [--all] [--limit N] [--json]    unresolved first, newest first
    llmdeck incidents show ID [--data] [--json]            the incident and its timeline
    llmdeck incidents open --title T [--severity sev1..sev4] [--owner NAME] [--cause C] [--json]
    llmdeck incidents ack ID [--note TEXT] [--json]
    llmdeck incidents note ID TEXT [--json]
    llmdeck incidents mitigate ID [--note TEXT] [--json]
    llmdeck incidents resolve ID [--note TEXT] [--json]

Exit codes: 0 done; 1 no such incident, a transition that is not allowed ("INC-3 is already
resolved") or input the store refuses (empty or over-long text, unknown severity); 2 the state
file cannot be used.

`--json` prints ONE JSON object on stdout (ASCII only: control and bidi characters arrive as
\\u escapes), stable across versions (fields are only ever added):
    incident = {"id", "title", "severity", "state", "owner", "opened_at", "acknowledged_at",
                "mitigated_at", "resolved_at", "causes": [str], "auto": bool, "updated_at"}
               times are ISO 8601 UTC with a "Z" (seconds), null when not reached
    entry    = {"incident_id", "seq", "at", "kind", "author", "text", "data": {...}}
    list     -> {"incidents": [incident], "count": n, "exit_code": 0}
    show     -> {"incident": incident, "timeline": [entry], "exit_code": 0}
    open     -> {"incident": incident, "created": bool, "exit_code": 0}
                (created false: --cause is already on that unresolved incident; nothing written)
    ack / mitigate / resolve -> {"incident": incident, "exit_code": 0}
    note     -> {"incident": incident, "entry": entry, "exit_code": 0}
    an error -> {"error": "<message>", "exit_code": 1 | 2} (and the message on stderr)
Without --json every title, note, owner, cause and author reaches the terminal through
console.safe_text.cell (they are untrusted text: alert summaries, other people's input).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from console.safe_text import cell

if TYPE_CHECKING:
    from console.incidents import Incident, IncidentStore, TimelineEntry

EXIT_OK = 0
EXIT_NOT_DONE = 1
EXIT_PROBLEM = 2

COMMANDS = ("list", "show", "open", "ack", "note", "mitigate", "resolve")
INCIDENTS_HELP = (
    "Incidents (opened by hand or by the console from paging SLOs, critical budgets and alerts),"
    " stored in $XDG_STATE_HOME/llmdeck/state.sqlite3; usable while a console runs. Exit code: 0"
    " done, 1 no such incident / transition not allowed / input refused, 2 the state file cannot"
    " be used."
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`incidents list|show|open|ack|note|mitigate|resolve`."""
    inc = sub.add_parser("incidents", help="incidents: list, show, open, ack, note, mitigate, resolve",
                         description=INCIDENTS_HELP)
    actions = inc.add_subparsers(dest="incidents_command", metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        p = actions.add_parser(name, help=help_text, description=f"{help_text}. {INCIDENTS_HELP}")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        return p

    ls = action("list", "incidents, unresolved first, newest first")
    ls.add_argument("--all", action="store_true", help="include resolved incidents")
    ls.add_argument("--limit", type=int, default=200, metavar="N", help="at most N (default 200)")
    show = action("show", "one incident and its timeline")
    show.add_argument("id", metavar="ID", help="INC-7, inc-7 or 7")
    show.add_argument("--data", action="store_true",
                      help="also print each entry's data (figures, alert labels, action ids)")
    op = action("open", "open an incident by hand")
    op.add_argument("--title", required=True, help="what is wrong (at most 200 characters)")
    op.add_argument("--severity", default="sev3", choices=("sev1", "sev2", "sev3", "sev4"),
                    help="sev1 worst (default sev3)")
    op.add_argument("--owner", default=None, metavar="NAME", help="who owns it (default: the OS user)")
    op.add_argument("--cause", default=None, metavar="CAUSE",
                    help="e.g. slo:<name>; if an unresolved incident has it, that one is shown instead")
    for name, help_text in (("ack", "acknowledge an incident"), ("mitigate", "mark an incident mitigated"),
                            ("resolve", "resolve an incident")):
        p = action(name, help_text)
        p.add_argument("id", metavar="ID", help="INC-7, inc-7 or 7")
        p.add_argument("--note", default="", metavar="TEXT", help="said on the timeline with the change")
    note = action("note", "add a note to an incident's timeline")
    note.add_argument("id", metavar="ID", help="INC-7, inc-7 or 7")
    note.add_argument("text", metavar="TEXT", help="the note")


# -- JSON -------------------------------------------------------------------------------------


def iso(t: datetime | None) -> str | None:
    return t.isoformat(timespec="seconds") + "Z" if t else None


def incident_json(i: Incident) -> dict[str, Any]:
    return {"id": i.id, "title": i.title, "severity": i.severity, "state": i.state, "owner": i.owner,
            "opened_at": iso(i.opened_at), "acknowledged_at": iso(i.acknowledged_at),
            "mitigated_at": iso(i.mitigated_at), "resolved_at": iso(i.resolved_at),
            "causes": list(i.causes), "auto": i.auto, "updated_at": iso(i.updated_at)}


def entry_json(e: TimelineEntry) -> dict[str, Any]:
    return {"incident_id": e.incident_id, "seq": e.seq, "at": iso(e.at), "kind": e.kind,
            "author": e.author, "text": e.text, "data": e.data}


# -- text -------------------------------------------------------------------------------------


def age(since: datetime, now: datetime) -> str:
    """`45s`, `12m`, `3h`, `2d` (how long ago)."""
    seconds = max(0, int((now - since).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def when(t: datetime | None) -> str:
    return f"{t:%Y-%m-%d %H:%M:%S}Z" if t else "-"


def _list_text(incidents: list[Incident], include_resolved: bool, out: TextIO) -> None:
    from console.timeutil import utc_now

    if not incidents:
        out.write("no incidents\n" if include_resolved else
                  "no unresolved incidents (--all shows resolved ones too)\n")
        return
    now = utc_now()
    out.write(f"{'ID':<9}  {'SEV':<4}  {'STATE':<12}  {'AGE':>5}  {'OWNER':<12}  TITLE  [CAUSES]\n")
    for i in incidents:
        causes = f"  [{cell(', '.join(i.causes), 120)}]" if i.causes else ""
        auto = " (auto)" if i.auto else ""
        out.write(f"{cell(i.id, 9):<9}  {cell(i.severity, 4):<4}  {cell(i.state, 12):<12}"
                  f"  {age(i.opened_at, now):>5}"
                  f"  {cell(i.owner, 12):<12}  {cell(i.title, 100)}{auto}{causes}\n")
    open_count = sum(1 for i in incidents if not i.resolved)
    out.write(f"{open_count} unresolved, {len(incidents) - open_count} resolved shown\n")


def _show_text(i: Incident, timeline: list[TimelineEntry], out: TextIO, data: bool = False) -> None:
    auto = "  (opened automatically)" if i.auto else ""
    out.write(f"{cell(i.id, 40)}  {cell(i.severity, 10)}  {cell(i.state, 20)}{auto}\n")
    out.write(f"title:        {cell(i.title, 200)}\n")
    out.write(f"owner:        {cell(i.owner, 100)}\n")
    out.write(f"opened:       {when(i.opened_at)}\n")
    out.write(f"acknowledged: {when(i.acknowledged_at)}\n")
    out.write(f"mitigated:    {when(i.mitigated_at)}\n")
    out.write(f"resolved:     {when(i.resolved_at)}\n")
    out.write(f"causes:       {cell(', '.join(i.causes), 500) if i.causes else '-'}\n")
    out.write("timeline:\n")
    for e in timeline:
        out.write(f"  {when(e.at)}  {cell(e.kind, 14):<14}  {cell(e.author, 16):<16}  {cell(e.text, 500)}\n")
        if data and e.data:
            out.write(f"{'':<24}data: {cell(json.dumps(e.data, sort_keys=True), 2000)}\n")


def _changed_text(i: Incident, out: TextIO) -> None:
    out.write(f"{cell(i.id, 40)} is {cell(i.state, 20)} ({cell(i.severity, 10)}, owner {cell(i.owner, 100)}):"
              f" {cell(i.title, 100)}\n")


# -- main -------------------------------------------------------------------------------------


def _run(store: IncidentStore, args: argparse.Namespace, out: TextIO) -> dict[str, Any]:
    """Do the command; write the text form unless --json; return the JSON form."""
    command = args.incidents_command
    if command == "list":
        incidents = store.list(include_resolved=args.all, limit=args.limit)
        if not args.json:
            _list_text(incidents, args.all, out)
        return {"incidents": [incident_json(i) for i in incidents], "count": len(incidents)}
    if command == "show":
        incident = store.get(args.id)
        timeline = store.timeline(incident.id)
        if not args.json:
            _show_text(incident, timeline, out, args.data)
        return {"incident": incident_json(incident), "timeline": [entry_json(e) for e in timeline]}
    if command == "open":
        incident, created = store.open(args.title, severity=args.severity, owner=args.owner,
                                       cause=args.cause)
        if not args.json:
            if created:
                out.write(f"opened {cell(incident.id, 40)} ({cell(incident.severity, 10)}, owner"
                          f" {cell(incident.owner, 100)}): {cell(incident.title, 200)}\n")
            else:
                out.write(f"{cell(incident.id, 40)} is already {cell(incident.state, 20)} for"
                          f" {cell(args.cause, 300)}: {cell(incident.title, 200)} (nothing opened)\n")
        return {"incident": incident_json(incident), "created": created}
    if command == "note":
        entry = store.note(args.id, args.text)
        incident = store.get(entry.incident_id)
        if not args.json:
            out.write(f"noted on {cell(incident.id, 40)} (#{entry.seq}): {cell(entry.text, 200)}\n")
        return {"incident": incident_json(incident), "entry": entry_json(entry)}
    step = {"ack": store.acknowledge, "mitigate": store.mitigate, "resolve": store.resolve}[command]
    incident = step(args.id, note=args.note)
    if not args.json:
        _changed_text(incident, out)
    return {"incident": incident_json(incident)}


def main_incidents(args: argparse.Namespace, parser: argparse.ArgumentParser, out: TextIO,
                   err: TextIO) -> int:
    from console.incidents import IncidentError, IncidentStore
    from console.state_db import StateError

    if getattr(args, "incidents_command", None) not in COMMANDS:
        parser.parse_args(["incidents", "--help"])  # prints the usage and exits 0
        return EXIT_PROBLEM
    store = IncidentStore()
    try:
        answer = _run(store, args, out)
        code = EXIT_OK
    except IncidentError as exc:
        answer, code = {"error": str(exc)}, EXIT_NOT_DONE
    except StateError as exc:
        answer, code = {"error": str(exc)}, EXIT_PROBLEM
    finally:
        store.close()
    if code != EXIT_OK:
        err.write(f"llmdeck: incidents {args.incidents_command}: {cell(answer['error'], 1000)}\n")
    if args.json:
        out.write(json.dumps(answer | {"exit_code": code}) + "\n")
    return code
