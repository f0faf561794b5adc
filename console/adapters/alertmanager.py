"""`alertmanager.silence`: silence alerts in a configured Alertmanager through the action desk.

So a silence can be planned, confirmed, applied, verified, audited, time-boxed and undone
like every other action (the console's own silence keys still use `console.silences`;
they move onto the desk next). The system is a `[[sources.alertmanager]]` (the one the
console already reads), named by the action's `gateway` ("" = the only one).

Params (the runbook declares them):

    matchers   list of `NAME=VALUE`, `NAME!=VALUE`, `NAME=~RE`, `NAME!~RE` (required)
    duration   how long the silence lasts (duration; required to silence)
    comment    why (Alertmanager refuses a silence without one)
    silenced   true (default): create a silence; false: expire the active silences that
               have exactly these matchers (what undo and a time-box end send)
    keep       silence ids `silenced = false` leaves alone (undo passes the ones that
               were active before the action, so only the action's own silence goes)
    silence_id with `silenced = false` instead of matchers: expire that one silence

The state read (GETs only) is `silenced` (an active silence has exactly these matchers),
`silences` (their ids), `alerts` (how many alerts the matchers match), `loud` (how many
of those no silence or inhibition holds) and `affects` (their names); by id: `silenced`,
`state`, the silence's `matchers` and the alerts it holds now. Creating wants
`silenced = true, loud = 0`: the read-back verifies the matched alerts are suppressed;
expiring wants `silenced = false` (an expired silence "changes nothing": refused).
Alertmanager knows no `Idempotency-Key`; the desk's store keeps a create from being sent
twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from connectors.alertmanager import SILENCES_PATH, AlertmanagerClient, silence_body, silence_path
from connectors.http import SourceError
from console.action_types import ActionError, PlannedRequest, SendError
from console.adapters import AdapterContext, register
from console.alerts import SilenceMatcher
from console.silence_input import MAX_DURATION, SilenceInputError, check_comment, parse_for, parse_matchers
from console.timeutil import utc_now

if TYPE_CHECKING:
    from console.config import AlertmanagerSource

KIND = "alertmanager.silence"
_EXPIRE_PREFIX = silence_path("x")[:-1]


def _matchers(params: Mapping[str, Any]) -> tuple[SilenceMatcher, ...]:
    raw = params.get("matchers")
    texts = [raw] if isinstance(raw, str) else list(raw or ())
    try:
        return parse_matchers(str(t) for t in texts)
    except SilenceInputError as exc:
        raise ActionError(f"param 'matchers': {exc}") from None


def _length(params: Mapping[str, Any]) -> timedelta:
    value = params.get("duration")
    if value is None:
        raise ActionError("param 'duration': a silence needs a length (e.g. 2h)")
    if isinstance(value, timedelta):
        length = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        length = timedelta(seconds=value)
    else:
        try:
            length = parse_for(str(value))
        except SilenceInputError as exc:
            raise ActionError(f"param 'duration': {exc}") from None
    if not timedelta(0) < length <= MAX_DURATION:
        raise ActionError("param 'duration': a silence lasts more than zero and at most 366 days")
    return length


def _same(a: Sequence[SilenceMatcher], b: Sequence[SilenceMatcher]) -> bool:
    return sorted(map(str, a)) == sorted(map(str, b))


def _silencing(params: Mapping[str, Any]) -> bool:
    return params.get("silenced", True) is not False


class SilenceAdapter:
    """Creates (or expires) the silence for a set of matchers, or expires one silence by id
    (see the module docstring)."""

    kind = KIND
    readable = True

    def __init__(self, client: AlertmanagerClient, *, clock: Callable[[], datetime] = utc_now,
                 created_by: str = "") -> None:
        self.client = client
        self._clock = clock
        self._created_by = created_by

    def target(self, params: Mapping[str, Any]) -> str:
        by_id = _silence_id(params)
        return by_id or " ".join(str(m) for m in _matchers(params))

    async def read(self, params: Mapping[str, Any]) -> dict[str, Any]:
        by_id = _silence_id(params)
        try:
            if by_id:
                return await self._read_one(by_id)
            matchers = _matchers(params)
            alerts = await self.client.alerts(matchers)
            silences = await self.client.silences()
        except SourceError as exc:
            raise ActionError(f"cannot read the current state: {exc}") from None
        mine = sorted(s.id for s in silences if s.state == "active" and _same(s.matchers, matchers))
        loud = [a for a in alerts if not a.silenced_by and not a.inhibited_by]
        return {"silenced": bool(mine), "silences": mine, "alerts": len(alerts), "loud": len(loud),
                "affects": sorted(a.name for a in alerts)}

    async def _read_one(self, silence_id: str) -> dict[str, Any]:
        try:
            silence = await self.client.silence(silence_id)
        except SourceError as exc:
            if exc.status == 404:
                raise ActionError(f"{self.client.name}: no silence with id {silence_id!r}") from None
            raise
        held = [a for a in await self.client.alerts() if silence_id in a.silenced_by]
        active = silence.state == "active"
        return {"silenced": active, "silences": [silence_id] if active else [], "state": silence.state,
                "matchers": [str(m) for m in silence.matchers], "alerts": len(held),
                "affects": sorted(a.name for a in held)}

    def desired(self, params: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
        if _silencing(params):
            return {"silenced": True, "loud": 0}
        keep = set(params.get("keep") or ())
        return {"silenced": any(i in keep for i in current.get("silences", ()))}

    def requests(self, params: Mapping[str, Any], current: Mapping[str, Any],
                 desired: Mapping[str, Any]) -> Sequence[PlannedRequest]:
        if not _silencing(params):
            keep = set(params.get("keep") or ())
            return tuple(PlannedRequest(method="DELETE", text=self.client.describe_expire(i),
                                        path=silence_path(i))
                         for i in current.get("silences", ()) if i not in keep)
        matchers = _matchers(params)
        try:
            comment = check_comment(str(params.get("comment") or ""))
        except SilenceInputError as exc:
            raise ActionError(f"param 'comment': {exc}") from None
        starts = self._clock()
        author = self._created_by or _operator()
        body = silence_body(matchers, starts, starts + _length(params), author, comment)
        return (PlannedRequest(method="POST", text=self.client.describe_create(body), path=SILENCES_PATH,
                               body_json=json.dumps(body, sort_keys=True)),)

    async def send(self, request: PlannedRequest, *, idempotency_key: str, changed_by: str) -> str:
        """POST the silence (never retried) or expire one; SendError naming the status."""
        try:
            if request.method == "POST" and request.path == SILENCES_PATH:
                silence_id = await self.client.create_silence(request.body)
                return f"{self.client.name}: silence {silence_id} created"
            if request.method == "DELETE" and request.path.startswith(_EXPIRE_PREFIX):
                silence_id = unquote(request.path[len(_EXPIRE_PREFIX):])
                await self.client.expire_silence(silence_id)
                return f"{self.client.name}: silence {silence_id} expired"
        except SourceError as exc:
            raise SendError(str(exc), status=exc.status, unsure=exc.maybe_sent) from None
        raise SendError(f"{self.client.name}: refusing {request.method} {request.path!r}:"
                        " not a silence request")

    def restore_params(self, params: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any] | None:
        """After a create: expire the silences with these matchers that were not active before
        (the one the action made). Expiring cannot be undone (Alertmanager keeps no copy to
        bring back), so that direction has no restore."""
        if not _silencing(params):
            return None
        return {"matchers": [str(m) for m in _matchers(params)], "silenced": False,
                "keep": list(before.get("silences", ()))}

    async def aclose(self) -> None:
        await self.client.aclose()


def _silence_id(params: Mapping[str, Any]) -> str:
    """The silence to expire by id ("" when the action names matchers); only with silenced = false."""
    value = str(params.get("silence_id") or "").strip()
    if value and _silencing(params):
        raise ActionError("param 'silence_id': names a silence to expire; set silenced = false")
    return value


def _operator() -> str:
    from console.operator import user_name

    return user_name()


def _source(context: AdapterContext) -> AlertmanagerSource:
    sources = context.config.sources.alertmanager
    names = ", ".join(s.name for s in sources) or "none configured"
    if not context.gateway:
        if len(sources) != 1:
            raise ActionError(f"{KIND}: name the [[sources.alertmanager]] with gateway = ..."
                              f" (known: {names})")
        return sources[0]
    for source in sources:
        if source.name == context.gateway:
            return source
    raise ActionError(f"{KIND}: no [[sources.alertmanager]] named {context.gateway!r} (known: {names})")


def build_silence(context: AdapterContext) -> SilenceAdapter:
    """The factory: the named Alertmanager source with its secret headers resolved."""
    from console.secrets import SecretError, source_secret_headers

    if context.options:
        raise ActionError(f"options: {KIND} takes none (got {', '.join(sorted(context.options))})")
    source = _source(context)
    try:
        headers = source_secret_headers(source)
    except SecretError as exc:
        raise ActionError(f"[[sources.alertmanager]] {source.name}: {exc}") from None
    return SilenceAdapter(AlertmanagerClient.for_source(source, headers, transport=context.transport))


register(KIND, build_silence)
