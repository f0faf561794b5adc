"""Silencing and expiring from `:alerts`, against a real Alertmanager, through `console.silences`.

A real `prometheus-alertmanager` runs on loopback; alerts are posted to it directly
(`POST /api/v2/alerts`), and the console reads it through `RecordingProxy`, which
records every request the console sends, so "nothing was sent" is a list of requests
with no POST or DELETE in it. `s` on an alert and `x` on a silence open the silence
dialog; only typing the source's name sends, Esc and read-only mode send nothing, and
hostile label text stays text. One snapshot shows the dialog over fixed data at 80x24.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.widgets import Button, Input

from console.alerts import ActiveAlert, SilenceMatcher
from console.audit import AuditJournal, AuditRecord
from console.backend import Backend
from console.config import AlertmanagerSource, Config
from console.launch import source_hub
from console.prometheus_poll import PrometheusReading
from console.silence_actions import SilenceDesk
from console.silence_preview import NO_ALERTMANAGER, Confirmation, SilenceAsk, SilencePreview
from console.source_hub import Reading
from console.timeutil import utc_now
from panels.alerts_screen import AlertsScreen
from panels.silence_dialog import READ_ONLY_NOTE, SilenceDialog
from tests.integration.recording_proxy import RecordingProxy
from tests.integration.servers import start_alertmanager
from tests.tui.conftest import WALL, DemoData, settle
from tests.tui.screen_text import screen_lines, screen_text, terminal_bytes
from tests.tui.test_snapshots import PortableBackend
from tests.tui.test_source_screens import FixedHub, alert, fixed_hub, status

HOSTILE = "[@click=screen.silence]pwn[/] [@click=app.quit]q \x1b]0;title\x07 \x9b2J"


@dataclass
class Manager:
    """The real Alertmanager and the recording proxy in front of it."""

    url: str
    proxy: RecordingProxy

    def post_alert(self, name: str, **labels: str) -> None:
        ends = (utc_now() + timedelta(hours=1)).isoformat() + "Z"
        httpx.post(f"{self.url}/api/v2/alerts", json=[{
            "labels": {"alertname": name, "severity": "page", **labels},
            "annotations": {"summary": f"{name} test alert"}, "endsAt": ends,
        }]).raise_for_status()

    def silences_for(self, name: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = httpx.get(f"{self.url}/api/v2/silences").json()
        return [s for s in found if {"name": "alertname", "value": name, "isRegex": False,
                                     "isEqual": True} in s["matchers"]]

    def alert_state(self, name: str) -> str:
        alerts = httpx.get(f"{self.url}/api/v2/alerts",
                           params={"filter": f'alertname="{name}"'}).json()
        return str(alerts[0]["status"]["state"]) if alerts else "missing"


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manager]:
    am, url = start_alertmanager(tmp_path_factory.mktemp("silence-am"))
    try:
        with RecordingProxy(url) as proxy:
            yield Manager(url, proxy)
    finally:
        am.stop()


def console_backend(demo: DemoData, manager: Manager) -> Backend:
    sources = demo.config.sources.model_copy(update={
        "alertmanager": [AlertmanagerSource(name="am", url=manager.proxy.url, refresh_seconds=1)],
    })
    config: Config = demo.config.model_copy(update={"sources": sources})
    hub = source_hub(config)
    assert hub is not None
    return Backend(demo.cache, config, lambda: demo.at, [demo.simulator], hub=hub)


async def until(pilot: Any, check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Pause until `check()` holds; fail naming `what`, with the screen's text."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await pilot.pause(0.05)
        if check():
            return
    raise AssertionError(f"timed out waiting for {what}:\n{screen_text(pilot.app)}")


async def open_alerts_on(pilot: Any, name: str) -> None:
    """`6`, then filter the tables to `name` so the cursor rows are its alert and silence."""
    await pilot.press("6")
    await until(pilot, lambda: name in screen_text(pilot.app), f"{name} on :alerts")
    await pilot.press("slash", *name, "enter")
    await pilot.pause()


async def dialog_with_plan(pilot: Any, key: str) -> SilenceDialog:
    """Press `key` (s or x) and wait for the dialog's plan (or its reason for having none)."""
    await pilot.press(key)
    await until(pilot, lambda: isinstance(pilot.app.screen, SilenceDialog)
                and pilot.app.screen.preview is not None, "the silence dialog's plan")
    await pilot.pause()
    dialog: SilenceDialog = pilot.app.screen
    return dialog


