"""Every kind of tampering with the audit journal is detected, and the first bad record is named.

A journal of six real records (intents, outcomes, an event) is written through
`AuditJournal`, then changed on disk the way someone covering their tracks would: edit a
line, edit and recompute its hash, recompute the whole chain, delete, insert, copy, swap,
cut the tail, remove or change the head, add a garbage line. `verify` (and `llmdeck audit
verify`) must fail and say where (file:line, seq) and what kind.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from console.audit import GENESIS, AuditJournal, record_hash
from console.audit_cli import add_parser, main_audit


def _journal(tmp_path: Path) -> AuditJournal:
    j = AuditJournal(tmp_path / "state" / "audit.jsonl")
    first = j.intent(action="throttle-key", target="team-a-key", params={"tpm_limit": 100},
                     pre_state_hash="a" * 64, idempotency_key="k1", origin="cli", gateway="gw")
    j.outcome(first, action="throttle-key", status="applied", detail="tpm_limit 100 read back")
    j.event("block-key", status="refused", detail="read-only mode", origin="key", target="k2")
    second = j.intent(action="switch-provider", target="gpt-4o", params={"fallback": "claude"},
                      pre_state_hash="b" * 64, idempotency_key="k2", origin="palette", gateway="gw")
    j.outcome(second, action="switch-provider", status="applied", detail="fallbacks read back")
    j.event("rollback-model", status="cancelled", detail="not confirmed", origin="key")
    assert j.verify().ok
    return j


def _lines(j: AuditJournal) -> list[str]:
    return j.path.read_text().splitlines()


def _write(j: AuditJournal, lines: list[str]) -> None:
    j.path.write_text("".join(line + "\n" for line in lines))


def _rehash(line: str, prev: str, **changes: object) -> tuple[str, str]:
    """The record on `line` with `changes`, chained to `prev` and its hash recomputed."""
    rec = json.loads(line)
    rec.update(changes, prev=prev)
    rec.pop("hash")
    rec["hash"] = record_hash(prev, rec)
    return json.dumps(rec), rec["hash"]


def _edit_in_place(lines: list[str]) -> list[str]:
    lines[2] = lines[2].replace("read-only mode", "confirmed")
    return lines


def _edit_and_rehash(lines: list[str]) -> list[str]:
    prev = json.loads(lines[1])["hash"]
    lines[2], _ = _rehash(lines[2], prev, status="applied")
    return lines


def _rewrite_chain_from_3(lines: list[str]) -> list[str]:
    prev = json.loads(lines[1])["hash"]
    for i in range(2, len(lines)):
        lines[i], prev = _rehash(lines[i], prev, **({"status": "applied"} if i == 2 else {}))
    return lines


def _delete_middle(lines: list[str]) -> list[str]:
    del lines[2]
    return lines


def _delete_first(lines: list[str]) -> list[str]:
    del lines[0]
    return lines


def _insert_forged(lines: list[str]) -> list[str]:
    prev = json.loads(lines[2])["hash"]
    forged, _ = _rehash(lines[2], prev, seq=4, detail="forged")
    lines.insert(3, forged)
    return lines


def _insert_stray(lines: list[str]) -> list[str]:
    stray, _ = _rehash(lines[1], "9" * 64, seq=99)
    lines.insert(2, stray)
    return lines


def _insert_copy(lines: list[str]) -> list[str]:
    lines.insert(4, lines[1])
    return lines


def _swap(lines: list[str]) -> list[str]:
    lines[2], lines[3] = lines[3], lines[2]
    return lines


def _move_last_first(lines: list[str]) -> list[str]:
    return [lines[-1], *lines[:-1]]


def _truncate_two(lines: list[str]) -> list[str]:
    return lines[:-2]


def _truncate_all(lines: list[str]) -> list[str]:
    return []


def _garbage(lines: list[str]) -> list[str]:
    lines.insert(3, "this is not json")
    return lines


def _blank(lines: list[str]) -> list[str]:
    lines.insert(1, "")
    return lines


def _not_a_record(lines: list[str]) -> list[str]:
    lines.insert(5, json.dumps({"seq": 6, "kind": "note"}))
    return lines


Tamper = Callable[[list[str]], list[str]]


@pytest.mark.parametrize(("tamper", "kind", "line", "seq", "says"), [
    (_edit_in_place, "edited", 3, 3, "seq 3 was edited: its hash does not match its content"),
    (_edit_and_rehash, "edited", 3, 3, "seq 3 was edited (its hash was recomputed): seq 4"),
    (_delete_middle, "deleted", 3, 4, "seq 3 deleted before this record (seq 4)"),
    (_delete_first, "deleted", 1, 2, "seq 1 deleted before this record (seq 2)"),
    (_insert_forged, "inserted", 4, 4, "seq 4 was inserted: seq 4 at"),
    (_insert_stray, "inserted", 3, 99, "seq 99 was inserted: the next record"),
    (_insert_copy, "inserted", 5, 2, "seq 2 was inserted: a copy of seq 2 at"),
    (_swap, "reordered", 3, 4, "seq 4 comes before seq 3"),
    (_move_last_first, "reordered", 1, 6, "seq 6 comes before seq 1"),
    (_truncate_two, "truncated", 5, 5, "the journal ends at seq 4"),
    (_truncate_all, "truncated", 1, 1, "the journal ends at no record but the head says seq 6"),
    (_garbage, "unparseable", 4, None, ":4: not a journal record (after seq 3)"),
    (_blank, "unparseable", 2, None, ":2: not a journal record (after seq 1)"),
    (_not_a_record, "unparseable", 6, None, ":6: not a journal record (after seq 5)"),
])
def test_each_kind_of_tampering_is_detected_and_the_first_bad_record_named(
        tmp_path: Path, tamper: Tamper, kind: str, line: int, seq: int | None, says: str) -> None:
    j = _journal(tmp_path)
    _write(j, tamper(_lines(j)))
    v = j.verify()
    assert not v.ok
    assert (v.kind, v.line, v.seq) == (kind, line, seq), v.problem
    assert says in v.problem
    assert v.problem.startswith(f"{j.path}:{line}: ")


def test_a_whole_chain_rewritten_after_an_edit_is_caught_by_the_head(tmp_path: Path) -> None:
    j = _journal(tmp_path)
    _write(j, _rewrite_chain_from_3(_lines(j)))
    v = j.verify()
    assert (v.ok, v.kind, v.seq, v.line) == (False, "head_mismatch", 6, 6)
    assert "the head says seq 6 has hash" in v.problem and "records were rewritten" in v.problem


def test_a_removed_head_is_named(tmp_path: Path) -> None:
    j = _journal(tmp_path)
    j.head_path.unlink()
    v = j.verify()
    assert (v.ok, v.kind) == (False, "head_missing")
    assert "the head anchor (audit.head) is missing, the journal has 6 records" in v.problem


def test_a_deleted_journal_with_its_head_left_is_truncated(tmp_path: Path) -> None:
    j = _journal(tmp_path)
    j.path.unlink()
    v = j.verify()
    assert (v.ok, v.kind, v.line, v.seq) == (False, "truncated", 1, 1)


@pytest.mark.parametrize(("head", "kind", "says"), [
    ({"seq": 6, "hash": "f" * 64}, "head_mismatch", "the head says seq 6 has hash ffffffffffff"),
    ({"seq": 9}, "head_mismatch", 'is not {"seq": N, "hash": "..."}'),
    ("garbage", "head_mismatch", "is not JSON"),
])
def test_a_changed_head_is_named(tmp_path: Path, head: object, kind: str, says: str) -> None:
    j = _journal(tmp_path)
    j.head_path.write_text(head if isinstance(head, str) else json.dumps(head))
    v = j.verify()
    assert (v.ok, v.kind) == (False, kind) and says in v.problem


def test_records_beyond_the_head_are_named_and_one_behind_is_only_a_note(tmp_path: Path) -> None:
    j = _journal(tmp_path)
    records = {r.seq: r for r in j.records()}
    j.head_path.write_text(json.dumps({"seq": 5, "hash": records[5].data["hash"]}))
    v = j.verify()
    assert v.ok and "the head is one record behind (seq 5 of 6)" in v.warning  # a crash window
    j.head_path.write_text(json.dumps({"seq": 3, "hash": records[3].data["hash"]}))
    v = j.verify()
    assert (v.ok, v.kind, v.line, v.seq) == (False, "inserted", 4, 4)
    assert "seq 4..6 are beyond the head (seq 3)" in v.problem
    j.event("x", status="refused", detail="the next append puts the head right again")
    assert j.verify().ok


def test_a_torn_last_line_is_reported_and_the_next_record_starts_on_its_own_line(
        tmp_path: Path) -> None:
    j = _journal(tmp_path)
    with j.path.open("a") as f:
        f.write('{"seq": 7, "ts": "2026-')  # a write cut short by a crash
    j.event("after-crash", status="refused", detail="still recorded")
    lines = _lines(j)
    assert json.loads(lines[-1])["seq"] == 7 and json.loads(lines[-1])["prev"] == json.loads(lines[5])["hash"]
    v = j.verify()
    assert (v.ok, v.kind, v.line) == (False, "unparseable", 7)


def test_an_empty_or_absent_journal_verifies(tmp_path: Path) -> None:
    j = AuditJournal(tmp_path / "none" / "audit.jsonl")
    assert j.verify().ok and j.verify().records == 0 and j.records() == []


def test_the_first_record_chains_to_the_genesis_hash(tmp_path: Path) -> None:
    j = _journal(tmp_path)
    assert json.loads(_lines(j)[0])["prev"] == GENESIS
    lines = _lines(j)
    lines[0], _ = _rehash(lines[0], "1" * 64)
    _write(j, lines)
    v = j.verify()
    assert (v.ok, v.kind, v.line, v.seq) == (False, "edited", 1, 1)


def _cli(*args: str) -> tuple[int, str, str]:
    import argparse

    parser = argparse.ArgumentParser(prog="llmdeck")
    add_parser(parser.add_subparsers(dest="command"))
    out, err = io.StringIO(), io.StringIO()
    code = main_audit(parser.parse_args(["audit", *args]), parser, out, err)
    return code, out.getvalue(), err.getvalue()


def test_cli_verify_exits_1_naming_file_line_seq_and_kind(tmp_path: Path) -> None:
    j = _journal(tmp_path)
    code, out, _ = _cli("verify", "--journal", str(j.path))
    assert code == 0 and out.startswith("ok: 6 records, chain and head intact")
    _write(j, _swap(_lines(j)))
    code, out, _ = _cli("verify", "--journal", str(j.path))
    assert code == 1
    assert out.startswith(f"TAMPERED (reordered, seq 4): {j.path}:3: seq 4 comes before seq 3")
    code, out, _ = _cli("verify", "--journal", str(j.path), "--json")
    got = json.loads(out)
    assert code == 1 and (got["ok"], got["kind"], got["line"], got["seq"]) == (False, "reordered", 3, 4)
