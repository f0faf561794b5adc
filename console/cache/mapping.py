"""Map OpenTelemetry GenAI spans (current and deprecated names) to cache rows.

Everything a span says passes through here once: ids are normalised, string
attributes and event text are redacted, prompt/completion bodies are dropped
unless configured, the dimensions llmdeck groups by are extracted, and tokens
are priced. The result is appended to `SpanColumns`, a column-wise batch.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pyarrow as pa
from msgspec import UNSET

from console.cache import clock
from console.cache.clock import ClockCounts, ExpectedRange
from console.cache.readers import OtlpAnyValue, OtlpKeyValue, OtlpSpan, raw_json
from console.cache.redact import Redactor
from console.cache.schema import SPAN_COLUMNS
from console.config import IngestSettings
from console.pricing import Price, PriceTable

# Attribute names, newest first; deprecated names are still emitted by many instrumentations.
PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system")
OPERATION_KEYS = ("gen_ai.operation.name",)
REQUEST_MODEL_KEYS = ("gen_ai.request.model",)
RESPONSE_MODEL_KEYS = ("gen_ai.response.model",)
INPUT_TOKEN_KEYS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
OUTPUT_TOKEN_KEYS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
CACHE_READ_KEYS = ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens")
TTFT_SECONDS_KEYS = (
    "gen_ai.response.time_to_first_chunk",
    "gen_ai.server.time_to_first_token",
    "gen_ai.response.time_to_first_token",
)
HTTP_STATUS_KEYS = ("http.response.status_code", "http.status_code")
ERROR_TYPE_KEYS = ("error.type",)

# Prompt and completion bodies: dropped unless `ingest.keep_bodies`.
BODY_KEYS = frozenset(
    {
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.definitions",
        "gen_ai.prompt",
        "gen_ai.completion",
        "input.value",
        "output.value",
    }
)
BODY_PREFIXES = ("llm.input_messages", "llm.output_messages")
# Indexed bodies (`gen_ai.prompt.0.content`); `gen_ai.prompt.id`/`.version` are dimensions.
INDEXED_BODY_PREFIXES = ("gen_ai.prompt.", "gen_ai.completion.")


def is_body_key(key: str) -> bool:
    """Whether an attribute carries prompt or completion text."""
    if key in BODY_KEYS or key.startswith(BODY_PREFIXES):
        return True
    for prefix in INDEXED_BODY_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):len(prefix) + 1].isdigit()
    return False
BODY_EVENT_PREFIXES = ("gen_ai.content.", "gen_ai.user.", "gen_ai.system.", "gen_ai.assistant.",
                       "gen_ai.tool.", "gen_ai.choice", "gen_ai.client.inference.operation.details")

# Attributes that become columns and so are not repeated in the attributes JSON.
_MAPPED_KEYS = frozenset({*PROVIDER_KEYS, *REQUEST_MODEL_KEYS, *RESPONSE_MODEL_KEYS,
                          *INPUT_TOKEN_KEYS, *OUTPUT_TOKEN_KEYS, *CACHE_READ_KEYS,
                          *ERROR_TYPE_KEYS, *OPERATION_KEYS})

RATE_LIMIT_STATUSES = frozenset({429, 529})
_RATE_LIMIT_WORDS = ("rate_limit", "ratelimit", "overloaded", "too_many_requests", "429", "529",
                     "throttl", "quota")

SPAN_KIND_NAMES = {"SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
                   "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5}
STATUS_CODE_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2,
                     "UNSET": 0, "OK": 1, "ERROR": 2, "unset": 0, "ok": 1, "error": 2}

ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "TINYINT": pa.int8(),
    "SMALLINT": pa.int16(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMP_NS": pa.timestamp("ns"),
}
ARROW_SCHEMA = pa.schema(
    [(name, ARROW_TYPES[typ.split()[0]]) for name, typ in SPAN_COLUMNS]
)
COLUMN_NAMES = tuple(name for name, _ in SPAN_COLUMNS)
START_INDEX = COLUMN_NAMES.index("start_time")
"""Where a row holds its start time (unix nanoseconds)."""
MAX_TIME_NS = 2**63 - 1
"""The latest start a TIMESTAMP_NS holds (2262-04-11); later ones, or 1970 itself, are quarantined."""


_PRICE_MEMO_MAX = 65_536
_NO_KEY = object()


class BadSpan(ValueError):
    """A span that cannot become a row (the reason goes to quarantine)."""


class NotTypedShape(ValueError):
    """A typed line the typed mapping leaves to the dict path (which words any reason)."""


class SpanColumns:
    """A batch of rows, transposed to columns only when handed to DuckDB as Arrow."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.keys: set[tuple[str, str]] = set()
        self.duplicates = 0
        self.clock = ClockCounts()
        """Rows started outside the expected range (set when the batch is handed over)."""

    def count_clock(self, expected: ExpectedRange) -> ClockCounts:
        """Count (and keep in `clock`) the rows started outside `expected`."""
        i = START_INDEX
        self.clock = clock.count((row[i] for row in self.rows), expected)
        return self.clock

    def __len__(self) -> int:
        return len(self.rows)

    def to_arrow(self) -> pa.Table:
        columns = list(zip(*self.rows, strict=True)) if self.rows else [() for _ in COLUMN_NAMES]
        return pa.Table.from_arrays(
            [pa.array(col, type=field.type) for col, field in zip(columns, ARROW_SCHEMA, strict=True)],
            schema=ARROW_SCHEMA,
        )


