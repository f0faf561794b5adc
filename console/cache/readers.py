"""Streaming readers for every trace file format `llmdeck ingest` accepts.

A reader turns one file into a stream of `Record`s without loading the file
into memory: OTLP export requests (one JSON object per file, the Collector file
exporter's JSON lines or its length-prefixed protobuf), flat span JSON lines,
and Parquet. `.gz` and `.zst` files are decompressed on the fly.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any, Literal

import msgspec
import orjson
from msgspec import UNSET, Raw, Struct, UnsetType

FORMATS = ("auto", "otlp-json", "otlp-proto", "jsonl", "parquet")
Kind = Literal["otlp", "flat", "bad"]

# A proto frame bigger than this is treated as corruption rather than allocated.
MAX_PROTO_FRAME = 256 * 1024 * 1024
READ_BUFFER = 1 << 20


class UnreadableFile(Exception):
    """The file cannot be opened, decompressed or recognised at all."""


@dataclass(frozen=True, slots=True)
class Record:
    """One unit read from a file.

    kind "otlp": `payload` is an ExportTraceServiceRequest in OTLP/JSON shape (dicts), or
    a `TypedLine` (structs) for a JSON line in the usual shape.
    kind "flat": `payload` is one span as a flat dict.
    kind "bad": `payload` is the reason the unit at `line` was rejected.
    `offset` is the byte offset just after this unit (resumable files only).
    """

    kind: Kind
    line: int
    payload: Any
    offset: int = -1


@dataclass
class ReadState:
    """What a reader learned while reading: its format and any unfinished tail."""

    fmt: str = "auto"
    resumable: bool = False
    pending_tail: bool = False


def list_files(paths: list[Path]) -> list[Path]:
    """Expand directories (every regular file inside, recursively, sorted)."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.is_file()))
        else:
            files.append(p)
    return files


def _open_decompressed(path: Path) -> IO[bytes]:
    # A large buffer: iterating over long lines (a Collector line holds hundreds of spans)
    # through the default 8 KiB one costs ~3x the CPU.
    raw = open(path, "rb", buffering=READ_BUFFER)  # noqa: SIM115 - closed by the caller
    head = raw.read(4)
    raw.seek(0)
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    if head == b"\x28\xb5\x2f\xfd":
        import zstandard

        # The zstd stream reader has no readline/iteration: buffer it so line readers work.
        return io.BufferedReader(
            zstandard.ZstdDecompressor().stream_reader(raw, closefd=True), 1 << 20
        )
    return raw


def is_compressed(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4)
    return head[:2] == b"\x1f\x8b" or head == b"\x28\xb5\x2f\xfd"


def detect_format(path: Path) -> str:
    """Guess the format from the content (after decompression), not the name."""
    with open(path, "rb") as f:
        if f.read(4) == b"PAR1":
            return "parquet"
    with _open_decompressed(path) as f:
        head = f.read(64 * 1024)
    stripped = head.lstrip()
    if not stripped:
        return "jsonl"
    if stripped[:1] in (b"{", b"["):
        first, nl, _ = stripped.partition(b"\n")
        try:
            obj = orjson.loads(first)
        except orjson.JSONDecodeError:
            # One object spread over many lines (pretty-printed export request),
            # or a first line too long for the sniff window.
            if not nl and len(head) == 64 * 1024:
                return "jsonl" if b'"resourceSpans"' not in first[:4096] else "otlp-jsonl"
            return "otlp-json"
        if isinstance(obj, dict) and "resourceSpans" in obj:
            return "otlp-jsonl"
        return "jsonl"
    if len(head) >= 5:
        (size,) = struct.unpack(">I", head[:4])
        if 0 < size <= MAX_PROTO_FRAME and head[4] == 0x0A:  # field 1 (resource_spans), wire type 2
            return "otlp-proto"
    raise UnreadableFile(f"{path}: not a recognised trace format (OTLP JSON/proto, JSONL, Parquet)")


