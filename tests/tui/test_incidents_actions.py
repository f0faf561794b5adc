"""Runbook actions from an incident: `x` → picker → plan → action dialog → the real desk.

The desk (`console.runbooks.ActionDesk`, the one choke point) acts on the recording LiteLLM
admin server on loopback (tests/faults/litellm_admin_server.py), so "nothing was sent" is a
list of recorded requests with no mutating one in it. The incident is the one the feed opens
for the demo's anthropic outage; the picker prefills switch-provider from it (the provider's
busiest model group, a fallback group of another provider). Enter on an empty or wrong
confirmation never applies, Esc and read-only mode send nothing, `y` sends exactly one
request and the outcome lands on the incident's timeline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from textual.widgets import Button, Input, OptionList

from console.action_checks import ActionMode
from console.action_preview import ActionAsk, ActionPreview
from console.action_types import DiffLine
from console.audit import AuditJournal
from console.config import Config
from console.config_actions import ActionsSettings, LiteLLMGateway
from console.incidents import Incident, IncidentStore
from console.runbook_actions import RunbookBridge
from console.views import SloView
from panels.action_dialog import ActionDialog
from panels.incidents_screen import IncidentScreen, IncidentsScreen
from panels.runbook_picker import RunbookPicker
from tests.faults.litellm_admin_server import MASTER_KEY, LiteLLMAdminServer
from tests.tui.conftest import DemoData, settle
from tests.tui.screen_text import screen_text, terminal_bytes
from tests.tui.test_snapshots import PortableBackend

KEY_ENV = "LLMDECK_TEST_LITELLM_ADMIN"


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[LiteLLMAdminServer]:
    """The recording admin server with the demo's model groups (the prefilled ones among them)."""
    monkeypatch.setenv(KEY_ENV, MASTER_KEY)
    with LiteLLMAdminServer() as server:
        for group, upstream in (("claude-sonnet-4-5", "anthropic/claude-sonnet-4-5"),
                                ("claude-haiku-4-5", "anthropic/claude-haiku-4-5"),
                                ("gpt-4o-mini", "openai/gpt-4o-mini"),
                                ("gpt-4o", "openai/gpt-4o")):
            server.admin.add_deployment(group, {"model": upstream}, model_id=f"demo-{group}")
        server.admin.add_team("acme-corp", rpm_limit=600)
        yield server


def action_config(demo: DemoData, url: str) -> Config:
    gateway = LiteLLMGateway(name="edge-gw", url=url, admin_key_ref=f"env:{KEY_ENV}",
                             timeout_seconds=5)
    return demo.config.model_copy(update={"actions": ActionsSettings(
        environment="staging", default_role="admin", litellm=[gateway])})


def app_on(make_app: Any, demo: DemoData, server: LiteLLMAdminServer) -> Any:
    backend = PortableBackend(demo)
    config = action_config(demo, server.url)
    backend.config = config
    return make_app(backend=backend, runbooks=RunbookBridge.for_config(config, IncidentStore()))


async def until(pilot: Any, check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await pilot.pause(0.05)
        if check():
            return
    raise AssertionError(f"timed out waiting for {what}:\n{screen_text(pilot.app)}")


def the_outage(store: IncidentStore) -> Incident | None:
    return next((i for i in store.list() if i.auto), None)


async def dialog_for_the_outage(pilot: Any, store: IncidentStore) -> ActionDialog:
    """The demo's path: `8`, `x` on the top row, Enter on the first action; the plan shown."""
    await settle(pilot)
    await until(pilot, lambda: the_outage(store) is not None, "the outage's incident")
    await pilot.press("8")
    await settle(pilot)
    assert isinstance(pilot.app.screen, IncidentsScreen)
    await pilot.press("x")
    await until(pilot, lambda: isinstance(pilot.app.screen, RunbookPicker), "the runbook picker")
    picker: RunbookPicker = pilot.app.screen
    first, params = picker.choices[0]
    assert first.name == "switch-provider"
    assert dict(params) == {"provider": "anthropic", "fallback_models": "gpt-4o-mini"}
    assert picker.query_one(OptionList).highlighted == 0
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(pilot.app.screen, ActionDialog)
                and pilot.app.screen.preview is not None, "the action dialog's plan")
    await pilot.pause()
    dialog: ActionDialog = pilot.app.screen
    return dialog