def confirm_enabled(dialog: SilenceDialog) -> bool:
    return not dialog.query_one("#silence-confirm", Button).disabled


def clickable_segments(app: Any) -> list[str]:
    """Text of every segment on screen that carries a click action (markup `[@click=...]`)."""
    update = app.screen._compositor.render_update(full=True)
    return [text for line in update.strips for strip in line for text, style, _ in strip
            if style is not None and style.meta and "@click" in style.meta]


def actions_logged() -> list[AuditRecord]:
    """The audit journal's records (console.audit): where every silence attempt is recorded."""
    return AuditJournal(Path(os.environ["XDG_STATE_HOME"]) / "llmdeck" / "audit.jsonl").records()


async def test_silence_an_alert_sends_only_after_the_source_name_is_typed(
        demo_data: DemoData, manager: Manager, make_app: Any) -> None:
    manager.post_alert("SilenceMeGateway", team="llm", instance="gw-1")
    app = make_app(backend=console_backend(demo_data, manager))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_alerts_on(pilot, "SilenceMeGateway")
        manager.proxy.clear()
        dialog = await dialog_with_plan(pilot, "s")
        preview = dialog.preview
        assert preview is not None and preview.ready and preview.affects == 1
        assert f"POST {manager.proxy.url}/api/v2/silences" in preview.plan_text
        assert "alertname=SilenceMeGateway" in preview.plan_text and "instance=gw-1" in preview.plan_text
        text = screen_text(app)
        assert "Silence alert SilenceMeGateway in Alertmanager am" in text
        assert "Type the source name am to confirm" in text
        assert "It will silence 1 alert(s) now" in text
        assert not confirm_enabled(dialog)

        await pilot.press(*"prod", "enter")  # the wrong name: Enter does not confirm
        await pilot.pause()
        assert isinstance(app.screen, SilenceDialog) and not confirm_enabled(dialog)
        assert "not confirmed" in screen_text(app)
        assert manager.proxy.mutating() == []

        await pilot.press("ctrl+u", "a", "m")
        await pilot.pause()
        assert confirm_enabled(dialog)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, AlertsScreen), "the dialog to close")
        await until(pilot, lambda: any(s["status"]["state"] == "active"
                                       for s in manager.silences_for("SilenceMeGateway")),
                    "an active silence on the real Alertmanager")
        assert [m for m, _ in manager.proxy.mutating()] == ["POST"]
        assert manager.alert_state("SilenceMeGateway") == "suppressed"
        await until(pilot, lambda: "◌ silenced" in screen_text(app), "the alert shown silenced")
        assert "applied" in "".join(str(n.message) for n in app._notifications)
        phases = [(r.kind, r.action, r.status) for r in actions_logged()]
        assert phases == [("intent", "silence.create", ""), ("outcome", "silence.create", "applied")]


async def test_escape_on_the_dialog_sends_no_mutating_request(
        demo_data: DemoData, manager: Manager, make_app: Any) -> None:
    manager.post_alert("EscapeMeGateway", team="llm")
    app = make_app(backend=console_backend(demo_data, manager))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_alerts_on(pilot, "EscapeMeGateway")
        manager.proxy.clear()
        dialog = await dialog_with_plan(pilot, "s")
        assert dialog.preview is not None and dialog.preview.ready
        first_ends = dialog.preview.plan_text.split("ends", 1)[1].split("\n", 1)[0]
        dialog.query_one("#silence-length", Input).focus()  # a bad duration is said, not planned
        await pilot.press("ctrl+u", *"2x", "enter")
        await until(pilot, lambda: dialog.preview is not None, "the re-plan")
        assert "duration '2x': not a duration" in dialog.preview.problem  # type: ignore[union-attr]
        assert not confirm_enabled(dialog)
        assert dialog.focused is dialog.query_one("#silence-length", Input)
        await pilot.press("ctrl+u", *"30m", "enter")  # then a good one is planned again
        await until(pilot, lambda: dialog.preview is not None and dialog.preview.ready, "the re-plan")
        assert dialog.preview is not None and dialog.preview.ask.length == "30m"
        assert dialog.preview.plan_text.split("ends", 1)[1].split("\n", 1)[0] != first_ends
        dialog.query_one("#silence-typed", Input).focus()
        await pilot.press(*"am")  # even with the name typed, Esc cancels
        assert confirm_enabled(dialog)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, AlertsScreen), "the dialog to close")
        await pilot.pause(1.5)  # polls go on; a send would have happened by now
        planned = [r for r in manager.proxy.requests if "/api/v2/alerts?filter" in r[1]]
        assert planned, "the plan read the matching alerts (so the proxy does see the console)"
        assert manager.proxy.mutating() == []
        assert manager.silences_for("EscapeMeGateway") == []
        await until(pilot, lambda: bool(actions_logged()), "the desk to journal the cancel")
        assert [(r.kind, r.action, r.status) for r in actions_logged()] == [
            ("event", "silence.create", "cancelled")]


