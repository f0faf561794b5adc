"""Baseline (b) of bench/ingest.py: DuckDB's own typed `read_json`, flattened to `spans`.

A fair, reasonably written query: a typed `columns=` schema for the OTLP JSON,
UNNEST of resourceSpans -> scopeSpans -> spans, and the same attribute mapping
llmdeck applies (the same key lists, deprecated names and dimension fallbacks,
imported from the project), into a table with the columns of the cache's
`spans` table. Pricing, redaction, dedupe and rollups are left out: they are
work only llmdeck does, so this baseline is, if anything, flattered.

Two things make such a query slow for no good reason and are avoided: a
`maximum_object_size` far above the longest line (DuckDB sizes its read
buffers from it: 3x slower with 1 GiB on 300k spans) and `to_json` of a whole
unnested attribute list (the list is filtered first).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from console.cache import mapping as m
from console.cache.schema import SPAN_COLUMNS
from console.config import IngestSettings

_AV = "STRUCT(stringValue VARCHAR, intValue VARCHAR, doubleValue DOUBLE, boolValue BOOLEAN)"
_KV = f"STRUCT(key VARCHAR, value {_AV})[]"
_SPAN = (
    "STRUCT(traceId VARCHAR, spanId VARCHAR, parentSpanId VARCHAR, name VARCHAR, kind INTEGER,"
    f" startTimeUnixNano VARCHAR, endTimeUnixNano VARCHAR, attributes {_KV}, events JSON,"
    " status STRUCT(code INTEGER, message VARCHAR))"
)
_RESOURCE_SPANS = f"STRUCT(resource STRUCT(attributes {_KV}), scopeSpans STRUCT(spans {_SPAN}[])[])[]"
_RATE_LIMIT_RE = "rate_limit|ratelimit|overloaded|too_many_requests|429|529|throttl|quota"


def read_json_sql(max_object: int) -> str:
    """CREATE TABLE spans AS ...: the same attribute mapping llmdeck applies (keys, fallbacks)."""
    s = IngestSettings()

    def first(kvs: str, keys: tuple[str, ...] | list[str], field: str) -> str:
        parts = [f"attr({kvs}, '{k}').{field}" for k in keys]
        return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"

    dims = {"tenant": s.tenant_attributes, "route": s.route_attributes,
            "prompt_id": s.prompt_id_attributes, "prompt_version": s.prompt_version_attributes}
    mapped = ", ".join(f"'{k}'" for k in (*m.PROVIDER_KEYS, *m.OPERATION_KEYS, *m.REQUEST_MODEL_KEYS,
                                          *m.RESPONSE_MODEL_KEYS, *m.INPUT_TOKEN_KEYS,
                                          *m.OUTPUT_TOKEN_KEYS, *m.CACHE_READ_KEYS,
                                          *m.ERROR_TYPE_KEYS))
    value_text = ("coalesce(x.value.stringValue, x.value.intValue, x.value.doubleValue::VARCHAR,"
                  " x.value.boolValue::VARCHAR)")
    exprs = {
        "trace_id": "lower(sp.traceId)",
        "span_id": "lower(sp.spanId)",
        "parent_span_id": "lower(nullif(sp.parentSpanId, ''))",
        "service": "service",
        "name": "sp.name",
        "kind": "sp.kind",
        "operation": first("a", m.OPERATION_KEYS, "stringValue"),
        "provider": first("a", m.PROVIDER_KEYS, "stringValue"),
        "request_model": first("a", m.REQUEST_MODEL_KEYS, "stringValue"),
        "response_model": first("a", m.RESPONSE_MODEL_KEYS, "stringValue"),
        "start_time": "make_timestamp_ns(sp.startTimeUnixNano::BIGINT)",
        "duration_ms": "(sp.endTimeUnixNano::BIGINT - sp.startTimeUnixNano::BIGINT) / 1e6",
        "ttft_ms": f"{first('a', m.TTFT_SECONDS_KEYS, 'doubleValue')} * 1000",
        "status": "CASE WHEN sp.status.code = 2 OR error_type IS NOT NULL OR http_status >= 500"
                  " THEN 'error' WHEN sp.status.code = 1 THEN 'ok' ELSE 'unset' END",
        "status_message": "sp.status.message",
        "error_type": "error_type",
        "http_status": "http_status",
        "rate_limited": "coalesce(http_status IN (429, 529), false)"
                        f" OR coalesce(regexp_matches(lower(error_type), '{_RATE_LIMIT_RE}'), false)",
        "input_tokens": first("a", m.INPUT_TOKEN_KEYS, "intValue"),
        "output_tokens": first("a", m.OUTPUT_TOKEN_KEYS, "intValue"),
        "cache_read_tokens": first("a", m.CACHE_READ_KEYS, "intValue"),
        **{dim: f"coalesce({first('a', keys, 'stringValue')}, res_{dim})" for dim, keys in dims.items()},
        "fallback": f"coalesce({first('a', s.fallback_attributes, 'boolValue')}, false)",
        "cost_usd": "NULL",  # pricing, redaction, dedupe and rollups are llmdeck's extra work
        "price_version": "NULL",
        "unpriced": "false",
        "redactions": "0",
        "attributes": f"to_json(map_from_entries(list_transform(list_filter(a, lambda x: NOT"
                      f" list_contains([{mapped}], x.key)), lambda x: {{k: x.key, v: {value_text}}})))",
        "events": "sp.events",
        "source": "filename",
    }
    assert set(exprs) == {name for name, _ in SPAN_COLUMNS}
    select = ",\n  ".join(f"({exprs[name]})::{typ.split()[0]} AS {name}" for name, typ in SPAN_COLUMNS)
    res_dims = ", ".join(f"{first('rattrs', keys, 'stringValue')} AS res_{dim}" for dim, keys in dims.items())
    return f"""
