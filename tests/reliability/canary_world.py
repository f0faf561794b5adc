"""Fake keys in every secret slot, a loopback server failing (and echoing them) every way, a leak finder.

Every secret value contains the marker `CANARY` and a random tail; no name, reference or
path the tests use contains either, so any hit of the marker, a tail, a whole value or a
basic-auth token (whole or its first 20 characters) is a leak. `CanaryServer` answers
`/<fault>/<api path>`: each configured source gets its fault through its `path_prefix`,
so one server serves every source. Echo faults copy the request's secret headers into
the error body, an HTML title, a redirect `Location`, response headers, the status
line's reason phrase, the content type, a 200 API error envelope, API warnings and
the answered data (alert labels, silence fields, metric label values).

The provider billing APIs (OpenAI and Anthropic admin keys, an OpenRouter management key)
sit behind the same faults: `/<fault>/v1/organization/costs`; under `ok` (and the echo
faults that answer data) `BillingReplay` answers as the provider would, with the
echoed secrets planted in model names, line items and projects for `echo-data`.
"""

from __future__ import annotations

import base64
import functools
import json
import secrets as _random
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.faults.billing_server import PATHS as BILLING_API_PATHS
from tests.faults.billing_server import BillingReplay, json_reply
from tests.faults.fault_server import (
    Answer,
    Behaviour,
    FaultServer,
    Hang,
    RecordedRequest,
    Reply,
    Reset,
    html_page,
)

MARKER = "CANARY"
KINDS = ("prom", "am", "scrape")
AUTHS = ("bearer", "basic")
SECRET_HEADERS = ("authorization", "x-api-key", "x-scope-token")
PROM_TEXT = "text/plain; version=0.0.4; charset=utf-8"
SILENCE_ID = "5b6e5d56-e3a4-4de4-a0df-211b891fd351"
KEYRING_REF = "keyring:llmdeck-test/am-token"
KEYRING_SOURCE = "am-keyring"
PROVIDERS = ("openai", "anthropic", "openrouter")
RECEIVER_TOKEN_ENV = "LLMDECK_T_RECEIVER_TOKEN"
RECEIVER_TOKEN_REF = f"env:{RECEIVER_TOKEN_ENV}"
BILLING_PATHS = frozenset(p.lstrip("/") for p in BILLING_API_PATHS)


def _tail() -> str:
    return _random.token_hex(6)


@dataclass(frozen=True)
class Canaries:
    """Env var -> fake secret, the keyring value, and the basic users; fresh per test run."""

    env: dict[str, str]
    keyring_value: str
    basic_users: dict[str, str]  # kind -> username

    @classmethod
    def fresh(cls) -> Canaries:
        env: dict[str, str] = {}
        for kind in KINDS:
            up = kind.upper()
            env[f"LLMDECK_T_{up}_BEARER"] = f"sk-{MARKER}-{kind}-bearer-{_tail()}"
            # under 32 characters and no key prefix: no shape rule masks it, only its known value
            env[f"LLMDECK_T_{up}_BASIC"] = f"{MARKER}-{kind}-basic-{_tail()}"
            env[f"LLMDECK_T_{up}_APIKEY"] = f"sk-{MARKER}-{kind}-apikey-{_tail()}"
            env[f"LLMDECK_T_{up}_TENANT"] = f"hunter2-{MARKER}-plain-{kind}"
        env["LLMDECK_T_OPENAI_ADMIN"] = f"sk-admin-{MARKER}-openai-{_tail()}"
        env["LLMDECK_T_ANTHROPIC_ADMIN"] = f"sk-ant-admin01-{MARKER}-{_tail()}"
        env["LLMDECK_T_OPENROUTER_ADMIN"] = f"sk-or-v1-{MARKER}-{_tail()}"
        # the receiver's bearer token: no key prefix, so only its known value can mask it
        env[RECEIVER_TOKEN_ENV] = f"rcv-{MARKER}-{_tail()}"
        env["LLMDECK_T_LITELLM_MASTER"] = f"sk-{MARKER}-litellm-master-{_tail()}"
        return cls(env, f"sk-{MARKER}-keyring-am-{_tail()}", {k: f"{k}-user" for k in KINDS})

    def values(self) -> list[str]:
        return [*self.env.values(), self.keyring_value]

    def __repr__(self) -> str:  # a failing test's report names the slots, never the values
        return f"Canaries({sorted(self.env)} and {KEYRING_REF})"

    def basic_tokens(self) -> list[str]:
        """The base64 of every `user:password` pair a source sends."""
        return [base64.b64encode(f"{self.basic_users[k]}:{self.env[f'LLMDECK_T_{k.upper()}_BASIC']}"
                                 .encode()).decode() for k in KINDS]