def apply_enabled(dialog: ActionDialog) -> bool:
    return not dialog.query_one("#action-confirm", Button).disabled


async def test_enter_never_applies_until_y_then_one_request_and_the_timeline(
        demo_data: DemoData, make_app: Any, gateway: LiteLLMAdminServer) -> None:
    store = IncidentStore()
    app = app_on(make_app, demo_data, gateway)
    async with app.run_test(size=(80, 24)) as pilot:
        dialog = await dialog_for_the_outage(pilot, store)
        preview = dialog.preview
        assert preview is not None and preview.ready and preview.sendable, preview
        assert preview.target == "anthropic" and not preview.dangerous
        assert preview.requests and "fallback" in preview.requests[0]
        assert MASTER_KEY not in "".join(preview.requests)
        text = screen_text(app)
        assert "Run switch-provider" in text and "environment staging" in text
        assert "type y to apply, then Enter" in text
        assert dialog.focused is dialog.query_one("#action-typed", Input)
        before = len(gateway.mutating())

        await pilot.press("enter")  # empty: never applies
        await pilot.pause(0.3)
        assert isinstance(app.screen, ActionDialog) and not apply_enabled(dialog)
        await pilot.press(*"yes please", "enter")  # wrong: never applies, and says so
        await pilot.pause(0.3)
        assert isinstance(app.screen, ActionDialog) and "not confirmed" in screen_text(app)
        assert len(gateway.mutating()) == before

        await pilot.press("ctrl+u", "y")
        assert apply_enabled(dialog)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), "the dialog to close")
        await until(pilot, lambda: any("switch-provider" in str(n.message) and "applied" in
                                       str(n.message) for n in app._notifications), "the outcome")
        assert gateway.admin.fallbacks("claude-sonnet-4-5") == ["gpt-4o-mini"]
        sent = gateway.mutating()[before:]  # one request per anthropic model group, each once
        assert len(sent) == len(preview.requests) == 2
        assert all(r.method == "POST" and "fallback" in r.path for r in sent)
        assert all(r.headers.get("idempotency-key") and r.headers.get("litellm-changed-by")
                   for r in sent)
        assert {r.json()["model"] for r in sent} == {"claude-sonnet-4-5", "claude-haiku-4-5"}
        # the action is a marker on the SLO charts (overview and :slo), at the data clock's now
        overview = await asyncio.to_thread(app.backend.overview, demo_data.at, timedelta(hours=6))
        marks = [m for m in overview.markers if m.kind == "action"]
        assert [m.label for m in marks] == ["switch-provider anthropic"]
        assert demo_data.at - timedelta(minutes=1) <= marks[0].ts <= demo_data.at
        slo_page = await asyncio.to_thread(app.backend.slo_page, demo_data.at, SloView())
        assert slo_page.detail is not None and any(m.kind == "action" for m in slo_page.detail.markers)
        incident = the_outage(store)
        assert incident is not None
        kinds = [e.kind for e in store.timeline(incident.id)]
        assert "action_intent" in kinds and "action_outcome" in kinds, kinds
        await pilot.press("enter")  # the timeline shows it on the incident's screen
        await until(pilot, lambda: isinstance(app.screen, IncidentScreen)
                    and "action outcome" in screen_text(app), "the action on the timeline")
        outcome = next(e for e in store.timeline(incident.id) if e.kind == "action_outcome")
        assert "applied" in outcome.text

        # u on that outcome: the undo is planned from the captured before-state, confirmed like
        # any action, and puts the fallbacks back (one request per group again)
        await pilot.press("slash", *"action outcome", "enter")
        await pilot.pause()
        await pilot.press("u")
        await until(pilot, lambda: isinstance(app.screen, ActionDialog)
                    and app.screen.preview is not None, "the undo's plan")
        undo: ActionDialog = app.screen
        assert undo.preview is not None and undo.preview.ready, undo.preview
        assert undo.ask.undo_of and "Undo switch-provider" in screen_text(app)
        applied = len(gateway.mutating())
        await pilot.press("enter")  # empty: never
        await pilot.pause(0.3)
        assert len(gateway.mutating()) == applied and isinstance(app.screen, ActionDialog)
        await pilot.press(*undo.preview.confirm_word, "enter")
        await until(pilot, lambda: isinstance(app.screen, IncidentScreen), "the undo dialog to close")
        await until(pilot, lambda: len(gateway.mutating()) == applied + 2, "the undo's requests")
        assert gateway.admin.fallbacks("claude-sonnet-4-5") == []
        assert gateway.admin.fallbacks("claude-haiku-4-5") == []


