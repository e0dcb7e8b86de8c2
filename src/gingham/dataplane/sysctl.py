"""Kernel settings under /proc/sys, in the caller's network namespace.

pyroute2 has no sysctl API; writing /proc/sys directly is cheap. Files under
/proc/sys/net belong to the network namespace of the process that opens them,
so the agent, running inside its host namespace, sets its own host's values.

Settings are computed as data (``{path: value}``) by the ``*_settings``
functions and applied by :meth:`Sysctl.apply`, which writes only what differs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from gingham.errors import DataplaneError

_IFNAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,14}$")
RP_FILTER = {"off": 0, "strict": 1, "loose": 2}


def _ifname(name: str) -> str:
    if name in ("all", "default"):
        return name
    if not _IFNAME_RE.match(name) or name in (".", ".."):
        raise DataplaneError(f"invalid interface name {name!r}")
    return name


def forwarding_settings(ipv6: bool = True) -> dict[str, str]:
    """Host-wide forwarding (the host routes workload traffic)."""
    out = {"net/ipv4/ip_forward": "1"}
    if ipv6:
        out["net/ipv6/conf/all/forwarding"] = "1"
    return out


def workload_interface_settings(ifname: str, ipv6: bool = False) -> dict[str, str]:
    """A workload's host-side veth: answer ARP for 169.254.1.1 at once, forward.

    ``proxy_arp_pvlan`` stays off: each veth has one workload behind it, so
    there is nobody on the same link to proxy for.
    """
    n = _ifname(ifname)
    out = {
        f"net/ipv4/conf/{n}/forwarding": "1",
        f"net/ipv4/conf/{n}/proxy_arp": "1",
        f"net/ipv4/neigh/{n}/proxy_delay": "0",
    }
    if ipv6:
        out |= {
            f"net/ipv6/conf/{n}/disable_ipv6": "0",
            f"net/ipv6/conf/{n}/forwarding": "1",
            f"net/ipv6/conf/{n}/accept_ra": "0",
            f"net/ipv6/conf/{n}/accept_dad": "0",
        }
    return out


def rp_filter_settings(ifname: str, mode: str) -> dict[str, str]:
    """Reverse-path filter for ``ifname`` (or ``all``/``default``): off, strict or loose."""
    if mode not in RP_FILTER:
        raise DataplaneError(f"rp_filter mode must be one of {sorted(RP_FILTER)}, got {mode!r}")
    return {f"net/ipv4/conf/{_ifname(ifname)}/rp_filter": str(RP_FILTER[mode])}


class Sysctl:
    """Reads and writes /proc/sys (``root`` is a parameter so tests can use a directory)."""

    def __init__(self, root: str | Path = "/proc/sys") -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        key = key.replace(".", "/") if "/" not in key else key
        if ".." in key.split("/") or key.startswith("/"):
            raise DataplaneError(f"invalid sysctl {key!r}")
        return self.root / key

    def read(self, key: str) -> str:
        try:
            return self._path(key).read_text().strip()
        except OSError as exc:
            raise DataplaneError(f"cannot read sysctl {key}: {exc.strerror or exc}") from exc

    def write(self, key: str, value: str | int) -> None:
        try:
            self._path(key).write_text(f"{value}\n")
        except OSError as exc:
            raise DataplaneError(
                f"cannot set sysctl {key}={value}: {exc.strerror or exc}"
            ) from exc

    def apply(self, settings: Mapping[str, str | int]) -> dict[str, str]:
        """Write the settings that differ; returns those written (key -> new value).

        Keys are slash paths under /proc/sys (``net/ipv4/ip_forward``); the
        interface part may contain dots, so dotted keys are only for names
        without an interface (``net.ipv4.ip_forward``).
        """
        changed = {}
        for key, value in settings.items():
            if self.read(key) != str(value):
                self.write(key, value)
                changed[key] = str(value)
        return changed
