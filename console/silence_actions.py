"""The console's side of a silence: asks from alerts and silences, plans and applies on the hub.

`plan` and `apply` block (the app calls them from thread workers) and run the one guarded
function, `console.silences`, on the source hub's loop with the Alertmanager poller's own
client. A plan is kept here under a key and used once: the dialog only ever holds its text.
Nothing here sends a request of its own. No Textual here.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from console.alerts import ActiveAlert, Silence, SilenceMatcher
from console.silence_preview import NO_ALERTMANAGER, Confirmation, SilenceAsk, SilencePreview, SilenceResult

if TYPE_CHECKING:
    from connectors.alertmanager import AlertmanagerClient
    from console.config import Config
    from console.silences import SilencePlan
    from console.source_hub import SourceHub

T = TypeVar("T")

KEPT_PLANS = 8
"""Plans kept for confirmation at once (one dialog is open at a time; re-plans replace)."""


def alert_matchers(alert: ActiveAlert) -> tuple[SilenceMatcher, ...]:
    """Equality matchers on every label the alert has (alertname first), as Alertmanager's UI
    prefills them: the silence mutes this alert and no other."""
    labels = sorted(((k, v) for k, v in alert.labels if v != ""), key=lambda kv: kv[0] != "alertname")
    return tuple(SilenceMatcher(k, v) for k, v in labels)


class SilenceDesk:
    """Builds asks, plans them and applies confirmed plans, on the source hub's loop."""

    def __init__(self, hub: SourceHub | None, *, read_only: bool = False, plan_timeout: float = 20.0,
                 apply_timeout: float = 60.0, config: Config | None = None, write: bool = False) -> None:
        self.hub = hub
        self.read_only = read_only
        """The console's own read-only flag; `LLMDECK_READONLY=1` counts too (read at each call)."""
        self.config = config
        """[actions] for the desk (prod, roles); None: defaults (not prod)."""
        self.write = write
        """`llmdeck --write`: in an [actions] prod = true environment, silences are refused without it."""
        self.plan_timeout = plan_timeout
        self.apply_timeout = apply_timeout
        self._plans: dict[int, tuple[SilencePlan, AlertmanagerClient]] = {}
        self._keys = itertools.count(1)
        self._lock = threading.Lock()

    # ---- asks (UI thread, no I/O) ------------------------------------------------

    def alertmanagers(self) -> list[str]:
        """The configured Alertmanager sources, in config order."""
        pollers = self.hub.pollers if self.hub is not None else []
        return [p.name for p in pollers if p.kind == "alertmanager"]

    def ask_silence(self, alert: ActiveAlert, user: str) -> SilenceAsk:
        """Silence `alert`: in its own Alertmanager, or (a Prometheus alert) the first configured."""
        managers = self.alertmanagers()
        source = alert.source if alert.origin == "alertmanager" else (managers[0] if managers else "")
        return SilenceAsk("create", source, alert.name, alert_matchers(alert),
                          comment=f"silenced from llmdeck by {user}",
                          problem="" if source else NO_ALERTMANAGER)

    def ask_expire(self, silence: Silence) -> SilenceAsk:
        """Expire `silence` in the Alertmanager that holds it."""
        return SilenceAsk("expire", silence.source, silence.id, silence.matchers, length="",
                          comment=silence.comment, silence_id=silence.id)

    # ---- plan and apply (worker threads) -------------------------------------------

    def plan(self, ask: SilenceAsk) -> SilencePreview:
        """Read what the ask would do (GETs only) and keep the plan; problems come back as text."""
        from connectors.http import SourceError
        from console import silence_input, silences
        from console.safe_text import cell
        from console.silence_cli import plan_text

        if ask.problem:
            return SilencePreview(ask, problem=ask.problem)
        client = self._client(ask.source)
        if isinstance(client, str):
            return SilencePreview(ask, problem=client)
        try:
            if ask.action == "create":
                length = silence_input.parse_for(ask.length)
                comment = silence_input.check_comment(ask.comment)
                plan = self._call(lambda: silences.plan_create(client, ask.matchers, length, comment),
                                  self.plan_timeout)
            else:
                plan = self._call(lambda: silences.plan_expire(client, ask.silence_id), self.plan_timeout)
        except silence_input.SilenceInputError as exc:
            return SilencePreview(ask, problem=str(exc).replace("--for", "duration").replace("--", ""))
        except (silences.PlanError, SourceError, TimeoutError, RuntimeError) as exc:
            return SilencePreview(ask, problem=f"{ask.source}: cannot plan: {cell(exc, 300)}")
        with self._lock:
            key = next(self._keys)
            self._plans[key] = (plan, client)
            for old in list(self._plans)[:-KEPT_PLANS]:
                del self._plans[old]
        mode = silences.send_mode(self.config, read_only=self.read_only, write=self.write)
        return SilencePreview(ask, plan_text(plan), len(plan.affects), read_only=mode.read_only,
                              read_only_reason=mode.reason, key=key)

    def apply(self, confirmation: Confirmation) -> SilenceResult:
        """Hand the kept plan to `console.silences.apply` (once), then poll its source again."""
        from console import silences
        from console.safe_text import cell

        ask = confirmation.preview.ask
        with self._lock:
            kept = self._plans.pop(confirmation.preview.key, None)
        if kept is None:
            return SilenceResult(ask.source, ask.action, "failed", "that plan is gone: plan again", False)
        plan, client = kept
        typed = confirmation.typed.strip()
        try:
            outcome = self._call(lambda: silences.apply(
                plan, client, confirm=lambda p: typed == p.source, dry_run=False,
                read_only=self.read_only, write=self.write, config=self.config, origin="key"),
                self.apply_timeout)
        except TimeoutError as exc:
            return SilenceResult(ask.source, ask.action, "failed", f"{exc}; it may or may not have been"
                                 " applied: check :alerts", False, sent=True)
        except Exception as exc:  # the source's own error text; the dialog is gone, say it here
            return SilenceResult(ask.source, ask.action, "failed", cell(exc, 300), False)
        if outcome.sent:
            self._repoll(ask.source)
        return SilenceResult(ask.source, ask.action, outcome.status, outcome.detail, outcome.ok,
                             sent=outcome.sent)

    def cancel(self, preview: SilencePreview) -> SilenceResult:
        """Esc on the dialog: the kept plan goes to the desk unconfirmed, so the cancel is an
        audit event like the CLI's "not confirmed" and the runbook dialog's Esc; nothing is sent."""
        if not preview.ready:
            ask = preview.ask
            return SilenceResult(ask.source, ask.action, "cancelled", "nothing planned", False)
        return self.apply(Confirmation(preview, ""))

    # ---- the hub ---------------------------------------------------------------------

    def _client(self, source: str) -> AlertmanagerClient | str:
        """The source's client, or why there is none yet."""
        poller = self.hub.poller(source) if self.hub is not None else None
        if poller is None or poller.kind != "alertmanager":
            return f"no Alertmanager source named {source!r} is configured"
        client = self.hub.client(source) if self.hub is not None else None
        if client is None:
            state = poller.health.status().state
            return f"{source} has not been read yet ({state}): try again once :sources shows it live"
        found: AlertmanagerClient = client  # type: ignore[assignment]  # the kind was checked above
        return found

    def _call(self, make: Callable[[], Awaitable[T]], timeout: float) -> T:
        if self.hub is None:
            raise RuntimeError("no outside sources are configured")
        return self.hub.call(make, timeout)

    def _repoll(self, source: str) -> None:
        """Ask the hub to read the source again now (its own poll loop does it, so two polls of
        one source never run at once), so `:alerts` shows the change within a refresh."""
        if self.hub is not None:
            self.hub.refresh(source)
