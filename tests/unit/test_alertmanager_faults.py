"""What the Alertmanager connector and the silence path do when the server misbehaves.

A real loopback server (tests/faults/fault_server.py) plays each fault and records
every request, so "never retried" and "nothing sent" are counted, not assumed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from connectors.alertmanager import AlertmanagerClient
from connectors.http import HttpPolicy, SourceClient, SourceError
from console import silences
from console.alertmanager_poll import AlertmanagerPoller
from console.audit import AuditJournal
from console.config import AlertmanagerSource
from console.silence_input import parse_matchers
from tests.faults.fault_server import FaultServer, Hang, Reply, html_page

ALERT = {"labels": {"alertname": "Down"}, "annotations": {}, "fingerprint": "f1",
         "startsAt": "2026-12-04T10:00:00Z",
         "status": {"state": "active", "silencedBy": [], "inhibitedBy": []}}
POLICY = HttpPolicy(read_timeout=0.5, deadline=3.0, backoff_base=0.01, backoff_cap=0.02)


async def _no_sleep(seconds: float) -> None:
    return None


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as s:
        yield s


@pytest.fixture
def client(server: FaultServer) -> AlertmanagerClient:
    return AlertmanagerClient(SourceClient("am", server.url, policy=POLICY, sleep=_no_sleep))


@pytest.mark.parametrize(
    ("reply", "kind", "says"),
    [
        (Reply(200, {"alerts": []}), "decode",
         "GET /api/v2/alerts: unexpected answer: alerts: expected a list"),
        (Reply(200, [{"status": {"state": "firing"}, "fingerprint": "x"}]), "decode",
         "alerts[0].status.state: expected active, suppressed or unprocessed"),
        (Reply(200, "[{", content_type="application/json"), "decode", "malformed JSON"),
        (html_page(200, "Sign in"), "content_type", "expected JSON, got text/html (Sign in)"),
        (Reply(401, "unauthorized"), "auth", "check the credentials reference"),
    ],
)
async def test_bad_alert_answers_become_source_errors_that_say_what_was_wrong(
        server: FaultServer, client: AlertmanagerClient, reply: Reply, kind: str, says: str) -> None:
    server.route("/api/v2/alerts", reply)
    with pytest.raises(SourceError) as info:
        await client.alerts()
    await client.aclose()
    assert info.value.kind == kind
    assert says in str(info.value) and str(info.value).startswith("am: ")


async def test_a_failed_create_is_sent_once_never_retried_and_recorded_as_failed(
        server: FaultServer, client: AlertmanagerClient, tmp_path: Path) -> None:
    server.route("/api/v2/alerts", Reply(200, [ALERT]))
    server.route("/api/v2/silences", Reply(200, []), Reply(503, "overloaded"))  # the desk reads first
    audit = AuditJournal(tmp_path / "audit.jsonl")
    plan = await silences.plan_create(client, parse_matchers(["alertname=Down"]), timedelta(hours=1), "x")
    outcome = await silences.apply(plan, client, confirm=lambda p: True, dry_run=False, audit=audit)
    await client.aclose()
    assert (outcome.status, outcome.sent) == ("failed", True)
    assert "am: HTTP 503" in outcome.detail
    assert len([r for r in server.requests if r.method == "POST"]) == 1
    assert [(r.kind, r.status) for r in audit.records()] == [("intent", ""), ("outcome", "failed")]
    assert "am: HTTP 503" in audit.records()[1].data["detail"]


async def test_a_create_without_an_answer_says_it_may_have_been_applied(
        server: FaultServer, client: AlertmanagerClient, tmp_path: Path) -> None:
    server.route("/api/v2/alerts", Reply(200, []))
    server.route("/api/v2/silences", Reply(200, []), Hang())
    plan = await silences.plan_create(client, parse_matchers(["alertname=Down"]), timedelta(hours=1), "x")
    outcome = await silences.apply(plan, client, confirm=lambda p: True, dry_run=False,
                                   audit=AuditJournal(tmp_path / "a.jsonl"))
    await client.aclose()
    assert outcome.status == "failed" and "may or may not have been applied" in outcome.detail
    assert len([r for r in server.requests if r.method == "POST"]) == 1


async def test_a_create_the_server_does_not_show_afterwards_is_unverified(
        server: FaultServer, client: AlertmanagerClient, tmp_path: Path) -> None:
    sid = "11111111-2222-3333-4444-555555555555"
    server.route("/api/v2/alerts", Reply(200, [ALERT]))  # never suppressed: the silence did not take
    made = {"id": sid, "status": {"state": "active"}, "matchers": [{"name": "alertname", "value": "Down",
                                                                   "isRegex": False, "isEqual": True}],
            "startsAt": "2026-12-04T10:00:00Z", "endsAt": "2026-12-04T12:00:00Z",
            "createdBy": "a", "comment": "x"}
    # the desk's read (none yet), the POST, then every read-back lists the silence
    server.route("/api/v2/silences", Reply(200, []), Reply(200, {"silenceID": sid}), Reply(200, [made]))
    plan = await silences.plan_create(client, parse_matchers(["alertname=Down"]), timedelta(hours=1), "x")
    outcome = await silences.apply(plan, client, confirm=lambda p: True, dry_run=False,
                                   audit=AuditJournal(tmp_path / "a.jsonl"), sleep=_no_sleep)
    await client.aclose()
    assert outcome.status == "unverified" and outcome.sent and not outcome.ok
    assert "1 matching alert(s) not yet silenced by it" in outcome.detail


async def test_a_silence_answer_without_an_id_is_a_decode_error(
        server: FaultServer, client: AlertmanagerClient) -> None:
    server.route("/api/v2/silences", Reply(200, {"id": "x"}))
    with pytest.raises(SourceError, match="POST /api/v2/silences: unexpected answer: response.silenceID"):
        await client.create_silence({"matchers": []})
    await client.aclose()


async def test_a_poll_fails_whole_when_either_read_fails(server: FaultServer) -> None:
    server.route("/api/v2/alerts", Reply(200, [ALERT]))
    server.route("/api/v2/silences", Reply(500, "boom"))
    source = AlertmanagerSource(name="am", url=server.url)  # type: ignore[arg-type]
    poller = AlertmanagerPoller(source, AlertmanagerClient(SourceClient("am", server.url, policy=POLICY,
                                                                        sleep=_no_sleep)))
    with pytest.raises(SourceError, match="am: HTTP 500"):
        await poller.poll()
    await poller.aclose()
