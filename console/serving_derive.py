"""From two successive scrapes of one endpoint to a `ServingSnapshot` (which server, what it says)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal, Protocol

from console.serving import ServingKind, ServingSnapshot
from console.serving_litellm import litellm_budgets, litellm_deployments, litellm_models
from console.serving_math import Metrics, Reads, SampleLike, resets
from console.serving_vllm import vllm_models

MAX_ROWS = 500
"""At most this many rows per table (label cardinality on a hostile or misconfigured endpoint)."""
ConfiguredKind = Literal["auto", "vllm", "litellm"]
_PREFIXES: dict[ServingKind, str] = {"vllm": "vllm:", "litellm": "litellm_"}


class ScrapeLike(Protocol):
    """One read (connectors.scrape.Scrape has this shape)."""

    @property
    def at(self) -> datetime: ...
    @property
    def samples(self) -> Sequence[SampleLike]: ...


def detect_kind(samples: Sequence[SampleLike]) -> ServingKind:
    """vllm or litellm by which metric-name prefix has more samples; unknown when neither has any."""
    counts = {kind: sum(1 for s in samples if s.name.startswith(prefix))
              for kind, prefix in _PREFIXES.items()}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else "unknown"


def derive_snapshot(source: str, prev: ScrapeLike | None, cur: ScrapeLike,
                    kind: ConfiguredKind = "auto") -> ServingSnapshot:
    """The snapshot of `cur`, with rates over the time since `prev` (None: the first read)."""
    notes: list[str] = []
    found = detect_kind(cur.samples)
    chosen: ServingKind = found if kind == "auto" else kind
    if found == "unknown" or (kind != "auto" and found != kind):
        what = {"auto": "vLLM (vllm:*) or LiteLLM (litellm_*)", "vllm": "vLLM (vllm:*)",
                "litellm": "LiteLLM (litellm_*)"}[kind]
        hint = ' (a LiteLLM proxy needs litellm_settings.callbacks: ["prometheus"])' if kind != "vllm" else ""
        notes.append(f"no {what} metrics among the {len(cur.samples)} series read{hint}")
    window = None if prev is None else (cur.at - prev.at).total_seconds()
    if window is not None and window <= 0:
        notes.append("the clock went backwards since the previous read: rates start again")
        window = None
    before = Metrics(prev.samples) if prev is not None and window is not None else None
    reads = Reads(before, Metrics(cur.samples), window)
    if window is None:
        notes.append("first read: rates and percentiles show after the next one")
    prefix = _PREFIXES.get(chosen)
    if prefix:
        counters = [n for n in reads.cur.names if n.startswith(prefix) and n.endswith(("_total", "_bucket"))]
        if reset := resets(reads.prev, reads.cur, counters):
            names = ", ".join(sorted(reset)[:5])
            notes.append(f"counters went down since the previous read (a restart?): {names};"
                         " their new values count as the increase")
    models, deployments, budgets = [], [], []
    if chosen == "vllm":
        models = vllm_models(reads, notes)
    elif chosen == "litellm":
        models, deployments = litellm_models(reads), litellm_deployments(reads)
        budgets = litellm_budgets(reads.cur)
    for what, rows in (("models", models), ("deployments", deployments), ("budgets", budgets)):
        if len(rows) > MAX_ROWS:
            notes.append(f"{len(rows)} {what}: showing the first {MAX_ROWS}")
    return ServingSnapshot(source=source, kind=chosen, at=cur.at, window_s=window,
                           models=tuple(models[:MAX_ROWS]), deployments=tuple(deployments[:MAX_ROWS]),
                           budgets=tuple(budgets[:MAX_ROWS]), notes=tuple(notes), series=len(cur.samples))