async def test_a_cancel_goes_to_the_desk_as_an_audited_cancel_and_sends_nothing(
        demo_data: DemoData, manager: Manager, make_app: Any) -> None:
    """`SilenceDesk.cancel` (the dialog's Esc) hands the plan to the desk unconfirmed: one
    `cancelled` audit event, as the CLI's "not confirmed" and the runbook dialog's Esc."""
    manager.post_alert("CancelMeGateway", team="llm")
    app = make_app(backend=console_backend(demo_data, manager))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_alerts_on(pilot, "CancelMeGateway")
        manager.proxy.clear()
        dialog = await dialog_with_plan(pilot, "s")
        preview = dialog.preview
        assert preview is not None and preview.ready
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, AlertsScreen), "the dialog to close")
        before = len(actions_logged())  # 0, or 1 once the dialog's Esc calls cancel itself
        result = await asyncio.to_thread(app.silence_desk.cancel, preview)
        assert (result.status, result.sent) in {("cancelled", False), ("failed", False)}
        if before == 0:
            assert result.status == "cancelled", result.detail
        assert manager.proxy.mutating() == [] and manager.silences_for("CancelMeGateway") == []
        assert [(r.kind, r.action, r.status) for r in actions_logged()] == [
            ("event", "silence.create", "cancelled")]


async def test_read_only_mode_shows_the_plan_and_sends_nothing(
        demo_data: DemoData, manager: Manager, make_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMDECK_READONLY", "1")
    manager.post_alert("ReadOnlyGateway", team="llm")
    app = make_app(backend=console_backend(demo_data, manager))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_alerts_on(pilot, "ReadOnlyGateway")
        manager.proxy.clear()
        dialog = await dialog_with_plan(pilot, "s")
        preview = dialog.preview
        assert preview is not None and preview.ready and preview.read_only
        assert READ_ONLY_NOTE in screen_text(app)
        assert "(LLMDECK_READONLY=1)" in screen_text(app)  # the desk's reason, not a fixed text
        assert dialog.query_one("#silence-typed", Input).disabled
        assert not confirm_enabled(dialog)
        assert dialog.focused is dialog.query_one("#silence-cancel", Button)
        await pilot.press(*"am", "enter")  # the field takes no text; Enter is on Cancel
        await until(pilot, lambda: isinstance(app.screen, AlertsScreen), "the dialog to close")
        # and the guarded function refuses even a confirmation handed to it directly
        result = await asyncio.to_thread(app.silence_desk.apply, Confirmation(preview, "am"))
        assert (result.status, result.sent) == ("refused", False)
        await pilot.pause(1.0)
        assert manager.proxy.mutating() == []
        assert manager.silences_for("ReadOnlyGateway") == []


async def test_prod_without_write_is_read_only_and_with_write_sends_the_body_shown(
        demo_data: DemoData, manager: Manager, make_app: Any) -> None:
    """[actions] prod = true: without --write the dialog says READ-ONLY with the desk's reason
    and takes no name; with --write (SilenceDesk.write, passed by app.py) typing the name sends,
    and the silence Alertmanager keeps ends exactly when the plan shown said (the desk sends the
    shown body, not a re-timed one: review finding 16)."""
    from console.config_actions import ActionsSettings

    manager.post_alert("ProdGateway", team="llm")
    backend = console_backend(demo_data, manager)
    backend.config = backend.config.model_copy(update={"actions": ActionsSettings(
        environment="prod-test", prod=True)})
    app = make_app(backend=backend)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_alerts_on(pilot, "ProdGateway")
        manager.proxy.clear()
        app.silence_desk.write = False
        dialog = await dialog_with_plan(pilot, "s")
        refused = dialog.preview
        assert refused is not None and refused.ready and refused.read_only
        assert "prod-test is prod" in refused.read_only_reason and "--write" in refused.read_only_reason
        shown = screen_text(app)
        assert READ_ONLY_NOTE in shown and "prod-test is prod" in shown and "LLMDECK_READONLY" not in shown
        assert dialog.query_one("#silence-typed", Input).disabled and not confirm_enabled(dialog)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, AlertsScreen), "the dialog to close")

        app.silence_desk.write = True  # `llmdeck --write`
        dialog = await dialog_with_plan(pilot, "s")
        preview = dialog.preview
        assert preview is not None and preview.ready and not preview.read_only
        assert preview.read_only_reason == ""
        await pilot.press("a", "m")
        await pilot.pause()
        assert confirm_enabled(dialog)
        await pilot.press("enter")
        await until(pilot, lambda: any(s["status"]["state"] == "active"
                                       for s in manager.silences_for("ProdGateway")),
                    "an active silence on the real Alertmanager")
        await until(pilot, lambda: "applied" in "".join(str(n.message) for n in app._notifications),
                    "the desk's answer")
        assert [m for m, _ in manager.proxy.mutating()] == ["POST"]
        request = preview.plan_text.split("Request:", 1)[1].splitlines()
        shown = json.loads("\n".join(line[2:] for line in request[request.index("  {"):]))
        (made,) = manager.silences_for("ProdGateway")
        assert _instant(made["endsAt"]) == _instant(shown["endsAt"])
        assert (made["comment"], made["createdBy"]) == (shown["comment"], shown["createdBy"])


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_expire_a_silence_with_x(demo_data: DemoData, manager: Manager, make_app: Any) -> None:
    manager.post_alert("ExpireMeGateway", team="llm")
    now = utc_now()
    created = httpx.post(f"{manager.url}/api/v2/silences", json={
        "matchers": [{"name": "alertname", "value": "ExpireMeGateway", "isRegex": False, "isEqual": True}],
        "startsAt": now.isoformat() + "Z", "endsAt": (now + timedelta(hours=2)).isoformat() + "Z",
        "createdBy": "test", "comment": "to be expired from the console"})
    silence_id = created.json()["silenceID"]
    app = make_app(backend=console_backend(demo_data, manager))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_alerts_on(pilot, "ExpireMeGateway")
        await until(pilot, lambda: silence_id[:8] in screen_text(app) or "test" in screen_text(app),
                    "the silence listed")
        manager.proxy.clear()
        dialog = await dialog_with_plan(pilot, "x")
        preview = dialog.preview
        assert preview is not None and preview.ready and preview.ask.silence_id == silence_id
        assert f"DELETE {manager.proxy.url}/api/v2/silence/{silence_id}" in preview.plan_text
        assert "Expire silence" in screen_text(app)
        await pilot.press(*"am")
        await pilot.click("#silence-confirm")
        await until(pilot, lambda: manager.silences_for("ExpireMeGateway")[0]["status"]["state"]
                    == "expired", "the silence expired on the real Alertmanager")
        assert [m for m, _ in manager.proxy.mutating()] == ["DELETE"]
        await until(pilot, lambda: silence_id[:8] not in screen_text(app),
                    "the silence gone from the silences table")


