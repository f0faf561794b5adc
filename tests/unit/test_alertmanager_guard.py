"""`console.silences.apply` is the one guarded path: read-only, dry run and no confirmation send nothing.

An in-memory Alertmanager behind `httpx.MockTransport` records every request (the real
server is exercised in tests/integration/test_alertmanager.py).
"""

from __future__ import annotations

import ast
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.alertmanager import AlertmanagerClient
from connectors.http import HttpPolicy, SourceClient
from console import silences
from console.audit import AuditJournal
from console.silence_input import parse_matchers

ROOT = Path(__file__).resolve().parents[2]
ALERT_LABELS = {"alertname": "HighErrorRate", "severity": "page"}
SECRET = "Bearer canary-token-5f3a9c"


class FakeAlertmanager:
    """Just enough of /api/v2 to plan, send and verify; every request is kept."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.silences: dict[str, dict[str, Any]] = {}
        self.journal_at_post: list[list[tuple[str, str]]] = []
        """The audit journal's (kind, action) records as they were when each POST arrived."""
        self.journal: AuditJournal | None = None

    def mutating(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.requests if r.method not in ("GET", "HEAD")]

    def _silenced_by(self) -> list[str]:
        return [i for i, s in self.silences.items() if s["status"]["state"] == "active"
                and all(ALERT_LABELS.get(m["name"]) == m["value"] for m in s["matchers"])]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.method == "GET" and path == "/api/v2/alerts":
            by = self._silenced_by()
            return httpx.Response(200, json=[{
                "labels": ALERT_LABELS, "annotations": {}, "fingerprint": "f1",
                "startsAt": "2026-12-04T10:00:00Z",
                "status": {"state": "suppressed" if by else "active", "silencedBy": by, "inhibitedBy": []},
            }])
        if request.method == "GET" and path == "/api/v2/silences":
            return httpx.Response(200, json=list(self.silences.values()))
        if request.method == "POST" and path == "/api/v2/silences":
            if self.journal is not None:
                self.journal_at_post.append([(r.kind, r.action) for r in self.journal.records()])
            body = json.loads(request.content)
            sid = str(uuid.uuid4())
            self.silences[sid] = dict(body, id=sid, status={"state": "active"})
            return httpx.Response(200, json={"silenceID": sid})
        if path.startswith("/api/v2/silence/"):
            sid = path.rsplit("/", 1)[1]
            if sid not in self.silences:
                return httpx.Response(404)
            if request.method == "DELETE":
                self.silences[sid]["status"] = {"state": "expired"}
                return httpx.Response(200)
            return httpx.Response(200, json=self.silences[sid])
        return httpx.Response(404)


@pytest.fixture
def fake() -> FakeAlertmanager:
    return FakeAlertmanager()


@pytest.fixture
def client(fake: FakeAlertmanager) -> AlertmanagerClient:
    http = SourceClient("am", "http://am.test:9093", secret_headers={"Authorization": SECRET},
                        transport=httpx.MockTransport(fake.handle), policy=HttpPolicy(max_attempts=1))
    return AlertmanagerClient(http)


@pytest.fixture
def audit(tmp_path: Path, fake: FakeAlertmanager) -> AuditJournal:
    fake.journal = AuditJournal(tmp_path / "state" / "audit.jsonl")
    return fake.journal


async def _create_plan(client: AlertmanagerClient) -> silences.SilencePlan:
    return await silences.plan_create(client, parse_matchers(["alertname=HighErrorRate"]),
                                      timedelta(hours=2), "deploy in progress", created_by="ops")


def _never(plan: silences.SilencePlan) -> bool:
    raise AssertionError("confirm must not be asked")


