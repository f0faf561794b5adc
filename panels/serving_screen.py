"""`:serving`: what model servers (vLLM) and gateways (LiteLLM) report on `/metrics`."""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from console.formatting import ms, pct, usd
from console.serving import MODEL_COLUMNS, Column, ServingSnapshot
from console.source_views import ServingPage, ServingView
from console.sources import SourceStatus
from console.views import Fetched, View
from panels.base import DeckScreen
from panels.tables import DeckTable, Row, sync_rows
from panels.text import safe_cell

KINDS = ("vllm", "litellm")
KIND_TITLES = {"vllm": "Model servers (vLLM)", "litellm": "Gateway models (LiteLLM)"}


def figure(value: float | None, unit: str) -> str:
    """A serving figure by its unit; '-' when unknown (first read, no traffic)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "∞"
    if unit == "ratio":
        return pct(value, 1)
    if unit == "seconds":
        return ms(value * 1000)
    if unit in ("usd", "usd_per_hour"):
        return usd(value)
    if unit == "count":
        return f"{value:,.0f}"
    return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


def deployment_state_cell(state: int | None, text: str) -> Text:
    style = {0: "", 1: "bold", 2: "bold reverse"}.get(state if state is not None else -1, "dim")
    mark = {0: "● ", 1: "▲ ", 2: "✖ "}.get(state if state is not None else -1, "")
    return Text(mark + text, style=style, no_wrap=True)


class ServingScreen(DeckScreen):
    """Per-model request and error rates, latency, queues and KV cache; gateway spend,
    deployment health, fallbacks and budgets."""

    screen_title = "serving"
    view_id = "serving"

    def compose(self) -> ComposeResult:
        yield from self.compose_status()
        yield Static("", id="serving-notes", classes="note")
        for kind in KINDS:
            yield Static(KIND_TITLES[kind], classes="section-title")
            table: DataTable[Text | str] = DeckTable(id=f"serving-{kind}", cursor_type="row",
                                                     fixed_columns=1)
            table.add_columns("model", *(c.header for c in MODEL_COLUMNS[kind]), "source")
            yield table
        yield Static("Deployments (LiteLLM)", classes="section-title")
        deployments: DataTable[Text | str] = DeckTable(id="serving-deployments", cursor_type="row",
                                                       fixed_columns=1)
        deployments.add_columns("deployment", "state", "group", "provider", "ok/s", "fail/s",
                                "req left", "tok left", "source")
        yield deployments
        yield Static("Budgets (LiteLLM)", classes="section-title")
        budgets: DataTable[Text | str] = DeckTable(id="serving-budgets", cursor_type="row")
        budgets.add_columns("budget", "scope", "left", "of", "used", "resets in", "source")
        yield budgets
        yield from self.compose_footer()

    def view(self) -> View:
        return ServingView()

    def show(self, fetched: Fetched) -> None:
        page = fetched.snapshot
        if not isinstance(page, ServingPage):
            return
        snaps = [(snap, status) for snap, status in page.readings if snap is not None]
        with self.app.batch_update():
            self.query_one("#serving-notes", Static).update(self._notes(page))
            for kind in KINDS:
                rows = [row for snap, status in snaps if snap.kind == kind
                        for row in self._model_rows(snap, status, MODEL_COLUMNS[kind])]
                sync_rows(self.query_one(f"#serving-{kind}", DataTable), rows, self.filter_text,
                          empty=self._empty(page, kind))
            sync_rows(self.query_one("#serving-deployments", DataTable),
                      [row for snap, _ in snaps for row in self._deployment_rows(snap)],
                      self.filter_text, empty="no LiteLLM deployments reported")
            sync_rows(self.query_one("#serving-budgets", DataTable),
                      [row for snap, _ in snaps for row in self._budget_rows(snap)],
                      self.filter_text, empty="no LiteLLM budgets reported")

    @staticmethod
    def _notes(page: ServingPage) -> Text:
        if not page.readings:
            return Text("no scrape sources: add [[sources.scrape]] (a vLLM or LiteLLM /metrics URL)")
        line = Text()
        for snap, status in page.readings:
            if line:
                line.append(" · ")
            state = "" if status.state == "live" else f" {status.state}: {status.detail}"
            note = "; ".join(snap.notes) if snap is not None and snap.notes else ""
            line.append_text(safe_cell(f"{status.name}{state}" + (f" ({note})" if note else ""), 120))
        return line

    @staticmethod
    def _empty(page: ServingPage, kind: str) -> str:
        if not page.readings:
            return "no scrape sources configured"
        if any(s is not None and s.kind == kind for s, _ in page.readings):
            return "no models reported"
        return f"no {kind} source answers"

    @staticmethod
    def _model_rows(snap: ServingSnapshot, status: SourceStatus,
                    columns: tuple[Column, ...]) -> list[Row]:
        # a source that is not live shows its last figures greyed, never as current
        style = "" if status.state == "live" else "dim"
        return [
            (f"{snap.source}\x00{m.model}", [
                safe_cell(m.model, 32, style),
                *(Text(figure(getattr(m, c.field), c.unit), style=style, no_wrap=True)
                  for c in columns),
                safe_cell(snap.source, 20, style),
            ])
            for m in snap.models
        ]

    @staticmethod
    def _deployment_rows(snap: ServingSnapshot) -> list[Row]:
        return [
            (f"{snap.source}\x00{d.model_id}", [
                safe_cell(d.model or d.model_id, 32),
                deployment_state_cell(d.state, d.state_text),
                safe_cell(d.model_group, 20),
                safe_cell(d.provider, 12),
                figure(d.successes_per_s, "rate"),
                figure(d.failures_per_s, "rate"),
                figure(d.remaining_requests, "count"),
                figure(d.remaining_tokens, "count"),
                safe_cell(snap.source, 20),
            ])
            for d in snap.deployments
        ]

    @staticmethod
    def _budget_rows(snap: ServingSnapshot) -> list[Row]:
        return [
            (f"{snap.source}\x00{b.scope}\x00{b.name}", [
                safe_cell(b.name, 28),
                b.scope,
                figure(b.remaining, "usd"),
                figure(b.max_budget, "usd"),
                figure(b.used_ratio, "ratio"),
                "-" if b.hours_to_reset is None else f"{b.hours_to_reset:,.1f}h",
                safe_cell(snap.source, 20),
            ])
            for b in snap.budgets
        ]
