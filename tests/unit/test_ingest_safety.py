"""Ingest is safe to repeat and safe on bad input.

Idempotency (dedupe on trace id + span id, rollups untouched by a re-run),
quarantine of malformed lines and spans with file:line reasons and no all-NULL
rows, partial last lines left for the next run and resumed from the stored
offset, unreadable files reported by name while the rest ingests, and the shape
of `llmdeck ingest --json`.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from console.cli import main
from console.demo.traffic import TrafficModel, export_requests, write_collector_jsonl

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
MIB = 1024 * 1024

ROLLUP_TOTALS = """
SELECT count(*), sum(requests), sum(errors), sum(input_tokens), sum(output_tokens),
       sum(cost_usd), sum(unpriced),
       (SELECT sum(u.n) FROM (SELECT unnest(latency_hist) AS u FROM {t})),
       (SELECT sum(u.n) FROM (SELECT unnest(ttft_hist) AS u FROM {t}))
FROM {t}
"""


def rollup_totals(sql) -> list[Any]:
    return [sql(ROLLUP_TOTALS.format(t=t))[0] for t in ("rollup_minute", "rollup_hour")]


def traffic(path: Path, spans: int, seed: int = 3, per_line: int = 100) -> Path:
    end = T0 + 3 * 3600 * 10**9
    write_collector_jsonl(str(path), export_requests(TrafficModel(seed=seed), T0, end, spans,
                                                     per_line))
    return path


def kv(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def span(n: int, **over: Any) -> dict[str, Any]:
    sp = {"traceId": f"{n:032x}", "spanId": f"{n:016x}", "name": f"chat {n}", "kind": 3,
          "startTimeUnixNano": str(T0 + n * 10**9),
          "endTimeUnixNano": str(T0 + n * 10**9 + 300_000_000),
          "attributes": [kv("gen_ai.provider.name", "openai"),
                         kv("gen_ai.request.model", "gpt-4o-mini"),
                         kv("gen_ai.usage.input_tokens", 100)],
          "status": {}}
    sp.update(over)
    return {k: v for k, v in sp.items() if v is not None}


def request(*spans: dict[str, Any]) -> dict[str, Any]:
    return {"resourceSpans": [{"resource": {"attributes": [kv("service.name", "svc")]},
                               "scopeSpans": [{"scope": {"name": "t"}, "spans": list(spans)}]}]}


def line(*spans: dict[str, Any]) -> bytes:
    return json.dumps(request(*spans)).encode() + b"\n"


# ---------------------------------------------------------------------------
# Idempotency
# ---------------------------------------------------------------------------


def test_same_jsonl_file_twice_stores_nothing_new(tmp_path, ingest, sql):
    path = traffic(tmp_path / "t.jsonl", 3000)
    first = ingest([path])
    assert (first.spans_stored, first.duplicates, first.quarantined) == (3000, 0, 0)
    before = rollup_totals(sql)
    second = ingest([path])
    assert second.spans_stored == 0
    # a line file resumes from its stored offset; whatever it re-reads is a duplicate
    assert second.duplicates == second.spans_read
    assert sql("SELECT count(*) FROM spans") == [(3000,)]
    assert rollup_totals(sql) == before


def _microsecond_aligned(path: Path) -> Path:
    """The same traffic with start/end times rounded down to whole microseconds."""
    out = []
    for text in path.read_text().splitlines():
        req = json.loads(text)
        for rs in req["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for sp in ss["spans"]:
                    for k in ("startTimeUnixNano", "endTimeUnixNano"):
                        sp[k] = str(int(sp[k]) // 1000 * 1000)
        out.append(json.dumps(req))
    path.write_text("\n".join(out) + "\n")
    return path


@pytest.mark.parametrize("ns", [pytest.param(False, id="us-times"),
                                pytest.param(True, id="ns-times")])
@pytest.mark.parametrize("how", ["copy", "gzip", "single-object"])
def test_same_spans_from_another_file_are_all_duplicates(how, ns, tmp_path, ingest, sql):
    path = traffic(tmp_path / "t.jsonl", 3000)
    if not ns:
        _microsecond_aligned(path)
    first = ingest([path])
    assert first.spans_stored == 3000
    before = rollup_totals(sql)
    if how == "copy":  # a rotated or copied file: new name, same content
        again = tmp_path / "t.jsonl.1"
        shutil.copy(path, again)
    elif how == "gzip":  # compressed files are not resumable: read whole every time
        again = tmp_path / "t.jsonl.gz"
        again.write_bytes(gzip.compress(path.read_bytes()))
    else:  # every request merged into one pretty-printed OTLP/JSON object
        merged = {"resourceSpans": [rs for ln in path.read_text().splitlines()
                                    for rs in json.loads(ln)["resourceSpans"]]}
        again = tmp_path / "all.json"
        again.write_text(json.dumps(merged, indent=1))
    second = ingest([again])
    assert (second.spans_read, second.spans_stored, second.duplicates) == (3000, 0, 3000)
    third = ingest([again])  # a line file resumes; the others are re-read, all duplicates
    assert third.spans_stored == 0 and third.duplicates == third.spans_read
    assert third.spans_read == (0 if how == "copy" else 3000)
    assert sql("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans") == [(3000, 3000)]
    assert rollup_totals(sql) == before


def test_span_with_sub_microsecond_start_time_is_deduplicated(tmp_path, ingest, sql):
    """The dedupe window over the batch's start times must keep nanoseconds."""
    one = span(1, startTimeUnixNano="1767225600123456789", endTimeUnixNano="1767225601000000000")
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(line(one))
    b.write_bytes(line(one))
    assert ingest([a]).spans_stored == 1
    again = ingest([b])
    assert (again.spans_stored, again.duplicates) == (0, 1)
    assert sql("SELECT count(*) FROM spans") == [(1,)]


