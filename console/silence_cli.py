"""`llmdeck silence create|expire`: print the plan, ask, and hand it to `console.silences.apply`.

Nothing here sends a request of its own: every write goes through `silences.apply`,
which refuses in read-only mode, in a dry run, and when the confirmation below says no.
The confirmation is the source's name typed on a terminal; Enter alone is a no.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from console.alerts_cli import alert_json, headers_or_error, labels_text, one_alertmanager, when
from console.safe_text import cell, sanitize

if TYPE_CHECKING:
    from connectors.alertmanager import AlertmanagerClient
    from console.config import Config
    from console.silences import SilenceOutcome, SilencePlan

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_SENT = 3
PROMPT = "Type the source name to confirm: "
SILENCE_HELP = (
    "Create or expire an Alertmanager silence. The plan (the exact request, secrets masked, and the"
    " alerts it affects) is printed first; then you type the source name to confirm, or pass --yes."
    " Without a terminal and without --yes nothing is sent. LLMDECK_READONLY=1, --read-only, or an"
    " [actions] prod = true environment without `llmdeck --write` refuse every write. Each attempt"
    " is recorded in the audit journal (`llmdeck audit show`). Exit code:"
    " 0 done and verified (or --dry-run shown), 1 the request failed or could not be verified,"
    " 2 bad input or config, 3 nothing sent (read-only, not confirmed)."
)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """`silence create|expire`."""
    si = sub.add_parser("silence", help="create or expire an Alertmanager silence (plan, confirm, verify)",
                        description=SILENCE_HELP)
    actions = si.add_subparsers(dest="silence_command", metavar="ACTION")
    create = actions.add_parser("create", help="silence the alerts the matchers select",
                                description=SILENCE_HELP)
    create.add_argument("--matcher", "-m", action="append", default=[], metavar="MATCHER", required=True,
                        help="NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX (repeat for several)")
    create.add_argument("--for", dest="length", required=True, metavar="DURATION",
                        help="how long: 2h, 90m, 1h30m, 1d (at most 366 days)")
    create.add_argument("--comment", "-c", required=True, help="why (Alertmanager requires it)")
    create.add_argument("--created-by", default=None,
                        help="author recorded in the silence (default: the OS user)")
    expire = actions.add_parser("expire", help="expire (end now) a silence by id", description=SILENCE_HELP)
    expire.add_argument("silence_id", metavar="ID", help="the silence id (see `llmdeck silences`)")
    for p in (create, expire):
        p.add_argument("--source", metavar="NAME", help="the Alertmanager source (needed if several)")
        p.add_argument("--dry-run", action="store_true", help="print the plan and send nothing")
        p.add_argument("--yes", action="store_true", help="confirmed: do not ask on the terminal")
        p.add_argument("--read-only", action="store_true", help="refuse to send (as LLMDECK_READONLY=1)")
        p.add_argument("--json", action="store_true", help="print one JSON object (plan and outcome)")



def plan_text(plan: SilencePlan) -> str:
    """The plan as the operator reads it before confirming (untrusted text made inert)."""
    verb = "Create a silence" if plan.action == "create" else f"Expire silence {plan.silence_id}"
    lines = [f"{verb} on Alertmanager source {cell(plan.source, 60)}",
             f"  matchers    {cell(' '.join(str(m) for m in plan.matchers), 200)}"]
    if plan.action == "create":
        lines.append(f"  ends        {when(plan.ends)}")
    lines += [f"  comment     {cell(plan.comment, 200)}", f"  created by  {cell(plan.created_by, 60)}"]
    doing = "silence" if plan.action == "create" else "stop silencing"
    if plan.affects:
        lines.append(f"It will {doing} {len(plan.affects)} alert(s) now:")
        lines += [f"  {a.state:<11} {cell(a.name, 40)}  {cell(labels_text(a.labels, ('alertname',)), 100)}"
                  for a in plan.affects[:20]]
        if len(plan.affects) > 20:
            lines.append(f"  ... and {len(plan.affects) - 20} more")
    else:
        lines.append(f"It will {doing} no alert that is active now.")
    lines.append("Request:")
    lines += [f"  {line}" for line in sanitize(plan.request, max_chars=20_000).splitlines()]
    return "\n".join(lines) + "\n"


def plan_json(plan: SilencePlan) -> dict[str, Any]:
    return {"source": plan.source, "action": plan.action, "silence_id": plan.silence_id or None,
            "matchers": [str(m) for m in plan.matchers], "ends": plan.ends.isoformat() + "Z",
            "comment": plan.comment, "created_by": plan.created_by, "request": plan.request,
            "affects": [alert_json(a) for a in plan.affects]}


def outcome_json(outcome: SilenceOutcome) -> dict[str, Any]:
    return {"status": outcome.status, "sent": outcome.sent, "ok": outcome.ok, "detail": outcome.detail,
            "silence_id": outcome.silence_id or None, "suppressed": list(outcome.suppressed)}


def terminal_confirm(source: str, yes: bool, ask: TextIO, stdin: TextIO) -> Callable[[SilencePlan], bool]:
    """True only with --yes, or when the source name is typed on a terminal; never by default."""
    def confirm(plan: SilencePlan) -> bool:
        if yes:
            return True
        if not stdin.isatty():
            ask.write("llmdeck: no terminal to confirm on: pass --yes to send, or --dry-run to preview\n")
            return False
        ask.write(PROMPT)
        ask.flush()
        answer = stdin.readline()
        if answer.strip() != source:
            ask.write("llmdeck: not confirmed\n")
            return False
        return True
    return confirm


def exit_code(outcome: SilenceOutcome) -> int:
    if outcome.ok:
        return EXIT_OK
    return EXIT_NOT_SENT if not outcome.sent and outcome.status in ("refused", "cancelled") else EXIT_FAILED


async def _run(client: AlertmanagerClient, args: argparse.Namespace, out: TextIO, err: TextIO,
               stdin: TextIO, config: Config | None = None) -> int:
    from connectors.http import SourceError
    from console import silence_input, silences

    try:
        if args.silence_command == "create":
            matchers = silence_input.parse_matchers(args.matcher)
            length = silence_input.parse_for(args.length)
            comment = silence_input.check_comment(args.comment)
            plan = await silences.plan_create(client, matchers, length, comment, created_by=args.created_by)
        else:
            plan = await silences.plan_expire(client, args.silence_id.strip())
    except silence_input.SilenceInputError as exc:
        err.write(f"llmdeck: silence {args.silence_command}: {exc}\n")
        return EXIT_USAGE
    except (silences.PlanError, SourceError) as exc:
        err.write(f"llmdeck: silence {args.silence_command}: {cell(str(exc), 300)}: nothing sent\n")
        return EXIT_FAILED
    write = bool(getattr(args, "global_write", False))  # `llmdeck --write` (console/cli.py's dest)
    refused = silences.send_mode(config, read_only=args.read_only, write=write).read_only
    prompting = not (args.yes or args.dry_run or refused)
    if not args.json:
        out.write(plan_text(plan))
        out.flush()
    elif prompting:  # the JSON goes to stdout at the end; the operator must read the plan first
        err.write(plan_text(plan))
    confirm = terminal_confirm(plan.source, args.yes, err, stdin)
    outcome = await silences.apply(plan, client, confirm=confirm, dry_run=args.dry_run,
                                   read_only=args.read_only, write=write,
                                   config=config, origin="cli")
    if args.json:
        out.write(json.dumps({"plan": plan_json(plan), "outcome": outcome_json(outcome)}) + "\n")
    else:
        if outcome.ok:
            out.write(f"{cell(outcome.detail, 400)}\n")
        else:
            err.write(f"llmdeck: {outcome.status}: {cell(outcome.detail, 400)}\n")
    return exit_code(outcome)


def main_silence(config: Config, args: argparse.Namespace, parser: argparse.ArgumentParser,
                 out: TextIO, err: TextIO, stdin: TextIO | None = None) -> int:
    """`llmdeck silence create|expire`."""
    import asyncio

    if args.silence_command not in ("create", "expire"):
        parser.parse_args(["silence", "--help"])
    try:
        source = one_alertmanager(config, args.source)
    except ValueError as exc:
        err.write(f"llmdeck: silence {args.silence_command}: {exc}\n")
        return EXIT_USAGE
    headers, problem = headers_or_error(source)
    if problem:
        err.write(f"llmdeck: silence {args.silence_command}: {cell(problem, 300)}: nothing sent\n")
        return EXIT_FAILED
    from connectors.alertmanager import AlertmanagerClient

    async def run() -> int:
        client = AlertmanagerClient.for_source(source, headers)
        try:
            return await _run(client, args, out, err, stdin or sys.stdin, config)
        finally:
            await client.aclose()
    return asyncio.run(run())
