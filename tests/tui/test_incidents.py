"""`:incidents` and one incident's detail, driven through the real app with Textual's pilot.

The app runs on the session's frozen demo cache (15 simulated minutes into the scripted
anthropic outage), so the incident feed, which runs after every poll, opens the outage's
incident by itself. The incident store is the real SQLite one in the test's own
XDG_STATE_HOME. Keys must change the store (a, n, m, R, o); hostile titles and notes
(markup, `[/]`, escape sequences) must render as inert text.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from console.incidents import Incident, IncidentStore
from panels.incidents_screen import IncidentScreen, IncidentsScreen
from panels.prompt_dialog import PromptDialog
from tests.tui.conftest import WALL, DemoData, settle
from tests.tui.screen_text import screen_lines, screen_text, terminal_bytes
from tests.tui.test_snapshots import PortableBackend

HOSTILE_TITLE = "[@click=app.quit]boom[/] \x1b]0;pwned\x07 [/] \x9b2J [b]bold?"
HOSTILE_NOTE = "[@click=screen.action_change('resolve')]note[/] \x1b[31mred"


async def until(pilot: Any, check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Pause until `check()` holds; fail naming `what`, with the screen's text."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await pilot.pause(0.05)
        if check():
            return
    raise AssertionError(f"timed out waiting for {what}:\n{screen_text(pilot.app)}")


def clickable_segments(app: Any) -> list[str]:
    """Text of every segment on screen that carries a click action (markup `[@click=...]`)."""
    update = app.screen._compositor.render_update(full=True)
    return [text for line in update.strips for strip in line for text, style, _ in strip
            if style is not None and style.meta and "@click" in style.meta]


def auto_incidents(store: IncidentStore) -> list[Incident]:
    return [i for i in store.list() if i.auto]


async def open_incident_row(pilot: Any, needle: str) -> None:
    """On `:incidents`, filter to `needle` and open the row under the cursor (Enter)."""
    await pilot.press("slash", *needle, "enter")
    await pilot.pause()
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(pilot.app.screen, IncidentScreen)
                and pilot.app.screen.incident is not None, "the incident's detail")


async def test_the_demo_outage_opens_one_incident_by_itself(demo_data: DemoData, make_app: Any) -> None:
    app = make_app(backend=PortableBackend(demo_data))
    store = IncidentStore()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await until(pilot, lambda: bool(auto_incidents(store)), "the feed to open the outage's incident")
        await pilot.press("8")
        await settle(pilot)
        await pilot.pause(1.5)  # more polls: the same outage must not open a second incident
        opened = auto_incidents(store)
        assert len(opened) == 1
        incident = opened[0]
        assert incident.state == "open" and incident.severity == "sev2"
        assert "slo:anthropic availability" in incident.causes
        assert incident.opened_at == WALL  # the feed writes at the (pinned) wall clock
        text = screen_text(app)
        assert isinstance(app.screen, IncidentsScreen)
        assert incident.id in text and "✖ open" in text and "anthropic availab" in text, text
        assert f"anthropic availability +{len(incident.causes) - 1}" in text, text  # its name, +N
        assert any("opened" in str(n.message) for n in app._notifications)
        kinds = [e.kind for e in store.timeline(incident.id)]
        assert kinds[0] == "opened" and "alert_firing" in kinds


async def test_keys_acknowledge_note_mitigate_resolve_write_the_store(
        demo_data: DemoData, make_app: Any) -> None:
    store = IncidentStore()
    mine, _ = store.open(HOSTILE_TITLE, severity="sev3", at=WALL - timedelta(minutes=7))
    app = make_app(backend=PortableBackend(demo_data))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("8")
        await settle(pilot)
        await open_incident_row(pilot, "boom")
        assert app.screen.incident.id == mine.id

        await pilot.press("a")
        await until(pilot, lambda: store.get(mine.id).state == "acknowledged", "acknowledged")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, PromptDialog), "the note prompt")
        await pilot.press("enter")  # an empty note is not written: the prompt stays
        await pilot.pause()
        assert isinstance(app.screen, PromptDialog)
        app.screen.query_one("#prompt-input").value = HOSTILE_NOTE  # as a paste: made printable
        await pilot.press("enter")
        await until(pilot, lambda: any(e.kind == "note" for e in store.timeline(mine.id)), "the note")
        await pilot.press("m")
        await until(pilot, lambda: store.get(mine.id).state == "mitigated", "mitigated")
        await pilot.press("R")
        await until(pilot, lambda: store.get(mine.id).state == "resolved", "resolved")
        await until(pilot, lambda: "resolved" in screen_lines(app)[1], "the header to say resolved")

        states = [e.text for e in store.timeline(mine.id) if e.kind == "state"]
        assert len(states) == 3
        note = next(e for e in store.timeline(mine.id) if e.kind == "note")
        assert note.text.startswith("[@click=screen.action_change('resolve')]note[/]")
        # the hostile title and note are on screen as text, and nothing on screen is clickable
        text, raw = screen_text(app), terminal_bytes(app)
        assert "[@click=app.quit]boom[/]" in text and "\\x1b]0;pwned" in text
        assert "[@click=screen.action_change('resolve')]note[/]" in text
        assert "\x1b]0;" not in raw and "\x9b" not in raw and "\x1b[31m" not in raw
        assert clickable_segments(app) == []
        assert app.is_running

        await pilot.press("a")  # a backward transition is refused and said, not raised
        await until(pilot, lambda: any("already resolved" in str(n.message) or "resolved" in
                                       str(n.message) for n in app._notifications), "the refusal")
        assert store.get(mine.id).state == "resolved" and app.is_running


async def test_hostile_title_in_the_list_is_inert_and_clicks_do_nothing(
        demo_data: DemoData, make_app: Any) -> None:
    store = IncidentStore()
    store.open(HOSTILE_TITLE, severity="sev1", at=WALL - timedelta(minutes=3))
    app = make_app(backend=PortableBackend(demo_data))
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await pilot.press("8")
        await settle(pilot)
        await until(pilot, lambda: "[@click=app.quit]boom[/]" in screen_text(app), "the title as text")
        assert clickable_segments(app) == []
        lines = screen_lines(app)
        row = next(i for i, line in enumerate(lines) if "[@click=app.quit]" in line)
        await pilot.click(offset=(lines[row].index("[@click=app.quit]") + 3, row))
        await pilot.pause(0.3)
        assert app.is_running and isinstance(app.screen, IncidentsScreen | IncidentScreen)
        raw = terminal_bytes(app)
        assert "\x1b]0;pwned" not in raw and "\x9b" not in raw


async def test_o_and_the_incident_command_open_incidents_by_hand(
        demo_data: DemoData, make_app: Any) -> None:
    store = IncidentStore()
    app = make_app(backend=PortableBackend(demo_data))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("8")
        await settle(pilot)
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, PromptDialog), "the title prompt")
        await pilot.press(*"checkout latency", "enter")
        await until(pilot, lambda: any(i.title == "checkout latency" for i in store.list()),
                    "the incident opened with o")
        await pilot.press("colon", *"incident open gpu pool down", "enter")
        await until(pilot, lambda: any(i.title == "gpu pool down" for i in store.list()),
                    "the incident opened with :incident open")
        await until(pilot, lambda: "gpu pool down" in screen_text(app), "the list to show it")
        by_hand = [i for i in store.list() if not i.auto]
        assert {i.title for i in by_hand} == {"checkout latency", "gpu pool down"}
        assert all(i.state == "open" and not i.causes for i in by_hand)


async def test_the_list_fits_80_columns_and_shows_the_owner_from_120(
        demo_data: DemoData, make_app: Any) -> None:
    """At 80x24 each row holds id, sev, state, age, the title cut with … and a short causes
    summary, nothing cut off at the right edge; resized to 120 the owner and the first cause
    (its name) with `+2` show too, and the title gets longer."""
    outage_id = fixed_incidents()
    app = make_app(backend=PortableBackend(demo_data), incident_feed=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("8")
        await until(pilot, lambda: outage_id in screen_text(app), "the list")
        row = next(line for line in screen_lines(app) if outage_id in line)
        assert len(row.rstrip()) <= 80
        for part in ("sev2", "✖ open", "12m", "SLO anthropic", "…", "3 causes"):
            assert part in row, (part, row)
        assert "owner" not in screen_text(app) and "llmdeck " not in row
        hostile = next(line for line in screen_lines(app) if "sev4" in line)
        assert "[@click=app.quit]" in hostile and "by hand" in hostile
        narrow_title = row.split("12m", 1)[1].split("…", 1)[0].strip()

        await pilot.resize_terminal(120, 30)
        await until(pilot, lambda: "owner" in screen_text(app), "the owner column at 120")
        row = next(line for line in screen_lines(app) if outage_id in line)
        assert "anthropic availability +2" in row and "llmdeck" in row, row
        wide_title = row.split("12m", 1)[1].split("slo:", 1)[0].strip()
        assert wide_title.startswith(narrow_title) and len(wide_title) > len(narrow_title) + 10

        await pilot.resize_terminal(80, 24)  # and back: no owner column, nothing past 80
        await until(pilot, lambda: "owner" not in screen_text(app), "the 80-column layout again")
        assert all(len(line.rstrip()) <= 80 for line in screen_lines(app))


def test_causes_summary_fits_its_width() -> None:
    from console.timeutil import utc_now
    from panels.incidents_screen import causes_text

    def incident(*causes: str) -> Incident:
        now = utc_now()
        return Incident("INC-1", "t", "sev2", "open", "me", now, None, None, None, causes, True, now)

    three = incident("slo:anthropic availability", "slo:anthropic rate limits", "alert:am/X")
    assert causes_text(three, 48) == "slo:anthropic availability +2"
    assert causes_text(three, 25) == "anthropic availability +2"
    assert causes_text(three, 20) == "anthropic availa… +2"
    assert causes_text(three, 19) == "3 causes"
    assert causes_text(three, 10) == "3 causes"
    assert causes_text(incident("slo:anthropic availability"), 10) == "anthropic…"
    assert causes_text(incident("alert:demo-alertmanager/AnthropicErrorBudgetBurn"), 10) == "Anthropic…"
    assert causes_text(incident(), 14) == "by hand"


async def test_the_detail_says_its_times_are_wall_clock(demo_data: DemoData, make_app: Any) -> None:
    """The status line's `data HH:MMZ` is the data's clock; the incident's times are the wall
    clock: the header says `opened 12m ago (… wall clock)`, the timeline shows ages, and the
    entry under the cursor gives its wall-clock time, labelled."""
    outage_id = fixed_incidents()
    app = make_app(backend=PortableBackend(demo_data), incident_feed=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("8")
        await until(pilot, lambda: outage_id in screen_text(app), "the list")
        await open_incident_row(pilot, outage_id)
        await until(pilot, lambda: "wall clock" in screen_text(app), "the detail")
        opened = (WALL - timedelta(minutes=12)).strftime("%H:%M:%S")
        text = screen_text(app)
        assert f"opened 12m ago ({opened}Z wall clock)" in text, text
        acted = (WALL - timedelta(minutes=4)).strftime("%H:%M:%S")
        assert f"action outcome by alice at {acted}Z wall clock:" in text
        rows = [line for line in screen_lines(app) if "action outcome" in line or "joined" in line]
        assert rows and all(f"{acted}Z" not in line or "wall clock" in line for line in rows)
        assert any(line.lstrip("│ ").startswith("4m") for line in rows), rows


# ---- snapshots at 80x24 over fixed incidents (the feed off: its toast would race them) ------


def fixed_incidents() -> str:
    """Three incidents with pinned times: the outage (auto, three causes, an action on its
    timeline), a hostile title opened by hand, and a resolved one. Returns the outage's id."""
    store = IncidentStore()
    old, _ = store.open("checkout 5xx after deploy", severity="sev3", owner="bob",
                        at=WALL - timedelta(hours=3))
    store.resolve(old.id)
    store.open(HOSTILE_TITLE, severity="sev4", owner="carol", at=WALL - timedelta(minutes=40))
    outage, _ = store.open("SLO anthropic availability pages: page: 1h burn 69.8 and 5m burn 154.5",
                           severity="sev2", cause="slo:anthropic availability", owner="llmdeck",
                           author="llmdeck", auto=True, at=WALL - timedelta(minutes=12))
    for minutes, cause in ((11, "slo:anthropic rate limits"), (9, "alert:am/AnthropicErrorBudgetBurn")):
        store.join(outage.id, cause, f"{cause} joined", author="llmdeck",
                   at=WALL - timedelta(minutes=minutes))
        store.add_entry(outage.id, "alert_firing", f"{cause} firing: page", author="llmdeck",
                        at=WALL - timedelta(minutes=minutes))
    store.add_entry(outage.id, "note", "anthropic status page: elevated errors [@click=app.quit]",
                    author="alice", at=WALL - timedelta(minutes=6))
    store.add_entry(outage.id, "action_intent", "Move traffic off a provider: sending 2 requests",
                    author="alice", at=WALL - timedelta(minutes=4))
    store.add_entry(outage.id, "action_outcome", "Move traffic off a provider: applied: read back on"
                    " demo-litellm", author="alice", at=WALL - timedelta(minutes=4))
    store.close()
    return outage.id


