"""One export request decoded and mapped into a table, as `llmdeck ingest` maps a Collector line.

Protobuf goes straight into columns (`otlp_proto.add_export_request`), JSON through the ingest's
reader; the spans are counted before anything is mapped (`Receiver`'s per-request limit), and
the receiver's own secrets are masked in what was mapped (`mask_secrets`).
"""

from __future__ import annotations

import re

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from connectors.otlp_http import ExportRequest, ExportResult
from console.cache import readers
from console.cache.batching import BatchBuilder, QuarantineRow
from console.cache.faults import first_line
from console.cache.otlp_proto import decode_export_request
from console.receiver_answers import bad_request
from console.receiver_pool import Mapped, map_protobuf, taken

SECRET_PLACEHOLDER = "[SECRET]"
"""What a secret the receiver knows (its token) becomes in what it stores."""


def map_request(builder: BatchBuilder, req: ExportRequest, seq: int, *,
                max_spans: int | None = None) -> Mapped | ExportResult:
    """Decode and map one request with `builder` (in the receiver or a `MapPool` worker), or a
    400 if its body cannot be decoded, or a 413 if it holds more than `max_spans` spans (counted
    before anything is mapped). Protobuf spans go straight into columns
    (`otlp_proto.add_export_request`, mapped as the OTLP/JSON dict path maps them)."""
    name = source_name(req)
    if req.encoding == "protobuf":
        mapped = map_protobuf(builder, req.body, name, seq, max_spans)
        if isinstance(mapped, int):  # over max_spans: counted, nothing mapped
            assert max_spans is not None
            return too_many(mapped, max_spans)
        if mapped is not None:
            return mapped
    record = _decode(req, seq)  # JSON, or a protobuf body that does not parse: `_decode` says why
    if isinstance(record, ExportResult):
        return record
    spans = _json_spans(record.payload)
    if max_spans is not None and spans > max_spans:
        return too_many(spans, max_spans)
    builder.add(record, name)
    return taken(builder)


def _json_spans(payload: object) -> int:
    """How many spans a decoded OTLP/JSON request holds (`readers.TypedLine` or dicts; what is
    not a list counts as none)."""
    if isinstance(payload, readers.TypedLine):
        return sum(len(ss.spans or ()) for rs in payload.request.resourceSpans or ()
                   for ss in (rs.scopeSpans or []) + (rs.instrumentationLibrarySpans or []))
    total = 0
    resource_spans = payload.get("resourceSpans") if isinstance(payload, dict) else None
    for rs in resource_spans if isinstance(resource_spans, list) else ():
        for key in ("scopeSpans", "instrumentationLibrarySpans"):
            scope_spans = rs.get(key) if isinstance(rs, dict) else None
            for ss in scope_spans if isinstance(scope_spans, list) else ():
                spans = ss.get("spans") if isinstance(ss, dict) else None
                total += len(spans) if isinstance(spans, list) else 0
    return total


def too_many(spans: int, limit: int) -> ExportResult:
    """The 413 for a request of `spans` spans, over `limit` (see MAX_REQUEST_SPANS)."""
    return ExportResult(413, message=(
        f"the request holds {spans:,} spans; this receiver takes at most {limit:,} spans per"
        " request: send smaller batches (e.g. OTEL_BSP_MAX_EXPORT_BATCH_SIZE)"))


def source_name(req: ExportRequest) -> str:
    return f"otlp-http {req.peer.rpartition(':')[0] or req.peer}"


def _decode(req: ExportRequest, seq: int) -> readers.Record | ExportResult:
    """The request's body as an ingest record, or a 400 saying why it cannot be decoded."""
    if req.encoding == "protobuf":
        try:
            return readers.Record("otlp", seq, decode_export_request(req.body))
        except Exception as exc:  # DecodeError, and whatever else a hostile body makes upb raise
            return bad_request(f"undecodable protobuf ExportTraceServiceRequest ({first_line(exc)})")
    try:  # the typed decoding reads nested values raw: invalid UTF-8 there would be found late
        req.body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return bad_request(f"undecodable OTLP/JSON ExportTraceServiceRequest (not UTF-8: {exc.reason}"
                            f" at byte {exc.start})")
    record = readers.decode_line("otlp", seq, req.body)
    if record.kind == "bad":
        if record.payload == "export request without resourceSpans":
            return readers.Record("otlp", seq, {"resourceSpans": []})  # an empty request is valid
        return bad_request(f"undecodable OTLP/JSON ExportTraceServiceRequest ({record.payload})")
    payload = record.payload
    if isinstance(payload, dict) and not isinstance(payload.get("resourceSpans") or [], list):
        return bad_request("undecodable OTLP/JSON ExportTraceServiceRequest"
                            " (resourceSpans is not an array)")
    return record



def mask_secrets(table: pa.Table | None, quarantine: list[QuarantineRow],
                 secrets: tuple[str, ...]) -> tuple[pa.Table | None, list[QuarantineRow]]:
    """`table` and `quarantine` with every occurrence of each secret (any case, raw or as
    JSON escapes it) replaced by SECRET_PLACEHOLDER: an exporter that records its own headers
    must not get the receiver's token stored."""
    forms = _secret_forms(secrets)
    if not forms:
        return table, quarantine
    if table is not None:
        pattern = "|".join(_re2_escape(form) for form in forms)
        columns = list(table.columns)
        changed = False
        for i, (col, fld) in enumerate(zip(columns, table.schema, strict=True)):
            if not pa.types.is_string(fld.type):
                continue
            if not any(pc.any(pc.match_substring(col, form, ignore_case=True)).as_py()
                       for form in forms):
                continue
            columns[i] = pc.replace_substring_regex(col, pattern=f"(?i)(?:{pattern})",
                                                    replacement=SECRET_PLACEHOLDER)
            changed = True
        if changed:
            table = pa.Table.from_arrays(columns, schema=table.schema)
    if quarantine:
        regex = re.compile("|".join(re.escape(form) for form in forms), re.IGNORECASE)
        quarantine = [(regex.sub(SECRET_PLACEHOLDER, src), line, regex.sub(SECRET_PLACEHOLDER, reason))
                      for src, line, reason in quarantine]
    return table, quarantine


def _secret_forms(secrets: tuple[str, ...]) -> list[str]:
    forms: list[str] = []
    for secret in secrets:
        if not secret:
            continue
        for form in (secret, orjson.dumps(secret).decode()[1:-1]):
            if form not in forms:
                forms.append(form)
    return sorted(forms, key=len, reverse=True)


def _re2_escape(text: str) -> str:
    """`text` as a literal in an RE2 pattern (Arrow's regex engine)."""
    return "".join(c if c.isalnum() and c.isascii() else f"\\x{{{ord(c):x}}}" for c in text)