async def test_escape_sends_nothing_and_is_audited_as_cancelled(demo_data: DemoData, make_app: Any,
                                    gateway: LiteLLMAdminServer) -> None:
    store = IncidentStore()
    app = app_on(make_app, demo_data, gateway)
    async with app.run_test(size=(80, 24)) as pilot:
        dialog = await dialog_for_the_outage(pilot, store)
        await pilot.press("y")
        assert apply_enabled(dialog)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), "the dialog to close")
        # the desk audits the cancelled attempt (as the CLI's missing --confirm), and sends nothing
        await until(pilot, lambda: any(r.kind == "event" and r.status == "cancelled"
                                       for r in AuditJournal().records()), "the audited cancel")
        await pilot.pause(0.5)
        assert gateway.mutating() == []
        assert [r for r in gateway.requests if r.method == "GET"], "the plan read the gateway"
        assert [r.kind for r in AuditJournal().records()] == ["event"]


async def test_read_only_shows_the_plan_and_sends_nothing(
        demo_data: DemoData, make_app: Any, gateway: LiteLLMAdminServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMDECK_READONLY", "1")
    store = IncidentStore()
    app = app_on(make_app, demo_data, gateway)
    async with app.run_test(size=(80, 24)) as pilot:
        dialog = await dialog_for_the_outage(pilot, store)
        preview = dialog.preview
        assert preview is not None and preview.ready and not preview.sendable
        assert preview.mode is not None and preview.mode.read_only
        assert "READ-ONLY" in screen_text(app)
        assert dialog.query_one("#action-typed", Input).disabled and not apply_enabled(dialog)
        await until(pilot, lambda: dialog.focused is dialog.query_one("#action-cancel", Button),
                    "focus on Cancel")
        await pilot.press("y", "enter")  # the field takes nothing; Enter is on Cancel
        await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), "the dialog to close")
        await pilot.pause(1.0)
        assert gateway.mutating() == []


async def test_runbook_command_with_a_bad_param_says_where_and_plans_nothing(
        demo_data: DemoData, make_app: Any, gateway: LiteLLMAdminServer) -> None:
    app = app_on(make_app, demo_data, gateway)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("colon", *"runbook throttle-team team_id=acme-corp tpm_limit=lots", "enter")
        await until(pilot, lambda: isinstance(app.screen, ActionDialog)
                    and app.screen.preview is not None, "the dialog's answer")
        dialog: ActionDialog = app.screen
        assert dialog.preview is not None and not dialog.preview.ready
        assert "tpm_limit" in dialog.preview.problem
        assert dialog.query_one("#action-typed", Input).disabled is False or not apply_enabled(dialog)
        assert dialog.focused is dialog.query_one("#action-params", Input)
        await pilot.press("escape")
        await pilot.pause(0.5)
        await pilot.press("colon", *"runbook", "enter")  # alone: the picker, origin "command"
        await until(pilot, lambda: isinstance(app.screen, RunbookPicker), "the picker")
        assert app.screen.origin == "command" and app.screen.incident_id is None
        await pilot.press("escape")
        await pilot.pause(0.3)
        assert gateway.mutating() == []