def _any_value(v: dict[str, Any]) -> Any:
    """Decode an OTLP/JSON AnyValue (64-bit ints arrive as decimal strings)."""
    for key, x in v.items():
        if key == "stringValue":
            return x
        if key == "intValue":
            return int(x)
        if key == "doubleValue":
            return float(x)
        if key == "boolValue":
            return bool(x)
        if key == "arrayValue":
            return [_any_value(i) for i in (x or {}).get("values", ())]
        if key == "kvlistValue":
            return {kv["key"]: _any_value(kv.get("value") or {}) for kv in (x or {}).get("values", ())}
        if key == "bytesValue":
            return x
    return None


def _typed_other_value(v: OtlpAnyValue) -> Any:
    """An AnyValue without a string or int member, as `_any_value` reads the same JSON object.

    `_any_value` takes the first member in the object's order, which structs do not keep: a
    value with two of these members is left to the dict path.
    """
    double, boolean = v.doubleValue, v.boolValue
    if not (v.arrayValue or v.kvlistValue or v.bytesValue):  # the usual case, first
        if double is UNSET:
            return None if boolean is UNSET else boolean
        if boolean is UNSET:
            return double
    found: dict[str, Any] = {}
    if double is not UNSET:
        found["doubleValue"] = double
    if boolean is not UNSET:
        found["boolValue"] = boolean
    if v.arrayValue:
        found["arrayValue"] = raw_json(v.arrayValue)
    if v.kvlistValue:
        found["kvlistValue"] = raw_json(v.kvlistValue)
    if v.bytesValue:
        found["bytesValue"] = raw_json(v.bytesValue)
    if len(found) > 1:
        raise NotTypedShape("an AnyValue with several members")
    return _any_value(found) if found else None


