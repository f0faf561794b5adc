"""`http.request`: one templated request to a configured `[[actions.http]]` system.

For the systems llmdeck has no adapter for: moving a label in a prompt registry, flipping
a feature flag, paging someone. The runbook action says how (`[action.options]`):

    method = "POST"                          # POST, PUT, PATCH or DELETE
    path = "/api/prompts/$prompt/labels"     # values URL-quoted, one segment each
    body = { label = "production", version = "$version" }   # or JSON text: '{"version": $version}'
    read_path = "/api/prompts/$prompt"       # optional GET: shows the diff, verifies the result
    read_pointer = "/labels/production"      # the field compared (JSON pointer)
    expect = "$version"                      # what that field should read afterwards
                                             # (default: the body's value at read_pointer)
    target = "$prompt"                       # what the operator types to confirm
    changed_by_header = "X-Changed-By"       # the header naming the operator

Parameters never reach a request by concatenation (see `console.adapters.templating`);
headers are not templated at all. Secret headers come from the system's `header_refs`,
resolved when the adapter is built, sent only as headers, masked in the plan's text.
Without `read_path` the adapter is not readable: the plan says it cannot show a diff and
the outcome cannot be verified. Only `console.runbooks.ActionDesk.apply` calls `send`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from connectors.http import HttpPolicy, SourceClient, SourceError
from connectors.http_text import MASK, Redactor, short_reason
from connectors.litellm_admin import CHANGED_BY_PLACEHOLDER, IDEMPOTENCY_PLACEHOLDER
from console.action_types import ActionError, PlannedRequest, SendError
from console.adapters import AdapterContext, register
from console.adapters import templating as tpl

if TYPE_CHECKING:
    from console.config_actions import HttpTarget

KIND = "http.request"
METHODS = ("POST", "PUT", "PATCH", "DELETE")
OPTIONS = ("method", "path", "body", "read_path", "read_pointer", "expect", "target", "changed_by_header")
DEFAULT_CHANGED_BY = "X-Changed-By"


@dataclass(frozen=True)
class HttpOptions:
    """The checked `[action.options]` of an `http.request` action."""

    method: str
    path: str
    body: Any
    """None, JSON text, or a table (see `templating.json_body`)."""
    read_path: str = ""
    read_pointer: str = ""
    expect: Any = None
    """The expectation template; None: the body's template at `read_pointer`."""
    target: str = ""
    changed_by_header: str = DEFAULT_CHANGED_BY

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> HttpOptions:
        """Checked options; ActionError naming `options.<name>` for anything unusable."""
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ActionError(f"options: unknown {', '.join(unknown)} for {KIND}"
                              f" (known: {', '.join(OPTIONS)})")
        method = str(options.get("method", "POST")).upper()
        if method not in METHODS:
            raise ActionError(f"options.method: {method!r} is not a mutating method ({', '.join(METHODS)})")
        path = _path_template(options.get("path"), "options.path")
        body = tpl.check_body(options.get("body"), "options.body")
        read_path = options.get("read_path") or ""
        if read_path:
            read_path = _path_template(read_path, "options.read_path")
        pointer = tpl.check_pointer(options.get("read_pointer", ""), "options.read_pointer")
        if pointer and not read_path:
            raise ActionError("options.read_pointer: needs options.read_path (the GET it points into)")
        expect = options.get("expect")
        if expect is not None:
            tpl.check_body_value(expect, "options.expect")
        elif read_path and not isinstance(body, Mapping):
            raise ActionError("options.expect: needed with read_path when the body is not a table"
                              " (what should the field read afterwards?)")
        elif read_path:
            expect = tpl.pointer_get(body, pointer, None)
            if expect is None:
                raise ActionError(f"options.expect: needed: the body has nothing at read_pointer {pointer!r}")
        target = tpl.check_template(options.get("target", ""), "options.target")
        header = str(options.get("changed_by_header", DEFAULT_CHANGED_BY))
        if not header or tpl.control_chars(header) or ":" in header or " " in header:
            raise ActionError(f"options.changed_by_header: {header!r} is not a header name")
        return cls(method, path, body, read_path, pointer, expect, target, header)


def _path_template(value: Any, where: str) -> str:
    path = tpl.check_template(value, where)
    if not path.startswith("/") or "://" in path or "#" in path or tpl.control_chars(path) or " " in path:
        raise ActionError(f"{where}: {path!r} must be a path starting with / (no scheme, fragment or spaces)")
    return path


