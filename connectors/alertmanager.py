"""Alertmanager API v2: alerts with their silence/inhibit state, silences, and the two silence writes.

Reads are plain GETs through the source's `SourceClient`. The two writes,
`create_silence` and `expire_silence`, are called from one place only,
`console.silences.apply` (plan -> confirm -> send -> verify -> record); a test
checks that no other module calls them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from connectors.alertmanager_payloads import (
    PayloadError,
    matcher_filter,
    matcher_json,
    parse_alerts,
    parse_silence,
    parse_silence_id,
    parse_silences,
)
from connectors.http import SourceClient, SourceError
from console.alerts import ActiveAlert, Silence, SilenceMatcher
from console.timeutil import naive_utc

if TYPE_CHECKING:
    from console.config import AlertmanagerSource

ALERTS_PATH = "/api/v2/alerts"
SILENCES_PATH = "/api/v2/silences"


def silence_path(silence_id: str) -> str:
    """`/api/v2/silence/{id}` with the id quoted (it comes from the user or the server)."""
    return f"/api/v2/silence/{quote(silence_id, safe='')}"


def rfc3339(t: datetime) -> str:
    """Naive UTC (or aware) -> `2026-12-04T16:34:50.294Z`."""
    return naive_utc(t).isoformat(timespec="milliseconds") + "Z"


def silence_body(matchers: Sequence[SilenceMatcher], starts: datetime, ends: datetime,
                 created_by: str, comment: str) -> dict[str, Any]:
    """The JSON body of `POST /api/v2/silences`."""
    return {
        "matchers": [matcher_json(m) for m in matchers],
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(ends),
        "createdBy": created_by,
        "comment": comment,
    }


class AlertmanagerClient:
    """One Alertmanager: `alerts()`, `silences()`, `silence(id)`; writes only via `console.silences`."""

    def __init__(self, http: SourceClient) -> None:
        self.http = http
        self.name = http.name

    @classmethod
    def for_source(cls, source: AlertmanagerSource, secret_headers: Mapping[str, str],
                   **kw: Any) -> AlertmanagerClient:
        """A client for a configured `[[sources.alertmanager]]`."""
        return cls(SourceClient.for_source(source, secret_headers, **kw))

    def _decode_error(self, what: str, exc: PayloadError) -> SourceError:
        return SourceError(self.name, "decode", f"{what}: unexpected answer: {exc}")

    async def alerts(self, matchers: Sequence[SilenceMatcher] = ()) -> tuple[ActiveAlert, ...]:
        """Every alert (active, suppressed, unprocessed), or those `matchers` select (server-side)."""
        params = [("filter", matcher_filter(m)) for m in matchers]
        payload = await self.http.get_json(ALERTS_PATH, params=params or None)
        try:
            return parse_alerts(self.name, payload)
        except PayloadError as exc:
            raise self._decode_error(f"GET {ALERTS_PATH}", exc) from None

    async def silences(self) -> tuple[Silence, ...]:
        """Every silence the server holds (active, pending and recently expired)."""
        payload = await self.http.get_json(SILENCES_PATH)
        try:
            return parse_silences(self.name, payload)
        except PayloadError as exc:
            raise self._decode_error(f"GET {SILENCES_PATH}", exc) from None

    async def silence(self, silence_id: str) -> Silence:
        """One silence by id (`SourceError` with status 404 when there is none)."""
        payload = await self.http.get_json(silence_path(silence_id))
        try:
            return parse_silence(self.name, payload)
        except PayloadError as exc:
            raise self._decode_error("GET /api/v2/silence/{id}", exc) from None

    def describe_create(self, body: Mapping[str, Any]) -> str:
        """The exact create request as text (secret headers masked)."""
        return self.http.describe_request("POST", SILENCES_PATH, json=body)

    def describe_expire(self, silence_id: str) -> str:
        """The exact expire request as text (secret headers masked)."""
        return self.http.describe_request("DELETE", silence_path(silence_id))

    async def create_silence(self, body: Mapping[str, Any]) -> str:
        """POST the silence (never retried); its new id. Call only from `console.silences.apply`."""
        response = await self.http.send("POST", SILENCES_PATH, json=body)
        try:
            payload = json.loads(self.http.masked_body(response))
        except ValueError:
            raise SourceError(self.name, "decode", f"POST {SILENCES_PATH}: answer is not JSON",
                              status=response.status_code) from None
        try:
            return parse_silence_id(payload)
        except PayloadError as exc:
            raise self._decode_error(f"POST {SILENCES_PATH}", exc) from None

    async def expire_silence(self, silence_id: str) -> None:
        """DELETE (expire) the silence. Call only from `console.silences.apply`.

        Expiring is idempotent (an expired silence answers 200 again), so a lost answer may be retried.
        """
        await self.http.send("DELETE", silence_path(silence_id), idempotent=True)

    async def aclose(self) -> None:
        await self.http.aclose()