async def test_a_time_boxed_throttle_from_the_command_line_shows_when_it_reverts(
        demo_data: DemoData, make_app: Any, gateway: LiteLLMAdminServer) -> None:
    app = app_on(make_app, demo_data, gateway)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("colon", *"runbook throttle-team team_id=acme-corp tpm_limit=1000 for=20m",
                          "enter")
        await until(pilot, lambda: isinstance(app.screen, ActionDialog)
                    and app.screen.preview is not None, "the plan")
        dialog: ActionDialog = app.screen
        assert dialog.preview is not None and dialog.preview.ready, dialog.preview
        assert dialog.preview.time_box == "20m" and "reverts after 20m" in screen_text(app)
        await pilot.press(*"Yes", "enter")  # the dialog's y/yes in any case is the desk's "yes"
        await until(pilot, lambda: len(gateway.mutating()) == 1, "the throttle")
        assert gateway.mutating()[0].json()["tpm_limit"] == 1000
        await until(pilot, lambda: not isinstance(app.screen, ActionDialog), "the dialog to close")
        await pilot.press("8")
        await settle(pilot)
        await until(pilot, lambda: "↺ throttle-team on acme-corp reverts at" in screen_text(app),
                    "the pending revert on :incidents")


# ---- the dialog alone: hostile plan text, and a snapshot ---------------------------------

HOSTILE = "[@click=app.quit]x[/] \x1b]52;c;cHduZWQ=\x07 [/]"


def hostile_preview(dangerous: bool) -> tuple[ActionAsk, ActionPreview]:
    ask = ActionAsk("throttle-team", (("team_id", HOSTILE), ("tpm_limit", "1000")), "key", "INC-7")
    mode = ActionMode(False, "", False, "responder", "alice", "prod")
    return ask, ActionPreview(
        ask, mode, title="Throttle a LiteLLM team", target=HOSTILE, gateway="edge-gw",
        dangerous=dangerous, time_box="30m",
        diff=(DiffLine("tpm_limit", "none", "1000"), DiffLine("note", HOSTILE, HOSTILE)),
        requests=(f"POST http://gw.example/team/update\nauthorization: ***\n{HOSTILE}",),
        notes=(HOSTILE,), key=1)


def clickable_segments(app: Any) -> list[str]:
    update = app.screen._compositor.render_update(full=True)
    return [text for line in update.strips for strip in line for text, style, _ in strip
            if style is not None and style.meta and "@click" in style.meta]


async def test_hostile_plan_text_is_inert_and_a_dangerous_target_must_be_typed(
        demo_data: DemoData, make_app: Any) -> None:
    app = make_app(backend=PortableBackend(demo_data))
    ask, preview = hostile_preview(dangerous=True)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        results: list[object] = []
        await app.push_screen(ActionDialog(ask, preview), results.append)
        await pilot.pause()
        text, raw = screen_text(app), terminal_bytes(app)
        assert "[@click=app.quit]x[/]" in text and "\\x1b]52;c;" in text
        assert "\x1b]52" not in raw and clickable_segments(app) == []
        assert "DANGEROUS" in text and "type [@click=app.quit]x[/]" in text
        await pilot.press("y", "enter")  # `y` is not the target of a dangerous action
        await pilot.pause()
        assert results == [] and isinstance(app.screen, ActionDialog)
        dialog: ActionDialog = app.screen
        dialog.query_one("#action-typed", Input).value = preview.target  # as a paste would
        await pilot.pause()
        # a paste is made printable (SafeInput): the escape is now text, so it does not match
        assert not apply_enabled(dialog)
        await pilot.press("escape")
        await pilot.pause()
        assert results == [None]


