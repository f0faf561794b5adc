"""The one table of screens: view type, screen, `:` command with aliases and help, goto key.

A new screen is one `Route` here (plus its view type in `console/views.py` and the
reader for that type in `console/backend.py`'s `READERS`). The app's goto bindings
(`1`-`4`, ids `app.<name>`), the command palette, the `:` prompt's commands and
suggestions and the `?` screen are all generated from this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from console.incident_views import IncidentsView, IncidentView
from console.source_views import AlertsView, ServingView, SourcesView
from console.views import BreakdownView, CostView, OverviewView, RequestsView, SloView, TraceView, View
from panels.alerts_screen import AlertsScreen
from panels.base import DeckScreen
from panels.cost_screen import CostScreen
from panels.incidents_screen import IncidentScreen, IncidentsScreen
from panels.overview import OverviewScreen
from panels.serving_screen import ServingScreen
from panels.slo_screen import SloScreen
from panels.sources_screen import SourcesScreen
from panels.traces_screen import RequestsScreen, TraceScreen, TracesScreen


@dataclass(frozen=True)
class Route:
    """One screen: what it fetches, how it is built, and how the user opens it."""

    name: str
    """`:name`, the `goto` target, `Navigate(name, ...)`, and the binding id `app.<name>`."""
    view: type[View]
    """The view type the screen fetches; the backend answers it with `READERS[view]`."""
    screen: Callable[[View | None], DeckScreen]
    """Builds the screen, for a drill-down view or (None) for its default view."""
    help: str = ""
    """What `:name` does; empty for a drill-down-only screen (no command, no key)."""
    aliases: tuple[str, ...] = ()
    """Other words for `:name`."""
    key: str | None = None
    """The goto key (a Textual key name), bound with id `app.<name>`."""
    key_title: str = ""
    """The goto binding's description (the `?` screen, the footer)."""

    @property
    def is_command(self) -> bool:
        """Whether `:name` (and the command palette) opens this screen."""
        return bool(self.help)


ROUTES: tuple[Route, ...] = (
    Route("overview", OverviewView, lambda view: OverviewScreen(),
          "SLO, budget, spend and alert overview", ("o", "home"), "1", "Overview"),
    Route("slo", SloView, SloScreen, "every SLO with burn rates and charts", ("slos",), "2", "SLOs"),
    Route("cost", CostView, lambda view: CostScreen(),
          "spend, budgets, top movers", ("costs", "spend"), "3", "Cost"),
    Route("traces", BreakdownView, TracesScreen,
          "breakdown → worst requests → span tree", ("tr", "trace"), "4", "Traces"),
    Route("sources", SourcesView, lambda view: SourcesScreen(),
          "every source: state, last success, latency, last error", ("src",), "5", "Sources"),
    Route("alerts", AlertsView, lambda view: AlertsScreen(),
          "Prometheus and Alertmanager alerts, silences", ("alert", "silences"), "6", "Alerts"),
    Route("serving", ServingView, lambda view: ServingScreen(),
          "vLLM and LiteLLM /metrics: rates, latency, queues, budgets", ("metrics", "vllm", "litellm"),
          "7", "Serving"),
    Route("incidents", IncidentsView, lambda view: IncidentsScreen(),
          "incidents, unresolved first: ack, note, mitigate, resolve, run a runbook",
          ("inc", "incs"), "8", "Incidents"),
    Route("requests", RequestsView, RequestsScreen),
    Route("trace", TraceView, TraceScreen),
    Route("incident", IncidentView, IncidentScreen),
)
"""Every screen, commands in the order `:help`, the palette and the suggestions list them."""

HOME = "overview"
"""The route at the bottom of the screen stack (the app's default screen)."""

ROUTE_BY_NAME: dict[str, Route] = {route.name: route for route in ROUTES}
