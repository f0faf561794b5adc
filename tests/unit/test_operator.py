"""Who acts: the name comes from the password database, not the environment, and is header-safe."""

from __future__ import annotations

import os
import pwd

import pytest

from console.operator import header_value, operator, user_name


def test_the_user_is_the_real_uid_not_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "alice-the-admin")
    monkeypatch.setenv("LOGNAME", "alice-the-admin")
    assert user_name() == pwd.getpwuid(os.getuid()).pw_name
    assert operator()["user"] == user_name() != "alice-the-admin"


def test_a_user_without_a_passwd_entry_is_named_by_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(uid: int) -> pwd.struct_passwd:
        raise KeyError(uid)

    monkeypatch.setattr(pwd, "getpwuid", missing)
    assert user_name() == f"uid:{os.getuid()}"


def test_header_values_are_printable_ascii_and_reversible() -> None:
    assert header_value("alice") == "alice"
    assert header_value("zoë") == "zo%C3%AB"
    assert header_value("evil\r\nX-Injected: 1") == "evil%0D%0AX-Injected: 1"
    assert header_value("100%") == "100%25"
    for text in ("zoë", "名前", "a\tb\x00c"):
        encoded = header_value(text)
        assert encoded.isascii() and encoded.isprintable()


def test_the_ssh_client_comes_from_ssh_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_CONNECTION", "203.0.113.9 50022 10.0.0.5 22")
    monkeypatch.delenv("SSH_CLIENT", raising=False)
    assert operator()["ssh_client"] == "203.0.113.9"
    monkeypatch.delenv("SSH_CONNECTION")
    assert "ssh_client" not in operator()
