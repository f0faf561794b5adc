"""Batched PromQL: the query's shape, packing under the length limit, answers by part, refused
queries asked again per group, and how many requests one evaluation of N SLOs sends."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from connectors.http import SourceError
from connectors.prometheus import PromSeries, QueryResult
from console.config import SloSpec
from console.promql_batch import KEY_LABEL, Part, ask, pack, query_text, split_query
from console.promql_eval import evaluate_many
from tests.unit.test_promql_slo import AT, FakeApi, le_vector, vector


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_each_part_is_labelled_with_its_group_and_key_and_parts_are_joined_with_or() -> None:
    parts = [Part(0, "good|5m", 'sum(increase(g{job="gw"}[5m]))'),
             Part(3, "total|5m", "sum(increase(t[5m]))")]
    assert query_text(parts) == (
        'label_replace(sum(increase(g{job="gw"}[5m])), "llmdeck_q", "0|good|5m", "", "")'
        ' or label_replace(sum(increase(t[5m])), "llmdeck_q", "3|total|5m", "", "")')


def test_split_query_undoes_query_text_even_with_commas_quotes_and_or_inside_parts() -> None:
    parts = [Part(0, "a", 'sum(rate(x{a="1,2",b=~"or|and"}[5m])) or vector(0)'),
             Part(1, "b", 'label_replace(y, "z", "$1", "w", "(.*)")')]
    assert split_query(query_text(parts)) == [("0|a", parts[0].expr), ("1|b", parts[1].expr)]


def _group(g: int, n: int, size: int) -> list[Part]:
    overhead = len(Part(g, "k00", "").tagged())
    return [Part(g, f"k{i:02d}", "x" * (size - overhead)) for i in range(n)]


def test_groups_are_packed_whole_under_the_limit_and_split_only_when_over_it_alone() -> None:
    groups = {0: _group(0, 3, 100), 1: _group(1, 3, 100), 2: _group(2, 12, 100), 3: _group(3, 2, 100)}
    chunks = pack(groups, limit=700)
    # 0 and 1 fit together (6 x 100 + 5 x 4 = 620); 2 (12 x 100) alone is over: split in two; 3 after it
    assert [[p.group for p in c] for c in chunks] == [[0, 0, 0, 1, 1, 1], [2] * 6, [2] * 6, [3, 3]]
    assert all(sum(p.size() for p in c) + 4 * (len(c) - 1) <= 700 for c in chunks)
    assert [p for c in chunks for p in c] == [p for g in groups.values() for p in g]


class Refusing:
    """Prometheus-like: the whole query fails when one part is bad; counts requests."""

    def __init__(self, bad: str = "bad", error: SourceError | None = None) -> None:
        self.bad, self.requests = bad, 0
        self.error = error or SourceError("prom", "http", "bad_data: parse error", status=400)

    async def query(self, expr: str, at: datetime) -> QueryResult:
        self.requests += 1
        parts = split_query(expr)
        if any(self.bad in e for _, e in parts):
            raise self.error
        series = tuple(PromSeries(((KEY_LABEL, key), ("x", "1")), ((0.0, 1.0),))
                       for key, e in parts if "empty" not in e)
        warning = 'PromQL warning: metric might not be a counter: "gauge_thing"'
        return QueryResult("vector", series, (warning,))


def test_answers_come_back_by_part_without_the_key_label_and_an_empty_part_is_absent() -> None:
    api = Refusing()
    lane = {0: [Part(0, "a", "gauge_thing"), Part(0, "b", "empty")], 1: [Part(1, "a", "y")]}
    answers = run(ask(api, [lane], AT))
    assert api.requests == 1
    assert answers[0].of("a") == (PromSeries((("x", "1"),), ((0.0, 1.0),)),) and answers[0].of("b") == ()
    # the warning quotes a name only group 0 uses
    assert answers[0].warnings and answers[1].warnings == ()


def test_a_refused_query_of_several_groups_is_asked_again_one_group_at_a_time() -> None:
    api = Refusing()
    answers = run(ask(api, [{0: [Part(0, "a", "x")], 1: [Part(1, "a", "bad")], 2: [Part(2, "a", "z")]}], AT))
    assert api.requests == 1 + 3
    assert answers[0].of("a") and answers[2].of("a")
    assert isinstance(answers[1], SourceError) and answers[1].status == 400


def test_a_source_failure_is_every_group_s_error_and_not_retried_per_group() -> None:
    api = Refusing(bad="", error=SourceError("prom", "connect", "connection refused"))
    answers = run(ask(api, [{0: [Part(0, "a", "x")], 1: [Part(1, "a", "y")]}], AT))
    assert api.requests == 1 and all(isinstance(a, SourceError) and a.kind == "connect"
                                     for a in answers.values())


def _spec(name: str, **promql: Any) -> SloSpec:
    extra = {k: promql.pop(k) for k in ("kind", "threshold_ms") if k in promql}
    return SloSpec.model_validate({"name": name, "kind": extra.get("kind", "availability"), "objective": 0.99,
                                   "threshold_ms": extra.get("threshold_ms"),
                                   "promql": {"source": "prom", **promql}})


def _answer(expr: str) -> QueryResult:
    if expr.startswith("count by (le)"):
        return le_vector("0.25", "0.5", "+Inf")
    if "broken" in expr:
        raise SourceError("prom", "http", "bad_data: parse error", status=400)
    if "e_total" in expr:
        return vector(10)
    return vector(90) if ("good" in expr or 'le="0.5"' in expr) else vector(100)


def test_one_evaluation_of_n_slos_is_one_request_after_the_le_lookup() -> None:
    specs = [_spec(f"ratio {i}", good=f"good_{i}_total", total="t_total") for i in range(4)]
    specs += [_spec("errors", errors="e_total", total="t_total"),
              _spec("bucket", kind="latency", threshold_ms=500, histogram="lat_seconds")]
    api, cache = FakeApi(_answer), {}
    first = run(evaluate_many(api, specs, AT, cache))
    assert api.requests == 2 and len(api.exprs) == 1 + 4 * 16 + 16 + 16  # lookup, then every part at once
    assert [r.status.compliance for r in first] == [0.9] * 4 + [0.9, 0.9]  # type: ignore[union-attr]
    api.requests = 0
    run(evaluate_many(api, specs, AT, cache))
    assert api.requests == 1


def test_quantile_slos_share_a_query_of_their_own() -> None:
    specs = [_spec("ratio", good="good_total", total="t_total"),
             *(_spec(f"q{i}", kind="ttft", threshold_ms=500, histogram=f"h{i}_seconds", method="quantile")
               for i in range(3))]
    api = FakeApi(_answer)
    run(evaluate_many(api, specs, AT))
    assert api.requests == 2


def test_a_refused_slo_is_asked_alone_on_later_polls_until_it_evaluates() -> None:
    specs = [_spec("a", good="good_total", total="t_total"), _spec("b", good="broken_total", total="t_total"),
             _spec("c", good="good_total", total="t_total")]
    api, isolated = FakeApi(_answer), set()
    a, b, c = run(evaluate_many(api, specs, AT, None, isolated))
    assert a.status is not None and c.status is not None
    assert b.error == "prom: HTTP 400: bad_data: parse error"
    assert api.requests == 1 + 3 and isolated == {"b"}
    api.requests = 0
    run(evaluate_many(api, specs, AT, None, isolated))
    assert api.requests == 2 and isolated == {"b"}  # a and c together, b alone
    fixed = [specs[0], _spec("b", good="good_total", total="t_total"), specs[2]]
    api.requests = 0
    run(evaluate_many(api, fixed, AT, None, isolated))
    assert api.requests == 2 and isolated == set()


@pytest.mark.parametrize("status", [400, 422])
def test_a_refused_single_slo_keeps_its_own_error_type(status: int) -> None:
    error = SourceError("prom", "http", f"{status}: error when executing query", status=status)
    (result,) = run(evaluate_many(Refusing(bad="", error=error), [_spec("a", good="g", total="t")], AT))
    assert result.status is None and result.error_kind == "http" and str(status) in (result.error or "")
