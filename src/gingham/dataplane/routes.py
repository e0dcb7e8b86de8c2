"""Route manager: the routes and VXLAN peers a host wants, computed from IPAM state.

Pure: no I/O. Input is this host's name, every host, every IPAM block and every
pool; output is a :class:`RoutePlan` that the drivers (``netlink.sync_routes``
and ``vxlan.VxlanDriver``) apply — VXLAN peers first, routes after, because a
route ``via <tunnel address> dev vxlan.gingham onlink`` needs the neighbour and
FDB entries of that tunnel endpoint to carry a single packet.

Rules (pool ``vxlanMode`` of the pool holding the block; a block outside every
pool counts as ``Never``):

* A block affine to this host: a blackhole route, so addresses of the block that
  no local workload holds are dropped here instead of leaking to the default
  route. Workload /32s (programmed by the CNI plugin) are more specific.
* A block affine to another host R:
    - ``Never``: via R's underlay address when R shares this host's underlay
      subnet; otherwise nothing — crossing subnets without encapsulation needs
      the fabric to know the route, which is BGP's job (a top-of-rack peer).
    - ``CrossSubnet``: direct when R shares the subnet, VXLAN otherwise.
    - ``Always``: VXLAN.
* An address borrowed from a block by a host other than the block's affine host
  gets a /32 (/128) route to the borrowing host by the same rules; this host's
  own borrowed addresses are left to the CNI plugin's workload route.
* With BGP on, BIRD exports this host's blocks and learns everybody else's; the
  agent then programs only the blackholes and the VXLAN routes. BIRD installs a
  learnt route only when its next hop is on this host's subnet (a multihop next
  hop stays unreachable and its kernel export filter drops it), so the two do not
  program the same destination; where they might (vxlanMode Always on one
  subnet) BIRD's metric 512 loses to the agent's metric 0.

VXLAN uses one device for both inner families; its underlay is IPv4 when this
host has an IPv4 underlay address, IPv6 otherwise. A direct IPv6 route needs an
IPv6 underlay on the same IPv6 subnet.

When inputs conflict (two blocks with the same CIDR, say, while an affinity
moves), the first in a canonical order wins, so the result does not depend on
the order of the input.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import ip_network
from typing import Literal

from gingham.routing.types import (
    VXLAN_DEVICE,
    BlockInfo,
    HostInfo,
    IPAddress,
    IPNetwork,
    PoolInfo,
    VxlanMode,
)

RouteKind = Literal["unicast", "blackhole"]


@dataclass(frozen=True)
class RouteSpec:
    """A route the agent wants (same fields as ``gingham.dataplane.netlink.Route``)."""

    dst: IPNetwork
    via: IPAddress | None = None
    dev: str | None = None
    onlink: bool = False
    kind: RouteKind = "unicast"

    @property
    def is_vxlan(self) -> bool:
        return self.dev == VXLAN_DEVICE

    def sort_key(self) -> tuple[int, int, int, str, str]:
        return (
            self.dst.version,
            int(self.dst.network_address),
            self.dst.prefixlen,
            str(self.via or ""),
            self.dev or "",
        )

    def argv(self) -> list[str]:
        """``ip route replace`` arguments (without the protocol), for drivers and logs."""
        if self.kind == "blackhole":
            return ["blackhole", str(self.dst)]
        out = [str(self.dst)]
        if self.via is not None:
            out += ["via", str(self.via)]
        if self.dev is not None:
            out += ["dev", self.dev]
        if self.onlink:
            out.append("onlink")
        return out


@dataclass(frozen=True)
class VxlanPeer:
    """A remote tunnel endpoint: neighbour ``tunnel_addr -> mac`` and FDB ``mac -> underlay``."""

    host: str
    tunnel_addr: IPAddress
    mac: str
    underlay: IPAddress

    def sort_key(self) -> tuple[str, int, int]:
        return (self.host, self.tunnel_addr.version, int(self.tunnel_addr))


@dataclass(frozen=True)
class RoutePlan:
    vxlan_peers: tuple[VxlanPeer, ...]
    routes: tuple[RouteSpec, ...]

    @property
    def needs_vxlan(self) -> bool:
        return bool(self.vxlan_peers)


def _pool_for(block: IPNetwork, pools: list[PoolInfo]) -> PoolInfo | None:
    best: PoolInfo | None = None
    for pool in pools:
        if pool.cidr.version != block.version:
            continue
        if block.subnet_of(pool.cidr) and (  # type: ignore[arg-type]
            best is None or pool.cidr.prefixlen > best.cidr.prefixlen
        ):
            best = pool
    return best


def underlay_version(host: HostInfo) -> int:
    """The address family VXLAN packets of this host travel in."""
    return 4 if host.address_v4 is not None else 6


def same_subnet(me: HostInfo, other: HostInfo, version: int) -> bool:
    subnet = me.subnet(version)
    addr = other.address(version)
    return subnet is not None and addr is not None and addr in subnet


class _Planner:
    def __init__(self, me: HostInfo, hosts: dict[str, HostInfo], bgp_enabled: bool) -> None:
        self.me = me
        self.hosts = hosts
        self.bgp_enabled = bgp_enabled
        self.routes: dict[IPNetwork, RouteSpec] = {}
        self.peers: dict[tuple[str, int], VxlanPeer] = {}
        self.uv = underlay_version(me)

    def _add(self, route: RouteSpec) -> None:
        self.routes.setdefault(route.dst, route)

    def _vxlan_peer(self, remote: HostInfo, version: int) -> VxlanPeer | None:
        tunnel = remote.tunnel(version)
        underlay = remote.address(self.uv)
        if tunnel is None or underlay is None or self.me.tunnel(version) is None:
            return None
        return VxlanPeer(remote.name, tunnel, remote.mac, underlay)

    def route_to(self, dst: IPNetwork, host_name: str, mode: VxlanMode) -> None:
        remote = self.hosts.get(host_name)
        if remote is None or remote.name == self.me.name:
            return
        version = dst.version
        direct = same_subnet(self.me, remote, version)
        if direct and mode != "Always":
            if not self.bgp_enabled:
                self._add(RouteSpec(dst, via=remote.address(version)))
            return
        if mode == "Never":
            return  # across subnets without encapsulation: BGP and the fabric
        peer = self._vxlan_peer(remote, version)
        if peer is None:
            return
        if dst in self.routes:
            return  # an earlier, canonical winner holds this destination
        self.peers[(peer.host, version)] = peer
        self._add(RouteSpec(dst, via=peer.tunnel_addr, dev=VXLAN_DEVICE, onlink=True))

    def block(self, block: BlockInfo, pool: PoolInfo | None) -> None:
        mode: VxlanMode = pool.vxlan_mode if pool is not None else "Never"
        if block.host == self.me.name:
            self._add(RouteSpec(block.cidr, kind="blackhole"))
        elif block.host is not None:
            self.route_to(block.cidr, block.host, mode)
        for addr, borrower in block.borrowed:
            if borrower == block.host:
                continue
            self.route_to(ip_network(addr), borrower, mode)


def plan_routes(
    me: str,
    hosts: Iterable[HostInfo],
    blocks: Iterable[BlockInfo],
    pools: Iterable[PoolInfo],
    *,
    bgp_enabled: bool = False,
) -> RoutePlan:
    """The routes and VXLAN peers host ``me`` wants. Unknown ``me`` wants nothing."""
    by_name: dict[str, HostInfo] = {}
    for host in sorted(hosts, key=lambda h: h.name):
        by_name.setdefault(host.name, host)
    this = by_name.get(me)
    if this is None:
        return RoutePlan((), ())
    pool_list = sorted(pools, key=lambda p: (p.cidr.version, int(p.cidr.network_address)))
    planner = _Planner(this, by_name, bgp_enabled)
    # Specific destinations first (borrowed /32s are handled with their block, the
    # routes dict is keyed by destination), then in address order: a canonical order.
    ordered = sorted(
        set(blocks),
        key=lambda b: (
            b.cidr.version,
            int(b.cidr.network_address),
            b.cidr.prefixlen,
            b.host != me,  # our own claim wins a conflict: never route our block away
            b.host or "",
            b.borrowed,
        ),
    )
    for block in ordered:
        planner.block(block, _pool_for(block.cidr, pool_list))
    routes = tuple(sorted(planner.routes.values(), key=RouteSpec.sort_key))
    used = {(r.via, r.dst.version) for r in routes if r.is_vxlan}
    peers = tuple(
        sorted(
            (p for p in planner.peers.values() if (p.tunnel_addr, p.tunnel_addr.version) in used),
            key=VxlanPeer.sort_key,
        )
    )
    return RoutePlan(peers, routes)
