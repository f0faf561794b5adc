"""`alertmanager.silence` through the action desk against a real Alertmanager fed by a real Prometheus.

Prometheus evaluates always-true rules every second and sends them to Alertmanager; each
test silences its own alert. A recording proxy in front of Alertmanager proves what was,
or was not, sent. The runbook is a user file, as an operator would write it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.action_types import ActionError, Confirmation, PlannedRequest, SendError
from console.adapters import AdapterContext, build
from console.adapters.alertmanager import SilenceAdapter
from console.config import AlertmanagerSource, Config
from console.config_actions import ActionsSettings
from console.runbook_files import load_catalog
from console.runbooks import ActionDesk
from tests.integration.recording_proxy import RecordingProxy
from tests.integration.servers import start_alertmanager, start_prometheus, wait_until

ALERTS = ("DeskSilence", "DeskNothingSent", "DeskRefused", "DeskExpireById")
RUNBOOK = """\
[runbook]
name = "silences"
title = "Silence alerts"

[[action]]
name = "silence-alert"
title = "Silence an alert"
adapter = "alertmanager.silence"
role = "responder"
[action.params.matchers]
type = "list"
required = true
[action.params.duration]
type = "duration"
default = "2h"
[action.params.comment]
type = "str"
required = true

[[action]]
name = "expire-silence"
title = "Expire a silence"
adapter = "alertmanager.silence"
role = "responder"
target = "silence_id"
revert = "none"
[action.params.silence_id]
type = "str"
required = true
[action.params.silenced]
type = "bool"
fixed = true
default = false
"""


def _rules() -> str:
    rules = "".join(
        f"      - alert: {name}\n        expr: vector(1)\n        for: 0s\n"
        f"        labels: {{severity: page, suite: llmdeck-desk}}\n"
        for name in ALERTS
    )
    return f"groups:\n  - name: llmdeck-desk\n    interval: 1s\n    rules:\n{rules}"


@dataclass(frozen=True)
class Stack:
    am_url: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    d = tmp_path_factory.mktemp("am-desk")
    (d / "rules.yml").write_text(_rules())
    am, am_url = start_alertmanager(d)
    try:
        prom, _ = start_prometheus(d, (
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "rule_files: [rules.yml]\n"
            f"alerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['{am_url[7:]}']}}]\n"
        ))
        with prom:
            def all_arrived() -> bool:
                names = {a["labels"]["alertname"] for a in httpx.get(f"{am_url}/api/v2/alerts").json()}
                return set(ALERTS) <= names
            wait_until(all_arrived, 45, "Prometheus's alerts to reach Alertmanager", interval=0.2)
            yield Stack(am_url)
    finally:
        am.stop()


@pytest.fixture
def proxy(stack: Stack) -> Iterator[RecordingProxy]:
    with RecordingProxy(stack.am_url) as p:
        yield p


def _config(url: str, **actions: Any) -> Config:
    source = AlertmanagerSource(name="am", url=url)  # type: ignore[arg-type]
    return Config(sources={"alertmanager": [source]},  # type: ignore[arg-type]
                  actions=ActionsSettings(default_role="admin", **actions))


def _desk(url: str, tmp_path: Path, **kw: Any) -> ActionDesk:
    books = tmp_path / "runbooks"
    books.mkdir(exist_ok=True)
    (books / "silences.toml").write_text(RUNBOOK)
    return ActionDesk(_config(url), catalog=load_catalog(books), **kw)


def _state(stack: Stack, name: str) -> dict[str, Any]:
    alerts = httpx.get(f"{stack.am_url}/api/v2/alerts", params={"filter": f'alertname="{name}"'}).json()
    assert len(alerts) == 1, alerts
    return dict(alerts[0]["status"])


async def test_silence_plans_applies_verifies_and_undo_expires_it(stack: Stack, proxy: RecordingProxy,
                                                                  tmp_path: Path) -> None:
    desk = _desk(proxy.url, tmp_path)
    params = {"matchers": "alertname=DeskSilence", "duration": "30m", "comment": "desk integration test"}
    try:
        plan = await desk.plan("silence-alert", params, origin="cli")
        assert plan.target == "alertname=DeskSilence"
        assert [(d.field, d.before, d.after) for d in plan.diff] == [("silenced", "false", "true"),
                                                                    ("loud", "1", "0")]
        (request,) = plan.requests
        assert request.method == "POST" and request.body["comment"] == "desk integration test"
        assert request.body["matchers"] == [{"name": "alertname", "value": "DeskSilence", "isRegex": False,
                                             "isEqual": True}]
        outcome = await desk.apply(plan, Confirmation("yes"))
        assert (outcome.status, outcome.sent) == ("applied", 1), outcome.detail
        status = _state(stack, "DeskSilence")
        assert status["state"] == "suppressed" and len(status["silencedBy"]) == 1
        created = status["silencedBy"][0]

        again = await desk.plan("silence-alert", params, origin="cli")
        assert again.changes_nothing
        undo = await desk.undo(outcome.action_id)
        assert [(r.method, r.path) for r in undo.requests] == [("DELETE", f"/api/v2/silence/{created}")]
        undone = await desk.apply(undo, Confirmation("yes"))
        assert (undone.status, undone.sent) == ("applied", 1), undone.detail
    finally:
        await desk.aclose()
    assert _state(stack, "DeskSilence")["state"] == "active"
    assert proxy.mutating() == [("POST", "/api/v2/silences"), ("DELETE", f"/api/v2/silence/{created}")]


async def test_expire_a_silence_by_id(stack: Stack, proxy: RecordingProxy, tmp_path: Path) -> None:
    made = httpx.post(f"{stack.am_url}/api/v2/silences", json={
        "matchers": [{"name": "alertname", "value": "DeskExpireById", "isRegex": False, "isEqual": True}],
        "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "fixture", "comment": "made outside llmdeck"}).json()["silenceID"]
    wait_until(lambda: _state(stack, "DeskExpireById")["state"] == "suppressed", 10, "the silence to hold")
    desk = _desk(proxy.url, tmp_path)
    try:
        plan = await desk.plan("expire-silence", {"silence_id": made}, origin="cli")
        assert plan.target == made and plan.before["affects"] == ["DeskExpireById"]
        assert plan.before["matchers"] == ["alertname=DeskExpireById"]
        assert [(d.field, d.before, d.after) for d in plan.diff] == [("silenced", "true", "false")]
        outcome = await desk.apply(plan, Confirmation(made))
        assert (outcome.status, outcome.sent) == ("applied", 1), outcome.detail
        again = await desk.plan("expire-silence", {"silence_id": made}, origin="cli")
        assert again.changes_nothing and again.requests == ()
        nobody = "00000000-0000-0000-0000-000000000000"
        with pytest.raises(ActionError, match=f"am: no silence with id '{nobody}'"):
            await desk.plan("expire-silence", {"silence_id": nobody}, origin="cli")
    finally:
        await desk.aclose()
    assert proxy.mutating() == [("DELETE", f"/api/v2/silence/{made}")]
    assert _state(stack, "DeskExpireById")["state"] == "active"


@pytest.mark.parametrize("mode", ["read_only", "dry_run", "cancelled"])
async def test_read_only_dry_run_and_cancel_send_nothing(stack: Stack, proxy: RecordingProxy, tmp_path: Path,
                                                         mode: str) -> None:
    desk = _desk(proxy.url, tmp_path, read_only=mode == "read_only", dry_run=mode == "dry_run")
    params = {"matchers": ["alertname=DeskNothingSent"], "comment": "must not be sent"}
    try:
        plan = await desk.plan("silence-alert", params, origin="key")
        outcome = await desk.apply(plan, None if mode == "cancelled" else Confirmation("yes"))
    finally:
        await desk.aclose()
    assert outcome.sent == 0 and outcome.status in ("refused", "dry_run", "cancelled")
    assert proxy.mutating() == [] and {m for m, _ in proxy.requests} == {"GET"}
    assert _state(stack, "DeskNothingSent")["state"] == "active"


async def test_a_silence_alertmanager_refuses_is_a_send_error_with_its_status(stack: Stack) -> None:
    adapter = build("alertmanager.silence", AdapterContext(config=_config(stack.am_url), gateway=""))
    assert isinstance(adapter, SilenceAdapter)
    # Python compiles this lookahead; Alertmanager's RE2 does not: the server says 400.
    params = {"matchers": ["alertname=~DeskRefused(?=x)"], "duration": 600, "comment": "refused"}
    try:
        (request,) = adapter.requests(params, {}, {})
        with pytest.raises(SendError) as caught:
            await adapter.send(request, idempotency_key="k", changed_by="alice")
    finally:
        await adapter.aclose()
    assert caught.value.status == 400 and caught.value.unsure is False
    assert str(caught.value).startswith("am: HTTP 400")


async def test_bad_params_and_config_are_named(stack: Stack) -> None:
    adapter = build("alertmanager.silence", AdapterContext(config=_config(stack.am_url), gateway=""))
    try:
        with pytest.raises(ActionError, match="param 'matchers': .*must start with a label name"):
            adapter.target({"matchers": ["=x"]})
        with pytest.raises(ActionError, match="param 'matchers': every matcher also matches"):
            adapter.target({"matchers": ["team!=web"]})
        with pytest.raises(ActionError, match="param 'comment': --comment must say why"):
            adapter.requests({"matchers": ["alertname=X"], "duration": 60, "comment": " "}, {}, {})
        with pytest.raises(ActionError, match="param 'duration': a silence lasts more than zero"):
            adapter.requests({"matchers": ["alertname=X"], "duration": 400 * 86400, "comment": "c"}, {}, {})
        with pytest.raises(SendError, match="not a silence request"):
            await adapter.send(PlannedRequest(method="DELETE", text="", path="/api/v2/alerts"),
                               idempotency_key="k", changed_by="alice")
    finally:
        await adapter.aclose()
    with pytest.raises(ActionError, match=r"no \[\[sources.alertmanager\]\] named 'other' \(known: am\)"):
        build("alertmanager.silence", AdapterContext(config=_config(stack.am_url), gateway="other"))
    with pytest.raises(ActionError, match="options: alertmanager.silence takes none"):
        build("alertmanager.silence", AdapterContext(config=_config(stack.am_url), gateway="",
                                                     options={"x": 1}))
