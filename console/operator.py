"""Who acts: the OS user, this host and the SSH client, for the audit journal, incidents and headers."""

from __future__ import annotations

import getpass
import grp
import os
import socket


def user_name() -> str:
    """The OS user (uid:<n> when there is no passwd entry and no LOGNAME/USER, as in some containers)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


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
