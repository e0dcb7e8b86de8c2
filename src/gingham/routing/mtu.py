"""MTU: the underlay MTU of the interface holding the host's address, minus encapsulation."""

from __future__ import annotations

import json
import subprocess
from ipaddress import ip_address
from typing import Any

from gingham.errors import RoutingError
from gingham.routing.types import VXLAN_OVERHEAD_V4, VXLAN_OVERHEAD_V6, IPAddress


def workload_mtu(underlay_mtu: int, encapsulated: bool, underlay_version: int = 4) -> int:
    """MTU for workload interfaces (and the VXLAN device): VXLAN costs 50 (IPv4) or 70 (IPv6)."""
    if underlay_mtu < 1280:
        raise RoutingError(f"underlay MTU {underlay_mtu} is below the IPv6 minimum of 1280")
    if not encapsulated:
        return underlay_mtu
    return underlay_mtu - (VXLAN_OVERHEAD_V4 if underlay_version == 4 else VXLAN_OVERHEAD_V6)


def mtu_from_ip_json(links: list[dict[str, Any]], address: IPAddress) -> int:
    """Pick the MTU of the link carrying ``address`` from ``ip -j addr show`` output."""
    for link in links:
        for info in link.get("addr_info", []):
            if ip_address(info.get("local", "::")) == address:
                return int(link["mtu"])
    raise RoutingError(f"no interface holds the host address {address}")


def detect_underlay_mtu(address: IPAddress, netns: str | None = None) -> int:
    argv = ["ip", "-j"] + (["-n", netns] if netns else []) + ["addr", "show"]
    try:
        out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise RoutingError(f"cannot list addresses ({' '.join(argv)}): {exc}") from exc
    return mtu_from_ip_json(json.loads(out), address)
