"""`llmdeck secrets set|list|delete`: store, check and remove the secrets the config refers to."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from console.safe_text import cell

if TYPE_CHECKING:
    from console.config import Config

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
_SHOWN = {"refused": "backend refused", "locked": "keyring locked", "timeout": "keyring timeout"}


@dataclass(frozen=True)
class RefUse:
    """One place the config names a secret: which source, which setting, which reference."""

    source: str
    kind: str
    setting: str
    ref: str


def config_refs(config: Config) -> list[RefUse]:
    """Every secret reference the config uses, in config order."""
    s = config.sources
    uses: list[RefUse] = []
    for kind, http in (("prometheus", s.prometheus), ("alertmanager", s.alertmanager),
                       ("scrape", s.scrape)):
        for src in http:
            uses += [RefUse(src.name, kind, setting, ref) for setting, ref in src.secret_refs()]
    for kind, billing in (("openai_billing", s.openai_billing), ("anthropic_billing", s.anthropic_billing),
                          ("openrouter_billing", s.openrouter_billing)):
        uses += [RefUse(b.name, kind, "admin_key_ref", b.admin_key_ref) for b in billing]
    uses += [RefUse(lite.name, "litellm", "key_ref", lite.key_ref) for lite in s.litellm if lite.key_ref]
    return uses


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The `secrets` subcommand and its three actions."""
    sec = sub.add_parser("secrets", help="store, check and delete the secrets the config refers to",
                         description="Secrets are named in the config by reference: env:VAR or"
                         " keyring:SERVICE/NAME. Values are never printed.")
    actions = sec.add_subparsers(dest="secrets_command", metavar="ACTION")
    put = actions.add_parser("set", help="store a keyring: secret (typed without echo, or one line on stdin)")
    put.add_argument("ref", metavar="REF", help="keyring:SERVICE/NAME")
    lst = actions.add_parser("list", help="every reference the config uses and whether it resolves"
                             " (exit 0 all found, 1 otherwise)")
    lst.add_argument("--json", action="store_true", help="print one JSON object")
    lst.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                     help="config file (default $XDG_CONFIG_HOME/llmdeck/config.toml)")
    rm = actions.add_parser("delete", help="remove a keyring: secret")
    rm.add_argument("ref", metavar="REF", help="keyring:SERVICE/NAME")
    for p in (put, lst, rm):
        p.add_argument("--insecure-storage", action="store_true", default=argparse.SUPPRESS,
                       help="keep keyring: secrets in plaintext 0600 files (same as the global flag)")


def _read_value(ref: str, stdin: TextIO) -> str:
    if stdin.isatty():
        try:
            return getpass.getpass(f"value for {ref} (not echoed): ")
        except EOFError:
            return ""
    line = stdin.readline()
    return line[:-1] if line.endswith("\n") else line


def _set(ref: str, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    from console import secrets

    try:
        secrets.storable_ref(ref, "set")
        value = _read_value(ref, stdin).removesuffix("\r")
        if not value:
            err.write(f"llmdeck: no value given for {ref}; nothing stored\n")
            return EXIT_USAGE
        where = secrets.store(ref, value)
    except secrets.SecretError as exc:
        err.write(f"llmdeck: {cell(str(exc), 600)}\n")
        return EXIT_USAGE if exc.state == "invalid" else EXIT_PROBLEM
    out.write(f"stored {ref} in the {cell(where, 300)}\n")
    return EXIT_OK


def _delete(ref: str, out: TextIO, err: TextIO) -> int:
    from console import secrets

    try:
        deleted = secrets.delete(ref)
    except secrets.SecretError as exc:
        err.write(f"llmdeck: {cell(str(exc), 600)}\n")
        return EXIT_USAGE if exc.state == "invalid" else EXIT_PROBLEM
    if not deleted:
        err.write(f"llmdeck: {ref}: nothing stored under this reference; nothing deleted\n")
        return EXIT_PROBLEM
    out.write(f"deleted {ref}\n")
    return EXIT_OK


def _list(config: Config, as_json: bool, out: TextIO) -> int:
    from console import secrets

    uses = config_refs(config)
    checks: dict[str, secrets.SecretCheck] = {}
    for use in uses:
        if use.ref not in checks:
            checks[use.ref] = secrets.check(use.ref)
    ok = all(c.state == "found" for c in checks.values())
    if as_json:
        rows = [{"reference": u.ref, "source": u.source, "kind": u.kind, "setting": u.setting,
                 "state": checks[u.ref].state, "origin": checks[u.ref].origin or None,
                 "message": checks[u.ref].message} for u in uses]
        out.write(json.dumps({"ok": ok, "insecure_storage": secrets.insecure_storage_in_use(),
                              "secrets": rows}) + "\n")
        return EXIT_OK if ok else EXIT_PROBLEM
    if not uses:
        out.write("the config refers to no secrets\n")
        return EXIT_OK
    table = [("REFERENCE", "SOURCE", "SETTING", "STATE")]
    for u in uses:
        c = checks[u.ref]
        state = f"found ({c.origin})" if c.state == "found" else _SHOWN.get(c.state, c.state)
        table.append((cell(u.ref, 60), cell(f"{u.source} ({u.kind})", 50), cell(u.setting, 40), state))
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        out.write("  ".join(v.ljust(w) for v, w in zip(row[:3], widths, strict=True)) + f"  {row[3]}\n")
    problems: dict[str, list[str]] = {}  # one line per distinct problem, naming every ref it hits
    for c in checks.values():
        if c.state != "found":
            problems.setdefault(c.message.removeprefix(f"{c.ref}: "), []).append(c.ref)
    for why, refs in problems.items():
        out.write(f"{cell(', '.join(refs), 300)}: {cell(why, 600)}\n")
    return EXIT_OK if ok else EXIT_PROBLEM


def main_secrets(args: argparse.Namespace, parser: argparse.ArgumentParser, out: TextIO,
                 err: TextIO, stdin: TextIO | None = None) -> int:
    """Run `llmdeck secrets ACTION`; returns the exit code."""
    from console import secrets

    action = getattr(args, "secrets_command", None)
    if action is None:
        parser.parse_args(["secrets", "--help"])
    if getattr(args, "insecure_storage", False) and not secrets.insecure_storage_in_use():
        secrets.enable_insecure_storage()
    if action == "set":
        return _set(args.ref, out, err, stdin or sys.stdin)
    if action == "delete":
        return _delete(args.ref, out, err)
    from console.config import ConfigError, load_config

    try:
        config = load_config(args.config, os.environ)
    except ConfigError as exc:
        from console.cli_errors import config_error_text

        err.write(config_error_text(exc))
        return EXIT_PROBLEM
    return _list(config, args.json, out)