async def test_hostile_label_text_is_inert_and_triggers_nothing(
        demo_data: DemoData, manager: Manager, make_app: Any) -> None:
    manager.post_alert("HostileLabels", note=HOSTILE)
    app = make_app(backend=console_backend(demo_data, manager))
    async with app.run_test(size=(160, 50)) as pilot:
        await open_alerts_on(pilot, "HostileLabels")
        await until(pilot, lambda: "[@click=screen.silence]" in screen_text(app), "the label as text")
        manager.proxy.clear()
        assert clickable_segments(app) == []  # no cell carries the label's click action
        line = next(i for i, text in enumerate(screen_lines(app)) if "[@click=screen.silence]" in text)
        await pilot.click(offset=(screen_lines(app)[line].index("[@click=screen.silence]") + 2, line))
        await pilot.pause(0.3)
        assert isinstance(app.screen, AlertsScreen) and app.is_running  # the click did nothing

        dialog = await dialog_with_plan(pilot, "s")
        assert dialog.preview is not None and dialog.preview.ready
        text, raw = screen_text(app), terminal_bytes(app)
        assert "[@click=screen.silence]pwn[/]" in text and "\\x1b]0;title" in text
        assert "\x1b]0;" not in raw and "\x9b" not in raw
        assert clickable_segments(app) == []
        await pilot.click("#silence-plan")
        await pilot.pause(0.3)
        assert isinstance(app.screen, SilenceDialog) and app.is_running
        await pilot.press("escape")
        await pilot.pause(0.5)
        assert manager.proxy.mutating() == []


class PromOnlyHub(FixedHub):
    """A fixed hub with one Prometheus and no Alertmanager."""

    pollers: list[object] = []