# ---------------------------------------------------------------------------
# Finding them
# ---------------------------------------------------------------------------


@dataclass
class LeakFinder:
    """Scans texts and bytes for any trace of a canary; `report()` names every place one was found."""

    canaries: Canaries
    hits: list[str] = field(default_factory=list)
    scanned: list[str] = field(default_factory=list)

    def needles(self) -> list[str]:
        found = [MARKER, "hunter2"]
        for value in self.canaries.values():
            tail = value.rsplit("-", 1)[-1]
            found += [value, *([tail] if len(tail) == 12 else [])]
        for token in self.canaries.basic_tokens():
            found += [token, token[:20]]
        return list(dict.fromkeys(n for n in found if len(n) >= 6))

    def scan(self, where: str, data: str | bytes) -> None:
        self.scanned.append(where)
        text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
        for needle in self.needles():
            at = text.find(needle)
            if at >= 0:
                context = text[max(0, at - 80): at + len(needle) + 40].replace("\n", "\\n")
                self.hits.append(f"{where}: {needle!r} in ...{context}...")
                return

    def scan_file(self, path: Path, where: str = "") -> None:
        self.scan(where or str(path), path.read_bytes())

    def scan_tree(self, root: Path, skip: Iterable[Path] = ()) -> list[Path]:
        """Every file under `root` (bytes), except `skip`; returns the files read."""
        skipped = {p.resolve() for p in skip}
        seen = []
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.resolve() not in skipped:
                self.scan_file(path)
                seen.append(path)
        return seen

    def report(self) -> str:
        return (f"{len(self.hits)} canary leak(s) in {len(self.scanned)} places scanned:\n  "
                + "\n  ".join(self.hits))

    def assert_clean(self) -> None:
        assert self.scanned, "nothing was scanned: the canary test is vacuous"
        assert not self.hits, self.report()


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """Bytes written as the whole answer, computed from the request (a status line of one's own)."""

    handler: Callable[[RecordedRequest], bytes]


def echo(request: RecordedRequest) -> str:
    """The request's secret headers as a careless server would quote them."""
    return "; ".join(f"{name}: {request.headers[name]}" for name in SECRET_HEADERS if name in request.headers)


def auth(request: RecordedRequest) -> str:
    return request.headers.get("authorization", "none")


def token(request: RecordedRequest) -> str:
    return auth(request).partition(" ")[2] or "none"


def _vector(warnings: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "success", "data": {"resultType": "vector", "result": []}}
    if warnings:
        body["warnings"] = warnings
        body["infos"] = warnings
    return body


def prom_alerts(text: str = "p95 TTFT above 2s") -> dict[str, Any]:
    return {"status": "success", "data": {"alerts": [{
        "labels": {"alertname": "HighTTFT", "severity": "page", "note": text},
        "annotations": {"summary": text}, "state": "firing",
        "activeAt": "2026-12-04T16:00:00Z", "value": "2.4e+00"}]}}


def am_alerts(text: str = "always firing") -> list[dict[str, Any]]:
    return [{"annotations": {"summary": text}, "endsAt": "2099-12-04T16:35:58.320Z",
             "fingerprint": "1919ce7f22443001", "receivers": [{"name": "null"}],
             "startsAt": "2026-12-04T16:34:34.320Z",
             "status": {"inhibitedBy": [], "state": "active", "silencedBy": []},
             "updatedAt": "2026-12-04T16:35:54.325Z", "generatorURL": "http://127.0.0.1:1/graph",
             "labels": {"alertname": "AlwaysFiring", "severity": "page", "note": text}}]


