"""What the agent learns about its host from ``ip -j``: its underlay addresses and MTU."""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Callable
from ipaddress import ip_address, ip_interface
from typing import Any

from gingham.agent.node import HostAddresses
from gingham.calc.inputs import IPAddress
from gingham.errors import RoutingError

log = logging.getLogger(__name__)


def _ip_json(*args: str) -> list[dict[str, Any]]:
    argv = ["ip", "-j", *args]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise RoutingError(f"{' '.join(argv)}: {exc}") from exc
    try:
        doc = json.loads(out or "[]")
    except ValueError as exc:
        raise RoutingError(f"{' '.join(argv)}: unreadable output: {exc}") from exc
    return doc if isinstance(doc, list) else []


def detect_addresses(interface: str | None) -> tuple[HostAddresses, str | None]:
    """The host's underlay addresses: of ``interface``, else of the default route's device."""
    dev = interface
    if dev is None:
        routes = _ip_json("route", "show", "default")
        dev = routes[0].get("dev") if routes else None
    if dev is None:
        return HostAddresses(None), None
    v4 = v6 = None
    for link in _ip_json("addr", "show", "dev", dev):
        for info in link.get("addr_info", []):
            if info.get("scope") != "global":
                continue
            cidr = f"{info['local']}/{info['prefixlen']}"
            if info.get("family") == "inet" and v4 is None:
                v4 = cidr
            elif info.get("family") == "inet6" and v6 is None:
                v6 = cidr
    return HostAddresses(v4, v6), dev


def mtu_from_ip_json(links: list[dict[str, Any]], address: IPAddress) -> int:
    """The MTU of the link carrying ``address``, from ``ip -j addr show`` output."""
    for link in links:
        for info in link.get("addr_info", []):
            if ip_address(info.get("local", "::")) == address:
                return int(link["mtu"])
    raise RoutingError(f"no interface holds the host address {address}")


def detect_underlay_mtu(address: IPAddress, netns: str | None = None) -> int:
    """The MTU of the interface holding ``address`` (in ``netns``, a named namespace)."""
    return mtu_from_ip_json(_ip_json(*(["-n", netns] if netns else []), "addr", "show"), address)


def underlay_mtu_probe(addresses: HostAddresses) -> Callable[[], int | None]:
    """Measures the MTU of the interface holding this host's IPv4 address."""
    address = ip_interface(addresses.ipv4).ip if addresses.ipv4 else None

    def probe() -> int | None:
        if address is None:
            return None
        try:
            return detect_underlay_mtu(address)
        except RoutingError as exc:
            log.warning("cannot detect the underlay MTU: %s", exc)
            return None

    return probe