def resolve_format(path: Path, fmt: str) -> str:
    """The concrete format of a file: `otlp-jsonl`, `otlp-json`, `jsonl`, `otlp-proto` or `parquet`."""
    try:
        actual = detect_format(path) if fmt == "auto" else fmt
    except OSError as exc:
        raise UnreadableFile(f"{path}: {exc.strerror or exc}") from exc
    if actual == "otlp-json":
        # An explicit otlp-json may still be the Collector's one-request-per-line form.
        actual = _otlp_json_flavour(path)
    if actual not in ("otlp-jsonl", "otlp-json", "jsonl", "otlp-proto", "parquet"):
        raise UnreadableFile(f"{path}: unknown format {fmt!r}")
    return actual


def read_file(
    path: Path, fmt: str, state: ReadState, start_offset: int = 0, start_line: int = 0
) -> Iterator[Record]:
    """Yield the records of one file; `start_offset`/`start_line` resume a plain line file."""
    actual = resolve_format(path, fmt)
    state.fmt = actual
    if actual in ("otlp-jsonl", "jsonl"):
        state.resumable = not is_compressed(path)
        kind: Kind = "otlp" if actual == "otlp-jsonl" else "flat"
        if not state.resumable:
            start_offset = start_line = 0
        yield from _read_lines(path, kind, state, start_offset, start_line)
    elif actual == "otlp-json":
        yield from _read_single_object(path)
    elif actual == "otlp-proto":
        yield from _read_proto(path, state)
    elif actual == "parquet":
        yield from _read_parquet(path)
    else:
        raise UnreadableFile(f"{path}: unknown format {fmt!r}")


def _otlp_json_flavour(path: Path) -> str:
    with _open_decompressed(path) as f:
        first = f.readline(64 * 1024)
    try:
        obj = orjson.loads(first)
    except orjson.JSONDecodeError:
        return "otlp-json"
    return "otlp-jsonl" if isinstance(obj, dict) and "resourceSpans" in obj else "otlp-json"


def iter_raw_lines(
    path: Path, state: ReadState, start_offset: int = 0, start_line: int = 0,
    end_offset: int | None = None,
) -> Iterator[tuple[int, bytes, int]]:
    """(line number, raw line, offset after it) for each non-blank line; holds back an unfinished tail.

    With `end_offset` (a line boundary, see `line_ranges`) it stops after the line ending there.
    """
    with _open_decompressed(path) as f:
        line_no = start_line
        offset = start_offset
        if start_offset:
            f.seek(start_offset)
        for raw in f:
            offset += len(raw)
            line_no += 1
            if not raw.endswith(b"\n"):
                # A last line without its newline: a writer may still be on it.
                try:
                    orjson.loads(raw)
                except orjson.JSONDecodeError:
                    if not raw.isspace():
                        state.pending_tail = True
                    return
            if not raw.isspace():
                yield line_no, raw, offset
            if end_offset is not None and offset >= end_offset:
                return


def line_ranges(
    path: Path, start_offset: int, start_line: int, chunk_bytes: int
) -> Iterator[tuple[int, int, int]]:
    """Cut an uncompressed file into runs of whole lines of about `chunk_bytes`.

    Yields (start offset, end offset, line number before the run): `iter_raw_lines` over
    that range reads exactly those lines, so worker processes can read their own runs.
    The last run may end in a line without its newline (the reader then decides on it).
    """
    buf = bytearray(chunk_bytes)
    with open(path, "rb") as f:
        f.seek(start_offset)
        pos, line = start_offset, start_line
        while True:
            n = f.readinto(buf)
            if not n:
                return
            lines = buf.count(b"\n", 0, n)
            end = pos + n
            if buf[n - 1] != 0x0A:  # finish the line the read stopped in
                rest = f.readline()
                end += len(rest)
                if not rest.endswith(b"\n"):  # end of file inside a line: the last run
                    yield pos, end, line
                    return
                lines += 1
            yield pos, end, line
            pos, line = end, line + lines


