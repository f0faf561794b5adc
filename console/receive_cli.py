"""`llmdeck receive`: an OTLP/HTTP trace receiver writing into the cache until a stop signal.

The HTTP side is `connectors.otlp_http.OtlpHttpServer`, the ingest side `console.receiver.Receiver`.
It prints one line once listening (the endpoint to give exporters) and one summary line when it
stops. SIGINT, SIGTERM or SIGHUP stop it cleanly (requests in flight are answered once stored,
the rest refused with a 503 the exporters retry), exit code 128 + the signal; a second SIGINT
or SIGTERM exits at once, which is as safe as a kill -9: a span is acknowledged only once stored.
Binding anything but loopback needs `[receiver] token` (a secret reference).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from console.cache_cli import open_for_cli
from console.cli import EXIT_CACHE, EXIT_PROBLEM, EXIT_USAGE
from console.config import Config, parse_listen
from console.safe_text import cell
from console.stop_signals import StopSignals, exit_code, name, say

if TYPE_CHECKING:
    from console.receiver import Receiver, ReceiverStats

DEFAULT_LISTEN = "127.0.0.1:4318"


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main_receive(config: Config, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    listen = args.listen or config.receiver.listen or DEFAULT_LISTEN
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        say(err, f"llmdeck: receive: --listen {cell(exc, 300)}")
        return EXIT_USAGE
    ok, token = _token(config, host, port, err)
    if not ok:
        return EXIT_PROBLEM
    signals = StopSignals(last_words=lambda signum: say(
        err, f"llmdeck: receive stopped at once by a second {name(signum)}; every span"
             " acknowledged is stored, the rest is retried by the exporters"))
    signals.install()
    try:
        cache = open_for_cli(config.cache_file(args.cache), read_only=False, err=err)
        if cache is None:
            return EXIT_CACHE
        from console.receiver import Receiver
        from console.receiver_pool import default_workers, tune_writer

        tune_writer(cache)
        receiver = Receiver(cache, config, queue_spans=config.receiver.queue_spans,
                            on_fault=_on_fault(err), map_workers=default_workers(),
                            secrets=(token,) if token else (),
                            on_reopen=tune_writer)
        receiver.start()
        code = EXIT_PROBLEM
        try:
            code = asyncio.run(_serve(receiver, config, host, port, token, signals, out, err))
        finally:
            receiver.close()
            stats = receiver.stats()
            if stats.state == "cannot_write" or receiver.running:
                receiver.cache.abandon()  # no checkpoint onto a failing disk; the WAL is kept
            else:
                receiver.cache.close()
        if signals.received is not None:
            say(err, f"llmdeck: receive stopped by {name(signals.received)}: {_summary(stats)}")
            return exit_code(signals.received)
        return code
    finally:
        signals.uninstall()


def _token(config: Config, host: str, port: int, err: TextIO) -> tuple[bool, str | None]:
    """(True, the bearer token to require or None), or (False, None) after saying why not."""
    ref = config.receiver.token
    if ref is None:
        if is_loopback(host):
            return True, None
        say(err, f"llmdeck: receive: refusing to listen on {cell(host, 200)}:{port}, which is not"
                 " loopback, without a bearer token; set [receiver] token = \"keyring:SERVICE/NAME\""
                 " or \"env:VAR\" in the config (exporters then send Authorization: Bearer <token>)")
        return False, None
    from console import secrets

    try:
        return True, secrets.header_secret(ref, timeout=10.0)  # stripped, as the console reads it
    except secrets.SecretError as exc:  # names the reference and what to do, never a value
        say(err, f"llmdeck: receive: [receiver] token: {cell(exc, 500)}")
        return False, None


async def _serve(receiver: Receiver, config: Config, host: str, port: int, token: str | None,
                 signals: StopSignals, out: TextIO, err: TextIO) -> int:
    from connectors.otlp_http import OtlpHttpServer

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    server = OtlpHttpServer(receiver.handle, host=host, port=port, token=token,
                            max_body_bytes=config.receiver.max_body_bytes)
    try:
        await server.start()
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
        say(err, f"llmdeck: receive: cannot listen on {cell(host, 200)}:{port}: {cell(reason, 300)}")
        return EXIT_PROBLEM

    def on_signal(signum: int) -> None:  # in a signal handler: hand it to the loop
        loop.call_soon_threadsafe(stop.set)

    signals.listen(on_signal)
    bound_host, bound_port = server.address
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    url = f"http://{shown}:{bound_port}"
    auth = " (bearer token required)" if token is not None else ""
    say(out, f"llmdeck: receiving OTLP/HTTP traces on {url}/v1/traces{auth};"
             f" OTEL_EXPORTER_OTLP_ENDPOINT={url}")
    try:
        await server.serve_until(stop)
    finally:
        signals.listen(None)
    return exit_code(signals.received if signals.received is not None else signal.SIGTERM)


def _on_fault(err: TextIO) -> Callable[[str | None], None]:
    """One line on stderr when the receiver starts or stops being able to write."""

    def said(reason: str | None) -> None:
        if reason is not None:
            say(err, f"llmdeck: receive: cannot write the cache: {cell(reason, 1000)};"
                     " answering 503 until it can (retrying by itself)")
        else:
            say(err, "llmdeck: receive: the cache can be written again; receiving")

    return said


def _summary(stats: ReceiverStats) -> str:
    plural = "" if stats.requests == 1 else "s"
    return (f"{stats.requests:,} request{plural}, {stats.spans_stored:,} spans stored,"
            f" {stats.duplicates:,} duplicates, {stats.rejected:,} rejected")
