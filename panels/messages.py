"""Typed messages between the app's workers and the screens, and the screens' intents."""

from __future__ import annotations

from textual.message import Message

from console.views import Fetched, View


class SnapshotReady(Message):
    """A worker fetched a view; the screen that asked renders it."""

    def __init__(self, fetched: Fetched) -> None:
        super().__init__()
        self.fetched = fetched


class FetchFailed(Message):
    """A worker could not fetch a view; the screen keeps its last data and says so."""

    def __init__(self, view: View, error: str) -> None:
        super().__init__()
        self.view = view
        self.error = error


class RefreshRequested(Message):
    """A screen's view changed (new filter, selection): fetch it now, not at the next tick."""


class Navigate(Message):
    """Open another screen with a view (drill-down), e.g. `Navigate("traces", view)`."""

    def __init__(self, target: str, view: View | None = None) -> None:
        super().__init__()
        self.target = target
        self.view = view