def am_silence(text: str = "maintenance") -> dict[str, Any]:
    return {"id": SILENCE_ID, "status": {"state": "active"}, "updatedAt": "2026-12-04T16:34:50.294Z",
            "comment": text, "createdBy": text, "endsAt": "2099-12-04T18:34:49.826Z",
            "matchers": [{"isEqual": True, "isRegex": False, "name": "alertname", "value": "AlwaysFiring"}],
            "startsAt": "2026-12-04T16:34:50.294Z"}


def metrics_text(model: str = "meta-llama/Llama-3.1-8B-Instruct") -> str:
    label = model.replace("\\", "\\\\").replace('"', '\\"')
    return (f'# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{{model_name="{label}"}} 1\n'
            f'# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{{model_name="{label}"}} 0\n'
            f'# TYPE vllm:request_success_total counter\n'
            f'vllm:request_success_total{{model_name="{label}",finished_reason="stop"}} 10\n')


@functools.cache
def billing_replay() -> BillingReplay:
    """Ten days of the providers' billing up to today (UTC), four days a page."""
    today = datetime.now(UTC).date()
    return BillingReplay(start=today - timedelta(days=9), days=10, page_days=4, lines_per_day=3, today=today)


_PLANTED = ("line_item", "description", "model", "project_id", "workspace_id", "provider_name", "label")
"""The billing fields a careless server fills with `text` (they reach the cache and the screen)."""


def _planted(doc: Any, text: str) -> Any:
    if isinstance(doc, list):
        return [_planted(v, text) for v in doc]
    if isinstance(doc, dict):
        return {k: f"{v} {text}" if k in _PLANTED and isinstance(v, str) else _planted(v, text)
                for k, v in doc.items()}
    return doc


def billing_reply(rest: str, request: RecordedRequest, text: str | None = None) -> Reply:
    """The provider's answer to `request` on the billing API path `rest`, `text` planted in its names."""
    reply = billing_replay().answer("/" + rest).handler(request)
    assert isinstance(reply, Reply)
    if text is None or reply.status != 200:
        return reply
    return json_reply(_planted(json.loads(reply.body, parse_float=Decimal), text))


def ok_reply(rest: str, method: str, text: str | None = None, warnings: bool = False) -> Reply:
    """A valid answer for an API path (`text`: what a careless server puts in the data)."""
    if rest.startswith("api/v1/query"):
        return Reply(200, _vector([text] if warnings and text else None))
    if rest == "api/v1/alerts":
        return Reply(200, prom_alerts(text or "p95 TTFT above 2s"))
    if rest == "api/v1/rules":
        return Reply(200, {"status": "success", "data": {"groups": []}})
    if rest == "api/v2/alerts":
        return Reply(200, am_alerts(text or "always firing"))
    if rest == "api/v2/silences":
        if method == "POST":
            return Reply(200, {"silenceID": text or SILENCE_ID})
        return Reply(200, [am_silence(text or "maintenance")])
    if rest.startswith("api/v2/silence/"):
        if method == "DELETE":
            return Reply(200, "")
        return Reply(200, am_silence(text or "maintenance"))
    if rest.startswith("metrics"):
        return Reply(200, metrics_text(text or "meta-llama/Llama-3.1-8B-Instruct"), content_type=PROM_TEXT)
    return Reply(404, {"error": f"no such path {rest}"})


def _is_metrics(rest: str) -> bool:
    return rest.startswith("metrics")


def _plain(make: Callable[[str], Behaviour | Raw]) -> Callable[[str], Behaviour | Raw]:
    return make


def _answer(make: Callable[[str, RecordedRequest], Reply]) -> Callable[[str], Behaviour]:
    return lambda rest: Answer(lambda request: make(rest, request))


def _malformed(rest: str) -> Behaviour:
    if _is_metrics(rest):
        return Reply(200, 'vllm:num_requests_running{model_name="m" 1\n{{{ not metrics\n',
                     content_type=PROM_TEXT)
    return Reply(200, b'{"status": "success", "data": {', content_type="application/json")


