"""BGP session passwords, read from files on the host (gingham has no secret store).

A password file holds the password on one line (a final newline is dropped).
It must be a regular file owned by root or by the agent's user with no access
for group or others (0600, 0400): a password others can read protects nothing.
Errors say which file and why, never what it holds; the password itself goes
only into BIRD's configuration, which :class:`~gingham.routing.bird.BirdProcess`
writes 0600. Nothing here runs a program, so a password never reaches a command
line.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field

from gingham.errors import RoutingError
from gingham.routing.bird_config import TCP_MD5_MAX_KEY, password_problem

# Enough for a key and its newline; anything longer is not a password file.
_READ_LIMIT = 4 * TCP_MD5_MAX_KEY


def read_password(path: str) -> str:
    """The password in file ``path``; :class:`RoutingError` (naming the file, not its
    content) when it is missing, unsafe or not a usable password."""
    if not os.path.isabs(path):
        raise RoutingError(f"password file {path}: not an absolute path")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise RoutingError(f"password file {path}: cannot open it: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RoutingError(f"password file {path}: not a regular file")
        if st.st_mode & 0o077:
            raise RoutingError(f"password file {path}: group or others may read it (mode "
                               f"{st.st_mode & 0o777:04o}); chmod 600 it")
        if st.st_uid not in (0, os.geteuid()):
            raise RoutingError(f"password file {path}: owned by uid {st.st_uid}, not by root "
                               "or the agent's user")
        data = os.read(fd, _READ_LIMIT + 1)
    finally:
        os.close(fd)
    if len(data) > _READ_LIMIT:
        raise RoutingError(f"password file {path}: too long for a password")
    text = data.decode("ascii", errors="replace")
    if text.endswith("\n"):
        text = text[:-1].removesuffix("\r")
    problem = password_problem(text)
    if problem is not None:
        raise RoutingError(f"password file {path}: not a usable BGP password ({problem})")
    return text


@dataclass
class Passwords:
    """The passwords of one render: file -> password, and why other files gave none."""

    secrets: dict[str, str] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # never print what the files hold
        return f"Passwords(files={sorted(self.secrets)}, problems={self.problems})"


def read_passwords(paths: Iterable[str]) -> Passwords:
    out = Passwords()
    for path in sorted(set(paths)):
        try:
            out.secrets[path] = read_password(path)
        except RoutingError as exc:
            out.problems[path] = str(exc)
    return out