def test_incidents_list_snapshot(snap_compare: Any, make_app: Any, demo_data: DemoData) -> None:
    """`8` at 80x24: the summary `✖ 2 open · 2 unresolved · 3 listed · Enter opens one`; the
    table, all of it inside 80 columns (no owner column below 120): INC-3 (sev2, `✖ open` in
    reverse video, 12m, `SLO anthropic availability p…`, `3 causes`), INC-2 (sev4, open, 40m,
    the hostile title as plain text `[@click=app.quit]boom[/] \\x1…`, `by hand`), INC-1 dimmed
    `✔ resolved` 3h00m; the cursor on INC-3; footer `a Ack n Note m Mitigated R Resolve x
    Runbook o Open new`."""
    fixed_incidents()

    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("8")
        await settle(pilot)

    assert snap_compare(make_app(backend=PortableBackend(demo_data), incident_feed=False),
                        terminal_size=(80, 24), run_before=run_before)


def test_incident_detail_snapshot(snap_compare: Any, make_app: Any, demo_data: DemoData) -> None:
    """Enter on INC-3 at 80x24: `INC-3 · sev2 · open (reverse) · owner llmdeck · opened 12m ago
    (12:08:01Z wall clock)`, the bold title, `causes: slo:anthropic availability, slo:anthropic
    rate limits, alert:am/AnthropicErrorBudgetBurn` (wrapped), `Timeline, newest first` with an
    `ago` column: the action's outcome and intent at the top (4m, alice), the note with
    `[@click=app.quit]` as text, the firing and joined entries, `opened` (12m) last; under the
    table the entry under the cursor whole (`action outcome by alice at 12:16:01Z wall clock:
    Move traffic off a provider: applied: …`); the footer ends `x Runbook u Undo action`."""
    fixed_incidents()

    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("8")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)

    assert snap_compare(make_app(backend=PortableBackend(demo_data), incident_feed=False),
                        terminal_size=(80, 24), run_before=run_before)
