"""What `x` on an incident prefills, and in which order the picker lists the desk's actions.

Pure functions of `console.runbook_actions` over the built-in runbooks (the real catalog)
and the demo's config: an incident's SLOs and budgets name a provider/model/tenant, the
labels of outside alerts on its timeline do too, and the action the scope fills best comes
first, so the demo's mitigation is `x` then Enter. `parse_params` is the `:runbook` syntax.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from console.action_checks import ActionMode
from console.action_preview import (
    ActionAsk,
    ActionPreview,
    ParamsError,
    params_text,
    parse_params,
)
from console.demo.config import demo_config
from console.incidents import Incident, TimelineEntry
from console.runbook_actions import alert_scope, incident_scope, prefill, ranked
from console.runbook_files import load_catalog

AT = datetime(2026, 11, 24, 12, 20)


def incident(*causes: str) -> Incident:
    return Incident(id="INC-1", title="t", severity="sev2", state="open", owner="alice", opened_at=AT,
                    acknowledged_at=None, mitigated_at=None, resolved_at=None, causes=causes,
                    auto=True, updated_at=AT)


def firing(seq: int, labels: dict[str, str]) -> TimelineEntry:
    return TimelineEntry("INC-1", seq, AT, "alert_firing", "llmdeck", "x firing",
                         json.dumps({"labels": labels}))


def test_an_slo_cause_names_its_provider_and_a_budget_its_tenant(tmp_path: Path) -> None:
    config = demo_config(tmp_path / "demo.duckdb")
    slo = next(s for s in config.slos if s.filter.provider)
    scope = incident_scope(incident(f"slo:{slo.name}", "alert:am/Other"), config)
    assert scope["provider"] == slo.filter.provider
    tenant_budget = next((b for b in config.budgets if b.scope == "tenant"), None)
    if tenant_budget is not None:
        assert incident_scope(incident(f"budget:{tenant_budget.name}"), config)["tenant"] == \
            tenant_budget.match


def test_alert_labels_on_the_timeline_name_the_scope_first_firing_first() -> None:
    timeline = [firing(2, {"provider": "anthropic", "slo": "anthropic availability"}),
                firing(3, {"provider": "openai", "team": "acme-corp"}),
                TimelineEntry("INC-1", 4, AT, "note", "bob", "[@click=app.quit]", "{}")]
    assert alert_scope(timeline) == {"provider": "anthropic", "tenant": "acme-corp"}


def test_switch_provider_comes_first_for_a_provider_outage_with_its_params_prefilled() -> None:
    specs = load_catalog(None)
    scope = {"provider": "anthropic", "traffic_model": "claude-sonnet-4-5", "fallback": "gpt-4o-mini"}
    first, params = ranked(list(specs.values()), scope)[0]
    assert first.name == "switch-provider"
    assert dict(params) == {"provider": "anthropic", "fallback_models": "gpt-4o-mini"}
    # an action that cannot take the provider gets the busiest group seen in the traffic
    rollback = specs["rollback-model"]
    assert dict(prefill(rollback, scope)) == {"model_name": "claude-sonnet-4-5"}
    # a tenant scope fills throttle-team's team_id; no secret or fixed param is ever filled
    team = dict(prefill(specs["throttle-team"], {"tenant": "acme-corp"}))
    assert team == {"team_id": "acme-corp"}
    for spec in specs.values():
        names = {p.name for p in spec.params if p.secret or p.fixed}
        assert not names & {k for k, _ in prefill(spec, {**scope, "tenant": "t", "model": "m"})}


def test_params_parse_with_quotes_and_say_which_word_is_wrong() -> None:
    pairs = parse_params('team_id=acme-corp "note=two words" tpm_limit=10')
    assert pairs == (("team_id", "acme-corp"), ("note", "two words"), ("tpm_limit", "10"))
    assert parse_params(params_text(pairs)) == pairs
    with pytest.raises(ParamsError, match="'tpm_limit': write it as name=value"):
        parse_params("team_id=a tpm_limit")
    with pytest.raises(ParamsError, match="parameters: No closing quotation"):
        parse_params('team_id="a')


def test_enter_alone_never_confirms_and_a_dangerous_action_needs_its_target() -> None:
    mode = ActionMode(False, "", False, "admin", "alice", "demo")
    safe = ActionPreview(ActionAsk("throttle-team", ()), mode, target="acme-corp", key=3)
    assert not safe.confirms("") and not safe.confirms("   ") and not safe.confirms("no")
    assert safe.confirms("y") and safe.confirms("yes") and safe.confirms("acme-corp")
    dangerous = ActionPreview(ActionAsk("block-team", ()), mode, target="acme-corp", dangerous=True,
                              key=4)
    assert not dangerous.confirms("y") and not dangerous.confirms("yes")
    assert dangerous.confirms("acme-corp") and dangerous.confirm_word == "acme-corp"
    read_only = ActionPreview(ActionAsk("block-team", ()), ActionMode(True, "prod without --write",
                              False, "admin", "alice", "prod"), target="acme-corp", key=5)
    assert read_only.ready and not read_only.sendable and not read_only.confirms("acme-corp")
    assert not ActionPreview(ActionAsk("x", ()), mode, problem="unknown action").confirms("y")
