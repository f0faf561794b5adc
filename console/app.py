"""The Textual app: wires the backend (cache + sources) into screens and runs the workers.

The app owns every worker. The poller fetches the active screen's view on a
thread, posts the snapshot to that screen, and re-arms its timer only when the
fetch finished, so polls never overlap; screens that are not showing are not
polled, and a modal on top pauses polling. The demo simulator (if any) runs
in its own thread worker (after its backfill, done before the app starts) and
writes through the real ingest path.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial
from typing import ClassVar, Protocol

from textual import events
from textual.app import ScreenStackError, SystemCommand
from textual.binding import Binding, BindingType
from textual.driver import Driver
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.worker import Worker, WorkerState, get_current_worker

from console.backend import Backend, fault_of
from console.fault_watch import FaultWatch
from console.idle_gc import IdleCollector
from console.incident_feed import IncidentFeed
from console.incident_watch import IncidentWatch, traffic_scope
from console.incidents import Incident
from console.operator import operator
from console.runbook_actions import RunbookBridge
from console.safe_text import cell
from console.silence_actions import SilenceDesk
from console.stop_signals import StopSignals
from console.timeutil import utc_now
from console.views import View
from panels.base import DeckScreen
from panels.command_line import CommandLine, parse_command
from panels.help_screen import HelpScreen
from panels.incident_flow import IncidentFlow
from panels.messages import (
    FetchFailed,
    Navigate,
    RefreshRequested,
    SnapshotReady,
)
from panels.routes import HOME, ROUTE_BY_NAME, ROUTES
from panels.silence_flow import SilenceFlow
from panels.status_line import StatusLine
from themes import STYLESHEET, THEME_NAMES, THEMES, resolve


def goto_bindings() -> list[BindingType]:
    """`1`-`4`: jump to a screen; one per route with a key (ids `app.<name>`, remappable)."""
    return [Binding(route.key, f"goto({route.name!r})", route.key_title, show=False, id=f"app.{route.name}")
            for route in ROUTES if route.key is not None]


REVERT_CHECK_SECONDS = 15.0
"""How often the console looks for time-boxed actions whose revert is due (after a poll)."""


class Stepper(Protocol):
    """What the demo simulator looks like to the app (see console/demo/simulator.py)."""

    def step(self) -> object: ...


class SourceChanged(Message):
    """An outside source answered for the first time or changed state (posted from the hub's
    thread; post_message is thread-safe)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class LlmdeckApp(IncidentFlow, SilenceFlow):
    """llmdeck: SLO, cost and trace panels for the people on call for LLM services.

    Incidents and runbook actions (keys, workers, the action dialog) come from
    `panels.incident_flow.IncidentFlow`, silences (`s`/`x` on :alerts, the dialog, its workers)
    from `panels.silence_flow.SilenceFlow`; the incident feed runs in the poll worker here.
    """

    backend: Backend
    CSS_PATH = str(STYLESHEET)
    TITLE = "llmdeck"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("colon", "command_line", ":cmd", id="app.command"),
        Binding("question_mark", "help", "Help", id="app.help"),
        *goto_bindings(),
        Binding("r", "refresh_now", "Refresh", show=False, id="app.refresh"),
        Binding("ctrl+t", "next_theme", "Theme", show=False, id="app.theme"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(
        self,
        backend: Backend,
        *,
        theme: str | None = None,
        simulator: Stepper | None = None,
        poll: bool = True,
        wall_clock: Callable[[], datetime] = utc_now,
        badge: str | None = None,
        stop: StopSignals | None = None,
        runbooks: RunbookBridge | None = None,
        incident_feed: bool = True,
    ) -> None:
        # NO_COLOR: by default Textual only turns colours grey (they are still colour codes);
        # in ANSI mode it drops them, and the tcss marks cursors by reverse video instead.
        super().__init__(ansi_color=True if "NO_COLOR" in os.environ else None)
        self.wall_clock = wall_clock
        """When a refresh happened (status lines); tests pin it for stable snapshots."""
        self.backend = backend
        self.simulator = simulator
        self.poll_enabled = poll
        self.refresh_seconds = max(1.0, backend.config.ui.refresh_seconds)
        for t in THEMES:
            self.register_theme(t)
        self.theme = resolve(theme or backend.config.ui.theme) or THEME_NAMES[0]
        self._timer: Timer | None = None
        self._due: float | None = None
        """When the pending poll timer fires (time.monotonic()), None once it fired."""
        self._polling = False
        self._poll_again = False
        self.idle_gc = IdleCollector()
        """Runs full garbage collections between key presses (console/idle_gc.py)."""
        self.status_badge = badge
        """A warning every status line carries for as long as it holds (insecure secret storage)."""
        self.faults = FaultWatch()
        """The cache fault last read from the backend (shown on every status line)."""
        self.stop_signals = stop
        """SIGHUP/SIGTERM/SIGINT, handed to this app while it runs (`llmdeck`, `llmdeck demo`)."""
        self._operator = operator()["user"]
        """Who silences (looked up once: getpass may ask the password database)."""
        self.runbooks = runbooks or RunbookBridge.for_config(backend.config, backend.incident_store())
        """Plans and applies runbook actions through the desk (`x` on an incident, `:runbook`)."""
        self.silence_desk = SilenceDesk(backend.hub, config=backend.config, write=self.runbooks.write)
        """Plans and applies silences through `console.silences` on the hub (`s`/`x` on :alerts);
        `llmdeck --write` reaches it as it reaches the runbook desk."""
        self.incident_watch = IncidentWatch(IncidentFeed(backend.incident_store())) \
            if incident_feed else None
        """Feeds what fires to the incident feed after every poll (in the poll's worker); None
        when turned off (screen snapshots, which its "INC-1 opened" toast would cover)."""
        self._revert_check = 0.0
        """When due reverts were last looked for (time.monotonic())."""

    # ---- screens and navigation -------------------------------------------------

    def get_default_screen(self) -> Screen[None]:
        return ROUTE_BY_NAME[HOME].screen(None)

    def get_driver_class(self) -> type[Driver]:
        from textual.drivers.linux_driver import LinuxDriver

        from panels.terminal_driver import HangupSafeDriver

        found = super().get_driver_class()
        return HangupSafeDriver if found is LinuxDriver else found

    def on_mount(self) -> None:
        if self.stop_signals is not None:  # the runner installed the handlers: the app exits
            self.stop_signals.attach(asyncio.get_running_loop(), self._stop_for_signal)
        self.call_after_refresh(self._after_first_paint)
        self.set_keymap(dict(self.backend.config.ui.keymap))
        self.set_interval(1.0, self._tick_status_lines)
        if self.simulator is not None:
            self.run_worker(self._simulate, thread=True, exclusive=True, exit_on_error=False,
                            group="demo", name="demo", description="demo simulator")
        self._schedule(0)

    def _after_first_paint(self) -> None:
        # Everything alive after the first paint (Textual, DuckDB, the widgets) lives as long
        # as the app: leave it out of every later collection, so collections stay short.
        gc.freeze()
        # and run the full collections that remain between key presses, not during one
        self.idle_gc.start()
        self.set_interval(0.25, self.idle_gc.tick, name="idle-gc")
        # at the latest: normally the first data frame starts them (on_worker_state_changed)
        self.set_timer(3.0, self._start_sources, name="start-sources")

    def _start_sources(self) -> None:
        """Start polling the outside sources on their own thread, once the first screen's data is
        painted: their first poll (imports, TLS, answers) takes the GIL, which the first frame
        with data should not share (measured: start-up to data 1.19x with six sources when
        started at the first paint), and a slow or hung source never blocks a key press."""
        hub = self.backend.hub
        if hub is not None and not hub.running:
            hub.listener = self._source_changed
            hub.start()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.InputEvent):
            self.idle_gc.input_seen()
        await super().on_event(event)

    def _stop_for_signal(self, code: int) -> None:
        self.exit(return_code=code)

    def on_unmount(self) -> None:
        if self.stop_signals is not None:
            self.stop_signals.detach()
        self.idle_gc.stop()
        if self.backend.hub is not None:
            self.backend.hub.stop(timeout=2.0)
        self.runbooks.close()
        # Hand the frozen objects back to the collector, so whatever holds native
        # resources (DuckDB's bindings) is freed before the interpreter exits.
        gc.unfreeze()

    def action_goto(self, target: str) -> None:
        """k9s-style jump: back to the overview, then open `target` on top of it."""
        while len(self.screen_stack) > 1:
            self.pop_screen()
        if target != HOME:
            self.push_screen(self._kept_screen(target))
        self._schedule(0)

    def _kept_screen(self, target: str) -> str:
        """The one installed screen `1`-`4` and `:name` open, made on first use and kept.

        A popped screen that is not installed is torn down, and its hundreds of widgets and
        caches become cyclic garbage that the next full collection must walk (measured:
        gen2 collections of 45-60 ms on the UI thread after a few hundred switches). Kept,
        it also reopens with its last data, filter and cursor while the poll refreshes it.
        """
        name = f"deck-{target}"
        if not self.is_screen_installed(name):
            self.install_screen(ROUTE_BY_NAME[target].screen(None), name)
        return name

    def on_navigate(self, message: Navigate) -> None:
        if message.view is None:
            self.action_goto(message.target)
            return
        self.push_screen(ROUTE_BY_NAME[message.target].screen(message.view))
        self._schedule(0)

    def _source_changed(self, name: str) -> None:
        """The hub's listener (its thread): refresh the screen soon."""
        self.post_message(SourceChanged(name))

    def on_source_changed(self, message: SourceChanged) -> None:
        self._schedule(0.2)  # several sources answering at once make one refresh

    def on_refresh_requested(self, message: RefreshRequested) -> None:
        self.action_refresh_now()

    def action_refresh_now(self) -> None:
        self._schedule(0)

    def action_command_line(self) -> None:
        self.push_screen(CommandLine(), self._run_command)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_next_theme(self) -> None:
        self.theme = THEME_NAMES[(THEME_NAMES.index(self.theme) + 1) % len(THEME_NAMES)] \
            if self.theme in THEME_NAMES else THEME_NAMES[0]

    def _run_command(self, text: str | None) -> None:
        if not text:
            return
        command = parse_command(text)
        if command is None:
            self.notify(f"unknown command {cell(text, 40)!r}; try :help", severity="warning",
                        markup=False)
            return
        name, arg = command
        route = ROUTE_BY_NAME.get(name)
        if route is not None and route.is_command:
            self.action_goto(name)
        elif name == "theme":
            chosen = resolve(arg or "")
            if chosen is None:
                self.notify(f"themes: {', '.join(THEME_NAMES)}", markup=False)
            else:
                self.theme = chosen
        elif name == "help":
            self.action_help()
        elif name == "refresh":
            self.action_refresh_now()
        elif name == "incident":
            self.run_incident_command(arg)
        elif name == "runbook":
            self.run_runbook_command(arg)
        elif name == "quit":
            self.exit()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for route in ROUTES:
            if route.is_command:
                yield SystemCommand(f":{route.name}", route.help, partial(self.action_goto, route.name))
        for t in THEME_NAMES:
            yield SystemCommand(f"theme {t}", "switch to this theme", partial(setattr, self, "theme", t))
        yield SystemCommand("refresh now", "fetch the current view now", self.action_refresh_now)
        yield SystemCommand("keys", "every key binding (?)", self.action_help)
        yield from self.incident_commands(screen)

    # ---- the poller -------------------------------------------------------------

    def _schedule(self, delay: float) -> None:
        """Poll in `delay` seconds, unless a poll is already due sooner.

        A refresh asked for (view changed, `r`) just before the running poll ends must not be
        pushed back a whole interval by that poll re-arming its timer.
        """
        if not self.poll_enabled:
            return
        delay = max(delay, 0.01)
        due = time.monotonic() + delay
        if self._timer is not None and self._due is not None and self._due <= due:
            return
        if self._timer is not None:
            self._timer.stop()
        self._due = due
        self._timer = self.set_timer(delay, self._poll, name="poll")

    def _poll(self) -> None:
        self._due = None
        if self._polling:
            self._poll_again = True
            return
        try:
            screen = self.screen
        except ScreenStackError:  # the app is shutting down
            return
        self._polling = True
        if not isinstance(screen, DeckScreen):  # a modal is open: the screen's poll pauses,
            self.run_worker(self._observe, thread=True, exit_on_error=False,  # the feed does not
                            group="poll", name="poll", description="incident feed")
            return
        view = screen.view()
        self.run_worker(partial(self._fetch, screen, view), thread=True, exit_on_error=False,
                        group="poll", name="poll", description=f"fetch {type(view).__name__}")

    def _fetch(self, screen: DeckScreen, view: View) -> None:
        snapshot: object = None
        try:
            fetched = self.backend.fetch(view)
        except Exception as exc:  # a failing source or query must never take the UI down
            fault = fault_of(exc, self.backend.cache.path)
            if fault is not None:  # the cache file's fault: the panel says where, what to do
                screen.post_message(FetchFailed(view, fault.line, fault.message))
            else:
                screen.post_message(FetchFailed(view, f"{type(exc).__name__}: {exc}"))
        else:
            screen.post_message(SnapshotReady(fetched))
            snapshot = fetched.snapshot
        self._observe(snapshot)

    def _observe(self, snapshot: object = None) -> None:
        """The incident feed, after every poll whatever screen shows (this worker's thread: the
        backend's memo is never used by two threads at once). An incident it opens is said."""
        watch = self.incident_watch
        if watch is None:
            return
        problem = watch.problem
        try:
            result = watch.observe(self.backend, snapshot, self.backend.clock(), self.wall_clock())
        except Exception as exc:  # the cache's own faults are the status line's to say
            if fault_of(exc) is None:
                self.call_from_thread(self._feed_problem, f"{type(exc).__name__}: {cell(exc, 300)}")
            return
        if result is None and watch.problem != problem:
            self.call_from_thread(self._feed_problem, watch.problem)
        for incident in result.opened if result is not None else ():
            self.call_from_thread(self._incident_opened, incident.id, incident.title)

    def runbook_scope(self, incident: Incident) -> dict[str, str]:
        """The incident's SLO/budget scope completed from recent traffic (a worker thread)."""
        return traffic_scope(self.backend, super().runbook_scope(incident), self.backend.clock())

    def _feed_problem(self, problem: str) -> None:
        self.notify(f"incident feed: {problem}", severity="error", markup=False, timeout=15)

    def _incident_opened(self, incident_id: str, title: str) -> None:
        self.notify(f"{incident_id} opened: {cell(title, 120)} (8: incidents)", title="incident",
                    severity="warning", markup=False, timeout=20)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if self.incident_worker_failed(worker, event.state):
            return
        if worker.group == "poll" and event.state in (
            WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED
        ):
            self._polling = False
            hub = self.backend.hub
            if hub is not None and not hub.running:  # after the frame that shows this data
                self.call_after_refresh(self.call_after_refresh, self._start_sources)
            if self._poll_again:
                self._poll_again = False
                self._schedule(0)
            else:
                self._schedule(self.refresh_seconds)
            if time.monotonic() - self._revert_check >= REVERT_CHECK_SECONDS:
                self._revert_check = time.monotonic()
                self.run_due_reverts()
        elif worker.group.startswith("silence") and event.state is WorkerState.ERROR:
            self.notify(f"silence: {cell(worker.error, 300)}", severity="error", markup=False)
        elif worker.group == "demo" and event.state is WorkerState.ERROR:
            self.notify(f"demo simulator stopped: {cell(worker.error, 200)}", severity="error",
                        markup=False, timeout=30)

    @property
    def status_fault(self) -> str | None:
        """The cache fault every status line shows first (a failed write, a corrupt block)."""
        return self.faults.line

    def check_fault(self) -> None:
        """Read the backend's cache fault (cheap); toast its whole message when it is new."""
        message = self.faults.poll(self.backend)
        if message is not None:
            self.notify(cell(message, 600), title="llmdeck", severity="error", markup=False,
                        timeout=10)

    def _tick_status_lines(self) -> None:
        try:
            screen = self.screen
        except ScreenStackError:  # the app is shutting down: this tick outlived its screens
            return
        self.check_fault()
        if isinstance(screen, DeckScreen):
            for line in screen.query(StatusLine):
                line.tick(self.wall_clock(), 3 * self.refresh_seconds + 2)

    # ---- the demo simulator -----------------------------------------------------

    def _simulate(self) -> None:
        assert self.simulator is not None
        worker = get_current_worker()
        while not worker.is_cancelled:
            try:
                self.simulator.step()
            except Exception:  # recorded in the simulator's source status; the next step catches up
                pass
            for _ in range(10):
                if worker.is_cancelled:
                    return
                time.sleep(0.1)


__all__ = ["LlmdeckApp", "SnapshotReady"]
