"""The action matrix, console rows: a key, the palette and a `:` command x every guard.

The same world as tests/integration/test_action_matrix.py (L's recording LiteLLM admin
server, the matrix's own runbook file, the production `litellm.*` adapters), driven through
the real app with Textual's pilot: `x` on an incident (the key path), "run a runbook
action" in the command palette, and `:runbook NAME k=v`. Whatever guard holds (read-only,
prod without --write, dry-run, Esc, a wrong confirmation, a viewer), ZERO mutating requests
reach the server; the allowed path sends exactly one, with both headers, and the journal's
intent names the entry path. Untrusted text (an incident title, a note) carrying
`[@click=app.<action>(...)]` markup is clicked on and must run nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, OptionList

from console.audit import AuditJournal
from console.config import Config
from console.config_actions import ActionsSettings, LiteLLMGateway
from console.incidents import IncidentStore
from console.operator import user_name
from console.runbook_actions import RunbookBridge
from panels.action_dialog import ActionDialog
from panels.runbook_picker import RunbookPicker
from tests.faults.litellm_admin_server import MASTER_KEY, LiteLLMAdminServer
from tests.integration.action_world import (
    RUNBOOK,
    TEAM,
    TEAM_RPM,
    TEAM_TPM,
    THROTTLE,
    ActionWorld,
    killed_mid_apply,
)
from tests.tui.conftest import DemoData, settle
from tests.tui.screen_text import screen_text
from tests.tui.test_snapshots import PortableBackend

KEY_ENV = "LLMDECK_MATRIX_LITELLM_ADMIN"
PARAMS = f"team_id={TEAM} tpm_limit=5"


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[LiteLLMAdminServer]:
    monkeypatch.setenv(KEY_ENV, MASTER_KEY)
    with LiteLLMAdminServer() as server:
        server.admin.add_team(TEAM, tpm_limit=TEAM_TPM, rpm_limit=TEAM_RPM)
        yield server


def matrix_config(demo: DemoData, server: LiteLLMAdminServer, runbooks: Path, *, role: str | None = "admin",
                  prod: bool = False) -> Config:
    runbooks.mkdir(parents=True, exist_ok=True)
    (runbooks / "matrix.toml").write_text(RUNBOOK)
    gateway = LiteLLMGateway(name="gw", url=server.url, admin_key_ref=f"env:{KEY_ENV}", timeout_seconds=5)
    roles = {} if role is None else {user_name(): role}
    return demo.config.model_copy(update={"actions": ActionsSettings(
        environment="matrix", prod=prod, default_role="viewer", roles=roles,  # type: ignore[arg-type]
        runbook_dir=str(runbooks), litellm=[gateway])})


async def until(pilot: Any, check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Bounded wait for a state of the app (fails with the screen's text), not a measure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await pilot.pause(0.05)
        if check():
            return
    raise AssertionError(f"timed out waiting for {what}:\n{screen_text(pilot.app)}")


def planned(app: Any) -> bool:
    screen = app.screen
    return isinstance(screen, ActionDialog) and screen.preview is not None and screen.preview.ready


async def pick(pilot: Any, action: str) -> None:
    """In the runbook picker: highlight `action` and press Enter."""
    await until(pilot, lambda: isinstance(pilot.app.screen, RunbookPicker), "the runbook picker")
    picker: RunbookPicker = pilot.app.screen
    names = [spec.name for spec, _ in picker.choices]
    assert action in names, names
    picker.query_one(OptionList).highlighted = names.index(action)
    await pilot.pause()
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(pilot.app.screen, ActionDialog), "the action dialog")


async def fill_params(pilot: Any, text: str) -> None:
    """Type the params in the dialog's params field and plan them (Enter there)."""
    dialog: ActionDialog = pilot.app.screen
    field = dialog.query_one("#action-params", Input)
    field.focus()
    field.value = text
    await pilot.pause()
    await pilot.press("enter")
    await until(pilot, lambda: planned(pilot.app), "the plan of the typed params")


