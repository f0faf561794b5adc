"""Who acts: the OS user, this host and the SSH client, for the audit journal, incidents and headers."""

from __future__ import annotations

import grp
import os
import pwd
import socket
from urllib.parse import quote


def user_name() -> str:
    """The OS user of this process's real uid, from the password database; `uid:<n>` when it
    has no entry (some containers). Never `$USER` / `$LOGNAME`: roles and the audit journal's
    "who" are decided by this name, and anyone can set an environment variable."""
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"


def header_value(text: str) -> str:
    """`text` safe for an HTTP header value (`LiteLLM-Changed-By: <operator>`): printable ASCII
    kept, anything else percent-encoded as UTF-8 (a user named `zoë` is sent as `zo%C3%AB`)."""
    return quote(text, safe=" !\"#$&'()*+,-./:;<=>?@[]^_`{|}~")


def user_groups() -> tuple[str, ...]:
    """The names of the OS groups this process runs with (for roles mapped from groups)."""
    names: list[str] = []
    for gid in sorted({os.getgid(), *os.getgroups()}):
        try:
            names.append(grp.getgrgid(gid).gr_name)
        except KeyError:
            names.append(str(gid))
    return tuple(names)


def operator() -> dict[str, str]:
    """Who acts: the OS user, this host, and the SSH client address if any (from SSH_CONNECTION,
    else SSH_CLIENT)."""
    who = {"user": user_name(), "host": socket.gethostname()}
    ssh = (os.environ.get("SSH_CONNECTION") or os.environ.get("SSH_CLIENT") or "").split(" ")[0]
    if ssh:
        who["ssh_client"] = ssh
    return who