def test_action_dialog_snapshot(snap_compare: Any, make_app: Any, demo_data: DemoData) -> None:
    """The action dialog at 80x24 over `:incidents` (fixed plan): a red-bordered box titled
    `Run throttle-team`; `environment prod · alice as responder`; `target acme-corp` with
    `DANGEROUS` in reverse video, `on edge-gw · reverts after 30m · for INC-7`; the params
    line `team_id=acme-corp tpm_limit=1000`; the plan: `changes:` tpm_limit none → 1000 and
    rpm_limit 600 → 60, `requests (1):` POST …/team/update with `authorization: ***` and the
    JSON body; the note `nothing is sent until you confirm · Esc cancels`; the prompt
    `dangerous: type acme-corp to confirm, then Enter`, an empty field, a dimmed Apply and a
    Cancel button."""
    ask = ActionAsk("throttle-team", (("team_id", "acme-corp"), ("tpm_limit", "1000")), "key", "INC-7")
    mode = ActionMode(False, "", False, "responder", "alice", "prod")
    preview = ActionPreview(
        ask, mode, title="Throttle a LiteLLM team", target="acme-corp", gateway="edge-gw",
        dangerous=True, time_box="30m",
        diff=(DiffLine("tpm_limit", "none", "1000"), DiffLine("rpm_limit", "600", "60")),
        requests=('POST http://gw.example:4000/team/update\nauthorization: ***\n'
                  'idempotency-key: 5f0c…\n{"team_id": "acme-corp", "tpm_limit": 1000}',),
        key=1)

    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("8")
        await settle(pilot)
        pilot.app.clear_notifications()
        await pilot.app.push_screen(ActionDialog(ask, preview))
        await pilot.pause()
        pilot.app.screen.query_one("#action-typed", Input).cursor_blink = False
        await pilot.pause()

    assert snap_compare(make_app(backend=PortableBackend(demo_data)), terminal_size=(80, 24),
                        run_before=run_before)


async def test_an_unknown_outcome_is_said_loudly_and_again_after_a_restart(
        demo_data: DemoData, make_app: Any, gateway: LiteLLMAdminServer) -> None:
    """The gateway applies the change and drops the connection: the desk cannot know whether it
    took. `:incidents` says OUTCOME UNKNOWN with the verify command, a toast says it, and a
    console started afterwards (the same state file) says it again."""
    store = IncidentStore()
    app = app_on(make_app, demo_data, gateway)
    async with app.run_test(size=(100, 30)) as pilot:
        dialog = await dialog_for_the_outage(pilot, store)
        gateway.drop_next()
        await pilot.press("y", "enter")
        await until(pilot, lambda: any("unknown" in str(n.message) for n in app._notifications),
                    "the unknown outcome said")
        await until(pilot, lambda: "OUTCOME UNKNOWN: switch-provider on anthropic" in screen_text(app),
                    "the attention line on :incidents")
        assert "llmdeck runbook verify" in screen_text(app)
        assert dialog.preview is not None
    again = app_on(make_app, demo_data, gateway)
    async with again.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await until(pilot, lambda: any("OUTCOME UNKNOWN" in str(n.message)
                                       for n in again._notifications), "the toast after a restart")
        await pilot.press("8")
        await settle(pilot)
        assert "OUTCOME UNKNOWN: switch-provider on anthropic" in screen_text(again)


async def test_a_dry_run_console_shows_dry_run_and_sends_nothing(
        demo_data: DemoData, make_app: Any, gateway: LiteLLMAdminServer) -> None:
    """`llmdeck --dry-run`: the dialog says DRY RUN; confirming records a dry run, sends nothing."""
    backend = PortableBackend(demo_data)
    backend.config = action_config(demo_data, gateway.url)
    app = make_app(backend=backend, runbooks=RunbookBridge.for_config(
        backend.config, IncidentStore(), dry_run=True))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("colon", *"runbook throttle-team team_id=acme-corp tpm_limit=10", "enter")
        await until(pilot, lambda: isinstance(app.screen, ActionDialog)
                    and app.screen.preview is not None, "the plan")
        dialog: ActionDialog = app.screen
        assert dialog.preview is not None and dialog.preview.sendable
        assert "DRY RUN" in screen_text(app) and "dry run: confirming records it" in screen_text(app)
        await pilot.press("y", "enter")
        await until(pilot, lambda: any("dry_run" in str(n.message) for n in app._notifications),
                    "the dry run's outcome")
        assert gateway.mutating() == []
        assert [r.status for r in AuditJournal().records()] == ["dry_run"]