async def open_dialog(pilot: Any, path: str) -> ActionDialog:
    """The action dialog for THROTTLE team-a tpm_limit=5, opened through `path`, planned."""
    await settle(pilot)
    if path == "command":
        await pilot.press("colon", *f"runbook {THROTTLE} {PARAMS}", "enter")
        await until(pilot, lambda: planned(pilot.app), "the plan")
    elif path == "palette":
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"run a runbook action")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pick(pilot, THROTTLE)
        await fill_params(pilot, PARAMS)
    elif path == "undo":  # `8`, the incident, `u` on its applied action's outcome
        await pilot.press("8")
        await settle(pilot)
        await pilot.press("slash", *"floods", "enter")
        await pilot.pause(0.2)
        await pilot.press("enter")
        await until(pilot, lambda: "action outcome" in screen_text(pilot.app), "the incident's timeline")
        await pilot.press("slash", *"action outcome", "enter")
        await pilot.pause(0.2)
        await pilot.press("u")
        await until(pilot, lambda: planned(pilot.app), "the undo's plan")
    else:  # key: `8`, `x` on the incident
        await pilot.press("8")
        await settle(pilot)
        await until(pilot, lambda: "INC-" in screen_text(pilot.app), "the incident in the list")
        await pilot.press("x")
        await pick(pilot, THROTTLE)
        await fill_params(pilot, PARAMS)
    dialog: ActionDialog = pilot.app.screen
    return dialog


def audit_kinds() -> list[tuple[str, str, str]]:
    return [(r.kind, r.status, r.get("origin")) for r in AuditJournal().records()]


PATHS = ["key", "palette", "command", "undo"]
GUARDS = ["LLMDECK_READONLY=1", "prod without --write", "dry-run", "Esc", "wrong then Esc", "viewer role",
          "control", "prod with --write"]


@pytest.mark.parametrize("guard", GUARDS)
@pytest.mark.parametrize("path", PATHS)
async def test_console_entry_path(path: str, guard: str, demo_data: DemoData, make_app: Any,
                                  gateway: LiteLLMAdminServer, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    if guard == "LLMDECK_READONLY=1":
        monkeypatch.setenv("LLMDECK_READONLY", "1")
    config = matrix_config(demo_data, gateway, tmp_path / "runbooks", role=None if guard == "viewer role"
                           else "admin", prod=guard.startswith("prod"))
    store = IncidentStore()
    incident, _ = store.open(f"{TEAM} floods the gateway", severity="sev2")
    if path == "undo":  # an applied throttle on the incident's timeline, applied while allowed
        await apply_throttle(matrix_config(demo_data, gateway, tmp_path / "runbooks"), store, incident.id)
    sent_before, audit_before = len(gateway.mutating()), len(audit_kinds())
    tpm_before = gateway.admin.team(TEAM)["tpm_limit"]
    backend = PortableBackend(demo_data)
    backend.config = config
    bridge = RunbookBridge.for_config(config, store, dry_run=guard == "dry-run",
                                      write=guard == "prod with --write")
    app = make_app(backend=backend, runbooks=bridge)
    origin = path
    async with app.run_test(size=(100, 30)) as pilot:
        dialog = await open_dialog(pilot, path)
        preview = dialog.preview
        assert preview is not None and preview.target == TEAM
        assert len(gateway.mutating()) == sent_before  # planning reads only

        typed = dialog.query_one("#action-typed", Input)
        if not typed.disabled:  # the operator moves to the confirmation field (tab, or a click)
            typed.focus()
            await pilot.pause()
        if guard in ("Esc", "wrong then Esc"):
            if guard == "wrong then Esc":
                await pilot.press(*"team-b", "enter")
                await pilot.pause(0.2)
                assert isinstance(app.screen, ActionDialog)
            await pilot.press("escape")
        else:
            await pilot.press("y", "enter")
            if isinstance(app.screen, ActionDialog):  # read-only: the dialog takes nothing; close it
                await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ActionDialog), "the dialog to close")
        if guard not in ("LLMDECK_READONLY=1", "prod without --write"):  # these reach the desk
            await until(pilot, lambda: any(k in ("outcome", "event")
                                           for k, _, _ in audit_kinds()[audit_before:]),
                        "the desk's answer in the journal")
        await pilot.pause(0.3)

    records = audit_kinds()[audit_before:]
    new_requests = gateway.mutating()[sent_before:]
    if guard in ("control", "prod with --write"):
        [sent] = new_requests
        want = TEAM_TPM if path == "undo" else 5
        assert sent.path == "/team/update" and sent.json()["tpm_limit"] == want
        assert sent.headers.get("idempotency-key")
        assert sent.headers.get("litellm-changed-by") == user_name()
        assert records == [("intent", "", origin), ("outcome", "applied", "")], records
        return
    assert new_requests == [], [(r.method, r.path) for r in new_requests]
    assert gateway.admin.team(TEAM)["tpm_limit"] == tpm_before
    assert not [r for r in records if r[0] == "intent"], records
    expected = {"dry-run": "dry_run", "viewer role": "refused", "Esc": "cancelled",
                "wrong then Esc": "cancelled"}.get(guard)
    if expected is not None:  # an attempt the operator made and the desk (must) record
        assert records == [("event", expected, origin)], f"{guard} on the {path} path: journal {records}"