async def test_plan_shows_the_exact_request_with_the_secret_masked_and_the_alerts_it_silences(
        client: AlertmanagerClient, fake: FakeAlertmanager) -> None:
    plan = await _create_plan(client)
    assert plan.request.startswith("POST http://am.test:9093/api/v2/silences")
    assert "authorization: ***" in plan.request.lower()
    assert "canary-token" not in plan.request
    assert '"comment": "deploy in progress"' in plan.request
    assert [a.name for a in plan.affects] == ["HighErrorRate"]
    assert fake.mutating() == []
    assert [r.url.params.get_list("filter") for r in fake.requests] == [['alertname="HighErrorRate"']]


async def test_confirmed_create_sends_one_post_verifies_and_records_intent_then_outcome(
        client: AlertmanagerClient, fake: FakeAlertmanager, audit: AuditJournal) -> None:
    plan = await _create_plan(client)
    outcome = await silences.apply(plan, client, confirm=lambda p: True, dry_run=False, audit=audit)
    assert outcome.status == "applied" and outcome.sent and outcome.ok
    assert outcome.suppressed == ("f1",)
    assert fake.mutating() == ["POST /api/v2/silences"]
    assert fake.journal_at_post == [[("intent", "silence.create")]]  # synced before the POST left
    intent, done = audit.records()
    assert (intent.kind, done.kind) == ("intent", "outcome")
    assert intent.action_id == done.action_id
    assert done.data["detail"] == f"applied and read back on am (am: silence {outcome.silence_id} created)"
    assert intent.action == "silence.create" and intent.data["gateway"] == "am"
    assert (intent.data["origin"], intent.data["target"], done.status) == (
        "cli", "alertname=HighErrorRate", "applied")
    assert intent.params["matchers"] == ["alertname=HighErrorRate"]
    assert {"user", "host", "ts", "pre_state_hash"} <= intent.data.keys()
    assert "canary-token" not in audit.path.read_text()
    assert oct(audit.path.stat().st_mode & 0o777) == "0o600"
    assert audit.verify().ok and audit.unknown_outcomes() == []


async def test_confirmed_expire_sends_one_delete_and_verifies_it_expired(
        client: AlertmanagerClient, fake: FakeAlertmanager, audit: AuditJournal) -> None:
    created = await silences.apply(await _create_plan(client), client, confirm=lambda p: True,
                                   dry_run=False, audit=audit)
    plan = await silences.plan_expire(client, created.silence_id)
    assert plan.request.startswith(f"DELETE http://am.test:9093/api/v2/silence/{created.silence_id}")
    assert [a.fingerprint for a in plan.affects] == ["f1"]
    outcome = await silences.apply(plan, client, confirm=lambda p: True, dry_run=False, audit=audit)
    assert outcome.status == "applied", outcome.detail
    assert fake.mutating() == ["POST /api/v2/silences", f"DELETE /api/v2/silence/{created.silence_id}"]


async def test_the_body_sent_is_the_body_shown_key_for_key(
        client: AlertmanagerClient, fake: FakeAlertmanager, audit: AuditJournal) -> None:
    """The desk re-plans at apply, but with the shown plan's startsAt: the POST carries the
    body the operator read (same times, same key order), not a re-timed one (finding 16)."""
    plan = await _create_plan(client)
    shown = plan.request.split("\n\n", 1)[1]
    outcome = await silences.apply(plan, client, confirm=lambda p: True, dry_run=False, audit=audit)
    assert outcome.status == "applied", outcome.detail
    (post,) = [r for r in fake.requests if r.method == "POST"]
    assert json.dumps(json.loads(post.content), indent=2, ensure_ascii=False) == shown


async def test_a_plan_whose_request_differs_from_the_desks_is_not_sent(
        client: AlertmanagerClient, fake: FakeAlertmanager, audit: AuditJournal) -> None:
    """A plan whose shown body is not what the desk would send (here its comment was changed
    after the request text was made) is refused and journalled as a cancel: nothing sent."""
    from dataclasses import replace

    plan = replace(await _create_plan(client), comment="something else")
    outcome = await silences.apply(plan, client, confirm=_never, dry_run=False, audit=audit)
    assert (outcome.status, outcome.sent) == ("failed", False) and "plan again" in outcome.detail
    assert fake.mutating() == []
    assert [(r.kind, r.status) for r in audit.records()] == [("event", "cancelled")]


