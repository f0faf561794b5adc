"""`llmdeck runbook list|plan|apply|undo|reverts|verify`: runbook actions from the command line.

The CLI is one more entry path to the same choke point (`console.runbooks.ActionDesk.apply`):
it decides nothing itself. `apply` plans (reads only), prints the plan, and hands the desk
`--confirm TARGET` as the typed confirmation; read-only (`--read-only`, LLMDECK_READONLY=1,
a prod environment without the global `--write`), `--dry-run` and the role are checked
inside the desk. Every untrusted text (targets, values read from the gateway, error bodies)
reaches the terminal through console.safe_text.

    llmdeck runbook list [--json]
    llmdeck runbook plan NAME --param k=v ... [--incident ID] [--json]
    llmdeck [--write] runbook apply NAME --param k=v ... --confirm TARGET [--incident ID] [--dry-run] [--json]
    llmdeck [--write] runbook undo ACTION_ID --confirm TARGET [--dry-run] [--json]
    llmdeck [--write] runbook reverts [--run] [--json]     pending time-box reverts (--run: do the due ones)
    llmdeck runbook verify [ACTION_ID] [--json]           unknown outcomes; with an id, read it back

Exit codes: 0 done (planned, applied, dry run, verified); 1 not done (refused, cancelled,
failed, unverified, unknown, a revert still pending) or bad input (unknown action, bad
param); 2 a problem (runbook files, state file or audit journal unusable).
`--json` prints ONE JSON object: {"plan": ..., "outcome": ..., "exit_code": n} and the like.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TextIO

from console.safe_text import cell, sanitize

if TYPE_CHECKING:
    from console.action_types import Outcome, Plan
    from console.config import Config
    from console.runbooks import ActionDesk

EXIT_OK = 0
EXIT_NOT_DONE = 1
EXIT_PROBLEM = 2
HELP = ("Runbook actions through the one guarded choke point: plan (reads only), confirm by typing the"
        " target, apply, verify, audit. Read-only with --read-only, LLMDECK_READONLY=1, or in a prod"
        " environment unless llmdeck runs with --write.")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rb = sub.add_parser("runbook", help="runbook actions: list, plan, apply, undo, reverts, verify",
                        description=HELP)
    actions = rb.add_subparsers(dest="runbook_command", metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        p = actions.add_parser(name, help=help_text, description=f"{help_text}. {HELP}")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        return p

    action("list", "the actions of the built-in and your runbooks")
    for name, text in (("plan", "read the current state and show what an action would send"),
                       ("apply", "plan, then apply if every guard passes")):
        p = action(name, text)
        p.add_argument("name", metavar="NAME", help="the action (see `runbook list`)")
        p.add_argument("--param", action="append", default=[], metavar="K=V", help="a parameter (repeat)")
        p.add_argument("--incident", default=None, metavar="ID",
                       help="write intent and outcome on its timeline")
        if name == "apply":
            _confirm_args(p)
    undo = action("undo", "put back the state captured before an action")
    undo.add_argument("action_id", metavar="ACTION_ID")
    _confirm_args(undo)
    rev = action("reverts", "pending time-box reverts, loudly when one could not run")
    rev.add_argument("--run", action="store_true", help="perform the due reverts now")
    ver = action("verify", "actions whose outcome is unknown; with an id, read it back and settle it")
    ver.add_argument("action_id", nargs="?", default=None, metavar="ACTION_ID")


def _confirm_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--confirm", default=None, metavar="TARGET",
                   help="type the target (or `yes` for an action that is not dangerous)")
    p.add_argument("--dry-run", action="store_true", help="plan and stop: nothing is sent")


def parse_params(pairs: list[str]) -> dict[str, str]:
    """`["tpm_limit=100", ...]` -> {"tpm_limit": "100"}; ValueError naming a bad or repeated one."""
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--param {pair!r}: expected NAME=VALUE")
        if name in params:
            raise ValueError(f"--param {name}: given twice")
        params[name] = value
    return params


def main_runbook(config: Config, args: argparse.Namespace, parser: argparse.ArgumentParser,
                 out: TextIO, err: TextIO) -> int:
    command = getattr(args, "runbook_command", None)
    if command is None:
        parser.parse_args(["runbook", "--help"])
        return EXIT_PROBLEM
    from console.action_types import ActionError
    from console.runbook_files import RunbookError
    from console.runbooks import ActionDesk
    from console.state_db import StateError

    as_json = bool(args.json)
    try:
        params = parse_params(getattr(args, "param", []))
        dry_run = getattr(args, "dry_run", False) or getattr(args, "global_dry_run", False)
        desk = ActionDesk(config, write=bool(getattr(args, "global_write", False)), dry_run=bool(dry_run))
    except (ValueError, RunbookError) as exc:
        return _fail(exc, EXIT_PROBLEM if isinstance(exc, RunbookError) else EXIT_NOT_DONE, as_json, out, err)
    work: dict[str, Callable[[], Awaitable[int]]] = {
        "list": lambda: _list(desk, as_json, out),
        "plan": lambda: _plan(desk, args, params, as_json, out),
        "apply": lambda: _apply(desk, args, params, as_json, out),
        "undo": lambda: _undo(desk, args, as_json, out),
        "reverts": lambda: _reverts(desk, args.run, as_json, out),
        "verify": lambda: _verify(desk, args.action_id, as_json, out),
    }

    async def run() -> int:
        try:
            return await work[command]()
        finally:
            await desk.aclose()

    try:
        return asyncio.run(run())
    except ActionError as exc:
        return _fail(exc, EXIT_PROBLEM if isinstance(exc, RunbookError) else EXIT_NOT_DONE, as_json, out, err)
    except BrokenPipeError:
        raise
    except (StateError, OSError) as exc:
        return _fail(exc, EXIT_PROBLEM, as_json, out, err)


def _fail(exc: Exception, code: int, as_json: bool, out: TextIO, err: TextIO) -> int:
    lines = str(exc).splitlines() or [type(exc).__name__]
    for line in lines:
        err.write(f"llmdeck runbook: {cell(line, 1000)}\n")
    if as_json:
        out.write(json.dumps({"error": str(exc), "exit_code": code}) + "\n")
    return code


# ---- commands -----------------------------------------------------------------------------------


async def _list(desk: ActionDesk, as_json: bool, out: TextIO) -> int:
    specs = desk.actions()
    if as_json:
        out.write(json.dumps({"actions": [spec_json(s) for s in specs], "mode": mode_json(desk),
                              "exit_code": EXIT_OK}) + "\n")
        return EXIT_OK
    out.write(f"{_mode_line(desk)}\n")
    for s in specs:
        flags = " ".join(f for f in ("dangerous" if s.dangerous else "", f"for {_box(s.time_box)}"
                                     if s.time_box else "") if f)
        out.write(f"{cell(s.name, 40):<18} {s.role:<9} {cell(s.adapter, 40):<22} {cell(s.title, 60)}"
                  f"{'  [' + flags + ']' if flags else ''}\n")
        for p in s.params:
            what = p.type + (" required" if p.required else "") + (" secret" if p.secret else "")
            default = "" if p.default is None else f" = {json.dumps(p.default)}"
            fixed = " (fixed)" if p.fixed else ""
            out.write(f"    --param {cell(p.name, 40)}=  {what}{cell(default, 60)}{fixed}"
                      f"{'  ' + cell(p.help, 80) if p.help else ''}\n")
    return EXIT_OK


async def _plan(desk: ActionDesk, args: argparse.Namespace, params: dict[str, str], as_json: bool,
                out: TextIO) -> int:
    plan = await desk.plan(args.name, params, origin="cli", incident_id=args.incident)
    if as_json:
        out.write(json.dumps({"plan": plan_json(plan), "mode": mode_json(desk), "exit_code": EXIT_OK}) + "\n")
    else:
        write_plan(desk, plan, out)
        from console.runbook_files import MASK

        shown = plan.params  # secret (and key-shaped) values masked: never echoed to the terminal
        given = "".join(f" --param {cell(k, 60)}={cell(MASK if shown.get(k) == MASK else v, 200)}"
                        for k, v in params.items())
        out.write(f"to apply: llmdeck runbook apply {cell(plan.action, 60)}{given}"
                  f" --confirm {cell(plan.target, 200)}\n")
    return EXIT_OK


async def _apply(desk: ActionDesk, args: argparse.Namespace, params: dict[str, str], as_json: bool,
                 out: TextIO) -> int:
    plan = await desk.plan(args.name, params, origin="cli", incident_id=args.incident)
    return await _settle(desk, plan, args.confirm, as_json, out)


async def _undo(desk: ActionDesk, args: argparse.Namespace, as_json: bool, out: TextIO) -> int:
    plan = await desk.undo(args.action_id)
    return await _settle(desk, plan, args.confirm, as_json, out)


async def _settle(desk: ActionDesk, plan: Plan, confirm: str | None, as_json: bool, out: TextIO) -> int:
    from console.action_types import Confirmation

    if not as_json:
        write_plan(desk, plan, out)
    outcome = await desk.apply(plan, None if confirm is None else Confirmation(confirm))
    code = EXIT_OK if outcome.ok else EXIT_NOT_DONE
    if as_json:
        out.write(json.dumps({"plan": plan_json(plan), "outcome": outcome_json(outcome), "exit_code": code})
                  + "\n")
    else:
        write_outcome(outcome, out)
    return code


async def _reverts(desk: ActionDesk, run: bool, as_json: bool, out: TextIO) -> int:
    outcomes = await desk.run_due_reverts() if run else []
    pending = desk.pending_reverts()
    now = desk.clock()
    code = EXIT_NOT_DONE if any(p.reason for p in pending) or any(not o.ok and o.status != "refused"
                                                                 for o in outcomes) else EXIT_OK
    if as_json:
        out.write(json.dumps({"ran": [outcome_json(o) for o in outcomes], "pending": [
            {"action_id": p.action_id, "action": p.action, "target": p.target, "gateway": p.gateway,
             "due_at": _iso(p.due_at), "due": p.due_at <= now, "reason": p.reason, "attempts": p.attempts}
            for p in pending], "exit_code": code}) + "\n")
        return code
    for o in outcomes:
        write_outcome(o, out)
    if not pending:
        out.write("no pending reverts\n")
    for p in pending:
        head = f"{p.action_id}  {cell(p.action, 40)} on {cell(p.target, 80)}  due {p.due_at:%Y-%m-%d %H:%M}Z"
        if p.reason:
            out.write(f"REVERT NOT DONE  {head}  (tried {p.attempts}x): {cell(p.reason, 400)}\n")
        else:
            due = "  (due now: llmdeck runbook reverts --run)" if p.due_at <= now else ""
            out.write(f"pending  {head}{due}\n")
    return code


async def _verify(desk: ActionDesk, action_id: str | None, as_json: bool, out: TextIO) -> int:
    if action_id is not None:
        outcome = await desk.resolve_unknown(action_id)
        if as_json:
            out.write(json.dumps({"outcome": outcome_json(outcome), "exit_code": EXIT_OK}) + "\n")
        else:
            write_outcome(outcome, out)
        return EXIT_OK
    unknown = [{"action_id": r.action_id, "action": r.action, "target": r.target, "gateway": r.gateway,
                "at": _iso(r.created_at), "detail": r.detail, "sent": True} for r in desk.unknown_outcomes()]
    unknown += [{"action_id": r.action_id, "action": r.action, "target": r.get("target"),
                 "gateway": r.get("gateway"), "at": _iso(r.ts), "sent": False,
                 "detail": "intent recorded, then the process stopped before sending"}
                for r in desk.unclaimed_intents()]
    code = EXIT_NOT_DONE if unknown else EXIT_OK
    if as_json:
        out.write(json.dumps({"unknown": unknown, "exit_code": code}) + "\n")
        return code
    if not unknown:
        out.write("no actions with an unknown outcome\n")
    for u in unknown:
        what = cell(u["detail"] or "sent; the process stopped before the outcome", 200)
        out.write(f"OUTCOME UNKNOWN  {u['action_id']}  {cell(u['action'], 40)} on {cell(u['target'], 80)}"
                  f"  {str(u['at'])[:16]}Z: {what}; llmdeck runbook verify {u['action_id']}\n")
    return code


# ---- text and JSON --------------------------------------------------------------------------------


def _mode_line(desk: ActionDesk) -> str:
    m = desk.mode
    reason = f" ({cell(m.reason, 200)})" if m.read_only else ""
    return f"environment {cell(m.environment, 60)} · {m.label()}{reason} · {cell(m.user, 60)} is {m.role}"


def write_plan(desk: ActionDesk, plan: Plan, out: TextIO) -> None:
    out.write(f"{cell(plan.action, 60)}: {cell(plan.title, 200)}\n  {_mode_line(desk)}\n")
    out.write(f"  target    {cell(plan.target, 200)}  (gateway {cell(plan.gateway or '-', 60)}; needs role"
              f" {plan.role}{'; DANGEROUS' if plan.dangerous else ''})\n")
    for d in plan.diff:
        out.write(f"  change    {cell(d.field, 60)}: {cell(d.before, 100)} -> {cell(d.after, 100)}\n")
    if not plan.requests:
        out.write("  requests  none\n")
    for r in plan.requests:
        text = sanitize(r.text, max_chars=4000).replace("\n", "\n            ")
        out.write(f"  request   {text}\n")
    for note in plan.notes:
        out.write(f"  note      {cell(note, 300)}\n")


def write_outcome(outcome: Outcome, out: TextIO) -> None:
    ident = f" action {outcome.action_id}" if outcome.action_id else ""
    out.write(f"{outcome.status.upper()}{ident}: {cell(outcome.detail, 1000)}\n")


def _iso(at: Any) -> str | None:
    return None if at is None else at.isoformat(timespec="seconds") + "Z"


def _box(value: Any) -> str:
    from console.runbook_files import format_duration

    return format_duration(value)


def mode_json(desk: ActionDesk) -> dict[str, Any]:
    m = desk.mode
    return {"read_only": m.read_only, "reason": m.reason, "dry_run": m.dry_run, "role": m.role,
            "user": m.user, "environment": m.environment}


def spec_json(s: Any) -> dict[str, Any]:
    return {"name": s.name, "title": s.title, "description": s.description, "adapter": s.adapter,
            "gateway": s.gateway, "dangerous": s.dangerous, "role": s.role,
            "time_box_seconds": None if s.time_box is None else s.time_box.total_seconds(),
            "revert": s.revert, "target": s.target, "builtin": s.builtin, "where": s.where,
            "params": [{"name": p.name, "type": p.type, "required": p.required, "default": p.default,
                        "choices": list(p.choices), "min": p.min, "max": p.max, "help": p.help,
                        "secret": p.secret, "fixed": p.fixed} for p in s.params]}


def plan_json(plan: Plan) -> dict[str, Any]:
    return {"plan_id": plan.plan_id, "action": plan.action, "title": plan.title, "adapter": plan.adapter,
            "params": plan.params, "target": plan.target, "gateway": plan.gateway,
            "dangerous": plan.dangerous, "role": plan.role,
            "time_box_seconds": None if plan.time_box is None else plan.time_box.total_seconds(),
            "origin": plan.origin, "incident_id": plan.incident_id,
            "diff": [{"field": d.field, "before": d.before, "after": d.after} for d in plan.diff],
            "requests": [{"method": r.method, "text": r.text} for r in plan.requests],
            "before": plan.before, "desired": plan.desired, "pre_state_hash": plan.pre_state_hash,
            "idempotency_key": plan.idempotency_key, "created_at": _iso(plan.created_at),
            "notes": list(plan.notes), "revert_of": plan.revert_of}


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    return {"status": outcome.status, "sent": outcome.sent, "detail": outcome.detail,
            "action_id": outcome.action_id, "revert_due": _iso(outcome.revert_due), "ok": outcome.ok}
