"""The audit journal: `$XDG_STATE_HOME/llmdeck/audit.jsonl`, hash-chained, append-only JSON lines.

Every mutating action writes an *intent* record (fsynced before the request leaves) and an
*outcome* record after it; attempts that sent nothing (refused, cancelled, dry run) write one
*event*. An intent without an outcome means the process died in between: `unknown_outcomes`
lists it until a verify writes the outcome.

Each record carries `prev` (the previous record's hash) and `hash` = sha256(prev + "\\n" +
canonical JSON of the record without "hash"), so an edit, deletion, insertion or reordering
breaks the chain; `audit.head` ({"seq", "hash"} of the last record, replaced atomically after
each append) catches a truncated tail. Appends hold `flock` on the journal, so two processes
(the console and the CLI) keep one chain. Parameters are redacted before they are written:
secrets never reach this file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from console.audit_redact import MASK as MASK
from console.audit_redact import redact_params as redact_params
from console.audit_redact import scrub
from console.operator import operator
from console.paths import state_dir
from console.timeutil import naive_utc, utc_now

JOURNAL_FILE = "audit.jsonl"
HEAD_FILE = "audit.head"
GENESIS = "0" * 64
DETAIL_MAX = 2000
"""Longer detail text (an error body) is cut: the journal records what happened, not payloads."""
TAIL_CHUNK = 64 * 1024

RecordKind = Literal["intent", "outcome", "event"]
FIELDS = ("seq", "ts", "kind", "action_id", "action", "origin", "target", "gateway", "params",
          "pre_state_hash", "idempotency_key", "incident_id", "status", "detail", "resolved_by",
          "extra", "user", "host", "ssh_client", "prev", "hash")


class AuditError(OSError):
    """The journal could not be written or read: what, where and why; never the params."""

    def __init__(self, message: str, path: Path, errno: int | None = None,
                 reason: str = "") -> None:
        super().__init__(errno or 0, reason or message)
        self.message = message
        self.filename = str(path)

    def __str__(self) -> str:
        return self.message


def default_journal() -> Path:
    """`$XDG_STATE_HOME/llmdeck/audit.jsonl`."""
    return state_dir() / JOURNAL_FILE


def canonical(record: Mapping[str, Any]) -> str:
    """The one text a record's hash is computed over (sorted keys, no spaces, UTF-8 kept)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_hash(prev: str, record: Mapping[str, Any]) -> str:
    """sha256(prev + "\\n" + canonical(record without "hash"))."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(f"{prev}\n{canonical(body)}".encode()).hexdigest()


def parse_ts(text: str) -> datetime:
    """A record's `ts` (ISO 8601, `Z`) as naive UTC."""
    return naive_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


@dataclass(frozen=True)
class AuditRecord:
    """One journal line, parsed. `line` is its 1-based line number in the file."""

    seq: int
    ts: datetime
    kind: str
    action: str
    line: int
    data: Mapping[str, Any] = field(repr=False)
    """The whole record as written (params already redacted)."""

    def get(self, name: str, default: str = "") -> str:
        value = self.data.get(name, default)
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    @property
    def action_id(self) -> str:
        return self.get("action_id")

    @property
    def status(self) -> str:
        return self.get("status")

    @property
    def params(self) -> Mapping[str, Any]:
        value = self.data.get("params")
        return value if isinstance(value, Mapping) else {}


def parse_line(text: str, line: int) -> AuditRecord | None:
    """The record on one line, or None when it is not a well-formed journal record."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    seq, ts, kind, prev, digest = (data.get(k) for k in ("seq", "ts", "kind", "prev", "hash"))
    if not (isinstance(seq, int) and not isinstance(seq, bool) and isinstance(ts, str)
            and kind in ("intent", "outcome", "event") and isinstance(prev, str)
            and isinstance(digest, str)):
        return None
    try:
        when = parse_ts(ts)
    except ValueError:
        return None
    return AuditRecord(seq=seq, ts=when, kind=str(kind), action=str(data.get("action", "")),
                       line=line, data=data)


def read_lines(path: Path) -> list[str]:
    """The journal's lines (without newlines); [] when there is no journal yet."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise AuditError(f"cannot read the audit journal {path}: {exc.strerror}", path, exc.errno,
                         exc.strerror or "") from None
    return raw.decode("utf-8", errors="replace").splitlines()