@pytest.mark.parametrize("mode", ["env", "flag", "env-true"])
async def test_read_only_mode_sends_no_mutating_request_and_never_asks(
        client: AlertmanagerClient, fake: FakeAlertmanager, audit: AuditJournal, mode: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    plan = await _create_plan(client)
    if mode.startswith("env"):
        monkeypatch.setenv("LLMDECK_READONLY", "1" if mode == "env" else "true")
    outcome = await silences.apply(plan, client, confirm=_never, dry_run=False,
                                   read_only=mode == "flag", audit=audit)
    assert (outcome.status, outcome.sent) == ("refused", False)
    assert "read-only" in outcome.detail
    assert fake.mutating() == []
    assert [(r.kind, r.status) for r in audit.records()] == [("event", "refused")]


async def test_read_only_is_read_when_apply_runs_not_when_the_plan_was_made(
        client: AlertmanagerClient, fake: FakeAlertmanager, audit: AuditJournal,
        monkeypatch: pytest.MonkeyPatch) -> None:
    plan = await _create_plan(client)

    def operator_waits(p: silences.SilencePlan) -> bool:
        monkeypatch.setenv("LLMDECK_READONLY", "1")  # switched on while the plan was on screen
        return True
    outcome = await silences.apply(plan, client, confirm=operator_waits, dry_run=False, audit=audit)
    assert outcome.status == "refused" and fake.mutating() == []


async def test_a_prod_environment_is_read_only_without_write_like_every_desk_action(
        client: AlertmanagerClient, fake: FakeAlertmanager, audit: AuditJournal) -> None:
    from console.config import ActionsSettings, Config

    prod = Config(actions=ActionsSettings(environment="prod", prod=True))
    plan = await _create_plan(client)
    refused = await silences.apply(plan, client, confirm=_never, dry_run=False, config=prod, audit=audit)
    assert (refused.status, refused.sent) == ("refused", False) and "read-only" in refused.detail
    assert fake.mutating() == []
    done = await silences.apply(plan, client, confirm=lambda p: True, dry_run=False, config=prod,
                                write=True, audit=audit)
    assert done.status == "applied" and fake.mutating() == ["POST /api/v2/silences"]
    assert [(r.kind, r.status) for r in audit.records()] == [("event", "refused"), ("intent", ""),
                                                             ("outcome", "applied")]


async def test_a_second_identical_silence_changes_nothing_and_is_not_sent(
        client: AlertmanagerClient, fake: FakeAlertmanager, audit: AuditJournal) -> None:
    first = await silences.apply(await _create_plan(client), client, confirm=lambda p: True,
                                 dry_run=False, audit=audit)
    again = await silences.apply(await _create_plan(client), client, confirm=_never, dry_run=False,
                                 audit=audit)
    assert first.status == "applied" and (again.status, again.sent) == ("refused", False)
    assert "changes nothing" in again.detail and fake.mutating() == ["POST /api/v2/silences"]


async def test_read_only_off_values_do_not_refuse(monkeypatch: pytest.MonkeyPatch) -> None:
    for value in ("0", "false", "", "no"):
        monkeypatch.setenv("LLMDECK_READONLY", value)
        assert not silences.send_mode().read_only


async def test_dry_run_returns_the_plan_and_sends_nothing(
        client: AlertmanagerClient, fake: FakeAlertmanager, audit: AuditJournal) -> None:
    plan = await _create_plan(client)
    outcome = await silences.apply(plan, client, confirm=_never, dry_run=True, audit=audit)
    assert (outcome.status, outcome.sent, outcome.plan) == ("dry_run", False, plan)
    assert fake.mutating() == []
    assert [(r.kind, r.status) for r in audit.records()] == [("event", "dry_run")]


async def test_unconfirmed_plan_sends_nothing_and_is_recorded_as_cancelled(
        client: AlertmanagerClient, fake: FakeAlertmanager, audit: AuditJournal) -> None:
    plan = await _create_plan(client)
    outcome = await silences.apply(plan, client, confirm=lambda p: False, dry_run=False, audit=audit)
    assert (outcome.status, outcome.sent) == ("cancelled", False)
    assert fake.mutating() == []
    assert [(r.kind, r.status) for r in audit.records()] == [("event", "cancelled")]


async def test_an_unwritable_audit_journal_stops_the_request(
        client: AlertmanagerClient, fake: FakeAlertmanager, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    outcome = await silences.apply(await _create_plan(client), client, confirm=lambda p: True,
                                   dry_run=False, audit=AuditJournal(blocker / "audit.jsonl"))
    assert (outcome.status, outcome.sent) == ("failed", False)
    assert f"cannot open the audit journal {blocker / 'audit.jsonl'}: Not a directory" in outcome.detail
    assert outcome.detail.endswith("nothing sent")
    assert fake.mutating() == []


async def test_expiring_an_unknown_or_expired_silence_is_refused_at_plan_time(
        client: AlertmanagerClient, fake: FakeAlertmanager, audit: AuditJournal) -> None:
    with pytest.raises(silences.PlanError, match="no silence with id"):
        await silences.plan_expire(client, str(uuid.uuid4()))
    created = await silences.apply(await _create_plan(client), client, confirm=lambda p: True,
                                   dry_run=False, audit=audit)
    fake.silences[created.silence_id]["status"] = {"state": "expired"}
    with pytest.raises(silences.PlanError, match="already expired"):
        await silences.plan_expire(client, created.silence_id)


async def test_a_plan_cannot_be_applied_through_another_sources_client(
        client: AlertmanagerClient, fake: FakeAlertmanager, audit: AuditJournal) -> None:
    plan = await _create_plan(client)
    other = AlertmanagerClient(SourceClient("other", "http://x.test",
                                            transport=httpx.MockTransport(fake.handle)))
    with pytest.raises(silences.PlanError, match="plan is for source 'am'"):
        await silences.apply(plan, other, confirm=lambda p: True, dry_run=False, audit=audit)
    assert fake.mutating() == []


def _modules() -> list[Path]:
    return [p for d in ("console", "panels", "connectors") for p in sorted(ROOT.glob(f"{d}/**/*.py"))]


def _docstrings(tree: ast.AST) -> set[int]:
    bodies = [n.body for n in ast.walk(tree)
              if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)]
    return {id(b[0].value) for b in bodies if b and isinstance(b[0], ast.Expr)}


def test_only_the_desk_adapter_calls_the_silence_writes() -> None:
    """The one choke point: only the `alertmanager.silence` adapter (console/adapters/alertmanager.py,
    whose send only `ActionDesk.apply` calls) calls create_silence / expire_silence;
    console/silences.py hands its plans to the desk."""
    callers = set()
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                    "create_silence", "expire_silence"):
                callers.add(str(path.relative_to(ROOT)))
    assert sorted(callers) == ["console/adapters/alertmanager.py"]


def test_only_the_connector_knows_the_silence_paths() -> None:
    """No module but connectors/alertmanager.py can build a request to /api/v2/silence(s).

    The demo's Alertmanager-shaped server (console/demo/endpoints.py) serves those paths; it
    sends no request, so it is the one other module allowed to name them."""
    holders = set()
    for path in _modules():
        if path.relative_to(ROOT).as_posix() == "console/demo/endpoints.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
                    and "/api/v2/silence" in node.value):
                holders.add(str(path.relative_to(ROOT)))
    assert sorted(holders) == ["connectors/alertmanager.py"]