def test_duplicates_inside_one_batch_are_stored_once(tmp_path, ingest, sql):
    path = tmp_path / "d.jsonl"
    path.write_bytes(line(span(1), span(2), span(1)) + line(span(2), span(3)))
    report = ingest([path])
    assert (report.spans_read, report.spans_stored, report.duplicates) == (5, 3, 2)
    assert sql("SELECT sum(requests) FROM rollup_minute") == [(3,)]


# ---------------------------------------------------------------------------
# Quarantine
# ---------------------------------------------------------------------------


def test_bad_lines_and_spans_are_quarantined_and_good_rows_kept(tmp_path, ingest, sql):
    huge_body = "x" * (20 * MIB)
    good_huge = span(60, attributes=[kv("gen_ai.request.model", "gpt-4o-mini"),
                                     kv("gen_ai.input.messages", huge_body)])
    lines = [
        line(span(10), span(11)),                                       # 1 good
        line(span(20))[:150] + b"\n",                                   # 2 truncated JSON
        b"\x00\x01 this is not json \xff\xfe at all\n",                 # 3 garbage
        b"[1, 2, 3]\n",                                                  # 4 JSON array
        line(span(50, name="a\x01b\x1b[31mred"))                        # 5 raw control chars
        .replace(b"\\u0001", b"\x01").replace(b"\\u001b", b"\x1b"),
        line(good_huge),                                                # 6 good, 20 MiB
        b'{"resourceSpans": [{"x": "' + b"y" * (20 * MIB) + b"\n",      # 7 20 MiB, truncated
        line(span(80), span(81, spanId=None), span(82)),                # 8 one span bad
        line(span(90, name="esc \u001b[2J ok")),                        # 9 escaped: valid
        b"{}\n",                                                         # 10 no resourceSpans
        b"null\n",                                                       # 11 not an object
        line(span(120, traceId="0" * 32), span(121, traceId="xyz")),    # 12 two bad ids
        b"\n",                                                           # 13 blank: skipped
        line(span(140)),                                                # 14 good
    ]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"".join(lines))
    report = ingest([path])
    assert report.errors == []
    good = {10, 11, 60, 80, 82, 90, 140}
    stored = {int(s, 16) for (s,) in sql("SELECT span_id FROM spans")}
    assert stored == good
    assert report.spans_stored == len(good)
    bad_lines = [2, 3, 4, 5, 7, 8, 10, 11, 12, 12]
    assert report.quarantined == len(bad_lines)
    rows = sql("SELECT source, line, reason FROM quarantine ORDER BY line")
    assert [(s, n) for s, n, _ in rows] == [(str(path), n) for n in bad_lines]
    reasons = dict(((n, r) for _, n, r in rows))
    assert "spanId" in reasons[8] and "spans[1]" in reasons[8]
    assert "object" in reasons[4] and "resourceSpans" in reasons[10]
    # the first reasons are reported as file:line: reason, in file order
    shown = report.quarantine_reasons
    assert shown and all(r.startswith(f"{path}:") for r in shown)
    assert [int(r[len(f"{path}:"):].split(":", 1)[0]) for r in shown] == bad_lines[: len(shown)]
    # a reason never carries a 20 MiB excerpt
    assert max(len(r) for _, _, r in rows) < 10_000
    # no all-NULL rows; the huge body was dropped, not stored
    assert sql("SELECT count(*) FROM spans WHERE name IS NULL AND provider IS NULL AND "
               "request_model IS NULL AND service IS NULL") == [(0,)]
    (attrs,) = sql("SELECT attributes FROM spans WHERE span_id = ?", [f"{60:016x}"])[0]
    assert len(attrs or "") < 1000
    assert sql("SELECT name FROM spans WHERE span_id = ?", [f"{90:016x}"]) == [
        ("esc \x1b[2J ok",)]  # stored as data; safe_text neutralises it on screen


