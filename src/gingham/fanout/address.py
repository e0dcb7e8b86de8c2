"""Where a fan-out server listens, as ``node run --fanout`` and ``fanout serve --socket`` take it.

Only unix sockets: ``/abs/path`` or ``unix:/abs/path``. The wire protocol
has no authentication of its own; on a unix socket the kernel does it (the
file is 0600 and the server checks each peer's uid with ``SO_PEERCRED``).
A TCP listener would hand the cluster's whole state (policies, endpoints,
addresses) to anyone who can connect, so ``host:port`` and ``tcp://`` are
refused by name rather than served without authentication.
"""

from __future__ import annotations

import re

from gingham.errors import ValidationError

# sun_path is 108 bytes with its terminating NUL.
MAX_PATH = 107
_TCP = re.compile(r"^(tcp://|\[[0-9a-fA-F:.]+\]:\d+$|[A-Za-z0-9.\-]+:\d+$)")

TCP_REFUSED = (
    "TCP is not supported: the fan-out protocol has no authentication of its own and a TCP "
    "listener would serve the cluster's data to anyone who connects; give the path of a unix "
    "socket (agents on other machines follow the datastore themselves)"
)


def socket_path(address: str, where: str = "fan-out address") -> str:
    """The unix socket path ``address`` names; :class:`ValidationError` for anything else."""
    text = address.strip()
    if not text:
        raise ValidationError("is empty: give the path of the fan-out server's unix socket", where)
    if _TCP.match(text):
        raise ValidationError(f"{address!r}: {TCP_REFUSED}", where)
    path = text.removeprefix("unix:")
    if "://" in path:
        scheme = path.split("://", 1)[0]
        raise ValidationError(f"{address!r}: scheme {scheme!r} is not supported (unix sockets only)",
                              where)  # fmt: skip
    if not path.startswith("/"):
        raise ValidationError(f"{address!r} must be an absolute path (of a unix socket)", where)
    if "\0" in path or len(path.encode()) > MAX_PATH:
        raise ValidationError(
            f"{address!r} is not a usable unix socket path (at most {MAX_PATH} bytes, no NUL)",
            where,
        )
    return path