# -- OTLP/JSON lines, decoded straight into typed structs ------------------------
#
# The Collector's lines are decoded by msgspec into the structs below (about twice as fast
# as building dicts), and mapped by `SpanMapper.add_typed_otlp_span`. The dict path
# (`orjson.loads` + `SpanMapper.add_otlp_span`) stays the reference: the structs accept
# only the usual shape, and a line they reject, or that the typed mapping cannot map
# cleanly, goes through the dict path instead, which decides on it (and words any
# quarantine reason) exactly as before. So the structs are strict where the two could
# differ: no null where the dict path would look further, integers only in the range
# orjson returns as int (it returns a float beyond 64 bits), and every nested free-form
# value (resource, events, array/map/bytes values) kept as raw JSON that orjson decodes.

# orjson decodes integers in [-2**63, 2**64) as int; msgspec bounds stop at 2**63 - 1.
_Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
NO_RAW = Raw()


class OtlpAnyValue(Struct):
    """An AnyValue; several members set at once, or a null one, is left to the dict path."""

    stringValue: str | UnsetType = UNSET
    intValue: _Int64 | str | UnsetType = UNSET
    doubleValue: float | UnsetType = UNSET
    boolValue: bool | UnsetType = UNSET
    arrayValue: Raw = NO_RAW
    kvlistValue: Raw = NO_RAW
    bytesValue: Raw = NO_RAW


class OtlpKeyValue(Struct):
    key: str
    value: OtlpAnyValue | None = None


class OtlpStatus(Struct):
    code: _Int64 | str | None = 0
    message: str | None = None


class OtlpSpan(Struct):
    traceId: str | None = None
    spanId: str | None = None
    parentSpanId: str | None = None
    name: str | None = None
    kind: _Int64 | str | None = None
    startTimeUnixNano: _Int64 | str | None = None
    endTimeUnixNano: _Int64 | str | None = None
    attributes: list[OtlpKeyValue] | None = None
    status: OtlpStatus | None = None
    events: Raw = NO_RAW


class OtlpScopeSpans(Struct):
    spans: list[OtlpSpan] | None = None


class OtlpResourceSpans(Struct):
    resource: Raw = NO_RAW
    scopeSpans: list[OtlpScopeSpans] | None = None
    instrumentationLibrarySpans: list[OtlpScopeSpans] | None = None


class OtlpRequest(Struct):
    resourceSpans: list[OtlpResourceSpans] | None


@dataclass(frozen=True, slots=True)
class TypedLine:
    """An export request decoded into structs, with its line for the dict path to redo."""

    request: OtlpRequest
    raw: bytes


_OTLP_DECODER = msgspec.json.Decoder(OtlpRequest)
# msgspec gives up on nesting at the interpreter's recursion limit, orjson at 1024 levels:
# with a raised limit msgspec could accept a line orjson rejects, so it is not used then.
# From Python 3.12 msgspec's depth no longer follows that limit (it accepted 1030-2999
# levels that orjson rejects), so there every line takes the dict path.
_TYPED_MAX_RECURSION = 1024
_TYPED_DECODING = sys.version_info < (3, 12)


def raw_json(raw: Raw) -> Any:
    """A raw nested value of a typed line, decoded as orjson decodes it in the whole line."""
    return orjson.loads(memoryview(raw))


