"""The one choke point, seen from the source tree: no module may reach a gateway's write side
except through an adapter whose `send` only `console.runbooks.ActionDesk` calls.

Like tests/unit/test_alertmanager_guard.py, this scans console/, panels/ and connectors/ for
calls (AST, not text) and fails when a new caller appears outside the sanctioned list.
"""

from __future__ import annotations

import ast
from pathlib import Path

from connectors.litellm_admin import LiteLLMAdmin

ROOT = Path(__file__).resolve().parents[2]
REMOVED_WRITES = ("update_key", "block_key", "unblock_key", "update_team", "block_team", "unblock_team",
                  "update_model", "set_fallbacks", "delete_fallbacks")

# Every `.send(...)` in console/panels/connectors whose first argument is not the literal "GET",
# with what it is. A new one must be added here knowingly.
SANCTIONED_SENDS = {
    "connectors/alertmanager.py",          # SourceClient.send: the silence POST / DELETE
    "connectors/litellm_admin.py",         # SourceClient.send inside LiteLLMAdmin.admin_write
    "console/adapters/http_action.py",     # SourceClient.send: the http.request adapter's send
    "console/runbooks.py",                 # Adapter.send: ActionDesk, the choke point itself
    "console/demo/simulator.py",           # link.send: the simulator's telemetry to the demo receiver
    "connectors/otlp_http_connection.py",  # h11 Connection.send: the OTLP receiver's responses
}


def _calls(attrs: tuple[str, ...]) -> list[tuple[str, ast.Call]]:
    found = []
    paths = [p for d in ("console", "panels", "connectors") for p in sorted(ROOT.glob(f"{d}/**/*.py"))]
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            func = node.func if isinstance(node, ast.Call) else None
            if isinstance(node, ast.Call) and isinstance(func, ast.Attribute) and func.attr in attrs:
                found.append((path.relative_to(ROOT).as_posix(), node))
    return found


def test_litellm_admin_has_one_write_entry_point() -> None:
    """The per-write convenience methods are gone: a write is built by a `*_request` builder
    (pure, no I/O) and sent only by `admin_write`."""
    assert [name for name in REMOVED_WRITES + ("write", "send") if hasattr(LiteLLMAdmin, name)] == []
    assert callable(LiteLLMAdmin.admin_write)


def test_only_the_litellm_adapters_call_the_admin_writes() -> None:
    """`LiteLLMAdmin.admin_write` (and any write method that might come back under its old
    name) is called only from console/adapters/litellm*.py, whose `send` only the desk calls."""
    callers = {path for path, _ in _calls(("admin_write",) + REMOVED_WRITES)}
    assert sorted(callers) == ["console/adapters/litellm_common.py"]


def test_only_the_sanctioned_modules_send_a_non_get_request() -> None:
    """A `.send(...)` whose method is not the literal "GET" appears only in the listed modules."""
    senders = set()
    for path, call in _calls(("send",)):
        method = call.args[0] if call.args else None
        if not (isinstance(method, ast.Constant) and method.value == "GET"):
            senders.add(path)
    assert senders == SANCTIONED_SENDS


def test_only_the_desk_calls_an_adapters_send() -> None:
    """`Adapter.send` (an `await <x>.adapter.send(...)`) is called only by console/runbooks.py."""
    callers = {path for path, call in _calls(("send",))
               if isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Attribute)
               and call.func.value.attr == "adapter"}
    assert sorted(callers) == ["console/runbooks.py"]