async def test_a_prometheus_alert_without_alertmanager_says_where_silences_live(
        demo_data: DemoData, make_app: Any) -> None:
    at = WALL - timedelta(seconds=2)
    firing = alert("prom", "prometheus", "GatewayErrorBudgetBurn", "firing", "page", "burn", 12)
    hub = PromOnlyHub([Reading("prom", "prometheus", PrometheusReading("prom", at, (firing,), (), (), ()),
                               at, status("prom", "prometheus", "live"))])
    backend = PortableBackend(demo_data)
    backend.hub = hub  # type: ignore[assignment]
    app = make_app(backend=backend)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("6")
        await settle(pilot)
        dialog = await dialog_with_plan(pilot, "s")
        assert dialog.preview is not None and dialog.preview.problem == NO_ALERTMANAGER
        assert "silences live in Alertmanager" in screen_text(app)
        assert dialog.query_one("#silence-typed", Input).disabled and not confirm_enabled(dialog)


def test_alert_matchers_are_every_label_alertname_first() -> None:
    firing = ActiveAlert("am", "alertmanager", "Burn", "active", "page",
                         (("alertname", "Burn"), ("instance", "gw-1"), ("severity", "page")),
                         "", None, "fp", (), ())
    ask = SilenceDesk(None).ask_silence(firing, "alice")
    assert [str(m) for m in ask.matchers] == ["alertname=Burn", "instance=gw-1", "severity=page"]
    assert (ask.source, ask.length, ask.comment) == ("am", "2h", "silenced from llmdeck by alice")


# ---- snapshot ----------------------------------------------------------------------------


def fixed_preview() -> tuple[SilenceAsk, SilencePreview]:
    """A plan built by the real plan code's parts over fixed data: the request of a client
    with a bearer token (masked), one alert it silences, ends two hours after WALL."""
    from connectors.alertmanager import AlertmanagerClient, silence_body
    from console.silence_cli import plan_text
    from console.silences import SilencePlan

    source = AlertmanagerSource(name="am", url="http://alertmanager.example:9093")
    client = AlertmanagerClient.for_source(source, {"Authorization": "Bearer s3cr3t-canary"})
    matchers = (SilenceMatcher("alertname", "VllmKvCacheFull"),
                SilenceMatcher("model", "meta-llama/Llama-3.1-8B-Instruct"),
                SilenceMatcher("severity", "ticket"))
    comment = "silenced from llmdeck by alice"
    body = silence_body(matchers, WALL, WALL + timedelta(hours=2), "alice", comment)
    kv = alert("am", "alertmanager", "VllmKvCacheFull", "active", "ticket",
               "KV cache above 80% on gpu-vllm", 31, model="meta-llama/Llama-3.1-8B-Instruct")
    plan = SilencePlan("am", "create", client.describe_create(body), (kv,), WALL + timedelta(hours=2),
                       matchers, comment, "alice", body=json.dumps(body))
    ask = SilenceAsk("create", "am", "VllmKvCacheFull", matchers, comment=comment)
    return ask, SilencePreview(ask, plan_text(plan), 1, key=1)


def test_silence_dialog_snapshot(snap_compare: Any, make_app: Any, demo_data: DemoData) -> None:
    """`s` on VllmKvCacheFull (fixed plan, 80x24): a red-bordered dialog titled `Silence alert
    VllmKvCacheFull in Alertmanager am`; `for 2h` and the prefilled comment; the plan (create on
    am, matchers alertname/model/severity, ends 14:20Z, it will silence 1 alert, the request
    POST http://alertmanager.example:9093/api/v2/silences with `authorization: ***`, scrolled
    below); the note `silences 1 alert(s) now`; `Type the source name am to confirm:` with an
    empty field and a dimmed (disabled) Confirm. No token text anywhere."""
    ask, preview = fixed_preview()
    assert "s3cr3t-canary" not in preview.plan_text and "authorization: ***" in preview.plan_text
    backend = PortableBackend(demo_data)
    backend.hub = fixed_hub()  # type: ignore[assignment]

    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("6")
        await settle(pilot)
        await pilot.app.push_screen(SilenceDialog(ask, preview))
        await pilot.pause()

    assert snap_compare(make_app(backend=backend, incident_feed=False), terminal_size=(80, 24),
                        run_before=run_before)


def test_desk_without_hub_plans_nothing() -> None:
    ask = SilenceAsk("expire", "am", "abc", silence_id="abc")
    preview = SilenceDesk(None).plan(ask)
    assert not preview.ready and "am" in preview.problem

