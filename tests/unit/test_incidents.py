"""console.incidents.IncidentStore: lifecycle, dedupe on the cause, ids, timeline, caps, errors."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from console import state_db
from console.incidents import (
    MAX_TEXT,
    MAX_TITLE,
    IncidentError,
    IncidentStore,
    normalize_id,
)
from console.operator import user_name
from console.state_db import StateError

T0 = datetime(2026, 12, 5, 1, 0, 0)


@pytest.fixture
def store(tmp_path: Path) -> IncidentStore:
    return IncidentStore(tmp_path / "state.sqlite3")


def test_default_path_is_the_shared_state_file() -> None:
    store = IncidentStore()
    store.open("x")
    assert store.path == state_db.default_state_db()
    assert store.path.is_file()


def test_open_sets_fields_and_writes_an_opened_entry(store: IncidentStore) -> None:
    inc, created = store.open("chat errors", severity="sev2", at=T0)
    assert created
    assert (inc.id, inc.title, inc.severity, inc.state) == ("INC-1", "chat errors", "sev2", "open")
    assert inc.owner == user_name()
    assert inc.opened_at == T0
    assert (inc.acknowledged_at, inc.mitigated_at, inc.resolved_at) == (None, None, None)
    assert inc.causes == () and not inc.auto
    [entry] = store.timeline("INC-1")
    assert (entry.seq, entry.kind, entry.text, entry.at) == (1, "opened", "chat errors", T0)
    assert entry.author == user_name()
    assert entry.data == {"severity": "sev2", "owner": user_name(), "auto": False}


def test_owner_and_author_can_be_named(store: IncidentStore) -> None:
    inc, _ = store.open("x", owner="alice", author="bob", data={"k": 1})
    assert inc.owner == "alice"
    [entry] = store.timeline(inc.id)
    assert entry.author == "bob"
    assert entry.data["k"] == 1 and entry.data["owner"] == "alice"


def test_ids_count_up_and_accept_short_forms(store: IncidentStore) -> None:
    ids = [store.open(f"t{i}")[0].id for i in range(3)]
    assert ids == ["INC-1", "INC-2", "INC-3"]
    for form in ("INC-2", "inc-2", "2", " 2 ", "Inc-02"):
        assert store.get(form).id == "INC-2"
    assert normalize_id("IMP-42") == "IMP-42"  # imports keep their ids
    with pytest.raises(IncidentError, match=r"^no incident INC-9 "):
        store.get("9")
    with pytest.raises(IncidentError, match="an incident id is needed"):
        store.get("  ")


def test_lifecycle_forward_with_skips_and_clear_errors(store: IncidentStore) -> None:
    inc, _ = store.open("x")
    acked = store.acknowledge(inc.id, author="alice", note="looking")
    assert acked.state == "acknowledged" and acked.acknowledged_at is not None
    with pytest.raises(IncidentError, match=r"^INC-1 is already acknowledged$"):
        store.acknowledge("1")
    mitigated = store.mitigate("INC-1")
    assert mitigated.state == "mitigated" and mitigated.mitigated_at is not None
    with pytest.raises(IncidentError, match=r"^INC-1 is already mitigated \(past acknowledged\)$"):
        store.acknowledge("1")
    resolved = store.resolve("1", note="rolled back")
    assert resolved.state == "resolved" and resolved.resolved_at is not None
    for step in (store.acknowledge, store.mitigate, store.resolve):
        with pytest.raises(IncidentError, match=r"^INC-1 is already resolved"):
            step("INC-1")
    states = [(e.kind, e.text, e.data, e.author) for e in store.timeline("1")[1:]]
    assert states == [
        ("state", "acknowledged: looking", {"from": "open", "to": "acknowledged"}, "alice"),
        ("state", "mitigated", {"from": "acknowledged", "to": "mitigated"}, user_name()),
        ("state", "resolved: rolled back", {"from": "mitigated", "to": "resolved"}, user_name()),
    ]
    # skipping is allowed: open -> resolved
    other, _ = store.open("y")
    done = store.resolve(other.id)
    assert done.state == "resolved" and done.acknowledged_at is None and done.mitigated_at is None


def test_one_unresolved_incident_per_cause(store: IncidentStore) -> None:
    first, created = store.open("slo burn", cause="slo:chat", auto=True)
    assert created and first.causes == ("slo:chat",) and first.auto
    again, created = store.open("slo burn again", cause="slo:chat")
    assert not created and again.id == first.id
    assert len(store.list()) == 1 and len(store.timeline(first.id)) == 1  # nothing written
    assert store.find_open("slo:chat") == again
    store.resolve(first.id)
    assert store.find_open("slo:chat") is None
    fresh, created = store.open("slo burn later", cause="slo:chat")
    assert created and fresh.id == "INC-2"
    assert store.get("1").causes == ("slo:chat",)  # the resolved one keeps its history


def test_the_unique_index_holds_even_if_a_path_skips_the_check(store: IncidentStore) -> None:
    store.open("a", cause="budget:team-a")
    store.open("b")
    conn = state_db.connect(store.path)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE constraint failed: incident_causes.cause"):
        conn.execute("INSERT INTO incident_causes VALUES ('INC-2', 'budget:team-a', 'x', 1)")
    conn.execute("INSERT INTO incident_causes VALUES ('INC-2', 'budget:team-a', 'x', 0)")  # resolved: ok


def test_join_adds_a_cause_with_an_entry(store: IncidentStore) -> None:
    inc, _ = store.open("outage", cause="slo:chat")
    joined = store.join(inc.id, "budget:team-a", "budget joined", data={"spent": 12.5}, at=T0)
    assert joined.causes == ("slo:chat", "budget:team-a")
    entry = store.timeline(inc.id)[-1]
    assert (entry.kind, entry.text, entry.at) == ("joined", "budget joined", T0)
    assert entry.data == {"cause": "budget:team-a", "spent": 12.5}
    assert store.join(inc.id, "budget:team-a", "again") == joined  # no-op
    assert len(store.timeline(inc.id)) == 2
    other, _ = store.open("other")
    with pytest.raises(IncidentError, match=r"^budget:team-a is already on INC-1$"):
        store.join(other.id, "budget:team-a", "steal")
    store.resolve(other.id)
    with pytest.raises(IncidentError, match=r"^INC-2 is already resolved$"):
        store.join(other.id, "slo:x", "late")


def test_list_orders_unresolved_first_newest_first(store: IncidentStore) -> None:
    a, _ = store.open("a", at=T0)
    b, _ = store.open("b", at=T0 + timedelta(minutes=1))
    c, _ = store.open("c", at=T0 + timedelta(minutes=2))
    d, _ = store.open("d", at=T0 + timedelta(minutes=3))
    store.resolve(d.id)
    store.acknowledge(a.id)
    store.mitigate(b.id)
    assert [i.id for i in store.list()] == [c.id, a.id, b.id, d.id]
    assert [i.id for i in store.list(include_resolved=False)] == [c.id, a.id, b.id]
    assert [i.id for i in store.list(limit=2)] == [c.id, a.id]


def test_notes_and_entries_on_resolved_incidents(store: IncidentStore) -> None:
    inc, _ = store.open("x")
    store.resolve(inc.id)
    note = store.note(inc.id, "post-incident: \x1b[31mred\x1b[0m stays as given", author="carol")
    assert (note.kind, note.seq, note.author) == ("note", 3, "carol")
    assert "\x1b[31m" in store.timeline(inc.id)[-1].text  # stored as given; rendering cleans it
    entry = store.add_entry(inc.id, "action_outcome", "applied", data={"action_id": "a1"})
    assert entry.data == {"action_id": "a1"} and entry.seq == 4
    assert store.get(inc.id).updated_at >= store.get(inc.id).opened_at


def test_input_is_checked_and_capped(store: IncidentStore) -> None:
    with pytest.raises(IncidentError, match="the title is empty"):
        store.open("  ")
    with pytest.raises(IncidentError, match=rf"the title is {MAX_TITLE + 1} characters; at most {MAX_TITLE}"):
        store.open("x" * (MAX_TITLE + 1))
    with pytest.raises(IncidentError, match=r"unknown severity 'sev5'; one of sev1, sev2, sev3, sev4"):
        store.open("x", severity="sev5")
    inc, _ = store.open("x")
    with pytest.raises(IncidentError, match="the text is empty"):
        store.note(inc.id, "")
    with pytest.raises(IncidentError, match=rf"the text is {MAX_TEXT + 1} characters"):
        store.note(inc.id, "n" * (MAX_TEXT + 1))
    with pytest.raises(IncidentError, match="unknown timeline entry kind 'bogus'"):
        store.add_entry(inc.id, "bogus", "t")  # type: ignore[arg-type]
    with pytest.raises(IncidentError, match="the note is 4001 characters"):
        store.acknowledge(inc.id, note="n" * 4001)
    assert len(store.list()) == 2 - 1 and len(store.timeline(inc.id)) == 1  # nothing half-written


def test_batch_is_one_transaction(store: IncidentStore) -> None:
    with pytest.raises(RuntimeError, match="stop"), store.batch():
        store.open("a", cause="slo:a")
        store.open("b", cause="slo:b")
        raise RuntimeError("stop")
    assert store.list() == []
    with store.batch():
        inc, _ = store.open("a", cause="slo:a")
        store.note(inc.id, "inside")
    assert len(store.timeline(inc.id)) == 2


def test_one_store_many_threads(store: IncidentStore) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                store.open(f"t{n}-{i}", cause=f"slo:{n}-{i % 3}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.list()) == 12  # 4 threads x 3 causes each


def test_an_unusable_state_file_is_a_state_error(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"not a database at all " * 100)
    with pytest.raises(StateError, match=r"cannot use the state file .*state\.sqlite3"):
        IncidentStore(path).list()


def test_escalate_only_raises_severity(store: IncidentStore) -> None:
    inc, _ = store.open("x", severity="sev3")
    assert store.escalate(inc.id, "sev4") == inc  # never lowered, nothing written
    raised = store.escalate(inc.id, "sev1", author="llmdeck", reason="alert:am/X joined", at=T0)
    assert raised.severity == "sev1"
    entry = store.timeline(inc.id)[-1]
    assert (entry.kind, entry.text, entry.at) == ("state", "severity sev3 -> sev1: alert:am/X joined", T0)
    assert entry.data == {"severity_from": "sev3", "severity_to": "sev1"}
    with pytest.raises(IncidentError, match="unknown severity 'sev0'"):
        store.escalate(inc.id, "sev0")  # type: ignore[arg-type]
    store.resolve(inc.id)
    with pytest.raises(IncidentError, match="INC-1 is already resolved"):
        store.escalate(inc.id, "sev1")


def test_a_local_id_never_collides_with_an_imported_one(store: IncidentStore) -> None:
    store.open("local")
    conn = state_db.connect(store.path)
    conn.execute("INSERT INTO incidents(id, num, title, severity, state, owner, opened_at, auto,"
                 " updated_at) VALUES ('INC-2', NULL, 'imported', 'sev3', 'resolved', 'x', ?, 0, ?)",
                 (T0.isoformat(), T0.isoformat()))
    assert store.get("inc-2").title == "imported"
    assert store.open("next local")[0].id == "INC-3"


def test_a_version_1_file_is_upgraded_in_place(store: IncidentStore) -> None:
    store.open("kept", cause="slo:a")
    store.close()
    conn = state_db.connect(store.path)
    conn.execute("DROP TABLE incident_feed_missing")  # what version 1 had
    conn.execute("UPDATE schema_versions SET version = 1 WHERE name = 'incidents'")
    again = IncidentStore(store.path)
    assert again.feed_firing() == {} and again.get("1").title == "kept"
    assert conn.execute("SELECT version FROM schema_versions WHERE name = 'incidents'").fetchone()[0] == 2
