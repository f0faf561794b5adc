"""Many PromQL expressions in few instant queries, each labelled so that `or` keeps it apart.

A part `E` of group `G` with key `K` is sent as `label_replace(E, "llmdeck_q", "G|K", "", "")`
and the parts are joined with `or`. `or` joins on label sets, and every part's series
carry their own `llmdeck_q`, so all of them come back; a part without series (`sum` of
nothing: no traffic) is absent from the answer, never 0. Parts are packed into queries
of at most `MAX_QUERY_CHARS` (VictoriaMetrics refuses queries over 16 KiB by default;
the client POSTs a query too long for a URL), a group's parts together when they fit.
A query of several groups that is refused as a bad query (HTTP 400/422: Prometheus
rejects the whole query for one bad part) is asked again one group at a time, so only
the group at fault fails.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from connectors.http import SourceError
from connectors.prometheus import PromSeries, QueryResult

KEY_LABEL = "llmdeck_q"
"""The label that carries each part's `group|key` in a batched answer."""
MAX_QUERY_CHARS = 12_000
"""Longest batched query text (VictoriaMetrics' default `-search.maxQueryLen` is 16 KiB)."""
QUERY_ERROR_STATUSES = frozenset({400, 413, 414, 422})
"""Statuses that blame the query rather than the source: its groups are asked one by one."""
_SEPARATOR = len(" or ")
_PART = re.compile(r'label_replace\((.*?), "' + KEY_LABEL + r'", "([^"]*)", "", ""\)(?: or |$)', re.S)


class InstantApi(Protocol):
    """What batching needs of a Prometheus client."""

    async def query(self, expr: str, at: datetime) -> QueryResult: ...


@dataclass(frozen=True)
class Part:
    """One expression of one group (an SLO), named by a key unique within the group."""

    group: int
    key: str
    expr: str

    def tagged(self) -> str:
        """The expression with its `group|key` label added."""
        return f'label_replace({self.expr}, "{KEY_LABEL}", "{self.group}|{self.key}", "", "")'

    def size(self) -> int:
        """Length of `tagged()`."""
        return len(self.tagged())


@dataclass(frozen=True)
class Answer:
    """What one group's parts returned: series by key (label removed) and the API's warnings."""

    series: Mapping[str, tuple[PromSeries, ...]]
    warnings: tuple[str, ...] = ()

    def of(self, key: str) -> tuple[PromSeries, ...]:
        """The series of one part; empty when it had none."""
        return self.series.get(key, ())


def query_text(parts: Sequence[Part]) -> str:
    """The one query that asks every part."""
    return " or ".join(p.tagged() for p in parts)


def split_query(text: str) -> list[tuple[str, str]]:
    """(`group|key`, expression) of each part of a batched query: `query_text` undone (for fakes)."""
    return [(key, expr) for expr, key in _PART.findall(text)]


def pack(groups: Mapping[int, Sequence[Part]], limit: int = MAX_QUERY_CHARS) -> list[list[Part]]:
    """The groups' parts in queries under `limit`; a group is split only when it alone is over it."""
    chunks: list[list[Part]] = []
    current: list[Part] = []
    size = 0
    for parts in groups.values():
        sizes = [p.size() for p in parts]
        whole = sum(sizes) + _SEPARATOR * (len(parts) - 1)
        if current and (size + _SEPARATOR + whole > limit or whole > limit):
            chunks.append(current)
            current, size = [], 0
        for part, n in zip(parts, sizes, strict=True):
            if current and size + _SEPARATOR + n > limit:
                chunks.append(current)
                current, size = [], 0
            size += n + (_SEPARATOR if current else 0)
            current.append(part)
    if current:
        chunks.append(current)
    return chunks


def blames_query(error: BaseException) -> bool:
    """True when the server refused the query itself (bad PromQL, execution error, too long)."""
    return isinstance(error, SourceError) and error.kind == "http" and error.status in QUERY_ERROR_STATUSES


async def ask(client: InstantApi, lanes: Sequence[Mapping[int, Sequence[Part]]], at: datetime,
              limit: int = MAX_QUERY_CHARS) -> dict[int, Answer | Exception]:
    """Every group's answer or the error that stopped it; each lane is packed into its own queries.

    A refused query of several groups is retried once per group, alone.
    """
    parts_of = {g: parts for lane in lanes for g, parts in lane.items()}
    chunks = [chunk for lane in lanes for chunk in pack(lane, limit)]
    outcomes = await asyncio.gather(*(client.query(query_text(c), at) for c in chunks),
                                    return_exceptions=True)
    series: dict[int, dict[str, list[PromSeries]]] = {g: {} for g in parts_of}
    warnings: dict[int, list[str]] = {g: [] for g in parts_of}
    errors: dict[int, Exception] = {}
    retry: list[int] = []
    for chunk, outcome in zip(chunks, outcomes, strict=True):
        groups = list(dict.fromkeys(p.group for p in chunk))
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, Exception):
                raise outcome
            if len(groups) > 1 and blames_query(outcome):
                retry += [g for g in groups if g not in retry]
            else:
                for g in groups:
                    errors.setdefault(g, outcome)
            continue
        for s in outcome.series:
            group, _, key = s.label(KEY_LABEL).partition("|")
            if group.isdigit() and int(group) in series:
                labels = tuple(kv for kv in s.labels if kv[0] != KEY_LABEL)
                series[int(group)].setdefault(key, []).append(PromSeries(labels, s.points))
        for warning in outcome.warnings:
            for g in _blamed(warning, groups, parts_of):
                warnings[g].append(warning)
    answers: dict[int, Answer | Exception] = {
        g: errors[g] if g in errors else Answer({k: tuple(v) for k, v in series[g].items()},
                                                 tuple(dict.fromkeys(warnings[g])))
        for g in parts_of if g not in retry}
    if retry:
        answers |= await ask(client, [{g: parts_of[g]} for g in retry], at, limit)
    return {g: answers[g] for g in parts_of}


def _blamed(warning: str, groups: Sequence[int], parts_of: Mapping[int, Sequence[Part]]) -> list[int]:
    """The groups a warning is about: those whose PromQL holds a name it quotes, else all of them."""
    quoted = [q for q in re.findall(r'"([^"]+)"', warning) if q != KEY_LABEL]
    named = [g for g in groups if any(q in p.expr for q in quoted for p in parts_of[g])]
    return named or list(groups)
