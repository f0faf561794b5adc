"""A real Alertmanager fed by a real Prometheus's rules: alerts, silences, the guarded writes and the CLI.

Prometheus evaluates four always-true rules every second (`for: 0s`) and sends them to
Alertmanager (`group_wait: 0s`); the tests wait until they arrive. Each test silences
its own alert, so the tests do not depend on one another. A recording proxy sits in
front of Alertmanager wherever a test must prove what was, or was not, sent.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from connectors.alertmanager import AlertmanagerClient
from connectors.http import SourceClient, SourceError
from console import silences
from console.alertmanager_poll import AlertmanagerReading, make_poller
from console.audit import AuditJournal
from console.config import AlertmanagerSource
from console.silence_input import parse_matchers
from tests.integration.recording_proxy import RecordingProxy
from tests.integration.servers import (
    free_port,
    start_alertmanager,
    start_prometheus,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ("GuardedCreate", "NothingSent", "CliFlow", "TypedConfirm")



def _rules() -> str:
    rules = "".join(
        f"      - alert: {name}\n        expr: vector(1)\n        for: 0s\n"
        f"        labels: {{severity: page, suite: llmdeck}}\n"
        f"        annotations: {{summary: \"{name} always fires\"}}\n"
        for name in ALERTS
    )
    return f"groups:\n  - name: llmdeck-tests\n    interval: 1s\n    rules:\n{rules}"


@dataclass(frozen=True)
class Stack:
    am_url: str
    prom_url: str
    dir: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    d = tmp_path_factory.mktemp("am-stack")
    (d / "rules.yml").write_text(_rules())
    am, am_url = start_alertmanager(d)
    try:
        prom, prom_url = start_prometheus(d, (
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "rule_files: [rules.yml]\n"
            f"alerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['{am_url[7:]}']}}]\n"
        ))
        with prom:
            def all_arrived() -> bool:
                names = {a["labels"]["alertname"] for a in httpx.get(f"{am_url}/api/v2/alerts").json()}
                return set(ALERTS) <= names
            wait_until(all_arrived, 45, "Prometheus's alerts to reach Alertmanager", interval=0.2)
            yield Stack(am_url, prom_url, d)
    finally:
        am.stop()


@pytest.fixture
def proxy(stack: Stack) -> Iterator[RecordingProxy]:
    with RecordingProxy(stack.am_url) as p:
        yield p


def _client(url: str) -> AlertmanagerClient:
    return AlertmanagerClient(SourceClient("am", url))


def _server_silences(stack: Stack) -> list[dict[str, object]]:
    return list(httpx.get(f"{stack.am_url}/api/v2/silences").json())


def _alert(stack: Stack, name: str) -> dict[str, object]:
    alerts = httpx.get(f"{stack.am_url}/api/v2/alerts", params={"filter": f'alertname="{name}"'}).json()
    assert len(alerts) == 1, alerts
    return dict(alerts[0])


async def test_alerts_from_prometheus_rules_arrive_active_with_their_labels(stack: Stack) -> None:
    client = _client(stack.am_url)
    try:
        alerts = {a.name: a for a in await client.alerts()}
    finally:
        await client.aclose()
    alert = alerts["GuardedCreate"]
    assert alert.origin == "alertmanager" and alert.source == "am"
    assert alert.state == "active" and alert.firing
    assert alert.severity == "page" and alert.label("suite") == "llmdeck"
    assert alert.summary == "GuardedCreate always fires"
    assert alert.started is not None and len(alert.fingerprint) == 16
    assert alert.silenced_by == () and alert.inhibited_by == ()


async def test_poller_reads_alerts_and_silences_in_one_frozen_reading(stack: Stack) -> None:
    source = AlertmanagerSource(name="am", url=stack.am_url)  # type: ignore[arg-type]
    poller = make_poller(source, None, {})  # type: ignore[arg-type]
    try:
        reading = await poller.poll()
    finally:
        await poller.aclose()
    assert isinstance(reading, AlertmanagerReading) and reading.source == "am"
    assert set(ALERTS) <= {a.name for a in reading.alerts}
    assert isinstance(reading.silences, tuple)
    assert "firing" in reading.summary()
    assert (poller.kind, poller.interval) == ("alertmanager", source.refresh_seconds)


async def test_confirmed_silence_suppresses_the_alert_then_expiring_it_releases_it(
        stack: Stack, proxy: RecordingProxy, tmp_path: Path) -> None:
    client, audit = _client(proxy.url), AuditJournal(tmp_path / "audit.jsonl")
    try:
        plan = await silences.plan_create(client, parse_matchers(["alertname=GuardedCreate"]),
                                          timedelta(hours=2), "integration test")
        assert [a.name for a in plan.affects] == ["GuardedCreate"]
        created = await silences.apply(plan, client, confirm=lambda p: True, dry_run=False, audit=audit)
        assert created.status == "applied", created.detail
        assert len(created.suppressed) == 1

        silence = await client.silence(created.silence_id)
        assert silence.state == "active" and silence.comment == "integration test"
        real = _alert(stack, "GuardedCreate")
        assert real["status"] == {"state": "suppressed", "silencedBy": [created.silence_id],  # type: ignore[comparison-overlap]
                                  "inhibitedBy": []}

        expire_plan = await silences.plan_expire(client, created.silence_id)
        assert [a.name for a in expire_plan.affects] == ["GuardedCreate"]
        expired = await silences.apply(expire_plan, client, confirm=lambda p: True, dry_run=False,
                                       audit=audit)
        assert expired.status == "applied", expired.detail
        assert (await client.silence(created.silence_id)).state == "expired"
        assert _alert(stack, "GuardedCreate")["status"]["state"] == "active"  # type: ignore[index]
    finally:
        await client.aclose()
    assert proxy.mutating() == [("POST", "/api/v2/silences"),
                                ("DELETE", f"/api/v2/silence/{created.silence_id}")]
    assert [(r.kind, r.action, r.status) for r in audit.records()] == [
        ("intent", "silence.create", ""), ("outcome", "silence.create", "applied"),
        ("intent", "silence.expire", ""), ("outcome", "silence.expire", "applied")]
    assert audit.verify().ok


@pytest.mark.parametrize("mode", ["dry_run", "env_read_only", "flag_read_only", "not_confirmed"])
async def test_dry_run_read_only_and_unconfirmed_send_no_mutating_request(
        stack: Stack, proxy: RecordingProxy, tmp_path: Path, mode: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A silence to try to expire, made straight on the server (not through llmdeck).
    existing = httpx.post(f"{stack.am_url}/api/v2/silences", json={
        "matchers": [{"name": "alertname", "value": "NothingSent", "isRegex": False, "isEqual": True}],
        "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "fixture", "comment": "to be left alone"}).json()["silenceID"]
    before = _server_silences(stack)
    client, audit = _client(proxy.url), AuditJournal(tmp_path / "audit.jsonl")
    asked: list[str] = []
    if mode == "env_read_only":
        monkeypatch.setenv("LLMDECK_READONLY", "1")
    try:
        # not the existing silence's matchers: an identical active silence would change nothing
        plans = [await silences.plan_create(client, parse_matchers(["alertname=NothingSentNew"]),
                                            timedelta(minutes=30), "must not be sent"),
                 await silences.plan_expire(client, existing)]
        for plan in plans:
            outcome = await silences.apply(
                plan, client, confirm=lambda p: asked.append(p.action) is not None,  # records, says no
                dry_run=mode == "dry_run", read_only=mode == "flag_read_only", audit=audit)
            assert not outcome.sent
    finally:
        await client.aclose()
    assert proxy.mutating() == []
    assert {m for m, _ in proxy.requests} == {"GET"}
    assert _server_silences(stack) == before
    assert asked == (["create", "expire"] if mode == "not_confirmed" else [])
    httpx.delete(f"{stack.am_url}/api/v2/silence/{existing}")


async def test_expiring_a_silence_that_does_not_exist_says_so(stack: Stack) -> None:
    client = _client(stack.am_url)
    try:
        nobody = "00000000-0000-0000-0000-000000000000"
        with pytest.raises(silences.PlanError, match=f"no silence with id '{nobody}'"):
            await silences.plan_expire(client, nobody)
        with pytest.raises(SourceError) as info:
            await client.silence("not-a-uuid")
        assert info.value.status == 422 and "uuid" in info.value.reason
    finally:
        await client.aclose()


# -- the CLI, end to end ------------------------------------------------------------------------


def _cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMDECK_")}
    env.update(XDG_STATE_HOME=str(tmp_path / "state"), XDG_CONFIG_HOME=str(tmp_path / "config"),
               XDG_CACHE_HOME=str(tmp_path / "cache"), **extra)
    return env


def _config(tmp_path: Path, am_url: str, prom_url: str) -> Path:
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f'[[sources.alertmanager]]\nname = "am"\nurl = "{am_url}"\n\n'
                   f'[[sources.prometheus]]\nname = "prom"\nurl = "{prom_url}"\n')
    return cfg


def _llmdeck(cfg: Path, *args: str, env: dict[str, str], stdin: int | None = subprocess.DEVNULL,
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "console.cli", "--config", str(cfg), *args], cwd=ROOT,
                          env=env, stdin=stdin, capture_output=True, text=True, timeout=60, check=False)


def _by_name(alerts_json: dict[str, list[dict[str, object]]], name: str, origin: str) -> dict[str, object]:
    return next(a for a in alerts_json["alerts"] if a["name"] == name and a["origin"] == origin)


def test_cli_silence_create_alerts_and_expire_end_to_end(stack: Stack, proxy: RecordingProxy,
                                                         tmp_path: Path) -> None:
    cfg, env = _config(tmp_path, proxy.url, stack.prom_url), _cli_env(tmp_path)
    before = _llmdeck(cfg, "alerts", "--json", env=env)
    assert before.returncode == 1, before.stderr  # unsilenced alerts fire
    data = json.loads(before.stdout)
    assert _by_name(data, "CliFlow", "alertmanager")["state"] == "active"
    assert _by_name(data, "CliFlow", "prometheus")["state"] == "firing"

    dry = _llmdeck(cfg, "silence", "create", "--matcher", "alertname=CliFlow", "--for", "2h",
                   "--comment", "cli test", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "POST " + proxy.url + "/api/v2/silences" in dry.stdout
    assert "dry run: nothing sent" in dry.stdout
    no_tty = _llmdeck(cfg, "silence", "create", "-m", "alertname=CliFlow", "--for", "2h", "-c", "x", env=env)
    assert no_tty.returncode == 3 and "no terminal to confirm on" in no_tty.stderr
    read_only = _llmdeck(cfg, "silence", "create", "-m", "alertname=CliFlow", "--for", "2h", "-c", "x",
                         "--yes", env=_cli_env(tmp_path, LLMDECK_READONLY="1"))
    assert read_only.returncode == 3 and "read-only" in read_only.stderr
    assert proxy.mutating() == []

    made = _llmdeck(cfg, "silence", "create", "--matcher", "alertname=CliFlow", "--for", "2h",
                    "--comment", "cli test", "--yes", "--json", env=env)
    assert made.returncode == 0, made.stderr
    result = json.loads(made.stdout)
    sid = result["outcome"]["silence_id"]
    assert result["outcome"]["status"] == "applied" and result["plan"]["matchers"] == ["alertname=CliFlow"]
    alerts = json.loads(_llmdeck(cfg, "alerts", "--json", env=env).stdout)
    silenced = _by_name(alerts, "CliFlow", "alertmanager")
    assert silenced["state"] == "suppressed" and silenced["silenced_by"] == [sid]
    assert _by_name(alerts, "CliFlow", "prometheus")["pages"] is False  # Alertmanager's state decides
    listed = json.loads(_llmdeck(cfg, "silences", "--json", env=env).stdout)
    assert sid in [s["id"] for s in listed["silences"]]

    gone = _llmdeck(cfg, "silence", "expire", sid, "--yes", env=env)
    assert gone.returncode == 0 and f"silence {sid} expired" in gone.stdout, gone.stderr
    assert proxy.mutating() == [("POST", "/api/v2/silences"), ("DELETE", f"/api/v2/silence/{sid}")]
    journal = AuditJournal(tmp_path / "state/llmdeck/audit.jsonl")
    assert [(r.kind, r.status) for r in journal.records()] == [
        ("event", "dry_run"), ("event", "cancelled"), ("event", "refused"), ("intent", ""),
        ("outcome", "applied"), ("intent", ""), ("outcome", "applied")]
    assert journal.verify().ok
    shown = _llmdeck(cfg, "audit", "show", env=env)
    assert shown.returncode == 0 and "silence.expire" in shown.stdout and "UNKNOWN" not in shown.stdout


def test_cli_asks_for_the_source_name_on_a_terminal_and_takes_nothing_else(
        stack: Stack, proxy: RecordingProxy, tmp_path: Path) -> None:
    cfg, env = _config(tmp_path, proxy.url, stack.prom_url), _cli_env(tmp_path)
    for typed, code in (("y\n", 3), ("\n", 3), ("am\n", 0)):
        primary, secondary = pty.openpty()
        try:
            os.write(primary, typed.encode())
            done = _llmdeck(cfg, "silence", "create", "-m", "alertname=TypedConfirm", "--for", "10m",
                            "-c", "typed", env=env, stdin=secondary)
        finally:
            os.close(primary)
            os.close(secondary)
        assert "Type the source name to confirm:" in done.stderr
        assert done.returncode == code, (typed, done.stdout, done.stderr)
    assert [m for m, _ in proxy.mutating()] == ["POST"]
    sid = next(s["id"] for s in _server_silences(stack) if s["comment"] == "typed")
    httpx.delete(f"{stack.am_url}/api/v2/silence/{sid}")


def test_cli_bad_input_and_an_unreachable_source_have_their_own_exit_codes(stack: Stack,
                                                                          tmp_path: Path) -> None:
    env = _cli_env(tmp_path)
    cfg = _config(tmp_path, stack.am_url, stack.prom_url)
    bad = _llmdeck(cfg, "silence", "create", "-m", "alertname", "--for", "2h", "-c", "x", "--yes", env=env)
    assert bad.returncode == 2 and "after the label name 'alertname' comes =" in bad.stderr
    bad_for = _llmdeck(cfg, "silence", "create", "-m", "a=b", "--for", "2 hours", "-c", "x", env=env)
    assert bad_for.returncode == 2 and "not a duration" in bad_for.stderr
    unknown = _llmdeck(cfg, "silence", "expire", "00000000-0000-0000-0000-000000000000", "--yes", env=env)
    assert unknown.returncode == 1 and "no silence with id" in unknown.stderr
    down = _config(tmp_path, f"http://127.0.0.1:{free_port()}", stack.prom_url)
    failed = _llmdeck(down, "alerts", env=env)
    assert failed.returncode == 2 and "am: connect: cannot connect" in failed.stderr
    assert "CliFlow" in failed.stdout  # Prometheus still answered


def test_cli_plans_and_records_never_show_the_secret_header(stack: Stack, proxy: RecordingProxy,
                                                            tmp_path: Path) -> None:
    canary = "canary-am-token-7c1e5b"
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f'[[sources.alertmanager]]\nname = "am"\nurl = "{proxy.url}"\n'
                   'bearer_token_ref = "env:LLMDECK_TEST_AM_TOKEN"\n'
                   'header_refs = { "X-Scope-OrgID" = "env:LLMDECK_TEST_AM_TOKEN" }\n')
    env = _cli_env(tmp_path, LLMDECK_TEST_AM_TOKEN=canary)
    shown = _llmdeck(cfg, "silence", "create", "-m", "alertname=NothingSent", "--for", "5m",
                     "-c", "secret test", "--yes", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    plan = json.loads(shown.stdout)["plan"]["request"]
    assert "authorization: ***" in plan.lower() and "x-scope-orgid: ***" in plan.lower()
    sid = json.loads(shown.stdout)["outcome"]["silence_id"]
    expired = _llmdeck(cfg, "silence", "expire", sid, "--yes", env=env)
    assert expired.returncode == 0, expired.stderr
    journal = (tmp_path / "state/llmdeck/audit.jsonl").read_text()
    assert "silence.create" in journal and "silence.expire" in journal
    for text in (shown.stdout, shown.stderr, expired.stdout, expired.stderr, journal):
        assert canary not in text


def test_cli_alerts_make_hostile_label_text_inert(stack: Stack, tmp_path: Path) -> None:
    hostile = "\x1b]52;c;ZXZpbA==\x07\u202eevil\x1b[2J"
    httpx.post(f"{stack.am_url}/api/v2/alerts", json=[{
        "labels": {"alertname": "Hostile", "note": hostile}, "annotations": {"summary": hostile}}])
    cfg, env = _config(tmp_path, stack.am_url, stack.prom_url), _cli_env(tmp_path)
    shown = _llmdeck(cfg, "alerts", env=env)
    assert "Hostile" in shown.stdout
    assert "\x1b" not in shown.stdout and "\u202e" not in shown.stdout and "\x07" not in shown.stdout
    assert "\\x1b]52" in shown.stdout and "<U+202E>" in shown.stdout
