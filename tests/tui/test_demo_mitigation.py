"""The README's demo sequence at 80x24: from the outage's incident to the mitigation, against the
demo's own gateway.

The console runs on the session's demo data (15 simulated minutes into the anthropic outage)
with the demo's `[actions]`: the demo gateway's admin API served by the demo endpoints, and
the demo's own switch-provider (dangerous: the provider's name is typed). The keys are the
README's: `8`, `x`, `Enter`, `anthropic`, `Enter`. Then the demo's world has moved: the traffic
the simulator would generate next has no anthropic 429/529 in it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console.demo import generate
from console.demo.config import demo_config
from console.demo.endpoints import DemoEndpoints
from console.demo.gateway_world import ENV_MASTER_KEY
from console.demo.incident import to_ns
from console.incidents import IncidentStore
from console.runbook_actions import RunbookBridge
from panels.action_dialog import ActionDialog
from panels.incidents_screen import IncidentsScreen
from panels.runbook_picker import RunbookPicker
from tests.tui.conftest import DemoData, settle
from tests.tui.screen_text import screen_text
from tests.tui.test_incidents_actions import until
from tests.tui.test_snapshots import PortableBackend


@pytest.fixture
def demo_gateway(demo_data: DemoData) -> Iterator[DemoEndpoints]:
    """The demo endpoints over the session's traffic plan with levers of their own (the
    session's simulator, shared by other tests, is left as it is)."""
    plan = dataclasses.replace(demo_data.simulator.plan, levers=None)
    endpoints = DemoEndpoints(plan, demo_data.simulator.start, lambda: demo_data.at)
    endpoints.start()
    yield endpoints
    endpoints.close()


def anthropic_failures(endpoints: DemoEndpoints, demo: DemoData, chunks: int = 60) -> int:
    """429/529 answers from anthropic in the next `chunks` of traffic the simulator would send."""
    plan = endpoints.plan
    model = plan.model()
    first = generate.chunk_of(to_ns(demo.at))
    count = 0
    for index in range(first, first + chunks):
        for _, span in generate.chunk_spans(plan, model, index):
            attrs = {kv["key"]: next(iter(kv["value"].values())) for kv in span["attributes"]}
            if attrs.get("gen_ai.provider.name", attrs.get("gen_ai.system")) == "anthropic" \
                    and attrs.get("http.response.status_code") in ("429", "529"):
                count += 1
    return count


async def test_the_readme_sequence_mitigates_the_demo_outage(
        demo_data: DemoData, make_app: Any, demo_gateway: DemoEndpoints, tmp_path: Path) -> None:
    assert demo_gateway.urls is not None
    actions = demo_config(tmp_path / "demo.duckdb", demo_gateway.urls).actions
    backend = PortableBackend(demo_data)
    config = backend.config.model_copy(update={"actions": actions})
    backend.config = config
    store = IncidentStore()
    app = make_app(backend=backend, runbooks=RunbookBridge.for_config(config, store))
    assert anthropic_failures(demo_gateway, demo_data) > 20  # the outage goes on
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await until(pilot, lambda: any(i.auto for i in store.list()), "the outage's incident")
        keys = 0
        await pilot.press("8")
        keys += 1
        await settle(pilot)
        assert isinstance(app.screen, IncidentsScreen)
        await pilot.press("x")
        keys += 1
        await until(pilot, lambda: isinstance(app.screen, RunbookPicker), "the runbook picker")
        first, params = app.screen.choices[0]
        assert first.name == "switch-provider" and dict(params)["provider"] == "anthropic"
        await pilot.press("enter")
        keys += 1
        await until(pilot, lambda: isinstance(app.screen, ActionDialog) and app.screen.preview is not None,
                    "the plan")
        text = screen_text(app)
        assert "environment demo" in text and "type anthropic to confirm" in text
        assert os.environ[ENV_MASTER_KEY] not in text  # the demo's master key is never shown
        await pilot.press(*"anthropic")  # the target's name, typed
        await pilot.press("enter")
        keys += 1
        await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), "the dialog to close")
        await until(pilot, lambda: any("switch-provider" in str(n.message) and "applied" in str(n.message)
                                       for n in app._notifications), "the outcome")
        assert keys <= 8
    routes = dict(demo_gateway.world.levers.current().routes)
    assert set(routes) == {"claude-sonnet-4-5", "claude-haiku-4-5"}
    assert anthropic_failures(demo_gateway, demo_data) == 0  # what the simulator sends next