def _echo_envelope(rest: str, request: RecordedRequest) -> Reply:
    """A 200 that is an error: a Prometheus error envelope, an Alertmanager object, a bad metrics line."""
    if rest.startswith("api/v1"):
        return Reply(200, {"status": "error", "errorType": "bad_data", "error": f"rejected {echo(request)}"})
    if _is_metrics(rest):
        return Reply(200, f'vllm:num_requests_running{{model_name="{auth(request)}" 1\n{echo(request)}\n',
                     content_type=PROM_TEXT)
    return Reply(200, {"error": echo(request), "code": 401})


def _echo_raw_reason(rest: str) -> Raw:
    def answer(request: RecordedRequest) -> bytes:
        reason = echo(request).encode("latin-1", "replace")
        return b"HTTP/1.1 500 " + reason + b"\r\nContent-Length: 0\r\n\r\n"
    return Raw(answer)


def _write_fails(status: int) -> Callable[[str], Behaviour]:
    """GETs answer; the mutating request (POST/DELETE) fails with the secrets echoed."""
    def make(rest: str) -> Behaviour:
        def answer(request: RecordedRequest) -> Reply:
            if request.method in ("GET", "HEAD"):
                return ok_reply(rest, request.method)
            return Reply(status, {"error": f"cannot write with {echo(request)}"})
        return Answer(answer)
    return make


FAULTS: dict[str, Callable[[str], Behaviour | Raw]] = {
    "ok": _answer(lambda rest, r: _data_reply(rest, r)),
    "401": _plain(lambda rest: Reply(401, {"error": "Unauthorized"})),
    "403": _plain(lambda rest: Reply(403, {"message": "forbidden: tenant t1"})),
    "404": _plain(lambda rest: Reply(404, "404 page not found\n")),
    "429": _plain(lambda rest: Reply(429, {"error": "slow down"}, headers={"Retry-After": "1"})),
    "500": _plain(lambda rest: Reply(500, {"status": "error", "errorType": "internal",
                                           "error": "query failed"})),
    "502": _plain(lambda rest: Reply(502, "")),
    "503": _plain(lambda rest: Reply(503, "upstream connect error or disconnect/reset before headers")),
    "529": _plain(lambda rest: Reply(529, {"type": "error", "error": {"type": "overloaded_error",
                                                                        "message": "Overloaded"}})),
    "html": _plain(lambda rest: html_page(502, "502 Bad Gateway")),
    "malformed": _plain(_malformed),
    "wrong-type": _plain(lambda rest: html_page(200, "Sign in")),
    "reset": _plain(lambda rest: Reset()),
    "hang": _plain(lambda rest: Hang()),
    # a hostile or buggy server quoting the request's secret headers back
    "echo-401": _answer(lambda rest, r: Reply(401, {"error": f"invalid credentials: {echo(r)}"})),
    "echo-403": _answer(lambda rest, r: Reply(403, {"type": "error", "error": {
        "type": "permission_error", "message": f"{echo(r)} is not an admin key"}})),
    "echo-500": _answer(lambda rest, r: Reply(500, f"upstream said: {echo(r)}")),
    "echo-html": _answer(lambda rest, r: html_page(502, f"Bad Gateway for {auth(r)}", echo(r))),
    "echo-redirect": _answer(lambda rest, r: Reply(302, "", headers={
        "Location": f"http://127.0.0.1:1/login/{quote(auth(r))}/{token(r)}?next={token(r)}"})),
    "echo-header": _answer(lambda rest, r: Reply(500, "", headers={
        "X-Echo-Authorization": auth(r), "WWW-Authenticate": f'Bearer realm="{token(r)}"',
        "X-Error": echo(r), "Retry-After": "0"})),
    "echo-raw-reason": _plain(_echo_raw_reason),
    "echo-type": _answer(lambda rest, r: Reply(200, b"{}", content_type=f"application/x-{token(r)}")),
    "echo-envelope": _answer(_echo_envelope),
    "echo-warnings": _answer(lambda rest, r: ok_reply(rest, r.method, echo(r), warnings=True)),
    "echo-data": _answer(lambda rest, r: _data_reply(rest, r, echo(r))),
    "echo-ok-headers": _answer(lambda rest, r: _with_headers(_data_reply(rest, r), {
        "X-Echo-Authorization": auth(r), "Set-Cookie": f"session={token(r)}"})),
    "write-500-echo": _write_fails(500),
    "write-401-echo": _write_fails(401),
}
READ_FAULTS = tuple(f for f in FAULTS if not f.startswith("write-"))


