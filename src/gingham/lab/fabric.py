"""The lab's underlay: host namespaces on 1-3 subnets joined by a router namespace.

Layout for lab ``L`` (every namespace name starts with ``gh-L-``, which is how
:func:`destroy_fabric` finds them again after a crash)::

    gh-L-sw   the "switches": one Linux bridge br<k> per subnet
    gh-L-rt   the router: leg r<k> on each subnet's bridge, address .1, forwarding on
    gh-L-h1   a host: eth0 on its subnet's bridge, address .(10+i),
    gh-L-h2   default route via the router's .1 (so proxy ARP for 169.254.1.1
    ...       works and nothing can leave the lab), forwarding on, rp_filter loose by default and strict on workload veths

Subnets come from DESIGN.md section 5: 192.0.2.0/24, 198.51.100.0/24,
203.0.113.0/24. Hosts are spread over the subnets in contiguous runs: with 3
hosts and 2 subnets, h1 and h2 share subnet 1 and h3 is alone on subnet 2.

The :class:`Fabric` description is plain data, serialisable to JSON (the lab
keeps it in state.json).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from ipaddress import IPv4Network
from typing import Any

from gingham.errors import LabError
from gingham.lab.netns import (
    add_netns,
    add_veth,
    delete_netns_prefix,
    ip_batch,
    list_netns,
    write_sysctls,
)

SUBNETS = (
    IPv4Network("192.0.2.0/24"),
    IPv4Network("198.51.100.0/24"),
    IPv4Network("203.0.113.0/24"),
)
HOST_OFFSET = 10  # host i gets .(10 + i) on its subnet; the router is .1
_LAB_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,19}$")
_HOST_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")
_RESERVED = ("sw", "rt")


def check_lab_name(lab: str) -> str:
    # no '-' so that the prefix gh-<lab>- of one lab never matches another lab
    if not _LAB_RE.match(lab):
        raise LabError(f"invalid lab name {lab!r}: 1-20 of a-z 0-9 _, starting alnum")
    return lab


def lab_prefix(lab: str) -> str:
    """Prefix of every namespace of lab ``lab``."""
    return f"gh-{check_lab_name(lab)}-"


def host_netns(lab: str, host: str) -> str:
    return f"{lab_prefix(lab)}{host}"


@dataclass(frozen=True)
class FabricHost:
    name: str
    netns: str
    address: str  # underlay address, without prefix length
    subnet: str  # CIDR of its underlay subnet
    gateway: str  # the router's address on that subnet
    interface: str = "eth0"
    index: int = 0

    @property
    def prefixlen(self) -> int:
        return IPv4Network(self.subnet).prefixlen


@dataclass(frozen=True)
class Fabric:
    lab: str
    hosts: tuple[FabricHost, ...]
    router: str  # netns of the router
    switch: str  # netns holding the bridges
    subnets: tuple[str, ...]
    mtu: int = 1500

    def host(self, name: str) -> FabricHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise LabError(f"no host {name!r} in lab {self.lab} (have {[h.name for h in self.hosts]})")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hosts"] = [asdict(h) for h in self.hosts]
        d["subnets"] = list(self.subnets)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fabric:
        try:
            hosts = tuple(FabricHost(**h) for h in d["hosts"])
            return cls(
                lab=d["lab"], hosts=hosts, router=d["router"], switch=d["switch"],
                subnets=tuple(d["subnets"]), mtu=int(d.get("mtu", 1500)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LabError(f"bad fabric description: {exc!r}") from exc

    @classmethod
    def from_json(cls, text: str) -> Fabric:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise LabError(f"bad fabric JSON at line {exc.lineno} column {exc.colno}") from exc


def plan_fabric(
    lab: str,
    hosts: int | Sequence[str] = 3,
    subnets: int = 1,
    layout: Sequence[int] | None = None,
    mtu: int = 1500,
) -> Fabric:
    """The topology as data (no I/O): names, addresses and subnet of every host.

    ``layout[i]`` (0-based subnet of host i) overrides the contiguous spread.
    """
    prefix = lab_prefix(lab)
    names = [f"h{i}" for i in range(1, hosts + 1)] if isinstance(hosts, int) else list(hosts)
    if not names:
        raise LabError("a fabric needs at least one host")
    if not 1 <= subnets <= len(SUBNETS):
        raise LabError(f"subnets must be 1..{len(SUBNETS)}, got {subnets}")
    if len(set(names)) != len(names):
        raise LabError(f"duplicate host names in {names}")
    for n in names:
        if not _HOST_RE.match(n) or n in _RESERVED:
            raise LabError(f"invalid host name {n!r}: a-z then a-z 0-9, at most 12, not sw/rt")
    if layout is None:
        layout = [(i * subnets) // len(names) for i in range(len(names))]
    if len(layout) != len(names) or any(not 0 <= k < subnets for k in layout):
        raise LabError(f"layout {list(layout)} must give a subnet 0..{subnets - 1} per host")
    if len(names) > 200:
        raise LabError("at most 200 hosts")
    out = []
    for i, (name, k) in enumerate(zip(names, layout, strict=True), start=1):
        net = SUBNETS[k]
        out.append(
            FabricHost(
                name=name, netns=f"{prefix}{name}", address=str(net.network_address + HOST_OFFSET + i),
                subnet=str(net), gateway=str(net.network_address + 1), index=i,
            )
        )
    return Fabric(
        lab=lab, hosts=tuple(out), router=f"{prefix}rt", switch=f"{prefix}sw",
        subnets=tuple(str(SUBNETS[k]) for k in range(subnets)), mtu=mtu,
    )


def build_fabric(
    lab: str,
    hosts: int | Sequence[str] = 3,
    subnets: int = 1,
    layout: Sequence[int] | None = None,
    mtu: int = 1500,
) -> Fabric:
    """Create the namespaces, bridges, router and hosts of a lab; undo it all on failure."""
    fabric = plan_fabric(lab, hosts, subnets, layout, mtu)
    prefix = lab_prefix(lab)
    leftovers = [n for n in list_netns() if n.startswith(prefix)]
    if leftovers:
        raise LabError(f"lab {lab} already has namespaces {leftovers}: destroy it first")
    try:
        _build(fabric)
    except BaseException:
        destroy_fabric(lab)
        raise
    return fabric


def _build(f: Fabric) -> None:
    add_netns(f.switch)
    add_netns(f.router)
    _host_sysctls(f.router)
    for k, cidr in enumerate(f.subnets):
        net = IPv4Network(cidr)
        add_veth(f"r{k}", f"rt{k}", netns=f.router, peer_netns=f.switch, mtu=f.mtu)
        ip_batch(f.switch, [
            f"link add br{k} mtu {f.mtu} type bridge",
            f"link set br{k} up",
            f"link set rt{k} master br{k}",
            f"link set rt{k} up",
        ])
        ip_batch(f.router, [
            f"addr add {net.network_address + 1}/{net.prefixlen} dev r{k}",
            f"link set r{k} up",
        ])
    for h in f.hosts:
        k = f.subnets.index(h.subnet)
        port = f"p{h.index}"
        add_netns(h.netns)
        add_veth(h.interface, port, netns=h.netns, peer_netns=f.switch, mtu=f.mtu)
        ip_batch(f.switch, [f"link set {port} master br{k}", f"link set {port} up"])
        _host_sysctls(h.netns)
        ip_batch(h.netns, [
            f"addr add {h.address}/{h.prefixlen} dev {h.interface}",
            f"link set {h.interface} up",
            f"route add default via {h.gateway} dev {h.interface}",
        ])


def _host_sysctls(netns: str) -> None:
    write_sysctls(netns, {
        "net.ipv4.ip_forward": 1,
        "net.ipv6.conf.all.forwarding": 1,
        "net.ipv4.conf.all.rp_filter": 0,  # per interface: strict on workloads (the agent)
        "net.ipv4.conf.default.rp_filter": 2,
    })


def destroy_fabric(lab: str) -> list[str]:
    """Remove every namespace of the lab (and what runs in them), even after a crash."""
    return delete_netns_prefix(lab_prefix(lab))
