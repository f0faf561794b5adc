"""`shell.exec`: an allowlisted command, run as an argument list, never through a shell.

For what has no API llmdeck speaks (`kubectl rollout undo deployment/$deployment`). Off
unless `[actions.shell] enabled = true`, and even then a command runs only when its argv,
after substitution, starts with one of the `allow` prefixes. The runbook action says:

    argv = ["kubectl", "rollout", "undo", "deployment/$deployment", "-n", "$namespace"]
    read_argv = ["kubectl", "get", "deployment/$deployment", "-n", "$namespace", "-o", "json"]
    read_pointer = "/spec/template/spec/containers/0/image"   # stdout is JSON; else the text
    expect = "$image"                # what the read should show afterwards (with read_argv)
    target = "$deployment"           # what the operator types to confirm
    allow_dash = ["flags"]           # params whose values may start with "-"

Each placeholder fills part of one argument (a bare `$name` holding a list fills several).
No shell ever sees the values, so `; rm -rf /` or `$(...)` stay literal text; a value that
starts with "-" (an option smuggled in) is refused unless its param is in `allow_dash`, and
a value holding NUL, a newline or another control character is always refused. The read
command must be allowlisted too: anything this adapter runs is. A command past the
timeout has its whole process group killed; its output is captured, capped and redacted.
Only `console.runbooks.ActionDesk.apply` calls `send`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from console.action_types import ActionError, PlannedRequest, SendError
from console.adapters import AdapterContext, register
from console.adapters import templating as tpl

if TYPE_CHECKING:
    from console.cache.redact import Redactor
    from console.config_actions import ShellSettings

KIND = "shell.exec"
_ENV_REF = re.compile(r"env:([A-Za-z_][A-Za-z0-9_]*)")
OPTIONS = ("argv", "read_argv", "read_pointer", "expect", "target", "allow_dash")
OUTPUT_CAP = 64 * 1024
"""Bytes kept of each of stdout and stderr (the rest is read and dropped)."""
DETAIL_LIMIT = 2000
"""Characters of output in the answer `send` returns (it lands in the audit and timeline)."""
REDACT_MARGIN = 512
"""Characters past the limit the redaction still sees (a secret cut in half is still caught)."""


@dataclass(frozen=True)
class ShellOptions:
    """The checked `[action.options]` of a `shell.exec` action."""

    argv: tuple[str, ...]
    read_argv: tuple[str, ...] = ()
    read_pointer: str | None = None
    """None: compare the read command's stripped stdout; else a JSON pointer into it."""
    expect: Any = None
    target: str = ""
    allow_dash: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> ShellOptions:
        """Checked options; ActionError naming `options.<name>` for anything unusable."""
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ActionError(f"options: unknown {', '.join(unknown)} for {KIND}"
                              f" (known: {', '.join(OPTIONS)})")
        argv = _argv_template(options.get("argv"), "options.argv")
        read_argv = (_argv_template(options["read_argv"], "options.read_argv")
                     if "read_argv" in options else ())
        pointer = options.get("read_pointer")
        if pointer is not None:
            pointer = tpl.check_pointer(pointer, "options.read_pointer")
            if not read_argv:
                raise ActionError("options.read_pointer: needs options.read_argv (the command it reads)")
        expect = options.get("expect")
        if expect is not None:
            tpl.check_body_value(expect, "options.expect")
        if bool(read_argv) != (expect is not None):
            raise ActionError("options.expect: read_argv and expect go together (what the read shows,"
                              " and what it should show afterwards)")
        allow_dash = options.get("allow_dash", [])
        if not isinstance(allow_dash, list) or not all(isinstance(n, str) for n in allow_dash):
            raise ActionError("options.allow_dash: expected a list of parameter names")
        target = tpl.check_template(options.get("target", ""), "options.target")
        return cls(argv, read_argv, pointer, expect, target, frozenset(allow_dash))