def _data_reply(rest: str, request: RecordedRequest, text: str | None = None) -> Reply:
    if rest in BILLING_PATHS:
        return billing_reply(rest, request, text)
    return ok_reply(rest, request.method, text)


def _with_headers(reply: Reply, headers: dict[str, str]) -> Reply:
    return Reply(reply.status, reply.body, {**reply.headers, **headers}, reply.content_type, reply.delay)


class CanaryServer(FaultServer):
    """A fault server whose first path segment picks the fault (`/echo-html/api/v2/alerts`)."""

    def _next(self, path: str) -> Any:
        _, fault, rest = (path.split("/", 2) + ["", ""])[:3]
        make = FAULTS.get(fault)
        if make is None:
            return Reply(404, {"error": f"no fault {fault}"})
        return make(rest)

    def _play(self, conn: socket.socket, behaviour: Any, request: RecordedRequest) -> bool:
        if isinstance(behaviour, Raw):
            conn.sendall(behaviour.handler(request))
            return True
        return super()._play(conn, behaviour, request)


# ---------------------------------------------------------------------------
# The config naming them
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceSpec:
    """One configured source: kind (prom|am|scrape), fault, auth (bearer|basic|keyring)."""

    kind: str
    fault: str
    auth: str

    @property
    def name(self) -> str:
        return KEYRING_SOURCE if self.auth == "keyring" else f"{self.kind}-{self.fault}-{self.auth}"

    def fields(self, base_url: str, canaries: Canaries) -> dict[str, Any]:
        up = self.kind.upper()
        fields: dict[str, Any] = {
            "name": self.name, "url": base_url, "path_prefix": f"/{self.fault}",
            # a short read timeout where it is the fault; elsewhere room for a loaded machine
            "timeout_seconds": 1 if self.fault == "hang" else 5, "refresh_seconds": 1,
            "headers": {"X-Scope-OrgID": "tenant-1"},
            "header_refs": {"X-Api-Key": f"env:LLMDECK_T_{up}_APIKEY",
                            "X-Scope-Token": f"env:LLMDECK_T_{up}_TENANT"},
        }
        if self.auth == "bearer":
            fields["bearer_token_ref"] = f"env:LLMDECK_T_{up}_BEARER"
        elif self.auth == "basic":
            fields["basic_username"] = canaries.basic_users[self.kind]
            fields["basic_password_ref"] = f"env:LLMDECK_T_{up}_BASIC"
        else:
            fields["bearer_token_ref"] = KEYRING_REF
        if self.kind == "scrape":
            fields["kind"] = "vllm"
        return fields


def specs(faults: Iterable[str], kinds: Iterable[str] = KINDS,
          auths: Iterable[str] = AUTHS) -> list[SourceSpec]:
    return [SourceSpec(k, f, a) for f in faults for k in kinds for a in auths]


SECTION = {"prom": "prometheus", "am": "alertmanager", "scrape": "scrape"}


@dataclass(frozen=True)
class BillingSpec:
    """One billing source: provider (openai|anthropic|openrouter) and the fault its url leads to."""

    provider: str
    fault: str

    @property
    def name(self) -> str:
        return f"{self.provider}-{self.fault}"

    def fields(self, base_url: str) -> dict[str, Any]:
        return {"name": self.name, "admin_key_ref": f"env:LLMDECK_T_{self.provider.upper()}_ADMIN",
                "url": f"{base_url}/{self.fault}", "since_days": 10,
                # a short read timeout where waiting is the fault (a page gets 3x it with retries)
                "timeout_seconds": 1 if self.fault in ("hang", "429") else 5}