def test_quarantined_flat_lines_too(tmp_path, ingest, sql):
    good = {"trace_id": "a" * 32, "span_id": "b" * 16, "start_time_unix_nano": T0,
            "duration_ms": 10.0, "provider": "openai", "request_model": "gpt-4o"}
    path = tmp_path / "flat.jsonl"
    path.write_text("\n".join([
        json.dumps(good),
        json.dumps(good | {"span_id": None}),
        json.dumps(good | {"span_id": "c" * 16, "start_time_unix_nano": None}),
        '{"trace_id": "' + "d" * 32,
        json.dumps(good | {"span_id": "e" * 16}),
    ]) + "\n")
    report = ingest([path])
    assert (report.spans_stored, report.quarantined) == (2, 3)
    assert sql("SELECT line FROM quarantine ORDER BY line") == [(2,), (3,), (4,)]
    assert sql("SELECT span_id FROM spans ORDER BY 1") == [("b" * 16,), ("e" * 16,)]


def test_truncated_single_object_file_keeps_complete_resource_spans(tmp_path, ingest, sql):
    full = {"resourceSpans": [request(span(1))["resourceSpans"][0],
                              request(span(2))["resourceSpans"][0]]}
    text = json.dumps(full, indent=2)
    path = tmp_path / "cut.json"
    path.write_text(text[: int(len(text) * 0.8)])
    report = ingest([path])
    assert report.spans_stored == 1 and report.quarantined == 1
    assert report.quarantine_reasons[0].startswith(f"{path}:1: ")


# ---------------------------------------------------------------------------
# Partial last lines and resuming
# ---------------------------------------------------------------------------


def test_partial_last_line_is_left_for_the_next_run(tmp_path, ingest, sql):
    full = [line(span(1), span(2)), line(span(3)), line(span(4), span(5)), line(span(6))]
    path = tmp_path / "live.jsonl"
    cut = len(full[2]) // 2
    path.write_bytes(full[0] + full[1] + full[2][:cut])  # the writer is mid-line
    first = ingest([path])
    assert (first.spans_stored, first.quarantined) == (3, 0)
    assert len(first.pending_partial_lines) == 1 and str(path) in first.pending_partial_lines[0]
    with path.open("ab") as f:  # the writer finishes the line and adds another
        f.write(full[2][cut:] + full[3] + b"this line is bad\n")
    second = ingest([path])
    assert (second.spans_read, second.spans_stored, second.duplicates) == (3, 3, 0)
    assert second.quarantined == 1 and second.pending_partial_lines == []
    assert sql("SELECT line FROM quarantine") == [(5,)]  # line numbers continue
    assert sql("SELECT span_id, source FROM spans ORDER BY span_id") == [
        (f"{n:016x}", f"{path}:{ln}") for n, ln in ((1, 1), (2, 1), (3, 2), (4, 3), (5, 3), (6, 4))]
    third = ingest([path])
    assert (third.spans_read, third.spans_stored) == (0, 0)


def test_complete_last_line_without_newline_is_not_read_twice(tmp_path, ingest, sql):
    path = tmp_path / "nonl.jsonl"
    path.write_bytes(line(span(1)) + line(span(2)).rstrip(b"\n"))
    assert ingest([path]).spans_stored == 2
    with path.open("ab") as f:
        f.write(b"\n" + line(span(3)))
    again = ingest([path])
    assert (again.spans_stored, again.quarantined, again.duplicates) == (1, 0, 0)
    assert sql("SELECT count(*) FROM spans") == [(3,)]