async def apply_throttle(config: Config, store: IncidentStore, incident_id: str) -> None:
    """The throttle applied through a desk of its own (as `llmdeck runbook apply --incident`)."""
    from console.action_types import Confirmation
    from console.runbooks import ActionDesk

    desk = ActionDesk(config, incidents=store, environ={})
    try:
        plan = await desk.plan(THROTTLE, {"team_id": TEAM, "tpm_limit": 5}, origin="cli",
                               incident_id=incident_id)
        outcome = await desk.apply(plan, Confirmation(TEAM))
        assert outcome.status == "applied", outcome.detail
    finally:
        await desk.aclose()


HOSTILE_TITLES = [
    f"[@click=app.run_runbook_command('{THROTTLE} {PARAMS}')]click me[/]",
    "[@click=app.pick_runbook(None)]pick[/] [@click=app.quit]quit[/]",
    f"[@click=screen.app.open_action_dialog('{THROTTLE}')]x[/] [link=x]y[/link]",
]


@pytest.mark.parametrize("hostile", HOSTILE_TITLES)
async def test_markup_in_an_incident_title_and_note_runs_nothing_when_clicked(
        hostile: str, demo_data: DemoData, make_app: Any, gateway: LiteLLMAdminServer,
        tmp_path: Path) -> None:
    config = matrix_config(demo_data, gateway, tmp_path / "runbooks")
    store = IncidentStore()
    incident, _ = store.open(hostile, severity="sev1")
    store.note(incident.id, hostile)
    backend = PortableBackend(demo_data)
    backend.config = config
    app = make_app(backend=backend, runbooks=RunbookBridge.for_config(config, store))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("8")
        await settle(pilot)
        await until(pilot, lambda: "click" in screen_text(app) or "pick" in screen_text(app),
                    "the hostile title on the list")
        await click_everywhere_it_shows(pilot, hostile)
        assert not isinstance(app.screen, (ActionDialog, RunbookPicker)), type(app.screen).__name__
        await pilot.press("enter")  # the incident's detail: title and the note on the timeline
        await until(pilot, lambda: "note" in screen_text(app).lower(), "the incident's timeline")
        await click_everywhere_it_shows(pilot, hostile)
        await pilot.pause(0.3)
        assert not isinstance(app.screen, (ActionDialog, RunbookPicker)), type(app.screen).__name__
        assert app.is_running
    assert gateway.mutating() == []
    assert AuditJournal().records() == []


async def click_everywhere_it_shows(pilot: Any, hostile: str) -> None:
    """Click every cell of every screen line that shows part of the hostile text."""
    marker = hostile[:12]
    lines = screen_text(pilot.app).splitlines()
    hits = [(y, line) for y, line in enumerate(lines) if marker in line or "click" in line]
    assert hits, f"the hostile text is not on screen:\n{screen_text(pilot.app)}"
    for y, line in hits:
        start = max(line.find(marker), 0)
        for x in range(start, min(len(line), start + len(hostile) + 2)):
            await pilot.click(offset=(x, y))
            if isinstance(pilot.app.screen, (ActionDialog, RunbookPicker)) or not pilot.app.is_running:
                return
    await pilot.pause()


