"""`http.request` against a real loopback server that records every request.

What is checked: templating (path values URL-quoted as one segment, body values
JSON-encoded, typed values kept), injection attempts through path and body, secret headers
sent but masked in the plan text and never in errors, the read / desired / verify /
restore cycle, error statuses as SendError with the status, a timeout as an unsure
SendError, a refused connection as a sure one, and options checked where they are written.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from console.action_types import ActionError, PlannedRequest, SendError
from console.adapters import AdapterContext, build, kinds
from console.adapters.http_action import HttpRequestAdapter
from console.config import Config
from console.config_actions import ActionsSettings, HttpTarget
from tests.faults.http_action_server import HttpActionServer

SECRET = "regkey-9f2c41d07be84a13"
DOC = "/api/prompts/greeting"
LABEL_MOVE = {
    "method": "PATCH", "path": "/api/prompts/$prompt", "body": {"labels": {"production": "$version"}},
    "read_path": "/api/prompts/$prompt", "read_pointer": "/labels/production", "target": "$prompt",
}
T = TypeVar("T")


@pytest.fixture
def server() -> Iterator[HttpActionServer]:
    with HttpActionServer() as s:
        s.docs[DOC] = {"labels": {"production": 3, "staging": 4}}
        yield s


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_KEY", SECRET)


def config(*targets: HttpTarget) -> Config:
    return Config(actions=ActionsSettings(http=list(targets)))


def registry(url: str, **kw: Any) -> HttpTarget:
    kw.setdefault("timeout_seconds", 10)
    return HttpTarget(name="registry", url=url, headers={"X-Team": "ops"},
                      header_refs={"X-Api-Key": "env:REGISTRY_KEY"}, **kw)


def adapter(server: HttpActionServer, options: dict[str, Any], **kw: Any) -> HttpRequestAdapter:
    built = build("http.request", AdapterContext(config=config(registry(server.url, **kw)), gateway="",
                                                 options=options))
    assert isinstance(built, HttpRequestAdapter)
    return built


def run(a: HttpRequestAdapter, work: Callable[[], Awaitable[T]]) -> T:
    """One event loop for the adapter's whole life (its client's pool belongs to that loop)."""
    async def go() -> T:
        try:
            return await work()
        finally:
            await a.aclose()

    return asyncio.run(go())


async def send(a: HttpRequestAdapter, request: PlannedRequest) -> str:
    return await a.send(request, idempotency_key="key-1", changed_by="alice")


def test_registered() -> None:
    assert "http.request" in kinds()


def test_label_move_plans_sends_once_verifies_and_restores(server: HttpActionServer) -> None:
    a = adapter(server, LABEL_MOVE)
    params = {"prompt": "greeting", "version": 5}

    async def flow() -> tuple[Any, ...]:
        before = await a.read(params)
        desired = a.desired(params, before)
        (request,) = a.requests(params, before, desired)
        answer = await send(a, request)
        return before, desired, request, answer, await a.read(params)

    before, desired, request, answer, after = run(a, flow)
    assert a.readable and a.target(params) == "greeting"
    assert before == {"/labels/production": 3} and desired == {"/labels/production": 5}
    assert (request.method, request.path, request.body) == ("PATCH", DOC, {"labels": {"production": 5}})
    assert after == desired
    assert server.docs[DOC] == {"labels": {"production": 5, "staging": 4}}
    (sent,) = server.mutating()
    assert (sent.method, sent.path, sent.json()) == ("PATCH", DOC, {"labels": {"production": 5}})
    assert sent.headers["idempotency-key"] == "key-1" and sent.headers["x-changed-by"] == "alice"
    assert sent.headers["x-api-key"] == SECRET and sent.headers["x-team"] == "ops"
    assert answer.startswith("registry: HTTP 200") and SECRET not in answer
    assert a.restore_params(params, before) == {"prompt": "greeting", "version": 3}


def test_plan_text_is_the_exact_request_with_secrets_masked(server: HttpActionServer) -> None:
    a = adapter(server, LABEL_MOVE)
    (request,) = a.requests({"prompt": "greeting", "version": 5}, {}, {})
    lines = request.text.splitlines()
    assert lines[0] == f"PATCH {server.url}{DOC}"
    lower = [line.lower() for line in lines]
    assert "x-api-key: ***" in lower and "x-team: ops" in lower
    assert "idempotency-key: <idempotency-key>" in lower and "x-changed-by: <operator>" in lower
    assert json.loads(request.text.split("\n\n", 1)[1]) == {"labels": {"production": 5}}
    assert SECRET not in request.text and server.requests == []
    asyncio.run(a.aclose())


@pytest.mark.parametrize(("value", "wire"), [
    ("../admin", "..%2Fadmin"),
    ("a/b?c=d&e#f", "a%2Fb%3Fc%3Dd%26e%23f"),
    ("hello world", "hello%20world"),
    ("100%", "100%25"),
    ("grüße", "gr%C3%BC%C3%9Fe"),
    ("x\r\nX-Evil: 1", "x%0D%0AX-Evil%3A%201"),
])
def test_path_values_are_quoted_as_one_segment(server: HttpActionServer, value: str, wire: str) -> None:
    a = adapter(server, {"method": "PUT", "path": "/api/flags/$flag/state?env=$env",
                         "body": {"on": "$on"}})
    (request,) = a.requests({"flag": value, "env": "prod&admin=1", "on": True}, {}, {})
    assert request.path == f"/api/flags/{wire}/state?env=prod%26admin%3D1"
    run(a, lambda: send(a, request))
    (sent,) = server.mutating()
    assert sent.path == request.path and sent.json() == {"on": True}


@pytest.mark.parametrize("value", ["..", ".", ""])
def test_values_that_would_change_the_path_shape_are_refused(server: HttpActionServer, value: str) -> None:
    a = adapter(server, {"path": "/api/flags/$flag"})
    with pytest.raises(ActionError, match=f"options.path: parameter 'flag' is {value!r}, which cannot fill"):
        a.requests({"flag": value}, {}, {})
    asyncio.run(a.aclose())


def test_json_text_body_values_are_json_encoded(server: HttpActionServer) -> None:
    a = adapter(server, {"path": "/api/flags", "body": '{"flag": $flag, "on": $on, "ttl": $ttl}'})
    evil = '", "admin": true, "x": "'
    (request,) = a.requests({"flag": evil, "on": False, "ttl": 900}, {}, {})
    assert request.body == {"flag": evil, "on": False, "ttl": 900}
    run(a, lambda: send(a, request))
    (sent,) = server.mutating()
    assert sent.json() == {"flag": evil, "on": False, "ttl": 900} and "admin" not in sent.json()


def test_table_body_keeps_types_and_never_parses_values(server: HttpActionServer) -> None:
    a = adapter(server, {"path": "/api/flags", "body": {
        "name": "$flag", "note": "set by runbook for $flag", "on": "$on", "tags": ["$tag", "fixed"],
        "rollout": "$pct", "rules": "$rules"}})
    params = {"flag": '"}{"admin":true', "on": True, "tag": "$other", "pct": 12.5,
              "rules": {"segment": "beta"}, "other": "never substituted twice"}
    (request,) = a.requests(params, {}, {})
    assert request.body == {"name": '"}{"admin":true', "note": 'set by runbook for "}{"admin":true',
                            "on": True, "tags": ["$other", "fixed"], "rollout": 12.5,
                            "rules": {"segment": "beta"}}
    asyncio.run(a.aclose())


def test_a_quoted_placeholder_in_json_text_is_named(server: HttpActionServer) -> None:
    a = adapter(server, {"path": "/api/flags", "body": '{"flag": "$flag"}'})
    with pytest.raises(ActionError, match=r'options.body: not JSON once filled .* not "\$name"'):
        a.requests({"flag": "beta"}, {}, {})
    asyncio.run(a.aclose())


@pytest.mark.parametrize(("status", "answer", "expected"), [
    (409, {"detail": "label production is locked"}, "registry: HTTP 409: label production is locked"),
    (500, {"error": f"bad key {SECRET}"}, "registry: HTTP 500: bad key ***"),
    (401, {"error": "unauthorized"}, "registry: HTTP 401: unauthorized; check the credentials"),
    (422, {"detail": [{"loc": ["body", "version"], "msg": "not an int"}]}, "registry: HTTP 422"),
])
def test_error_statuses_are_send_errors_with_the_status(server: HttpActionServer, status: int, answer: Any,
                                                        expected: str) -> None:
    a = adapter(server, LABEL_MOVE)
    server.fail_next(status, answer)
    (request,) = a.requests({"prompt": "greeting", "version": 5}, {}, {})
    with pytest.raises(SendError) as caught:
        run(a, lambda: send(a, request))
    assert caught.value.status == status and caught.value.unsure is False
    assert str(caught.value).startswith(expected) and SECRET not in str(caught.value)
    assert len(server.mutating()) == 1, "a mutating request is never retried"
    assert server.docs[DOC]["labels"]["production"] == 3


def test_a_timeout_is_an_unsure_send_error(server: HttpActionServer) -> None:
    a = adapter(server, LABEL_MOVE, timeout_seconds=0.5)
    server.hang_next()
    (request,) = a.requests({"prompt": "greeting", "version": 5}, {}, {})
    with pytest.raises(SendError) as caught:
        run(a, lambda: send(a, request))
    assert caught.value.unsure is True and caught.value.status is None
    assert str(caught.value).startswith("registry: timeout")
    assert len(server.mutating()) == 1


def test_a_refused_connection_is_a_sure_send_error() -> None:
    with HttpActionServer() as gone:
        url = gone.url
    built = build("http.request", AdapterContext(config=config(registry(url)), gateway="",
                                                 options={"path": "/api/flags", "body": {"on": True}}))
    assert isinstance(built, HttpRequestAdapter)
    (request,) = built.requests({}, {}, {})
    with pytest.raises(SendError) as caught:
        run(built, lambda: send(built, request))
    assert caught.value.unsure is False and "cannot connect" in str(caught.value)


def test_a_non_ascii_operator_name_still_sends(server: HttpActionServer) -> None:
    a = adapter(server, {"path": "/api/flags", "body": {"on": True}})
    (request,) = a.requests({}, {}, {})
    run(a, lambda: a.send(request, idempotency_key="k", changed_by="jürgen\r\nX-Evil: 1"))
    (sent,) = server.mutating()
    assert sent.headers["x-changed-by"] == "j\\xfcrgenX-Evil: 1" and "x-evil" not in sent.headers


def test_send_refuses_anything_but_a_mutating_action_request(server: HttpActionServer) -> None:
    for forged in (PlannedRequest(method="GET", text="", path=DOC),
                   PlannedRequest(method="POST", text="", path="http://elsewhere/x"),
                   PlannedRequest(method="EXEC", text="", argv=("rm", "-rf", "/"))):
        a = adapter(server, LABEL_MOVE)
        with pytest.raises(SendError, match="not an HTTP action request"):
            run(a, lambda a=a, forged=forged: send(a, forged))
    assert server.requests == []


def test_without_read_path_it_cannot_diff_or_verify(server: HttpActionServer) -> None:
    a = adapter(server, {"path": "/api/page", "body": {"summary": "$text"}})
    assert a.readable is False and a.target({}) == "registry"
    assert run(a, lambda: a.read({"text": "x"})) == {}
    assert a.desired({"text": "x"}, {}) == {} and a.restore_params({"text": "x"}, {}) is None
    assert server.requests == []


def test_expect_option_and_json_text_body(server: HttpActionServer) -> None:
    a = adapter(server, {"method": "PATCH", "path": DOC, "body": '{"labels": {"production": $v}}',
                         "read_path": DOC, "read_pointer": "/labels/production", "expect": "$v"})
    before = {"/labels/production": 3}
    assert a.desired({"v": 7}, before) == {"/labels/production": 7}
    assert a.restore_params({"v": 7}, before) == {"v": 3}
    asyncio.run(a.aclose())


def test_a_read_secret_is_masked_and_not_restorable(server: HttpActionServer) -> None:
    server.docs["/api/hooks/pager"] = {"config": {"url": "https://hooks.example/x?token=s3cr3t-v4lue-123"}}
    a = adapter(server, {"method": "PATCH", "path": "/api/hooks/$hook", "body": {"config": {"url": "$url"}},
                         "read_path": "/api/hooks/$hook", "read_pointer": "/config/url"})
    params = {"hook": "pager", "url": "https://hooks.example/y?token=n3w-v4lue-456"}
    before = run(a, lambda: a.read(params))
    assert before == {"/config/url": "https://hooks.example/x?token=[SECRET]"}
    assert a.desired(params, before) == {"/config/url": "https://hooks.example/y?token=[SECRET]"}
    assert a.restore_params(params, before) is None


def test_read_failures_are_action_errors_naming_what(server: HttpActionServer) -> None:
    a = adapter(server, LABEL_MOVE)
    with pytest.raises(ActionError, match=r"registry: GET /api/prompts/nope: not found \(HTTP 404\)"):
        run(a, lambda: a.read({"prompt": "nope", "version": 1}))
    server.docs["/api/prompts/bare"] = {"labels": {}}
    a = adapter(server, LABEL_MOVE)
    with pytest.raises(ActionError, match=r"GET /api/prompts/bare: nothing at /labels/production"):
        run(a, lambda: a.read({"prompt": "bare", "version": 1}))
    assert server.mutating() == []


@pytest.mark.parametrize(("options", "message"), [
    ({"method": "GET", "path": "/x"}, "options.method: 'GET' is not a mutating method"),
    ({"path": "x/y"}, "options.path: 'x/y' must be a path starting with /"),
    ({"path": "http://evil/x"}, "must be a path starting with /"),
    ({"path": "/x/$"}, "options.path: bad placeholder"),
    ({"path": "/x", "read_pointer": "/a"}, "options.read_pointer: needs options.read_path"),
    ({"path": "/x", "read_path": "/x", "read_pointer": "a"}, "options.read_pointer: a JSON pointer"),
    ({"path": "/x", "body": '{"a": $a}', "read_path": "/x"}, "options.expect: needed with read_path"),
    ({"path": "/x", "body": {"a": 1}, "read_path": "/x", "read_pointer": "/b"}, "options.expect: needed"),
    ({"path": "/x", "headers": {"a": "b"}}, "options: unknown headers for http.request"),
    ({"path": "/x", "changed_by_header": "X-A: b"}, "options.changed_by_header"),
])
def test_options_are_checked_where_they_are_written(server: HttpActionServer, options: dict[str, Any],
                                                    message: str) -> None:
    with pytest.raises(ActionError, match=message.replace("(", r"\(").replace("$", r"\$")):
        adapter(server, options)


def test_the_system_is_found_by_name(server: HttpActionServer) -> None:
    two = config(registry(server.url), HttpTarget(name="flags", url=server.url))
    options = {"path": "/x"}
    with pytest.raises(ActionError, match=r"name the \[\[actions.http\]\] system .*known: registry, flags"):
        build("http.request", AdapterContext(config=two, gateway="", options=options))
    with pytest.raises(ActionError, match=r"no \[\[actions.http\]\] named 'pager' \(known: registry, fl"):
        build("http.request", AdapterContext(config=two, gateway="pager", options=options))
    built = build("http.request", AdapterContext(config=two, gateway="flags", options=options))
    assert isinstance(built, HttpRequestAdapter) and built.system == "flags"
    asyncio.run(built.aclose())


def test_a_missing_secret_names_the_ref(server: HttpActionServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REGISTRY_KEY")
    with pytest.raises(ActionError, match=r"\[\[actions.http\]\] registry: env:REGISTRY_KEY: the envir"):
        adapter(server, LABEL_MOVE)


def test_secret_params_masked_in_text_and_never_in_a_path(server: HttpActionServer) -> None:
    pager = config(HttpTarget(name="pager", url=server.url))
    secret = frozenset({"token"})
    options = {"path": "/api/page", "body": {"token": "$token", "text": "$text"}}
    a = build("http.request", AdapterContext(config=pager, gateway="", options=options, secret_params=secret))
    token = 'pg-7c1d2e3f"\\'
    (request,) = a.requests({"token": token, "text": "web down"}, {}, {})
    assert "pg-7c1d2e3f" not in request.text and '"token": "***"' in request.text
    assert request.body == {"token": token, "text": "web down"}
    text_body = {"path": "/api/page", "body": '{"token": $token}'}
    b = build("http.request", AdapterContext(config=pager, gateway="", options=text_body,
                                             secret_params=secret))
    (request,) = b.requests({"token": token}, {}, {})
    assert "pg-7c1d2e3f" not in request.text and request.body == {"token": token}
    asyncio.run(a.aclose())
    asyncio.run(b.aclose())
    for path in ("/api/page/$token", "/api/page?t=${token}"):
        with pytest.raises(ActionError, match="secret parameter token would travel in a URL"):
            build("http.request", AdapterContext(config=pager, gateway="", options={"path": path},
                                                 secret_params=secret))


# -- through the choke point: the shipped `feature-flag` example over the recording server ----


def desk_for(server: HttpActionServer, **kw: Any) -> Any:
    from console.runbook_files import load_catalog
    from console.runbooks import ActionDesk

    flags = HttpTarget(name="flags", url=server.url)
    cfg = Config(actions=ActionsSettings(default_role="admin", http=[flags]))
    return ActionDesk(cfg, catalog=load_catalog(None), **kw)


def test_feature_flag_through_the_desk_applies_once_verifies_and_undoes(server: HttpActionServer) -> None:
    from console.action_types import Confirmation

    server.docs["/flags/new-checkout"] = {"enabled": False, "owner": "web"}
    desk = desk_for(server)

    async def flow() -> tuple[Any, ...]:
        try:
            plan = await desk.plan("feature-flag", {"flag": "new-checkout", "enabled": "true"}, origin="cli")
            outcome = await desk.apply(plan, Confirmation("new-checkout"))
            again = await desk.apply(plan, Confirmation("new-checkout"))
            undo = await desk.undo(outcome.action_id)
            undone = await desk.apply(undo, Confirmation("new-checkout"))
            return plan, outcome, again, undone
        finally:
            await desk.aclose()

    plan, outcome, again, undone = asyncio.run(flow())
    assert [(d.field, d.before, d.after) for d in plan.diff] == [("/enabled", "false", "true")]
    assert (outcome.status, outcome.sent) == ("applied", 1)
    assert (again.status, again.sent) == ("refused", 0)
    assert (undone.status, undone.sent) == ("applied", 1)
    first, second = server.mutating()
    assert (first.method, first.path, first.json()) == ("PUT", "/flags/new-checkout", {"enabled": True})
    assert first.headers["idempotency-key"] == plan.idempotency_key
    assert second.json() == {"enabled": False}
    assert server.docs["/flags/new-checkout"] == {"enabled": False, "owner": "web"}


@pytest.mark.parametrize("mode", ["read_only", "dry_run", "cancelled", "wrong_target", "viewer", "env"])
def test_feature_flag_guarded_modes_send_nothing(server: HttpActionServer, mode: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from console.action_types import Confirmation
    from console.runbook_files import load_catalog
    from console.runbooks import ActionDesk

    server.docs["/flags/beta"] = {"enabled": False}
    if mode == "env":
        monkeypatch.setenv("LLMDECK_READONLY", "1")
    role = "viewer" if mode == "viewer" else "admin"
    cfg = Config(actions=ActionsSettings(default_role=role, http=[HttpTarget(name="flags", url=server.url)]))
    desk = ActionDesk(cfg, catalog=load_catalog(None), read_only=mode == "read_only",
                      dry_run=mode == "dry_run")
    typed = {"cancelled": None, "wrong_target": Confirmation("alpha")}.get(mode, Confirmation("beta"))

    async def flow() -> Any:
        try:
            plan = await desk.plan("feature-flag", {"flag": "beta", "enabled": True}, origin="key")
            return await desk.apply(plan, typed)
        finally:
            await desk.aclose()

    outcome = asyncio.run(flow())
    assert outcome.sent == 0 and outcome.status in ("refused", "dry_run", "cancelled"), outcome
    assert server.mutating() == [] and [r.method for r in server.requests] == ["GET"]
    assert server.docs["/flags/beta"] == {"enabled": False}


def test_desk_dropped_change_is_unverified_and_a_timeout_unknown(server: HttpActionServer) -> None:
    from console.action_types import Confirmation
    from console.runbook_files import load_catalog
    from console.runbooks import ActionDesk

    async def no_wait(seconds: float) -> None:
        return None

    server.docs["/flags/beta"] = {"enabled": False}
    flags = HttpTarget(name="flags", url=server.url, timeout_seconds=2)
    desk = ActionDesk(Config(actions=ActionsSettings(default_role="admin", http=[flags])),
                      catalog=load_catalog(None), sleep=no_wait)

    async def flow() -> tuple[Any, Any]:
        try:
            server.ignore_next()
            plan = await desk.plan("feature-flag", {"flag": "beta", "enabled": True}, origin="cli")
            ignored = await desk.apply(plan, Confirmation("beta"))
            server.hang_next()
            plan = await desk.plan("feature-flag", {"flag": "beta", "enabled": True}, origin="cli")
            return ignored, await desk.apply(plan, Confirmation("beta"))
        finally:
            await desk.aclose()

    ignored, hung = asyncio.run(flow())
    assert (ignored.status, ignored.sent) == ("unverified", 1)
    assert "/enabled reads false, expected true" in ignored.detail
    assert (hung.status, hung.sent) == ("unknown", 1)
    assert "flags: timeout" in hung.detail and "runbook verify" in hung.detail
    assert [r.method for r in server.mutating()] == ["PUT", "PUT"]


# -- the templating helpers both adapters share ------------------------------------------------


def test_json_pointers_follow_rfc_6901() -> None:
    from console.adapters import templating as tpl

    doc = {"labels": {"prod/eu": 3, "a~b": [10, {"x": None}]}}
    assert tpl.pointer_get(doc, "") == doc
    assert tpl.pointer_get(doc, "/labels/prod~1eu") == 3
    assert tpl.pointer_get(doc, "/labels/a~0b/1/x") is None
    assert tpl.pointer_get(doc, "/labels/a~0b/0") == 10
    assert tpl.pointer_get(doc, "/labels/missing", "dflt") == "dflt"
    with pytest.raises(ActionError, match=r"nothing at /labels/a~0b/2 \(no '2'\)"):
        tpl.pointer_get(doc, "/labels/a~0b/2")


def test_values_as_text_and_json() -> None:
    from datetime import timedelta

    from console.adapters import templating as tpl

    assert tpl.text("$a/${b}/$$c/$d", {"a": True, "b": 1.5, "d": None}, "t") == "true/1.5/$c/"
    assert tpl.json_body({"ttl": "$ttl", "when": "in $ttl s"}, {"ttl": timedelta(minutes=15)}, "b") == \
        {"ttl": 900, "when": "in 900 s"}
    with pytest.raises(ActionError, match="t: parameter 'xs' is a list; it cannot stand inside text"):
        tpl.text("/x/$xs", {"xs": ["a", "b"]}, "t")
    assert tpl.restore_from("$v", {"v": 2, "k": "x"}, {"/f": 1}, "/f") == {"v": 1, "k": "x"}
    assert tpl.restore_from("v$v", {"v": 2}, {"/f": 1}, "/f") is None
    assert tpl.restore_from("$v", {"v": 2}, {}, "/f") is None
