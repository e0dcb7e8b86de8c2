"""Where a fan-out server listens, as ``node run --fanout`` and ``fanout serve`` take it.

- a unix socket: ``/abs/path`` or ``unix:/abs/path``. The kernel authenticates
  the peer: the file is 0600 and the server checks each peer's uid with
  ``SO_PEERCRED``;
- TCP with mutual TLS: ``tls://HOST:PORT?ca=/abs/ca.pem&cert=/abs/c.pem&key=/abs/c.key``
  (the agent's side; the server takes ``--listen HOST:PORT`` and ``--tls-*``
  files). Both ends show certificates signed by the CA (``tls.py``).

Plain TCP (``host:port``, ``tcp://``) is refused by name: the wire protocol
has no authentication of its own, and a plain listener would hand the
cluster's whole state (policies, endpoints, addresses) to anyone who can
connect.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from gingham.errors import ValidationError
from gingham.fanout.tls import TLSFiles

# sun_path is 108 bytes with its terminating NUL.
MAX_PATH = 107
_TCP = re.compile(r"^(tcp://|\[[0-9a-fA-F:.]+\]:\d+$|[A-Za-z0-9.\-]+:\d+$)")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.\-]{0,251}[A-Za-z0-9])?$")

TCP_REFUSED = (
    "plain TCP is not supported: the fan-out protocol has no authentication of its own and a "
    "TCP listener would serve the cluster's data to anyone who connects; give the path of a "
    "unix socket, or tls://HOST:PORT?ca=...&cert=...&key=... (mutual TLS)"
)


@dataclass(frozen=True, slots=True)
class Address:
    """A unix socket (``path``) or a TLS endpoint (``host``, ``port``, ``tls``)."""

    path: str = ""
    host: str = ""
    port: int = 0
    tls: TLSFiles | None = None

    def __str__(self) -> str:
        if self.path:
            return self.path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tls://{host}:{self.port}"


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
        raise ValidationError(f"{address!r}: scheme {scheme!r} is not supported here "
                              "(a unix socket path)", where)  # fmt: skip
    if not path.startswith("/"):
        raise ValidationError(f"{address!r} must be an absolute path (of a unix socket)", where)
    if "\0" in path or len(path.encode()) > MAX_PATH:
        raise ValidationError(
            f"{address!r} is not a usable unix socket path (at most {MAX_PATH} bytes, no NUL)",
            where,
        )
    return path


def host_port(text: str, where: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` (port 0: any free one, for tests)."""
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)|([^:\[\]]+):(\d+)", text.strip())
    if m is None:
        raise ValidationError(f"{text!r} must be HOST:PORT (IPv6 in brackets)", where)
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if port > 65535:
        raise ValidationError(f"{text!r}: port {port} is not 0..65535", where)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST.match(host):
            raise ValidationError(f"{text!r}: {host!r} is neither an address nor a host name",
                                  where) from None  # fmt: skip
    return host, port


def parse(address: str, where: str = "fan-out address") -> Address:
    """What an agent is told to connect to: a unix socket or a tls:// endpoint."""
    text = address.strip()
    if not text.startswith("tls://"):
        return Address(path=socket_path(text, where))
    parts = urlsplit(text)
    if parts.path or parts.fragment or parts.username or parts.password:
        raise ValidationError(f"{address!r}: only tls://HOST:PORT?ca=...&cert=...&key=...", where)
    host, port = host_port(parts.netloc, where)
    if port == 0:
        raise ValidationError(f"{address!r}: port 0 is not an address to connect to", where)
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"ca", "cert", "key"})
    if unknown:
        raise ValidationError(f"{address!r}: unknown parameters {', '.join(unknown)} "
                              "(ca, cert and key are known)", where)  # fmt: skip
    files: dict[str, str] = {}
    for name in ("ca", "cert", "key"):
        values = query.get(name, [])
        if len(values) != 1 or not values[0].startswith("/"):
            raise ValidationError(f"{address!r}: {name}= must be given once, as an absolute "
                                  "path (mutual TLS needs ca, cert and key)", where)  # fmt: skip
        files[name] = values[0]
    return Address(host=host, port=port, tls=TLSFiles(files["ca"], files["cert"], files["key"]))
