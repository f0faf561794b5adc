"""Checking the audit journal's chain and head, and naming the first bad record and its kind.

Kept apart from `console.audit` (which writes) because telling an edit from an insertion,
a deletion or a reordering takes a look ahead in the file: the chain alone only says where it
breaks, not why. The kinds: edited (a record's hash does not match its content, or the chain
breaks at a rewritten record), deleted (a seq gap), inserted (a record the chain skips, a copy,
or records beyond the head), reordered (a later seq before an earlier one), truncated (the head
says more than the file holds), head_missing / head_mismatch, unparseable (a line that is not a
journal record).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from console.audit import GENESIS, AuditRecord, Verification, parse_line, record_hash


@dataclass(frozen=True)
class _Entry:
    line: int
    rec: AuditRecord | None
    valid: bool
    """The record's hash matches its own content and prev."""

    @property
    def seq(self) -> int:
        return self.rec.seq if self.rec else -1

    @property
    def prev(self) -> str:
        return str(self.rec.data["prev"]) if self.rec else ""

    @property
    def hash(self) -> str:
        return str(self.rec.data["hash"]) if self.rec else ""


def verify_lines(lines: Sequence[str], head: Mapping[str, Any] | None | str,
                 path: str) -> Verification:
    """Walk `lines` (the journal, in file order) and check the head anchor against the end."""
    entries = [_entry(text, number) for number, text in enumerate(lines, start=1)]
    count = sum(1 for e in entries if e.rec is not None)
    walk = _Walk(entries, head, path, count)
    return walk.run()


def _entry(text: str, line: int) -> _Entry:
    rec = parse_line(text, line) if text.strip() else None
    valid = rec is not None and record_hash(str(rec.data["prev"]), rec.data) == rec.data["hash"]
    return _Entry(line, rec, valid)