def billing_specs(faults: Iterable[str], providers: Iterable[str] = PROVIDERS) -> list[BillingSpec]:
    return [BillingSpec(p, f) for f in faults for p in providers]


def build_config(sources: list[SourceSpec], base_url: str, canaries: Canaries,
                 cache_path: Path | None = None, billing: Iterable[BillingSpec] | None = None) -> Any:
    """A Config with `sources`, a PromQL SLO on each Prometheus source, billing sources (default:
    each provider's, answering normally) and a LiteLLM key."""
    from console.config import Config

    return Config.model_validate(config_dict(sources, base_url, canaries, cache_path, billing))


def config_dict(sources: list[SourceSpec], base_url: str, canaries: Canaries, cache_path: Path | None = None,
                billing: Iterable[BillingSpec] | None = None) -> dict[str, Any]:
    """The config as TOML-shaped data."""
    section: dict[str, list[dict[str, Any]]] = {"prometheus": [], "alertmanager": [], "scrape": []}
    for spec in sources:
        section[SECTION[spec.kind]].append(spec.fields(base_url, canaries))
    section_all: dict[str, Any] = dict(section)
    for spec in billing_specs(("ok",)) if billing is None else billing:
        section_all.setdefault(f"{spec.provider}_billing", []).append(spec.fields(base_url))
    section_all["litellm"] = [{"name": "gateway", "url": "http://127.0.0.1:1",
                               "key_ref": "env:LLMDECK_T_LITELLM_MASTER"}]
    slos = [{"name": f"slo {s.name}", "kind": "availability", "objective": 0.99, "window_days": 1,
             "promql": {"source": s.name, "errors": 'llm_requests_total{code=~"5.."}',
                        "total": "llm_requests_total"}}
            for s in sources if s.kind == "prom"]
    out: dict[str, Any] = {"sources": section_all, "slos": slos}
    if cache_path is not None:
        out["cache"] = {"path": str(cache_path)}
    return out


def toml_text(data: dict[str, Any]) -> str:
    """Enough TOML for `config_dict`'s shape (tables of arrays of tables, inline tables)."""
    def value(v: Any) -> str:
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        return json.dumps(str(v))

    lines: list[str] = []
    if "cache" in data:
        lines += ["[cache]", *(f"{k} = {value(v)}" for k, v in data["cache"].items()), ""]
    for kind, entries in data["sources"].items():
        for entry in entries:
            lines.append(f"[[sources.{kind}]]")
            lines += [f"{k} = {value(v)}" for k, v in entry.items()]
            lines.append("")
    for slo in data["slos"]:
        lines.append("[[slos]]")
        lines += [f"{k} = {value(v)}" for k, v in slo.items()]
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# The receiver: exporters sending its token right, wrong, and where it does not belong
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One request to a receiver: what it tries, and the status it must get."""

    what: str
    headers: dict[str, str]
    body: bytes
    expect: int
    path: str = "/v1/traces"
    method: str = "POST"
    params: dict[str, str] = field(default_factory=dict)


def planted_body(token: str, first_span: int, *, planted: bool = True) -> bytes:
    """An OTLP/JSON export of two GenAI spans; `planted`: the token is in attributes (as an app
    logging its exporter's headers would put it), the span name and the resource."""
    import time

    start = time.time_ns() - 60 * 10**9

    def attr(key: str, value: str) -> dict[str, Any]:
        return {"key": key, "value": {"stringValue": value}}

    spans = []
    for i in range(first_span, first_span + 2):
        attrs = [attr("gen_ai.provider.name", "openai"), attr("gen_ai.operation.name", "chat"),
                 attr("gen_ai.request.model", "gpt-4o-mini"),
                 {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1000"}},
                 {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "100"}}]
        if planted:
            attrs += [attr("http.request.header.authorization", f"Bearer {token}"),
                      attr("otel.exporter.otlp.headers", f"Authorization=Bearer {token}"),
                      attr("llmdeck.tenant", f"tenant {token}"), attr("note", token)]
        spans.append({"traceId": f"{first_span:032x}", "spanId": f"{i:016x}",
                      "name": f"chat {token}" if planted else "chat", "kind": 3,
                      "startTimeUnixNano": str(start + i * 10**6),
                      "endTimeUnixNano": str(start + i * 10**6 + 10**8), "attributes": attrs})
    service = f"svc {token}" if planted else "svc"
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [attr("service.name", service)]},
        "scopeSpans": [{"scope": {"name": "canary"}, "spans": spans}]}]}).encode()