def _argv_template(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ActionError(f"{where}: expected a non-empty list of strings (the argument list)")
    for i, item in enumerate(value):
        tpl.check_template(item, f"{where}[{i}]")
    if tpl.names_in(value[0]):
        raise ActionError(f"{where}[0]: the program cannot come from a parameter")
    return tuple(value)


def fill_argv(template: Sequence[str], params: Mapping[str, Any], where: str,
              allow_dash: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The argument list with the values in; ActionError for a value that could inject."""
    out: list[str] = []
    for i, item in enumerate(template):
        at = f"{where}[{i}]"
        for name in tpl.names_in(item):
            _check_value(name, params.get(name), name in allow_dash, at)
        bare = tpl.bare_name(item)
        if bare is not None and isinstance(params.get(bare), (list, tuple)):
            out.extend(tpl.value_text(v, bare, at) for v in params[bare])
            continue
        filled = tpl.text(item, params, at)
        if filled.startswith("-") and not item.startswith("-") and not (tpl.names_in(item) <= allow_dash):
            raise ActionError(f"{at}: {filled[:40]!r} would be read as an option")
        out.append(filled)
    return tuple(out)


def _check_value(name: str, value: Any, dash_ok: bool, where: str) -> None:
    for item in value if isinstance(value, (list, tuple)) else (value,):
        plain = tpl.value_text(item, name, where) if item is not None else ""
        if tpl.control_chars(plain):
            raise ActionError(f"param {name!r}: holds a NUL, newline or control character; refused ({where})")
        if plain.startswith("-") and not dash_ok:
            raise ActionError(f"param {name!r}: a value starting with '-' would be read as an option;"
                              f" refused ({where}; allow it with options.allow_dash)")


def allowed(argv: Sequence[str], allow: Sequence[Sequence[str]]) -> bool:
    """Whether `argv` starts with one of the (non-empty) allowed prefixes, element by element."""
    return any(p and tuple(argv[:len(p)]) == tuple(p) for p in allow)


class ShellExecAdapter:
    """An allowlisted command (see the module docstring)."""

    kind = KIND

    def __init__(self, options: ShellOptions, settings: ShellSettings, *,
                 redactor: Redactor | None = None, secret_params: frozenset[str] = frozenset(),
                 hidden_env: frozenset[str] = frozenset()) -> None:
        self.options = options
        self.settings = settings
        self._hidden_env = hidden_env
        self.readable = bool(options.read_argv)
        self._redactor = redactor
        self._masked = tpl.secret_masker()
        self._field = options.read_pointer or "output"
        in_argv = secret_params & (tpl.names_in(list(options.argv)) | tpl.names_in(list(options.read_argv)))
        if in_argv:
            raise ActionError(f"options.argv: secret parameter {', '.join(sorted(in_argv))} would be visible"
                              " to every user in the process list; pass it another way")

    def _runnable(self, argv: tuple[str, ...], where: str) -> tuple[str, ...]:
        """`argv` if commands are on and it is allowlisted; ActionError saying what to change."""
        if not self.settings.enabled:
            raise ActionError(f"{KIND}: commands are off ([actions.shell] enabled = false)")
        if not allowed(argv, self.settings.allow):
            raise ActionError(f"{where}: {shlex.join(argv)[:200]!r} starts with no allowed prefix"
                              " ([actions.shell] allow)")
        return argv

    def target(self, params: Mapping[str, Any]) -> str:
        if self.options.target:
            return tpl.text(self.options.target, params, "options.target")
        return shlex.join(self.options.argv[:1])

    async def read(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Run the read command (allowlisted too) and take its output or the field in it."""
        if not self.readable:
            return {}
        argv = self._runnable(fill_argv(self.options.read_argv, params, "options.read_argv",
                                        self.options.allow_dash), "options.read_argv")
        try:
            code, out, err = await run(argv, self.settings.timeout_seconds, self._env())
        except SendError as exc:
            raise ActionError(f"cannot read the current state: {exc}") from None
        if code != 0:
            raise ActionError(f"the read command {argv[0]} exited with status {code}: {self._tail(err)}")
        text = out.decode("utf-8", "replace")
        if self.options.read_pointer is None:
            return {self._field: self._masked(text.strip())}
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            raise ActionError(f"the read command {argv[0]} did not print JSON"
                              " (options.read_pointer needs it)") from None
        try:
            return {self._field: self._masked(tpl.pointer_get(doc, self.options.read_pointer))}
        except ActionError as exc:
            raise ActionError(f"the read command {argv[0]}: {exc}") from None

    def desired(self, params: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
        """What the read should show, masked the way the read is (so they compare)."""
        if not self.readable:
            return {}
        return {self._field: self._masked(tpl.expected(self.options.expect, params, "options.expect"))}

    def requests(self, params: Mapping[str, Any], current: Mapping[str, Any],
                 desired: Mapping[str, Any]) -> Sequence[PlannedRequest]:
        argv = self._runnable(fill_argv(self.options.argv, params, "options.argv", self.options.allow_dash),
                              "options.argv")
        return (PlannedRequest(method="EXEC", text="$ " + shlex.join(argv), argv=argv),)

    async def send(self, request: PlannedRequest, *, idempotency_key: str, changed_by: str) -> str:
        """Run it once; the exit status and the start of its output, or SendError (`unsure`
        when it was killed at the timeout: it may have done part of its work)."""
        if request.method != "EXEC" or not request.argv:
            raise SendError(f"{KIND}: refusing {request.method}: not a command")
        try:
            argv = self._runnable(tuple(request.argv), "argv")
        except ActionError as exc:
            raise SendError(str(exc)) from None
        code, out, err = await run(argv, self.settings.timeout_seconds, self._env())
        if code != 0:
            # it ran: `status` (the exit status here) tells the desk it was sent and refused
            raise SendError(f"{argv[0]} exited with status {code}: {self._tail(err or out)}", status=code)
        shown = self._tail(out)
        return f"{argv[0]}: exit 0" + (f": {shown}" if shown else "")

    def restore_params(self, params: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any] | None:
        if not self.readable or tpl.masked_somewhere(before.get(self._field)):
            return None  # a masked value cannot be put back
        return tpl.restore_from(self.options.expect, params, before, self._field)

    async def aclose(self) -> None:
        return None

    def _env(self) -> dict[str, str]:
        """This process's environment minus the variables llmdeck's own secrets come from
        (`env:VAR` references in the config): a command has no business reading them."""
        return {k: v for k, v in os.environ.items() if k not in self._hidden_env}

    def _tail(self, data: bytes) -> str:
        """Output fit for the audit and the screen's safe_text: decoded, redacted, capped."""
        return redact_output(data, self._redactor)


def redact_output(data: bytes, redactor: Redactor | None, limit: int = DETAIL_LIMIT) -> str:
    """Decoded output with secrets (and the PII the config redacts) replaced, NULs dropped,
    cut to `limit` characters (saying how much was cut). Cut before redacting, with a margin
    so a secret that straddles the limit is still whole when the patterns see it: the
    patterns are not linear on long runs of word characters."""
    text = data.decode("utf-8", "replace").replace("\x00", "").strip()
    more = max(0, len(text) - limit)
    text = text[:limit + REDACT_MARGIN]
    if redactor is not None:
        text, _ = redactor.redact(text)
    from connectors.http_text import Redactor as KnownRedactor

    text = KnownRedactor()(text)[:limit]  # key-shaped strings too, whatever the config says
    return text + (f" ... ({more} more characters)" if more else "")


async def run(argv: Sequence[str], timeout: float,
              env: Mapping[str, str] | None = None) -> tuple[int, bytes, bytes]:
    """Run `argv` (no shell, stdin closed, its own process group, `env` or this process's
    environment): (exit status, stdout, stderr), each output capped at OUTPUT_CAP. Past
    `timeout` the group is killed: SendError(unsure)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True,
            env=None if env is None else dict(env))
    except OSError as exc:
        raise SendError(f"cannot run {argv[0]}: {exc.strerror or type(exc).__name__}") from None
    assert proc.stdout is not None and proc.stderr is not None
    reads = asyncio.gather(_capped(proc.stdout), _capped(proc.stderr))
    try:
        async with asyncio.timeout(timeout):
            out, err = await reads
            code = await proc.wait()
    except TimeoutError:
        raise SendError(f"{argv[0]} was still running after {timeout:g} s and was killed;"
                        " it may have done part of its work", unsure=True) from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            reads.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reads
            await proc.wait()
    return code, out, err


async def _capped(stream: asyncio.StreamReader) -> bytes:
    """The first OUTPUT_CAP bytes; the rest is read (so the command never blocks) and dropped."""
    kept = bytearray()
    while chunk := await stream.read(65536):
        if len(kept) < OUTPUT_CAP:
            kept += chunk[:OUTPUT_CAP - len(kept)]
    return bytes(kept)


def build_shell_exec(context: AdapterContext) -> ShellExecAdapter:
    """The factory: checked options, the `[actions.shell]` settings and the config's redaction
    (the command's output is redacted the way span text is, plus key-shaped strings)."""
    from console.cache.redact import Redactor

    options = ShellOptions.parse(context.options)
    return ShellExecAdapter(options, context.config.actions.shell,
                            redactor=Redactor(context.config.redaction),
                            secret_params=context.secret_params,
                            hidden_env=env_refs(context.config.model_dump()))


def env_refs(node: Any) -> frozenset[str]:
    """Every VAR an `env:VAR` secret reference anywhere in the config names."""
    if isinstance(node, str):
        m = _ENV_REF.fullmatch(node)
        return frozenset({m.group(1)}) if m else frozenset()
    if isinstance(node, Mapping):
        node = list(node.values())
    if isinstance(node, (list, tuple)):
        return frozenset().union(*(env_refs(v) for v in node))
    return frozenset()


register(KIND, build_shell_exec)