class _Walk:
    def __init__(self, entries: list[_Entry], head: Mapping[str, Any] | None | str, path: str,
                 count: int) -> None:
        self.entries, self.head, self.path, self.count = entries, head, path, count
        self.head_seq = head.get("seq") if isinstance(head, Mapping) else None
        self.accepted: list[_Entry] = []

    def at(self, line: int) -> str:
        return f"{self.path}:{line}"

    def bad(self, kind: str, line: int | None, seq: int | None, problem: str) -> Verification:
        return Verification(ok=False, records=self.count, line=line, problem=problem, seq=seq,
                            kind=kind, path=self.path)

    def run(self) -> Verification:
        for index, entry in enumerate(self.entries):
            if entry.rec is None:
                after = f"after seq {self.accepted[-1].seq}" if self.accepted else "before any record"
                return self.bad("unparseable", entry.line, None,
                                f"{self.at(entry.line)}: not a journal record ({after})")
            expected_seq = self.accepted[-1].seq + 1 if self.accepted else 1
            expected_prev = self.accepted[-1].hash if self.accepted else GENESIS
            if entry.valid and entry.seq == expected_seq and entry.prev == expected_prev:
                self.accepted.append(entry)
                continue
            return self.broken(index, entry, expected_seq, expected_prev)
        return self.check_head()

    def broken(self, index: int, entry: _Entry, expected_seq: int,
               expected_prev: str) -> Verification:
        """The chain breaks at `entry`: say why, naming the first bad record."""
        where, seq = self.at(entry.line), entry.seq
        rest = self.entries[index + 1:]
        following = rest[0] if rest else None
        copy = next((e for e in self.accepted if e.hash == entry.hash), None)
        if copy is not None:
            return self.bad("inserted", entry.line, seq,
                            f"{where}: seq {seq} was inserted: a copy of seq {seq} at"
                            f" {self.at(copy.line)}")
        if entry.valid and seq > expected_seq and self.genuine(entry):
            later = next((e for e in rest if e.seq == expected_seq), None)
            if later is not None:
                return self.bad("reordered", entry.line, seq,
                                f"{where}: seq {seq} comes before seq {expected_seq}"
                                f" ({self.at(later.line)}): records were reordered")
        if (following is not None and following.valid and following.seq == expected_seq
                and following.prev == expected_prev):
            return self.bad("inserted", entry.line, seq,
                            f"{where}: seq {seq} was inserted: the next record ({self.at(following.line)})"
                            f" chains to seq {expected_seq - 1} as if it were not there")
        if not entry.valid:
            if isinstance(self.head_seq, int) and seq > self.head_seq and seq >= expected_seq:
                return self.bad("inserted", entry.line, seq,
                                f"{where}: seq {seq} was added beyond the head (seq {self.head_seq})"
                                " and its hash does not match its content")
            return self.bad("edited", entry.line, seq,
                            f"{where}: seq {seq} was edited: its hash does not match its content")
        if seq == expected_seq:
            if not self.accepted:
                return self.bad("edited", entry.line, seq,
                                f"{where}: seq {seq} was rewritten: the first record must chain to"
                                " the genesis hash")
            before = self.accepted[-1]
            return self.bad("edited", before.line, before.seq,
                            f"{self.at(before.line)}: seq {before.seq} was edited (its hash was"
                            f" recomputed): seq {seq} at {where} does not chain to it")
        if seq > expected_seq:
            missing = (f"seq {expected_seq}" if seq == expected_seq + 1
                       else f"seq {expected_seq}..{seq - 1}")
            return self.bad("deleted", entry.line, seq,
                            f"{where}: {missing} deleted before this record (seq {seq})")
        twin = next((e for e in self.accepted if e.seq == seq and e.prev == entry.prev), None)
        if twin is not None and following is not None and following.prev == entry.hash:
            return self.bad("inserted", twin.line, seq,
                            f"{self.at(twin.line)}: seq {seq} was inserted: seq {seq} at {where} claims"
                            " the same place and the chain goes on from that one")
        return self.bad("inserted", entry.line, seq,
                        f"{where}: seq {seq} was inserted: out of order after seq {expected_seq - 1}")

    def genuine(self, entry: _Entry) -> bool:
        """Some record (or the head) chains to `entry`: it belongs in the chain, elsewhere."""
        head_hash = self.head.get("hash") if isinstance(self.head, Mapping) else None
        return entry.hash == head_hash or any(e.prev == entry.hash for e in self.entries)

    def check_head(self) -> Verification:
        """The chain is whole; does the head anchor agree with its end?"""
        last = self.accepted[-1] if self.accepted else None
        last_seq = last.seq if last else 0
        end_line = last.line if last else 0
        head = self.head
        if head is None:
            if last is None:
                return Verification(ok=True, records=0, path=self.path)
            return self.bad("head_missing", None, None,
                            f"{self.path}: the head anchor (audit.head) is missing, the journal has"
                            f" {last_seq} records: a cut tail could not be detected")
        if isinstance(head, str):
            return self.bad("head_mismatch", None, None, f"the head anchor cannot be used: {head}")
        head_seq, head_hash = int(head["seq"]), str(head["hash"])
        if head_seq > last_seq:
            cut = f"seq {last_seq + 1}" if head_seq == last_seq + 1 else f"seq {last_seq + 1}..{head_seq}"
            ends = f"seq {last_seq} ({self.at(end_line)})" if last else "no record"
            return self.bad("truncated", end_line + 1, last_seq + 1,
                            f"{self.at(end_line + 1)}: truncated: the journal ends at {ends} but the"
                            f" head says seq {head_seq}: {cut} cut from the end")
        anchored = next(e for e in self.accepted if e.seq == head_seq) if head_seq > 0 else None
        if anchored is None or anchored.hash != head_hash:
            line = anchored.line if anchored else None
            return self.bad("head_mismatch", line, head_seq,
                            f"{self.at(line) if line else self.path}: the head says seq {head_seq} has"
                            f" hash {head_hash[:12]}…, the journal's has"
                            f" {anchored.hash[:12] if anchored else 'none'}…: records were rewritten")
        if head_seq == last_seq:
            return Verification(ok=True, records=self.count, path=self.path)
        if head_seq == last_seq - 1:
            return Verification(ok=True, records=self.count, path=self.path,
                                warning=f"the head is one record behind (seq {head_seq} of"
                                f" {last_seq}): a write stopped before the head was updated;"
                                " the next record fixes it")
        first = self.accepted[head_seq]  # seq head_seq + 1 (seqs are 1..n in order here)
        return self.bad("inserted", first.line, first.seq,
                        f"{self.at(first.line)}: seq {first.seq}..{last_seq} are beyond the head"
                        f" (seq {head_seq}): appended without updating the head, or inserted")