def proto_value(v: Any) -> Any:
    """A protobuf AnyValue (opentelemetry-proto) as `_any_value` reads its OTLP/JSON form from
    `otlp_proto.decode_export_request` (bytes as lowercase hex, an unset value None)."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bool_value":
        return v.bool_value
    if which == "array_value":
        return [proto_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: proto_value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return v.bytes_value.hex()
    return None


def otlp_attributes(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not kvs:
        return out
    for kv in kvs:
        value = kv.get("value")
        out[kv["key"]] = _any_value(value) if value else None
    return out


def normalise_id(raw: Any, nbytes: int, what: str, required: bool = True) -> str | None:
    """Lowercase hex id; accepts either hex case, and base64 from non-conforming exporters."""
    if raw is None or raw == "":
        if required:
            raise BadSpan(f"missing {what}")
        return None
    if type(raw) is str:
        s = raw.lower()
    elif isinstance(raw, bytes):
        s = raw.hex()
    else:
        s = str(raw).lower()
    if len(s) == nbytes * 2:
        try:
            int(s, 16)
        except ValueError:
            s = ""
        else:
            if required and s.strip("0") == "":
                raise BadSpan(f"{what} is all zeros")
            return s
    try:
        decoded = base64.b64decode(str(raw), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) == nbytes:
        return decoded.hex()
    if not required:
        return None
    raise BadSpan(f"{what} {str(raw)[:40]!r} is not {nbytes}-byte hex")


def _first(attrs: dict[str, Any], keys: tuple[str, ...] | list[str]) -> Any:
    for k in keys:
        v = attrs.get(k)
        if v is not None and v != "":
            return v
    return None


def _dim(attrs: dict[str, Any], resource: dict[str, Any], keys: list[str]) -> str | None:
    """A dimension from the first configured attribute present on the span, then its resource."""
    for k in keys:
        v = attrs.get(k)
        if v is not None and v != "":
            return v if isinstance(v, str) else str(v)
    for k in keys:
        v = resource.get(k)
        if v is not None and v != "":
            return v if isinstance(v, str) else str(v)
    return None


def _int(v: Any) -> int | None:
    if type(v) is int:
        return int(v)
    if v is None or isinstance(v, bool):
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        try:
            return int(float(v))
        except (TypeError, ValueError):
            return None


def _float(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes", "y")
    return bool(v)


def _time_ns(v: Any) -> int | None:
    """Nanoseconds since the epoch from an int, a decimal string, ISO text or a datetime."""
    if type(v) is str and v.isdigit():  # OTLP/JSON's usual form, first
        return int(v)
    if v is None or v == "":
        return None
    if isinstance(v, datetime):
        when: datetime = v if v.tzinfo is not None else v.replace(tzinfo=UTC)
        return int(when.timestamp()) * 1_000_000_000 + int(when.microsecond) * 1000
    if isinstance(v, int | float) and not isinstance(v, bool):
        return int(v)
    s = str(v)
    if s.isdigit():
        return int(s)
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    frac = ""
    if "." in s:
        frac = "".join(ch for ch in s.split(".", 1)[1] if ch.isdigit())
    return int(dt.replace(microsecond=0).timestamp()) * 1_000_000_000 + int((frac + "000000000")[:9])


def _start_ns(v: Any, what: str) -> int:
    """A span's start in unix nanoseconds; BadSpan when missing or not storable (TIMESTAMP_NS)."""
    start_ns = _time_ns(v)
    if not start_ns:
        raise BadSpan(f"missing {what}")
    if not 0 < start_ns <= MAX_TIME_NS:
        raise BadSpan(f"{what} {str(v)[:40]} is out of range (not a time from 1970 to 2262)")
    return start_ns


