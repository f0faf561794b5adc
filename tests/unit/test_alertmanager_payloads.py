"""Alertmanager v2 JSON -> ActiveAlert / Silence, from bodies recorded off a real Alertmanager 0.25."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from connectors.alertmanager_payloads import (
    PayloadError,
    matcher_filter,
    matcher_json,
    parse_alerts,
    parse_silence_id,
    parse_silences,
)
from console.alerts import SilenceMatcher

# Recorded from prometheus-alertmanager 0.25 fed by Prometheus 2.42 (rule AlwaysFiring, for: 0s),
# after a silence `alertname!=x` was created.
RECORDED_ALERTS = json.loads(r"""
[{"annotations":{"summary":"always firing for tests"},"endsAt":"2026-12-04T16:35:58.320Z",
  "fingerprint":"1919ce7f2244354c","receivers":[{"name":"null"}],"startsAt":"2026-12-04T16:34:34.320Z",
  "status":{"inhibitedBy":[],"silencedBy":["5b6e5d56-e3a4-4de4-a0df-211b891fd351"],"state":"suppressed"},
  "updatedAt":"2026-12-04T16:35:54.325Z",
  "generatorURL":"http://vm:19090/graph?g0.expr=vector%281%29\u0026g0.tab=1",
  "labels":{"alertname":"AlwaysFiring","severity":"page","team":"llm"}}]
""")

RECORDED_SILENCES = json.loads(r"""
[{"id":"5b6e5d56-e3a4-4de4-a0df-211b891fd351","status":{"state":"active"},"updatedAt":"2026-12-04T16:34:50.294Z",
  "comment":"test","createdBy":"me","endsAt":"2026-12-04T18:34:49.826Z",
  "matchers":[{"isEqual":false,"isRegex":false,"name":"alertname","value":"x"}],
  "startsAt":"2026-12-04T16:34:50.294Z"},
 {"id":"1816e5ab-a136-4ff4-8146-37393ec4191a","status":{"state":"expired"},"updatedAt":"2026-12-04T16:34:49.994Z",
  "comment":"test","createdBy":"me","endsAt":"2026-12-04T16:34:49.994Z",
  "matchers":[{"isEqual":true,"isRegex":false,"name":"alertname","value":"AlwaysFiring"}],
  "startsAt":"2026-12-04T16:34:49.922Z"}]
""")


def test_recorded_suppressed_alert_maps_to_an_active_alert_row() -> None:
    (alert,) = parse_alerts("am", RECORDED_ALERTS)
    assert alert.source == "am" and alert.origin == "alertmanager"
    assert alert.name == "AlwaysFiring" and alert.severity == "page"
    assert alert.state == "suppressed" and not alert.firing
    assert alert.silenced_by == ("5b6e5d56-e3a4-4de4-a0df-211b891fd351",)
    assert alert.inhibited_by == ()
    assert alert.labels == (("alertname", "AlwaysFiring"), ("severity", "page"), ("team", "llm"))
    assert alert.summary == "always firing for tests"
    assert alert.started == datetime(2026, 12, 4, 16, 34, 34, 320000)
    assert alert.fingerprint == "1919ce7f2244354c"


def test_active_alert_without_summary_takes_the_description() -> None:
    body = [dict(RECORDED_ALERTS[0], annotations={"description": "why"},
                 status={"state": "active", "silencedBy": [], "inhibitedBy": ["abc"]})]
    (alert,) = parse_alerts("am", body)
    assert alert.firing and alert.summary == "why" and alert.inhibited_by == ("abc",)


def test_missing_silenced_by_lists_read_as_empty() -> None:
    body = [dict(RECORDED_ALERTS[0], status={"state": "unprocessed"})]
    (alert,) = parse_alerts("am", body)
    assert alert.state == "unprocessed" and alert.silenced_by == () and alert.inhibited_by == ()


def test_recorded_silences_map_with_their_matchers_and_states() -> None:
    active, expired = parse_silences("am", RECORDED_SILENCES)
    assert active.state == "active" and expired.state == "expired"
    assert active.matchers == (SilenceMatcher("alertname", "x", is_regex=False, is_equal=False),)
    assert str(active.matchers[0]) == "alertname!=x"
    assert active.ends == datetime(2026, 12, 4, 18, 34, 49, 826000)
    assert active.created_by == "me" and active.comment == "test"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"alerts": []}, "alerts: expected a list, got dict"),
        (["x"], "alerts[0]: expected an object, got str"),
        ([{"labels": {}, "fingerprint": "f"}], "alerts[0].status: expected an object, got null"),
        ([{"status": {"state": "firing"}, "fingerprint": "f"}], "alerts[0].status.state: expected active"),
        ([{"status": {"state": "active"}, "labels": {"a": 1}, "fingerprint": "f"}],
         "alerts[0].labels: expected string values, got int"),
        ([{"status": {"state": "active", "silencedBy": "id"}, "fingerprint": "f"}],
         "alerts[0].status.silencedBy: expected a list, got str"),
        ([{"status": {"state": "active"}}], "alerts[0].fingerprint: expected a string, got null"),
        ([{"status": {"state": "active"}, "fingerprint": "f", "startsAt": "yesterday"}],
         "alerts[0].startsAt: expected an RFC 3339 time"),
    ],
)
def test_malformed_alert_bodies_say_where_and_what_was_expected(body: object, where: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse_alerts("am", body)
    assert str(info.value).startswith(where)


def test_payload_text_never_reaches_the_error_message() -> None:
    hostile = "\x1b]52;c;ZXZpbA==\x07"
    with pytest.raises(PayloadError) as info:
        parse_alerts("am", [{"status": {"state": hostile}, "fingerprint": "f"}])
    assert hostile not in str(info.value) and "\x1b" not in str(info.value)


def test_silence_with_a_bad_matcher_names_its_index() -> None:
    body = [dict(RECORDED_SILENCES[0], matchers=[{"name": "a", "value": "b", "isRegex": "no"}])]
    with pytest.raises(PayloadError, match=r"silences\[0\]\.matchers\[0\]\.isRegex: expected true or false"):
        parse_silences("am", body)


def test_silence_id_answer_must_carry_an_id() -> None:
    assert parse_silence_id({"silenceID": "abc"}) == "abc"
    with pytest.raises(PayloadError, match="response.silenceID"):
        parse_silence_id({"silenceId": "abc"})


def test_matchers_serialise_as_the_api_and_the_alert_filter_take_them() -> None:
    m = SilenceMatcher("x", 'a"b\\c', is_regex=True, is_equal=False)
    assert matcher_json(m) == {"name": "x", "value": 'a"b\\c', "isRegex": True, "isEqual": False}
    assert matcher_filter(m) == 'x!~"a\\"b\\\\c"'
    assert matcher_filter(SilenceMatcher("alertname", "Up")) == 'alertname="Up"'