async def test_console_after_a_kill_9_mid_action_shows_outcome_unknown(
        demo_data: DemoData, make_app: Any, gateway: LiteLLMAdminServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`llmdeck runbook apply` killed with its request on the wire; a console started afterwards
    (same state directory) must say "outcome unknown" for it, as `audit show` does."""
    world = ActionWorld(tmp_path / "world", gateway, monkeypatch)
    action_id = killed_mid_apply(world)
    config = matrix_config(demo_data, gateway, world.runbook_dir)
    backend = PortableBackend(demo_data)
    backend.config = config
    app = make_app(backend=backend, runbooks=RunbookBridge.for_config(config, IncidentStore()))

    def said() -> str:
        notes = " ".join(str(n.message) for n in app._notifications)
        return f"{screen_text(app)}\n{notes}".lower()

    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("8")
        await settle(pilot)
        await until(pilot, lambda: "outcome unknown" in said() and action_id in said(),
                    f"'outcome unknown' for {action_id} in the console")


async def due_throttle(config: Config) -> str:
    """A throttle applied an hour ago with a 15-minute box: its revert is due now."""
    from datetime import timedelta

    from console.action_types import Confirmation
    from console.runbooks import ActionDesk
    from console.timeutil import utc_now

    then = utc_now() - timedelta(hours=1)
    desk = ActionDesk(config, environ={}, clock=lambda: then)
    try:
        plan = await desk.plan(THROTTLE, {"team_id": TEAM, "tpm_limit": 5, "for": "15m"}, origin="cli")
        outcome = await desk.apply(plan, Confirmation(TEAM))
        assert outcome.status == "applied", outcome.detail
        return outcome.action_id
    finally:
        await desk.aclose()


@pytest.mark.parametrize("guard", ["LLMDECK_READONLY=1", "prod without --write", "viewer role", "control"])
async def test_console_automatic_revert(guard: str, demo_data: DemoData, make_app: Any,
                                        gateway: LiteLLMAdminServer, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A console started after a time box ended performs the revert by itself, through the
    desk: under a guard it sends nothing and says loudly why; allowed, exactly one request."""
    from console.action_store import ActionStore

    action_id = await due_throttle(matrix_config(demo_data, gateway, tmp_path / "runbooks"))
    if guard == "LLMDECK_READONLY=1":
        monkeypatch.setenv("LLMDECK_READONLY", "1")
    config = matrix_config(demo_data, gateway, tmp_path / "runbooks", prod=guard == "prod without --write",
                           role=None if guard == "viewer role" else "admin")
    backend = PortableBackend(demo_data)
    backend.config = config
    app = make_app(backend=backend, runbooks=RunbookBridge.for_config(config, IncidentStore()))
    store = ActionStore()

    def tried() -> bool:
        pending = store.pending_reverts()
        return not pending or pending[0].attempts > 0

    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await until(pilot, tried, "the console's revert attempt")
        if guard != "control":
            await pilot.press("8")
            await settle(pilot)
            await until(pilot, lambda: "REVERT NOT DONE" in screen_text(app),
                        "the revert's reason on :incidents")
            assert action_id in screen_text(app) or THROTTLE in screen_text(app)
    if guard == "control":
        [_, revert] = gateway.mutating()
        assert revert.json()["tpm_limit"] == TEAM_TPM and revert.headers.get("idempotency-key")
        assert revert.headers.get("litellm-changed-by") == user_name()
        assert store.pending_reverts() == []
        return
    assert len(gateway.mutating()) == 1 and gateway.admin.team(TEAM)["tpm_limit"] == 5
    [pending] = store.pending_reverts()
    reason = "role viewer" if guard == "viewer role" else "read-only"
    assert pending.action_id == action_id and reason in pending.reason, pending.reason


# ---- the console's silence dialog (`s` on :alerts) reaches the same desk ---------------------


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.integration.recording_proxy import RecordingProxy
    from tests.integration.servers import start_alertmanager
    from tests.tui.test_silence_from_console import Manager

    am, url = start_alertmanager(tmp_path_factory.mktemp("matrix-am"))
    try:
        with RecordingProxy(url) as proxy:
            yield Manager(url, proxy)
    finally:
        am.stop()


async def test_console_silence_in_a_prod_environment_without_write_sends_nothing(
        demo_data: DemoData, make_app: Any, alertmanager: Any) -> None:
    """`s` on an alert, the source's name typed and Enter, in an `[actions] prod = true`
    environment started without --write: the desk refuses, nothing reaches Alertmanager."""
    from panels.alerts_screen import AlertsScreen
    from panels.silence_dialog import SilenceDialog
    from tests.tui.test_silence_from_console import console_backend

    alertmanager.post_alert("MatrixProdGateway", team="llm")
    backend = console_backend(demo_data, alertmanager)
    backend.config = backend.config.model_copy(update={"actions": ActionsSettings(
        environment="matrix-prod", prod=True)})
    app = make_app(backend=backend)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("6")  # :alerts, filtered to the alert (the waits here are bounded at 60 s)
        await until(pilot, lambda: "MatrixProdGateway" in screen_text(app), "the alert on :alerts")
        await pilot.press("slash", *"MatrixProdGateway", "enter")
        await pilot.pause()
        alertmanager.proxy.clear()
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SilenceDialog) and app.screen.preview is not None,
                    "the silence dialog's plan")
        dialog: SilenceDialog = app.screen
        assert dialog.preview is not None and dialog.preview.ready
        typed = dialog.query_one("#silence-typed", Input)
        if not typed.disabled:
            typed.focus()
            await pilot.press(*"am", "enter")
        else:
            await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, AlertsScreen)
                    and not isinstance(app.screen, SilenceDialog), "the dialog to close")
        await pilot.pause(1.5)
        assert alertmanager.proxy.mutating() == []
        assert alertmanager.silences_for("MatrixProdGateway") == []
    assert not [r for r in AuditJournal().records() if r.kind == "intent"]
