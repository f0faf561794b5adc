"""The silence actions on the action desk: `silence.create` and `silence.expire`.

`console.silences.apply` (the CLI's `llmdeck silence`, the console's silence dialog) hands
its plan to an `ActionDesk` built here, so a silence passes the same guards, audit and
state file as every runbook action. The desk's adapter is `alertmanager.silence` over the
caller's own Alertmanager client (the console's poller client, the CLI's, a test's), so no
second connection or credential lookup is made; the caller closes that client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from console.action_types import Adapter, Role
from console.adapters.alertmanager import KIND, SilenceAdapter
from console.runbook_files import ActionSpec, ParamSpec
from console.runbooks import ActionDesk

if TYPE_CHECKING:
    from connectors.alertmanager import AlertmanagerClient
    from console.audit import AuditJournal
    from console.config import Config

WHERE = "console/silence_desk.py"
ROLE: Role = "viewer"
"""The role every door to a silence requires (see `silence_catalog`)."""
_MATCHERS = ParamSpec("matchers", "list", required=True,
                      help="NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX")


def silence_catalog(source: str) -> dict[str, ActionSpec]:
    """The two silence actions on Alertmanager source `source`. Role viewer: silencing needs no
    [actions.roles] entry (as in issue 11); read-only, prod without --write, dry-run and the
    typed confirmation still apply at the desk. The built-in runbook's silence-alert /
    expire-silence (console/data/runbooks/silences.toml) say the same role, so which role may
    silence does not depend on the door used (review finding 8; `ROLE` is that one role; a
    responder role was tried and would stop every silence under a default config)."""
    create = ActionSpec(
        name="silence.create", title=f"Silence alerts in {source}", adapter=KIND, gateway=source,
        description="Create an Alertmanager silence for the matchers; undo expires it.",
        dangerous=False, role=ROLE, time_box=None, revert="restore", target="",
        params=(_MATCHERS, ParamSpec("duration", "duration", required=True, help="how long"),
                ParamSpec("comment", "str", required=True, help="why"),
                ParamSpec("silenced", "bool", default_json="true", fixed=True)),
        options_json="{}", runbook="silences", where=WHERE, builtin=True)
    expire = ActionSpec(
        name="silence.expire", title=f"Expire a silence in {source}", adapter=KIND, gateway=source,
        description="Expire one silence by its id (it cannot be brought back).",
        dangerous=False, role=ROLE, time_box=None, revert="none", target="",
        params=(ParamSpec("silence_id", "str", required=True, help="the silence to expire"),
                ParamSpec("silenced", "bool", default_json="false", fixed=True)),
        options_json="{}", runbook="silences", where=WHERE, builtin=True)
    return {create.name: create, expire.name: expire}


class SilenceActionDesk(ActionDesk):
    """An ActionDesk whose only adapter is the silence adapter over a given client."""

    def __init__(self, config: Config, adapter: SilenceAdapter, *, read_only: bool, write: bool,
                 dry_run: bool, audit: AuditJournal | None, environ: Mapping[str, str] | None,
                 sleep: Callable[[float], Awaitable[None]]) -> None:
        super().__init__(config, write=write, read_only=read_only, dry_run=dry_run, audit=audit,
                         environ=environ, sleep=sleep, catalog=silence_catalog(adapter.client.name))
        self._silence_adapter = adapter

    def adapter_for(self, spec: ActionSpec, gateway: str) -> Adapter:
        return self._silence_adapter


def silence_desk(client: AlertmanagerClient, config: Config | None, *, read_only: bool, write: bool,
                 dry_run: bool, audit: AuditJournal | None, environ: Mapping[str, str] | None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 created_by: str = "", starts: datetime | None = None) -> ActionDesk:
    """A desk for one silence apply (config None: defaults, i.e. not prod). `starts` pins the
    silence's startsAt (the shown plan's), so the body sent is the body the operator read."""
    if config is None:
        from console.config import Config

        config = Config()
    adapter = (SilenceAdapter(client, created_by=created_by) if starts is None else
               SilenceAdapter(client, created_by=created_by, clock=lambda: starts))
    return SilenceActionDesk(config, adapter, read_only=read_only, write=write, dry_run=dry_run,
                             audit=audit, environ=environ, sleep=sleep)