class SpanMapper:
    """Turns decoded spans into rows; one per ingest run (it caches per-value work)."""

    def __init__(self, settings: IngestSettings, redactor: Redactor, prices: PriceTable) -> None:
        self.settings = settings
        self.redact = redactor.redact
        self._redact_memo = redactor.memo
        self.prices = prices
        self.keep_bodies = settings.keep_bodies
        self._date_cache: dict[int, date] = {}
        self._drop_memo: dict[str, bool] = {}
        self._price_memo: dict[tuple[Any, ...], tuple[Price | None, str | None]] = {}
        # The first configured attribute of each dimension (a key no attribute has if none is).
        first: list[Any] = [
            keys[0] if keys else _NO_KEY
            for keys in (settings.tenant_attributes, settings.route_attributes,
                         settings.prompt_id_attributes, settings.prompt_version_attributes)
        ]
        self._first_dim_keys = tuple(first)

    # -- attribute handling -------------------------------------------------

    def _dropped(self, key: str) -> bool:
        """Whether an attribute is a prompt/completion body to drop (memoised per key)."""
        drop = self._drop_memo.get(key)
        if drop is None:
            drop = not self.keep_bodies and is_body_key(key)
            self._drop_memo[key] = drop
        return drop

    def otlp_clean_attributes(self, kvs: Any) -> tuple[dict[str, Any], dict[str, Any], int]:
        """Decode OTLP/JSON attributes, drop bodies and redact strings in one pass (hot path).

        Returns the attributes, the subset that does not become columns, and the redactions.
        """
        out: dict[str, Any] = {}
        rest: dict[str, Any] = {}
        if not kvs:
            return out, rest, 0
        count = 0
        redact = self.redact
        memo = self._redact_memo.get
        dropped = self._drop_memo
        value: Any
        for kv in kvs:
            key = kv["key"]
            try:  # subscripts, not .get(): the keys are almost always there
                drop = dropped[key]
            except KeyError:
                drop = self._dropped(key)
            if drop:
                continue
            try:
                v = kv["value"]
            except KeyError:
                v = None
            if not v:
                value = None
            else:
                x = v.get("stringValue")
                if x is not None:
                    hit = memo(x) if type(x) is str else None
                    if hit is None:
                        hit = redact(x)
                    value = hit[0]
                    count += hit[1]
                else:
                    x = v.get("intValue")
                    if x is not None:
                        value = int(x)
                    else:
                        value = _any_value(v)
                        if isinstance(value, list | dict):
                            value, n = self._clean_nested(value)
                            count += n
            out[key] = value
            if key not in _MAPPED_KEYS:
                rest[key] = value
        return out, rest, count

    def typed_clean_attributes(
        self, kvs: list[OtlpKeyValue] | None
    ) -> tuple[dict[str, Any], dict[str, Any], int]:
        """`otlp_clean_attributes` over decoded structs: the same result for the same line.

        A twin of that loop on purpose: sharing the per-attribute step through a helper
        both loops call costs ~8% of the typed mapping (one call per attribute, measured).
        """
        out: dict[str, Any] = {}
        rest: dict[str, Any] = {}
        if not kvs:
            return out, rest, 0
        count = 0
        redact = self.redact
        memo = self._redact_memo.get
        dropped = self._drop_memo
        value: Any
        for kv in kvs:
            key = kv.key
            try:
                drop = dropped[key]
            except KeyError:
                drop = self._dropped(key)
            if drop:
                continue
            v = kv.value
            if v is None:
                value = None
            else:
                # As the dict path: a stringValue first, then an intValue, then the one other member.
                x = v.stringValue
                if x is not UNSET:
                    hit = memo(x)
                    if hit is None:
                        hit = redact(x)
                    value = hit[0]
                    count += hit[1]
                else:
                    i = v.intValue
                    if i is not UNSET:
                        value = int(i)
                    else:
                        value = _typed_other_value(v)
                        if isinstance(value, list | dict):
                            value, n = self._clean_nested(value)
                            count += n
            out[key] = value
            if key not in _MAPPED_KEYS:
                rest[key] = value
        return out, rest, count

    def proto_clean_attributes(self, kvs: Any) -> tuple[dict[str, Any], dict[str, Any], int]:
        """`otlp_clean_attributes` over protobuf KeyValues: the same result as for the dict
        `otlp_proto.decode_export_request` makes of them (a twin loop, as `typed_clean_attributes`)."""
        out: dict[str, Any] = {}
        rest: dict[str, Any] = {}
        if not kvs:
            return out, rest, 0
        count = 0
        redact = self.redact
        memo = self._redact_memo.get
        dropped = self._drop_memo
        value: Any
        for kv in kvs:
            key = kv.key
            try:
                drop = dropped[key]
            except KeyError:
                drop = self._dropped(key)
            if drop:
                continue
            v = kv.value
            which = v.WhichOneof("value")
            if which == "string_value":
                x = v.string_value
                hit = memo(x)
                if hit is None:
                    hit = redact(x)
                value = hit[0]
                count += hit[1]
            elif which == "int_value":
                value = v.int_value
            else:  # as the dict path: the one other member (an unset value is None)
                value = proto_value(v)
                if isinstance(value, list | dict):
                    value, n = self._clean_nested(value)
                    count += n
            out[key] = value
            if key not in _MAPPED_KEYS:
                rest[key] = value
        return out, rest, count

    def _clean(self, attrs: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Drop bodies unless kept, redact every string (also inside lists/maps)."""
        count = 0
        out: dict[str, Any] = {}
        redact = self.redact
        for key, value in attrs.items():
            if self._dropped(key):
                continue
            if isinstance(value, str):
                value, n = redact(value)
                count += n
            elif isinstance(value, list | dict):
                value, n = self._clean_nested(value)
                count += n
            out[key] = value
        return out, count

    def _clean_nested(self, value: Any) -> tuple[Any, int]:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list):
            total = 0
            items = []
            for v in value:
                v2, n = self._clean_nested(v)
                items.append(v2)
                total += n
            return items, total
        if isinstance(value, dict):
            total = 0
            obj = {}
            for k, v in value.items():
                v2, n = self._clean_nested(v)
                obj[k] = v2
                total += n
            return obj, total
        return value, 0

    def resource(self, attrs: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Clean a resource's attributes once for all its spans."""
        return self._clean(attrs)

    def _events(self, events: Any) -> tuple[str | None, int]:
        if isinstance(events, str | bytes):  # our own `events` column is JSON text
            try:
                events = orjson.loads(events)
            except orjson.JSONDecodeError as exc:
                raise BadSpan(f"events is not JSON: {exc}") from exc
        if not events:
            return None, 0
        if not isinstance(events, list):
            raise BadSpan("events is not a list")
        out = []
        total = 0
        for ev in events:
            name = str(ev.get("name") or "")
            raw = ev.get("attributes")
            attrs = otlp_attributes(raw) if isinstance(raw, list) else dict(raw or {})
            if not self.keep_bodies and name.startswith(BODY_EVENT_PREFIXES):
                attrs = {k: v for k, v in attrs.items() if k in ("gen_ai.system", "gen_ai.provider.name")}
            attrs, n = self._clean(attrs)
            name, n2 = self.redact(name)
            total += n + n2
            when = _time_ns(ev.get("timeUnixNano", ev.get("time_unix_nano")))
            out.append({"name": name, "time_unix_nano": when, "attributes": attrs})
        return orjson.dumps(out).decode(), total

    # -- the row ------------------------------------------------------------

    def add(
        self,
        out: SpanColumns,
        *,
        trace_id: str,
        span_id: str,
        parent_span_id: str | None,
        name: str | None,
        kind: int | None,
        start_ns: int,
        end_ns: int | None,
        duration_ms: float | None,
        status_code: int,
        status_message: str | None,
        attrs: dict[str, Any],
        resource: dict[str, Any],
        redactions: int,
        events: Any,
        source: str,
    ) -> None:
        """Append one span (attrs already cleaned); a repeat within the batch is counted, not added."""
        self._row(out, trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, duration_ms,
                  status_code, status_message, attrs, None, resource, redactions, events, source)

    def _row(
        self, out: SpanColumns, trace_id: str, span_id: str, parent_span_id: str | None,
        name: str | None, kind: int | None, start_ns: int, end_ns: int | None,
        duration_ms: float | None, status_code: int, status_message: str | None,
        attrs: dict[str, Any], rest: dict[str, Any] | None, resource: dict[str, Any],
        redactions: int, events: Any, source: str,
    ) -> None:
        """`add` with positional arguments (the hot path); `rest` is attrs less _MAPPED_KEYS."""
        key = (trace_id, span_id)
        if key in out.keys:
            out.duplicates += 1
            return
        s = self.settings
        get = attrs.get
        provider = get("gen_ai.provider.name") or get("gen_ai.system")
        request_model = get("gen_ai.request.model") or None
        response_model = get("gen_ai.response.model") or None
        # Shortcuts below: when the first attribute holds the usual type, the general
        # lookup (`_first`, `_dim`) would return that very value, so it is skipped.
        input_tokens = get(INPUT_TOKEN_KEYS[0])
        if type(input_tokens) is not int:
            input_tokens = _int(_first(attrs, INPUT_TOKEN_KEYS))
        output_tokens = get(OUTPUT_TOKEN_KEYS[0])
        if type(output_tokens) is not int:
            output_tokens = _int(_first(attrs, OUTPUT_TOKEN_KEYS))
        cache_read = _int(_first(attrs, CACHE_READ_KEYS))
        ttft_s = get(TTFT_SECONDS_KEYS[0])
        if type(ttft_s) is not float:
            ttft_s = _float(_first(attrs, TTFT_SECONDS_KEYS))
        http_status = _int(_first(attrs, HTTP_STATUS_KEYS))
        if http_status is not None and not 0 <= http_status < 1000:
            http_status = None
        error_type = get("error.type")
        if error_type is not None:
            error_type = str(error_type)

        first_tenant, first_route, first_prompt_id, first_prompt_version = self._first_dim_keys
        tenant = get(first_tenant)
        if type(tenant) is not str or not tenant:
            tenant = _dim(attrs, resource, s.tenant_attributes)
        route = get(first_route)
        if type(route) is not str or not route:
            route = _dim(attrs, resource, s.route_attributes)
        prompt_id = get(first_prompt_id)
        if type(prompt_id) is not str or not prompt_id:
            prompt_id = _dim(attrs, resource, s.prompt_id_attributes)
        prompt_version = get(first_prompt_version)
        if type(prompt_version) is not str or not prompt_version:
            prompt_version = _dim(attrs, resource, s.prompt_version_attributes)
        fallback_raw = _first(attrs, s.fallback_attributes)
        fallback = _truthy(fallback_raw) if fallback_raw is not None else False

        is_error = status_code == 2 or error_type is not None or (
            http_status is not None and http_status >= 500
        )
        rate_limited = (http_status in RATE_LIMIT_STATUSES) or (
            error_type is not None and any(w in error_type.lower() for w in _RATE_LIMIT_WORDS)
        )
        if duration_ms is None and end_ns is not None and end_ns >= start_ns:
            duration_ms = (end_ns - start_ns) / 1e6

        model = response_model or request_model
        cost = None
        price_version = None
        unpriced = False
        if model is not None:
            price, price_version = self._price(provider, model, request_model, start_ns)
            if price is None:
                unpriced = True
            else:
                cost = price.cost(input_tokens or 0, output_tokens or 0, cache_read or 0)

        if rest is None:
            rest = {k: v for k, v in attrs.items() if k not in _MAPPED_KEYS}
        if resource:
            rest["resource"] = resource
        if events is None:
            events_json, event_redactions = None, 0
        else:
            events_json, event_redactions = self._events(events)
        msg = None
        if status_message:
            msg, n = self.redact(str(status_message))
            redactions += n

        service = resource.get("service.name")
        op = get("gen_ai.operation.name")
        out.rows.append((
            trace_id, span_id, parent_span_id,
            None if service is None else str(service),
            name, kind,
            None if op is None else str(op),
            None if provider is None else str(provider),
            None if request_model is None else str(request_model),
            None if response_model is None else str(response_model),
            start_ns, duration_ms,
            None if ttft_s is None else ttft_s * 1000.0,
            "error" if is_error else ("ok" if status_code == 1 else "unset"),
            msg, error_type, http_status, rate_limited,
            input_tokens, output_tokens, cache_read,
            tenant, route, prompt_id, prompt_version, fallback,
            cost, price_version, unpriced, redactions + event_redactions,
            orjson.dumps(rest, default=str).decode() if rest else None,
            events_json, source,
        ))
        out.keys.add(key)  # only once stored: a span rejected above leaves no key behind

    def _price(
        self, provider: Any, model: Any, request_model: Any, start_ns: int
    ) -> tuple[Price | None, str | None]:
        """The price of a call and its price-table tag, memoised per (provider, models, day)."""
        memo_key = None
        if (type(model) is str and (request_model is None or type(request_model) is str)
                and (provider is None or type(provider) is str)):
            memo_key = (provider, model, request_model, start_ns // 86_400_000_000_000)
            hit = self._price_memo.get(memo_key)
            if hit is not None:
                return hit
        day = self._day(start_ns)
        price = self.prices.lookup(provider, str(model), day)
        if price is None and request_model is not None and model is not request_model:
            price = self.prices.lookup(provider, str(request_model), day)
        result = (price, None if price is None else self.prices.price_tag(price))
        if memo_key is not None:
            if len(self._price_memo) >= _PRICE_MEMO_MAX:
                self._price_memo.clear()
            self._price_memo[memo_key] = result
        return result

    def _day(self, start_ns: int) -> date:
        key = start_ns // 86_400_000_000_000
        d = self._date_cache.get(key)
        if d is None:
            d = datetime.fromtimestamp(key * 86_400, UTC).date()
            self._date_cache[key] = d
        return d

    # -- entry points per input shape ---------------------------------------

    def add_otlp_span(
        self, out: SpanColumns, sp: dict[str, Any], resource: dict[str, Any],
        resource_redactions: int, source: str,
    ) -> None:
        # Read in this order (ids, times, status, attributes): the first failure words the
        # quarantine reason, so only what cannot fail moves into `_otlp_row`.
        trace_id = normalise_id(sp.get("traceId"), 16, "traceId")
        span_id = normalise_id(sp.get("spanId"), 8, "spanId")
        start_ns = _start_ns(sp.get("startTimeUnixNano"), "startTimeUnixNano")
        end_ns = _time_ns(sp.get("endTimeUnixNano"))
        status = sp.get("status") or {}
        code = status.get("code", 0)
        attrs, rest, n = self.otlp_clean_attributes(sp.get("attributes"))
        self._otlp_row(
            out, trace_id, span_id, sp.get("parentSpanId"), sp.get("name"),  # type: ignore[arg-type]
            sp.get("kind"), start_ns, end_ns, code, status.get("message"),
            attrs, rest, resource, n + resource_redactions, sp.get("events"), source,
        )

    def add_typed_otlp_span(
        self, out: SpanColumns, sp: OtlpSpan, resource: dict[str, Any],
        resource_redactions: int, source: str,
    ) -> None:
        """`add_otlp_span` for a span decoded into structs (see readers.OtlpRequest)."""
        trace_id = normalise_id(sp.traceId, 16, "traceId")
        span_id = normalise_id(sp.spanId, 8, "spanId")
        start_ns = _start_ns(sp.startTimeUnixNano, "startTimeUnixNano")
        end_ns = _time_ns(sp.endTimeUnixNano)
        status = sp.status
        attrs, rest, n = self.typed_clean_attributes(sp.attributes)
        self._otlp_row(
            out, trace_id, span_id, sp.parentSpanId, sp.name, sp.kind, start_ns, end_ns,  # type: ignore[arg-type]
            0 if status is None else status.code, None if status is None else status.message,
            attrs, rest, resource, n + resource_redactions,
            raw_json(sp.events) if sp.events else None, source,
        )

    def add_proto_span(
        self, out: SpanColumns, sp: Any, events: list[dict[str, Any]] | None,
        resource: dict[str, Any], resource_redactions: int, source: str,
    ) -> None:
        """`add_otlp_span` for a protobuf Span (opentelemetry-proto), read without the OTLP/JSON
        dict; `events`: its events as `otlp_proto.decode_export_request` gives them, None if none."""
        trace_id = normalise_id(sp.trace_id.hex(), 16, "traceId")
        span_id = normalise_id(sp.span_id.hex(), 8, "spanId")
        start_ns = _start_ns(sp.start_time_unix_nano, "startTimeUnixNano")
        end_ns = _time_ns(sp.end_time_unix_nano)
        status = sp.status
        attrs, rest, n = self.proto_clean_attributes(sp.attributes)
        self._otlp_row(
            out, trace_id, span_id, sp.parent_span_id.hex(), sp.name,  # type: ignore[arg-type]
            sp.kind, start_ns, end_ns, status.code, status.message,
            attrs, rest, resource, n + resource_redactions, events, source,
        )

    def _otlp_row(
        self, out: SpanColumns, trace_id: str, span_id: str, parent_span_id: Any, name: Any,
        kind: Any, start_ns: int, end_ns: int | None, code: Any, message: str | None,
        attrs: dict[str, Any], rest: dict[str, Any], resource: dict[str, Any],
        redactions: int, events: Any, source: str,
    ) -> None:
        """The rest of an OTLP span, read either way: enum names, name, parent id, then `_row`."""
        if isinstance(code, str):
            code = STATUS_CODE_NAMES.get(code, 0)
        if isinstance(kind, str):
            kind = SPAN_KIND_NAMES.get(kind)
        if name:
            text = str(name)
            hit = self._redact_memo.get(text)
            if hit is None:
                hit = self.redact(text)
            name = hit[0]
            redactions += hit[1]
        self._row(
            out, trace_id, span_id,
            normalise_id(parent_span_id, 8, "parentSpanId", required=False),
            name or None, kind, start_ns, end_ns, None, int(code or 0), message,
            attrs, rest, resource, redactions, events, source,
        )

    def add_flat_span(self, out: SpanColumns, rec: dict[str, Any], source: str) -> None:
        """One span from a flat JSON line or Parquet row (our own column names or OTLP-ish ones)."""
        g = rec.get
        trace_id = normalise_id(g("trace_id", g("traceId")), 16, "trace_id")
        span_id = normalise_id(g("span_id", g("spanId")), 8, "span_id")
        start_ns = _start_ns(_first(rec, ("start_time_unix_nano", "startTimeUnixNano", "start_time",
                                          "start_ns", "timestamp")), "start time")
        end_ns = _time_ns(_first(rec, ("end_time_unix_nano", "endTimeUnixNano", "end_time", "end_ns")))
        duration_ms = _float(g("duration_ms"))
        status = g("status")
        if isinstance(status, dict):
            code = status.get("code", 0)
            message = status.get("message")
        else:
            code, message = status, g("status_message")
        if isinstance(code, str):
            code = STATUS_CODE_NAMES.get(code, 0)
        attrs_raw: dict[str, Any] = {}
        nested = g("attributes")
        if isinstance(nested, str):
            try:
                nested = orjson.loads(nested)
            except orjson.JSONDecodeError:
                nested = None
        if isinstance(nested, list):
            nested = otlp_attributes(nested)
        if isinstance(nested, dict):
            attrs_raw.update(nested)
        resource_raw: dict[str, Any] = {}
        if isinstance(nested, dict) and isinstance(nested.get("resource"), dict):
            resource_raw.update(attrs_raw.pop("resource"))
        for key, value in rec.items():
            if key in _FLAT_FIELDS or value is None:
                continue
            if key in _FLAT_COLUMN_ATTRS:
                attrs_raw.setdefault(_FLAT_COLUMN_ATTRS[key], value)
            elif "." in key:
                attrs_raw[key] = value
        ttft_ms = _float(g("ttft_ms"))
        if ttft_ms is not None:
            attrs_raw.setdefault("gen_ai.response.time_to_first_chunk", ttft_ms / 1000.0)
        service = g("service", g("service.name"))
        if service is not None:
            resource_raw["service.name"] = service
        attrs, n = self._clean(attrs_raw)
        resource, n_res = self._clean(resource_raw)
        name = g("name")
        if name:
            name, n2 = self.redact(str(name))
            n += n2
        kind = g("kind")
        if isinstance(kind, str):
            kind = SPAN_KIND_NAMES.get(kind)
        self.add(
            out, trace_id=trace_id, span_id=span_id,  # type: ignore[arg-type]
            parent_span_id=normalise_id(g("parent_span_id", g("parentSpanId")), 8,
                                        "parent_span_id", required=False),
            name=name or None, kind=_int(kind), start_ns=start_ns, end_ns=end_ns,
            duration_ms=duration_ms, status_code=int(code or 0), status_message=message,
            attrs=attrs, resource=resource, redactions=n + n_res, events=g("events"),
            source=source,
        )


# Keys of a flat record that are structural, not attributes.
_FLAT_FIELDS = frozenset({
    "trace_id", "traceId", "span_id", "spanId", "parent_span_id", "parentSpanId", "name", "kind",
    "start_time_unix_nano", "startTimeUnixNano", "start_time", "start_ns", "timestamp",
    "end_time_unix_nano", "endTimeUnixNano", "end_time", "end_ns", "duration_ms", "status",
    "status_message", "attributes", "events", "service", "service.name", "source", "redactions",
    "cost_usd", "price_version", "unpriced", "rate_limited", "ttft_ms",
})
# Our own exported column names map back to the attributes they came from.
_FLAT_COLUMN_ATTRS = {
    "operation": "gen_ai.operation.name",
    "provider": "gen_ai.provider.name",
    "request_model": "gen_ai.request.model",
    "response_model": "gen_ai.response.model",
    "input_tokens": "gen_ai.usage.input_tokens",
    "output_tokens": "gen_ai.usage.output_tokens",
    "cache_read_tokens": "gen_ai.usage.cache_read.input_tokens",
    "error_type": "error.type",
    "http_status": "http.response.status_code",
    "tenant": "llmdeck.tenant",
    "route": "llmdeck.route",
    "prompt_id": "llmdeck.prompt.id",
    "prompt_version": "llmdeck.prompt.version",
    "fallback": "llmdeck.fallback",
}