def receiver_attempts(token: str, *, planted: bool = False) -> list[Attempt]:
    """Requests a receiver requiring `token` meets: missing, wrong and misplaced tokens (401), the
    token in bodies, headers, paths, content types and query strings of requests it answers;
    `planted`: the spans it accepts carry the token too (else only those it refuses do)."""
    import gzip

    right = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    plain = {"Content-Type": "application/json"}
    body = planted_body(token, 1)
    basic = base64.b64encode(f"otel:{token}".encode()).decode()
    return [
        Attempt("no token", plain, body, 401),
        Attempt("token with a character more", {**plain, "Authorization": f"Bearer {token}x"}, body, 401),
        Attempt("token cut short", {**plain, "Authorization": f"Bearer {token[:-1]}"}, body, 401),
        Attempt("token without a scheme", {**plain, "Authorization": token}, body, 401),
        Attempt("token as basic auth", {**plain, "Authorization": f"Basic {basic}"}, body, 401),
        Attempt("token in other headers", {**plain, "X-Api-Key": token, "X-Token": f"Bearer {token}"},
                body, 401),
        Attempt("token in the query", plain, body, 401, params={"token": token, "access_token": token}),
        Attempt("wrong path naming the token", right, body, 404, path=f"/v1/{token}"),
        Attempt("GET with the token", right, b"", 405, method="GET"),
        Attempt("content type naming the token", {**right, "Content-Type": f"application/x-{token}"},
                body, 415),
        Attempt("encoding naming the token", {**right, "Content-Encoding": token}, body, 415),
        Attempt("malformed JSON quoting the token", right, b'{"resourceSpans": [' + token.encode(), 400),
        Attempt("protobuf that is the token", {**right, "Content-Type": "application/x-protobuf"},
                b"\x0a\xff\x01" + token.encode(), 400),
        Attempt("spans", right, planted_body(token, 1, planted=planted), 200),
        Attempt("spans, gzip", {**right, "Content-Encoding": "gzip"},
                gzip.compress(planted_body(token, 11, planted=planted)), 200),
        Attempt("token echoed in other headers", {**right, "X-Echo": token, "Cookie": f"t={token}"},
                planted_body(token, 21, planted=planted), 200),
        Attempt("clean spans", right, planted_body(token, 31, planted=False), 200),
    ]


async def send_attempts(url: str, attempts: list[Attempt]) -> list[tuple[Attempt, Any]]:
    """Each attempt against the receiver at `url` (http://host:port), in order: (attempt, response).

    The exporter's own httpx/httpcore records (its request lines name the token it sends in a
    path or query) are silenced meanwhile: they are the exporter's, not llmdeck's (the receiver
    serves with h11, and nothing else of llmdeck's runs an HTTP client while these are sent)."""
    import logging

    import httpx

    loggers = [logging.getLogger(name) for name in ("httpx", "httpcore")]
    saved = [log.disabled for log in loggers]
    out = []
    try:
        for log in loggers:
            log.disabled = True
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            for a in attempts:
                response = await client.request(a.method, a.path, headers=a.headers,
                                                content=a.body or None, params=a.params or None)
                out.append((a, response))
    finally:
        for log, was in zip(loggers, saved, strict=True):
            log.disabled = was
    return out


__all__ = ["FAULTS", "READ_FAULTS", "RECEIVER_TOKEN_REF", "Attempt", "BillingSpec", "Canaries",
           "CanaryServer", "LeakFinder", "SourceSpec", "billing_specs", "build_config", "config_dict",
           "planted_body", "receiver_attempts", "send_attempts", "specs", "toml_text"]