def decode_dict_line(kind: Kind, line_no: int, raw: bytes, offset: int = -1) -> Record:
    """Decode one JSON line into dicts (the reference path), or a "bad" record saying why not."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Record("bad", line_no, f"malformed JSON: {exc}", offset)
    return _checked(kind, line_no, obj, offset)


def decode_line(kind: Kind, line_no: int, raw: bytes, offset: int = -1) -> Record:
    """Decode one JSON line into a record, or a "bad" record saying why not.

    An OTLP line in the usual shape becomes a `TypedLine`; anything else is decoded as dicts.
    """
    if kind == "otlp" and _TYPED_DECODING and sys.getrecursionlimit() <= _TYPED_MAX_RECURSION:
        try:
            return Record(kind, line_no, TypedLine(_OTLP_DECODER.decode(raw), raw), offset)
        except (msgspec.DecodeError, RecursionError):  # DecodeError includes ValidationError
            pass
    return decode_dict_line(kind, line_no, raw, offset)


def _read_lines(
    path: Path, kind: Kind, state: ReadState, start_offset: int, start_line: int
) -> Iterator[Record]:
    for line_no, raw, offset in iter_raw_lines(path, state, start_offset, start_line):
        yield decode_line(kind, line_no, raw, offset)


def _checked(kind: Kind, line: int, obj: Any, offset: int) -> Record:
    if not isinstance(obj, dict):
        return Record("bad", line, f"expected a JSON object, got {type(obj).__name__}", offset)
    if kind == "otlp" and "resourceSpans" not in obj:
        return Record("bad", line, "export request without resourceSpans", offset)
    return Record(kind, line, obj, offset)


def _read_single_object(path: Path) -> Iterator[Record]:
    """Stream `resourceSpans[]` items of one (possibly huge, pretty-printed) object."""
    import ijson

    found = False
    with _open_decompressed(path) as f:
        try:
            for item in ijson.items(f, "resourceSpans.item", use_float=True):
                found = True
                yield Record("otlp", 1, {"resourceSpans": [item]})
        except ijson.JSONError as exc:
            yield Record("bad", 1, f"malformed JSON: {exc}")
            return
    if not found:
        raise UnreadableFile(f"{path}: a JSON document without resourceSpans (not an OTLP trace export)")


def _read_proto(path: Path, state: ReadState) -> Iterator[Record]:
    from console.cache.otlp_proto import decode_export_request

    with _open_decompressed(path) as f:
        frame = 0
        while True:
            header = f.read(4)
            if not header:
                return
            frame += 1
            if len(header) < 4:
                state.pending_tail = True
                return
            (size,) = struct.unpack(">I", header)
            if size > MAX_PROTO_FRAME:
                yield Record("bad", frame, f"frame length {size} is implausible; stopping")
                return
            body = _read_exact(f, size)
            if len(body) < size:
                state.pending_tail = True
                return
            try:
                yield Record("otlp", frame, decode_export_request(body))
            except Exception as exc:  # a corrupt frame must not stop the file
                yield Record("bad", frame, f"bad protobuf frame: {exc}")


def _read_exact(f: IO[bytes], size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        chunk = f.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read_parquet(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:
        raise UnreadableFile(f"{path}: not a readable Parquet file: {exc}") from exc
    row = 0
    for batch in pf.iter_batches(batch_size=10_000):
        for rec in _timestamps_as_ns(batch).to_pylist():
            row += 1
            yield Record("flat", row, rec)


def _timestamps_as_ns(batch: Any) -> Any:
    """Timestamp columns as int64 epoch nanoseconds.

    `to_pylist()` cannot turn a timestamp[ns] value into a datetime without pandas (it
    raises), and a datetime would drop the nanoseconds anyway; DuckDB writes TIMESTAMP_NS
    columns (our own `spans.start_time`) as timestamp[ns].
    """
    import pyarrow as pa

    if not any(pa.types.is_timestamp(f.type) for f in batch.schema):
        return batch
    columns = []
    for f, col in zip(batch.schema, batch.columns, strict=True):
        if pa.types.is_timestamp(f.type):
            col = col.cast(pa.timestamp("ns", f.type.tz)).cast(pa.int64())
        columns.append(col)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def file_fingerprint(path: Path, head_bytes: int = 1024) -> str:
    """Identify a file across runs: device, inode and a hash of its first bytes."""
    st = os.stat(path)
    with open(path, "rb") as f:
        head = f.read(head_bytes)
    digest = hashlib.blake2b(head, digest_size=8).hexdigest()
    return f"{st.st_dev}:{st.st_ino}:{len(head)}:{digest}"


def same_file(path: Path, stored: str) -> bool:
    """True when `path` is still the file that produced the stored fingerprint."""
    try:
        n = int(stored.split(":")[2])
        return file_fingerprint(path, n) == stored
    except (OSError, ValueError, IndexError):
        return False


__all__ = [
    "FORMATS",
    "OtlpRequest",
    "ReadState",
    "Record",
    "TypedLine",
    "UnreadableFile",
    "decode_dict_line",
    "decode_line",
    "detect_format",
    "file_fingerprint",
    "is_compressed",
    "iter_raw_lines",
    "line_ranges",
    "list_files",
    "read_file",
    "resolve_format",
    "same_file",
]