def read_head(path: Path) -> dict[str, Any] | None | str:
    """The head anchor: {"seq", "hash"}, None when absent, or why it cannot be used."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    try:
        head = json.loads(text)
    except ValueError:
        return f"{path} is not JSON"
    if not (isinstance(head, dict) and isinstance(head.get("seq"), int)
            and isinstance(head.get("hash"), str)):
        return f'{path} is not {{"seq": N, "hash": "..."}}'
    return head


class AuditJournal:
    """Appends chained records to `path` (dir 0700, file 0600) and reads them back.

    Safe across threads and processes: each append opens the file, takes `flock`, reads the
    last record's seq and hash, writes one line, fsyncs it, updates the head and unlocks.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_journal()
        self.head_path = self.path.with_name(
            HEAD_FILE if self.path.name == JOURNAL_FILE else self.path.name + ".head")

    # ---- writing ------------------------------------------------------------------------

    def intent(self, *, action: str, target: str, params: Mapping[str, Any], pre_state_hash: str,
               idempotency_key: str, origin: str, gateway: str = "", incident_id: str | None = None,
               action_id: str | None = None, secret_names: Collection[str] = ()) -> str:
        """Record that `action` is about to be sent; synced to disk before this returns.

        Returns the action id (new unless given). AuditError means nothing is stored: the
        caller must not send."""
        action_id = action_id or str(uuid.uuid4())
        self._append({"kind": "intent", "action_id": action_id, "action": action, "origin": origin,
                      "target": scrub(target), "gateway": gateway,
                      "params": redact_params(params, secret_names),
                      "pre_state_hash": pre_state_hash, "idempotency_key": idempotency_key,
                      "incident_id": incident_id})
        return action_id

    def outcome(self, action_id: str, *, action: str, status: str, detail: str,
                resolved_by: str = "", extra: Mapping[str, Any] | None = None) -> None:
        """Record what became of intent `action_id` (`resolved_by`: who settled an unknown one)."""
        self._append({"kind": "outcome", "action_id": action_id, "action": action, "status": status,
                      "detail": _detail(detail), "resolved_by": resolved_by,
                      "extra": redact_params(extra) if extra else None})

    def event(self, action: str, *, status: str, detail: str, origin: str = "", target: str = "",
              params: Mapping[str, Any] | None = None, gateway: str = "",
              incident_id: str | None = None, secret_names: Collection[str] = ()) -> None:
        """Record an attempt that sent nothing (refused, cancelled, dry run)."""
        self._append({"kind": "event", "action": action, "status": status, "detail": _detail(detail),
                      "origin": origin, "target": scrub(target), "gateway": gateway,
                      "params": redact_params(params, secret_names) if params else None,
                      "incident_id": incident_id})

    def _append(self, fields: Mapping[str, Any]) -> None:
        body: dict[str, Any] = {k: v for k, v in fields.items() if v not in (None, "", {})}
        body.update(operator())
        try:
            created = self._ensure_dir()
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise self._error("cannot open", exc) from None
        try:
            with _locked(fd, fcntl.LOCK_EX):
                seq, prev, torn = _last(fd)
                ts = utc_now().isoformat(timespec="milliseconds") + "Z"
                record: dict[str, Any] = {"seq": seq + 1, "ts": ts, **body, "prev": prev}
                record["hash"] = record_hash(prev, record)
                data = ("\n" if torn else "") + json.dumps(record, ensure_ascii=False) + "\n"
                _write_all(fd, data.encode())
                os.fsync(fd)
                if created:
                    _fsync_dir(self.path.parent)
                self._write_head(record["seq"], record["hash"])
        except AuditError:
            raise
        except OSError as exc:
            raise self._error("cannot append to", exc) from None
        finally:
            os.close(fd)

    def _ensure_dir(self) -> bool:
        """Create the state dir (0700) if needed; True when the journal file is new."""
        parent = self.path.parent
        if not parent.exists():
            parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _fsync_dir(parent.parent)
        return not self.path.exists()

    def _write_head(self, seq: int, digest: str) -> None:
        """Replace the head atomically (tmp, fsync, rename, dir fsync). A failure here leaves the
        record stored and the head one behind, which `verify` reports; it is not raised."""
        tmp = self.head_path.with_name(f".{self.head_path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                _write_all(fd, (json.dumps({"seq": seq, "hash": digest}) + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.head_path)
            _fsync_dir(self.head_path.parent)
        except OSError:
            tmp.unlink(missing_ok=True)

    def _error(self, what: str, exc: OSError) -> AuditError:
        reason = exc.strerror or type(exc).__name__
        return AuditError(f"{what} the audit journal {self.path}: {reason}", self.path, exc.errno,
                          reason)

    # ---- reading ------------------------------------------------------------------------

    def records(self, since: datetime | None = None,
                until: datetime | None = None) -> list[AuditRecord]:
        """Every well-formed record with since <= ts < until (bad lines are `verify`'s business)."""
        found = []
        for number, text in enumerate(self._lines(), start=1):
            rec = parse_line(text, number) if text.strip() else None
            if rec is None:
                continue
            if (since is None or rec.ts >= since) and (until is None or rec.ts < until):
                found.append(rec)
        return found

    def unknown_outcomes(self) -> list[AuditRecord]:
        """Intents with no outcome record: sent (or about to be) when the process stopped."""
        every = self.records()
        settled = {r.action_id for r in every if r.kind == "outcome"}
        return [r for r in every if r.kind == "intent" and r.action_id not in settled]

    def verify(self) -> Verification:
        """Walk the chain and the head; the first problem found, named by file:line and seq."""
        from console.audit_verify import verify_lines

        with self._shared():
            lines = self._lines()
            head = read_head(self.head_path)
        return verify_lines(lines, head, str(self.path))

    def _lines(self) -> list[str]:
        return read_lines(self.path)

    @contextmanager
    def _shared(self) -> Iterator[None]:
        """A shared lock while reading journal + head, so no append lands between the two."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            yield
            return
        except OSError as exc:
            raise self._error("cannot open", exc) from None
        try:
            with _locked(fd, fcntl.LOCK_SH):
                yield
        finally:
            os.close(fd)


@dataclass(frozen=True)
class Verification:
    """What `verify` found. ok: the chain and the head agree. Otherwise `line` (1-based, in
    `path`) and `seq` name the first bad record and `problem` says what is wrong."""

    ok: bool
    records: int
    """Well-formed records read."""
    line: int | None = None
    problem: str = ""
    seq: int | None = None
    kind: str = ""
    """edited, deleted, inserted, reordered, truncated, head_missing, head_mismatch, unparseable."""
    path: str = ""
    warning: str = ""
    """Not tampering, but worth saying (the head one record behind after a crash)."""


def _detail(text: str) -> str:
    text = scrub(text)
    return text if len(text) <= DETAIL_MAX else text[:DETAIL_MAX] + "…"


@contextmanager
def _locked(fd: int, how: int) -> Iterator[None]:
    fcntl.flock(fd, how)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _last(fd: int) -> tuple[int, str, bool]:
    """(seq, hash) of the file's last well-formed record ((0, GENESIS) for none), and whether
    the file ends without a newline (a torn write: the next record starts on a fresh line)."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0, GENESIS, False
    torn = os.pread(fd, 1, size - 1) != b"\n"
    end, buf = size, b""
    while end > 0:
        start = max(0, end - TAIL_CHUNK)
        buf = os.pread(fd, end - start, start) + buf
        end = start
        lines = buf.split(b"\n")
        complete = lines if start == 0 else lines[1:]  # the first piece may be cut
        for raw in reversed(complete):
            rec = parse_line(raw.decode("utf-8", errors="replace"), 0) if raw.strip() else None
            if rec is not None:
                return rec.seq, str(rec.data["hash"]), torn
    return 0, GENESIS, torn


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