def test_rotated_file_at_the_same_path_is_read_from_the_start(tmp_path, ingest, sql):
    path = tmp_path / "rot.jsonl"
    path.write_bytes(line(span(1)) + line(span(2)))
    assert ingest([path]).spans_stored == 2
    os.rename(path, tmp_path / "rot.jsonl.1")
    path.write_bytes(line(span(7)) + line(span(8)) + line(span(9)))  # new file, same name
    again = ingest([path])
    assert (again.spans_read, again.spans_stored) == (3, 3)
    shrunk = line(span(11))  # copytruncate: the same inode, shorter and rewritten
    with path.open("r+b") as f:
        f.truncate(0)
        f.write(shrunk)
    assert ingest([path]).spans_stored == 1
    assert sql("SELECT count(*) FROM spans") == [(6,)]


# ---------------------------------------------------------------------------
# Unreadable files, the CLI's exit code and --json
# ---------------------------------------------------------------------------


def _bad_files(tmp_path: Path) -> list[Path]:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)
    truncated_gz = tmp_path / "cut.jsonl.gz"
    truncated_gz.write_bytes(gzip.compress(line(span(500)) * 50)[:-200])
    return [garbage, truncated_gz, tmp_path / "missing.jsonl"]


def test_unreadable_files_are_named_and_the_rest_ingests(tmp_path, capsys):
    good1 = tmp_path / "a.jsonl"
    good1.write_bytes(line(span(1), span(2)))
    good2 = tmp_path / "z.jsonl"
    good2.write_bytes(line(span(3)))
    bad = _bad_files(tmp_path)
    cache = tmp_path / "c.duckdb"
    code = main(["--cache", str(cache), "ingest", str(good1), *map(str, bad), str(good2),
                 "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    report = json.loads(out)
    assert report["spans_stored"] == 3
    assert report["files"] == 5
    assert "Traceback" not in err
    err_lines = err.strip().splitlines()
    for path in bad:
        assert sum(str(path) in ln for ln in err_lines) == 1, (path, err)
    assert all(ln.startswith("llmdeck: error: ") for ln in err_lines)


def test_all_good_exit_code_zero_and_human_summary(tmp_path, capsys):
    good = tmp_path / "a.jsonl"
    good.write_bytes(line(span(1)) + b"junk\n")
    assert main(["--cache", str(tmp_path / "c.duckdb"), "ingest", str(good)]) == 0
    out, err = capsys.readouterr()
    assert "1 stored" in out and "1 quarantined" in out and f"{good}:2" in out
    assert err == ""


def test_json_output_has_the_documented_fields(tmp_path, capsys):
    path = tmp_path / "a.jsonl"
    path.write_bytes(line(span(1), span(2, attributes=[kv("gen_ai.request.model", "nope-1")]))
                     + b"oops\n")
    assert main(["--cache", str(tmp_path / "c.duckdb"), "ingest", str(path), "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # one JSON object, one line
    data = json.loads(out)
    assert {k: data[k] for k in ("files", "spans_read", "spans_stored", "duplicates",
                                 "quarantined", "unpriced")} == {
        "files": 1, "spans_read": 2, "spans_stored": 2, "duplicates": 0, "quarantined": 1,
        "unpriced": 1}
    assert isinstance(data["seconds"], float) and data["seconds"] >= 0
    assert data["quarantine_reasons"] == [f"{path}:2: malformed JSON: " +
                                          data["quarantine_reasons"][0].split("JSON: ", 1)[1]]


def test_json_output_has_the_documented_keys_plus_errors_and_pending_lines(tmp_path, capsys):
    """The issue's keys, plus `errors` (unreadable files) and `pending_partial_lines`, which scripts need."""
    path = tmp_path / "a.jsonl"
    path.write_bytes(line(span(1)))
    main(["--cache", str(tmp_path / "c.duckdb"), "ingest", str(path), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"files", "spans_read", "spans_stored", "duplicates", "quarantined",
                         "unpriced", "seconds", "quarantine_reasons", "errors",
                         "pending_partial_lines",
                         # spans dated outside the expected range (tests/reliability/test_clock_skew.py)
                         "future", "past", "future_latest", "past_earliest", "past_before"}
    assert data["errors"] == [] and data["pending_partial_lines"] == []