CREATE TABLE spans AS
WITH lines AS (
  SELECT filename, unnest(resourceSpans) AS rs
  FROM read_json($path, format = 'newline_delimited', filename = true,
                 columns = {{resourceSpans: '{_RESOURCE_SPANS}'}}, maximum_object_size = {max_object})
), resources AS (
  SELECT filename, attr(rattrs, 'service.name').stringValue AS service, {res_dims}, unnest(scopes) AS ss
  FROM (SELECT filename, rs.resource.attributes AS rattrs, rs.scopeSpans AS scopes FROM lines)
), flat AS (
  SELECT * EXCLUDE (ss), unnest(ss.spans) AS sp FROM resources
), fields AS (
  SELECT *, sp.attributes AS a, {first('sp.attributes', m.ERROR_TYPE_KEYS, 'stringValue')} AS error_type,
         ({first('sp.attributes', m.HTTP_STATUS_KEYS, 'intValue')})::INTEGER AS http_status
  FROM flat
)
SELECT
  {select}
FROM fields
"""


def read_json(path: Path, db: Path, max_object: int) -> int:
    con = duckdb.connect(str(db))
    con.execute("CREATE MACRO attr(kvs, k) AS list_filter(kvs, lambda x: x.key = k)[1].value")
    con.execute(read_json_sql(max_object), {"path": str(path)})
    rows = int(con.execute("SELECT count(*) FROM spans").fetchall()[0][0])
    con.close()  # includes the checkpoint to disk, as ingest's does
    return rows


AGREE_SQL = ("SELECT count(*), count_if(status = 'error'), count_if(rate_limited), sum(input_tokens),"
             " sum(output_tokens), sum(cache_read_tokens), count(ttft_ms), count_if(fallback),"
             " count(DISTINCT (service, provider, response_model, tenant, route, prompt_version)),"
             " min(start_time), max(start_time) FROM spans")


def agree(cache: Path, db: Path) -> bool:
    """Whether the read_json table and llmdeck's cache hold the same mapped figures."""
    def figures(path: Path) -> list[object]:
        con = duckdb.connect(str(path), read_only=True)
        try:
            return list(con.execute(AGREE_SQL).fetchall()[0])
        finally:
            con.close()

    return figures(cache) == figures(db)
