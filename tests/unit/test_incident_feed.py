"""console.incident_feed: what fires opens / joins incidents, resolves write entries, restarts
do not re-announce."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from console.alerts import ActiveAlert
from console.incident_feed import IncidentFeed, firing_causes
from console.incidents import IncidentStore
from console.snapshots import Alert

T0 = datetime(2026, 12, 5, 1, 0, 0)
SLO_PAGE = Alert(2, "slo", "chat-availability", "burn 14.4x over 1h (budget 2% left)")
SLO_TICKET = Alert(1, "slo", "chat-latency", "burn 3x over 6h")
BUDGET_CRIT = Alert(2, "budget", "team-a monthly", "critical: $1,210 of $1,000")
BUDGET_WARN = Alert(1, "budget", "team-b monthly", "warning: $850 of $1,000")


def outside(name: str = "GatewayErrors", *, severity: str = "critical", state: str = "active",
            source: str = "am", origin: str = "alertmanager", silenced: tuple[str, ...] = (),
            inhibited: tuple[str, ...] = (), instance: str = "gw-1") -> ActiveAlert:
    labels = (("alertname", name), ("instance", instance), ("severity", severity))
    return ActiveAlert(source=source, origin=origin, name=name, state=state,  # type: ignore[arg-type]
                       severity=severity, labels=labels, summary=f"{name} on {instance}",
                       started=T0, fingerprint=f"fp-{name}-{instance}", silenced_by=silenced,
                       inhibited_by=inhibited)


@pytest.fixture
def store(tmp_path: Path) -> IncidentStore:
    return IncidentStore(tmp_path / "state.sqlite3")


def test_causes_only_pages_criticals_and_loud_outside_alerts() -> None:
    found = firing_causes(
        [SLO_PAGE, SLO_TICKET, BUDGET_CRIT, BUDGET_WARN, Alert(2, "alert", "GatewayErrors", "x")],
        [outside(), outside("Warn", severity="warning"), outside("Muted", silenced=("s1",)),
         outside("Inhibited", inhibited=("i1",)), outside("Suppressed", state="suppressed"),
         outside("Pending", state="pending", origin="prometheus"),
         outside("Sev1", severity="SEV1"), outside("High", severity="high")])
    assert list(found) == ["slo:chat-availability", "budget:team-a monthly", "alert:am/GatewayErrors",
                           "alert:am/Sev1", "alert:am/High"]
    assert found["alert:am/Sev1"].severity == "sev1"
    assert found["slo:chat-availability"].severity == "sev2"
    assert found["alert:am/GatewayErrors"].data["labels"]["instance"] == "gw-1"


def test_same_alertname_on_several_series_is_one_cause() -> None:
    found = firing_causes([], [outside(instance="gw-1"), outside(instance="gw-2")])
    assert list(found) == ["alert:am/GatewayErrors"]
    assert found["alert:am/GatewayErrors"].data["series"] == 2


def test_prometheus_alert_held_by_alertmanager_counts_once(store: IncidentStore) -> None:
    prom = outside(source="prom", origin="prometheus", state="firing")
    am = outside(source="am", origin="alertmanager", state="suppressed", silenced=("s1",))
    # Alertmanager silences it: the Prometheus twin must not page either
    assert firing_causes([], [prom, am]) == {}


def test_one_outage_three_causes_one_incident(store: IncidentStore) -> None:
    feed = IncidentFeed(store)
    result = feed.observe([SLO_PAGE, BUDGET_CRIT], [outside()], T0)
    [incident] = result.opened
    assert result.joined == ()
    assert incident.auto and incident.severity == "sev2" and incident.opened_at == T0
    assert incident.causes == ("slo:chat-availability", "budget:team-a monthly", "alert:am/GatewayErrors")
    assert incident.title.startswith("SLO chat-availability pages: burn 14.4x")
    kinds = [(e.kind, e.text.split(":")[0]) for e in store.timeline(incident.id)]
    assert kinds == [("opened", "SLO chat-availability pages"),
                     ("alert_firing", "slo"),
                     ("joined", "budget"), ("alert_firing", "budget"),
                     ("joined", "alert"), ("alert_firing", "alert")]
    firing = [e for e in store.timeline(incident.id) if e.kind == "alert_firing"]
    assert firing[0].data["reason"] == SLO_PAGE.reason and firing[0].data["level"] == 2
    assert firing[2].data["labels"]["alertname"] == "GatewayErrors"
    assert [e.incident_id for e in result.entries] == [incident.id] * 3
    assert len(store.list()) == 1


def test_a_later_cause_joins_within_the_window_else_opens_its_own(store: IncidentStore) -> None:
    feed = IncidentFeed(store, join_window=timedelta(minutes=30))
    [first] = feed.observe([SLO_PAGE], [], T0).opened
    later = feed.observe([SLO_PAGE, BUDGET_CRIT], [], T0 + timedelta(minutes=29))
    assert later.opened == () and [i.id for i in later.joined] == [first.id]
    much_later = feed.observe([SLO_PAGE, BUDGET_CRIT], [outside()], T0 + timedelta(minutes=31))
    [second] = much_later.opened
    assert second.id != first.id and second.causes == ("alert:am/GatewayErrors",)


def test_hand_opened_incidents_are_not_joined_but_their_cause_is_respected(store: IncidentStore) -> None:
    by_hand, _ = store.open("someone saw it first", at=T0)
    feed = IncidentFeed(store)
    [auto] = feed.observe([SLO_PAGE], [], T0 + timedelta(minutes=1)).opened
    assert auto.id != by_hand.id
    # an incident someone opened with the cause gets the entry instead of a new one
    store.resolve(auto.id)
    store.open("budget by hand", cause="budget:team-a monthly")
    result = feed.observe([SLO_PAGE, BUDGET_CRIT], [], T0 + timedelta(minutes=2))
    assert result.opened == () and result.joined == ()
    [entry] = result.entries
    assert entry.kind == "alert_firing" and entry.incident_id == "INC-3"


def test_fire_resolve_fire_writes_entries_once_each(store: IncidentStore) -> None:
    feed = IncidentFeed(store, resolve_after=timedelta(0))
    [inc] = feed.observe([SLO_PAGE], [], T0).opened
    assert not feed.observe([SLO_PAGE], [], T0 + timedelta(minutes=1)).changed  # still firing
    quiet = feed.observe([SLO_TICKET], [], T0 + timedelta(minutes=2),
                         figures={"slo:chat-availability": {"burn_1h": 0.4}})
    [resolved] = quiet.entries
    assert (resolved.kind, resolved.text) == ("alert_resolved", "slo:chat-availability resolved")
    assert resolved.data["burn_1h"] == 0.4 and resolved.data["since"] == T0.isoformat()
    assert resolved.data["last_reason"] == SLO_PAGE.reason
    assert not feed.observe([], [], T0 + timedelta(minutes=3)).changed
    again = feed.observe([SLO_PAGE], [], T0 + timedelta(minutes=4))
    assert again.opened == () and again.joined == ()  # its cause is still on the open incident
    assert [e.kind for e in again.entries] == ["alert_firing"]
    assert [e.kind for e in store.timeline(inc.id)] == ["opened", "alert_firing", "alert_resolved",
                                                       "alert_firing"]


def test_a_restarted_console_does_not_reannounce(store: IncidentStore, tmp_path: Path) -> None:
    IncidentFeed(store).observe([SLO_PAGE, BUDGET_CRIT], [outside()], T0)
    store.close()
    restarted = IncidentFeed(IncidentStore(tmp_path / "state.sqlite3"))
    assert not restarted.observe([SLO_PAGE, BUDGET_CRIT], [outside()], T0 + timedelta(minutes=5)).changed
    assert not restarted.observe([SLO_PAGE], [], T0 + timedelta(minutes=6)).changed  # the hold starts
    restarted.store.close()
    again = IncidentFeed(IncidentStore(tmp_path / "state.sqlite3"))  # the hold survives a restart too
    result = again.observe([SLO_PAGE], [], T0 + timedelta(minutes=7))
    assert sorted(e.text for e in result.entries) == ["alert:am/GatewayErrors resolved",
                                                      "budget:team-a monthly resolved"]
    assert result.entries[0].data["missing_since"] == (T0 + timedelta(minutes=6)).isoformat()


def test_resolved_by_hand_while_firing_is_not_reopened_until_it_fires_again(store: IncidentStore) -> None:
    feed = IncidentFeed(store, resolve_after=timedelta(0))
    [inc] = feed.observe([SLO_PAGE], [], T0).opened
    store.resolve(inc.id, note="known, handled")
    assert not feed.observe([SLO_PAGE], [], T0 + timedelta(minutes=1)).changed
    stops = feed.observe([], [], T0 + timedelta(minutes=2))
    assert [(e.kind, e.incident_id) for e in stops.entries] == [("alert_resolved", inc.id)]
    [fresh] = feed.observe([SLO_PAGE], [], T0 + timedelta(hours=1)).opened
    assert fresh.id != inc.id


def test_long_untrusted_reasons_are_clipped_not_refused(store: IncidentStore) -> None:
    labels = tuple((f"label{i:03}", "v" * 5000) for i in range(500))
    loud = ActiveAlert(source="am", origin="alertmanager", name="Spam" * 200, state="active",
                       severity="page", labels=labels, summary="\x1b]0;pwned\x07" + "x" * 100_000,
                       started=None, fingerprint="f", value="1" * 100_000)
    slo = Alert(2, "slo", "s" * 1000, "r" * 100_000)
    result = IncidentFeed(store).observe([slo], [loud], T0)
    [inc] = result.opened
    assert len(inc.title) <= 200 and inc.title.endswith("…")
    assert len(inc.causes) == 2 and all(len(c) <= 300 for c in inc.causes)
    firing = store.timeline(inc.id)[-1]
    assert firing.kind == "alert_firing" and len(firing.text) <= 4000
    assert firing.data["summary"].startswith("\x1b]0;pwned\x07")  # stored as given, clipped
    assert len(firing.data["labels"]) == 40
    assert not IncidentFeed(store).observe([slo], [loud], T0).changed  # the clipped causes match


def test_two_feeds_on_one_file_announce_once(store: IncidentStore, tmp_path: Path) -> None:
    other = IncidentFeed(IncidentStore(tmp_path / "state.sqlite3"))
    first = IncidentFeed(store).observe([SLO_PAGE], [outside()], T0)
    second = other.observe([SLO_PAGE], [outside()], T0)
    assert len(first.opened) == 1 and not second.changed
    assert len(store.list()) == 1


def test_a_sev1_cause_joining_raises_the_incident_to_sev1(store: IncidentStore) -> None:
    feed = IncidentFeed(store)
    [inc] = feed.observe([SLO_PAGE], [], T0).opened
    assert inc.severity == "sev2"
    result = feed.observe([SLO_PAGE], [outside("Down", severity="sev1")], T0 + timedelta(minutes=1))
    [joined] = result.joined
    assert joined.id == inc.id and joined.severity == "sev1"
    assert [e.kind for e in store.timeline(inc.id)][-3:] == ["joined", "state", "alert_firing"]


def test_a_cause_whose_source_is_unreadable_is_not_called_resolved(store: IncidentStore) -> None:
    feed = IncidentFeed(store, resolve_after=timedelta(0))
    [inc] = feed.observe([SLO_PAGE], [outside(), outside("Other", source="am2")], T0).opened
    # am cannot be read and the SLO's data is down: neither is said to be resolved
    blind = feed.observe([], [outside("Other", source="am2")], T0 + timedelta(minutes=1),
                         unknown=["alert:am/", "slo:chat-availability"])
    assert not blind.changed
    back = feed.observe([SLO_PAGE], [outside(), outside("Other", source="am2")], T0 + timedelta(minutes=2))
    assert not back.changed  # still firing: not announced again either
    # "alert:am" without the slash is not a prefix, and other causes still resolve
    gone = feed.observe([], [], T0 + timedelta(minutes=3), unknown=["alert:am"])
    assert sorted(e.text for e in gone.entries) == ["alert:am/GatewayErrors resolved",
                                                    "alert:am2/Other resolved",
                                                    "slo:chat-availability resolved"]
    assert {e.incident_id for e in gone.entries} == {inc.id}


def test_a_flapping_cause_is_resolved_only_after_staying_away(store: IncidentStore) -> None:
    feed = IncidentFeed(store, resolve_after=timedelta(minutes=1))
    [inc] = feed.observe([SLO_PAGE], [], T0).opened
    step = timedelta(seconds=20)
    for n in range(1, 10):  # away, back, away, back ... every 20 s: nothing written
        assert not feed.observe([SLO_PAGE] if n % 2 == 0 else [], [], T0 + n * step).changed
    assert not feed.observe([], [], T0 + 10 * step).changed  # away since 9 * step: 20 s
    assert not feed.observe([], [], T0 + 11 * step).changed  # 40 s
    [resolved] = feed.observe([], [], T0 + 12 * step).entries  # 60 s: resolved, once
    assert resolved.kind == "alert_resolved" and resolved.at == T0 + 12 * step
    assert not feed.observe([], [], T0 + 13 * step).changed
    assert [e.kind for e in store.timeline(inc.id)] == ["opened", "alert_firing", "alert_resolved"]