class HttpRequestAdapter:
    """A templated request against one `[[actions.http]]` system (see the module docstring)."""

    kind = KIND

    def __init__(self, system: str, url: str, options: HttpOptions, *,
                 headers: Mapping[str, str] | None = None, secret_headers: Mapping[str, str] | None = None,
                 timeout_seconds: float = 10.0, secret_params: frozenset[str] = frozenset(),
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.system = system
        self.options = options
        self.readable = bool(options.read_path)
        self._secret_params = secret_params
        self._redact = Redactor((secret_headers or {}).values())
        self._field = options.read_pointer or "/"
        self._masked = tpl.secret_masker()
        in_path = secret_params & (tpl.names_in(options.path) | tpl.names_in(options.read_path))
        if in_path:
            raise ActionError(f"options.path: secret parameter {', '.join(sorted(in_path))} would travel"
                              " in a URL; put it in the body")
        policy = HttpPolicy(connect_timeout=min(3.0, timeout_seconds), read_timeout=timeout_seconds,
                            deadline=3 * timeout_seconds)
        self._http = SourceClient(system, url, headers=dict(headers or {}),
                                  secret_headers=dict(secret_headers or {}), policy=policy,
                                  transport=transport)

    # -- the protocol ------------------------------------------------------------------------

    def target(self, params: Mapping[str, Any]) -> str:
        if self.options.target:
            return tpl.text(self.options.target, params, "options.target")
        return self.system

    async def read(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """GET read_path and take the field at read_pointer ({} when not readable)."""
        if not self.readable:
            return {}
        path = tpl.url_path(self.options.read_path, params, "options.read_path")
        try:
            doc = await self._http.get_json(path)
        except SourceError as exc:
            if exc.status == 404:
                raise ActionError(f"{self.system}: GET {path}: not found (HTTP 404)") from None
            raise ActionError(f"cannot read the current state: {exc}") from None
        try:
            value = tpl.pointer_get(doc, self.options.read_pointer)
        except ActionError as exc:
            raise ActionError(f"{self.system}: GET {path}: {exc}") from None
        return {self._field: self._masked(value)}

    def desired(self, params: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
        """What the read should show, masked the way the read is (so they compare)."""
        if not self.readable:
            return {}
        return {self._field: self._masked(tpl.expected(self.options.expect, params, "options.expect"))}

    def requests(self, params: Mapping[str, Any], current: Mapping[str, Any],
                 desired: Mapping[str, Any]) -> Sequence[PlannedRequest]:
        o = self.options
        path = tpl.url_path(o.path, params, "options.path")
        body = None if o.body is None else tpl.json_body(o.body, params, "options.body")
        body_json = "" if body is None else json.dumps(body, sort_keys=True, ensure_ascii=False)
        return (PlannedRequest(method=o.method, text=self._describe(path, params), path=path,
                               body_json=body_json),)

    async def send(self, request: PlannedRequest, *, idempotency_key: str, changed_by: str) -> str:
        """Send it once (never retried: the server's answer, or SendError; `unsure` when the
        request may have reached the server and no answer came back)."""
        if request.method not in METHODS or not request.path.startswith("/"):
            raise SendError(f"{self.system}: refusing {request.method} {request.path!r}:"
                            " not an HTTP action request")
        ascii_name = changed_by.encode("ascii", "backslashreplace").decode()  # a header value is ASCII
        operator = "".join(c for c in ascii_name if c.isprintable())
        headers = {"Idempotency-Key": idempotency_key, self.options.changed_by_header: operator}
        try:
            response = await self._http.send(request.method, request.path, json=request.body,
                                              headers=headers)
        except SourceError as exc:
            raise SendError(str(exc), status=exc.status, unsure=exc.maybe_sent) from None
        reason = short_reason(response.content, response.headers.get("content-type", ""),
                              self._redact, "")
        return f"{self.system}: HTTP {response.status_code}" + (f": {reason}" if reason else "")

    def restore_params(self, params: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any] | None:
        if not self.readable or tpl.masked_somewhere(before.get(self._field)):
            return None  # a masked value cannot be put back
        return tpl.restore_from(self.options.expect, params, before, self._field)

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- helpers -----------------------------------------------------------------------------

    def _describe(self, path: str, params: Mapping[str, Any]) -> str:
        """The request as the operator sees it: secret headers masked, the body filled with
        secret params as *** (whatever JSON escaping would do to their text); the key and
        operator headers as the placeholders the LiteLLM adapters use (the desk fills them)."""
        shown = {k: (MASK if k in self._secret_params and v is not None else v) for k, v in params.items()}
        body = None if self.options.body is None else tpl.json_body(self.options.body, shown, "options.body")
        headers = {"Idempotency-Key": IDEMPOTENCY_PLACEHOLDER,
                   self.options.changed_by_header: CHANGED_BY_PLACEHOLDER}
        return self._http.describe_request(self.options.method, path, json=body, headers=headers)


def _system(context: AdapterContext) -> HttpTarget:
    """The `[[actions.http]]` entry the action names ("" = the only one)."""
    systems = context.config.actions.http
    names = ", ".join(s.name for s in systems) or "none configured"
    if not context.gateway:
        if len(systems) != 1:
            raise ActionError(f"{KIND}: name the [[actions.http]] system with gateway = ... (known: {names})")
        return systems[0]
    for system in systems:
        if system.name == context.gateway:
            return system
    raise ActionError(f"{KIND}: no [[actions.http]] named {context.gateway!r} (known: {names})")


def build_http_request(context: AdapterContext) -> HttpRequestAdapter:
    """The factory: checked options, the system's URL and headers, its secret headers resolved."""
    options = HttpOptions.parse(context.options)
    system = _system(context)
    from console.secrets import SecretError, header_secret

    resolve: Callable[[str], str] = context.secret or header_secret
    try:
        secret_headers = {h: resolve(ref) for h, ref in system.header_refs.items()}
    except SecretError as exc:
        raise ActionError(f"[[actions.http]] {system.name}: {exc}") from None
    return HttpRequestAdapter(system.name, system.url, options, headers=system.headers,
                              secret_headers=secret_headers, timeout_seconds=system.timeout_seconds,
                              secret_params=context.secret_params,
                              transport=context.transport)


register(KIND, build_http_request)
