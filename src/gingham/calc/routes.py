"""Route plan: the routes and VXLAN peers a host wants, computed from IPAM state.

Pure: no I/O. Input is this host's name, every host, every IPAM block and every
pool; output is a :class:`RoutePlan` of routing messages that the graph
(``calc.routing``) sends on; the dataplane applies VXLAN peers first, routes
after, because a route ``via <tunnel address> dev vxlan.gingham onlink`` needs
the neighbour and FDB entries of that tunnel endpoint to carry a single packet.

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

from gingham.calc.inputs import BlockView, IPAddress, IPNetwork
from gingham.calc.messages import RouteUpdate, VxlanPeerUpdate
from gingham.calc.routing_types import VXLAN_DEVICE, HostInfo, PoolInfo, VxlanMode


@dataclass(frozen=True)
class RoutePlan:
    vxlan_peers: tuple[VxlanPeerUpdate, ...]
    routes: tuple[RouteUpdate, ...]

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


@dataclass(frozen=True)
class _RouteBlock:
    """What the plan reads of a block (hashable, so duplicates count once)."""

    cidr: IPNetwork
    host: str | None
    borrowed: tuple[tuple[IPAddress, str], ...]


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
        self.routes: dict[IPNetwork, RouteUpdate] = {}
        self.peers: dict[tuple[str, int], VxlanPeerUpdate] = {}
        self.uv = underlay_version(me)

    def _add(self, route: RouteUpdate) -> None:
        self.routes.setdefault(route.dst, route)

    def _vxlan_peer(self, remote: HostInfo, version: int) -> VxlanPeerUpdate | None:
        tunnel = remote.tunnel(version)
        underlay = remote.address(self.uv)
        if tunnel is None or underlay is None or self.me.tunnel(version) is None:
            return None
        return VxlanPeerUpdate(remote.name, tunnel, remote.mac, underlay)

    def route_to(self, dst: IPNetwork, host_name: str, mode: VxlanMode) -> None:
        remote = self.hosts.get(host_name)
        if remote is None or remote.name == self.me.name:
            return
        version = dst.version
        direct = same_subnet(self.me, remote, version)
        if direct and mode != "Always":
            if not self.bgp_enabled:
                self._add(RouteUpdate(dst, via=remote.address(version)))
            return
        if mode == "Never":
            return  # across subnets without encapsulation: BGP and the fabric
        peer = self._vxlan_peer(remote, version)
        if peer is None:
            return
        if dst in self.routes:
            return  # an earlier, canonical winner holds this destination
        self.peers[(peer.host, version)] = peer
        self._add(RouteUpdate(dst, via=peer.tunnel_addr, dev=VXLAN_DEVICE, onlink=True))

    def block(self, block: BlockView, pool: PoolInfo | None) -> None:
        mode: VxlanMode = pool.vxlan_mode if pool is not None else "Never"
        if block.host == self.me.name:
            self._add(RouteUpdate(block.cidr, kind="blackhole"))
        elif block.host is not None:
            self.route_to(block.cidr, block.host, mode)
        for addr, borrower in block.borrowed:
            if borrower == block.host:
                continue
            self.route_to(ip_network(addr), borrower, mode)


def plan_routes(
    me: str,
    hosts: Iterable[HostInfo],
    blocks: Iterable[BlockView],
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
        {_RouteBlock(b.cidr, b.host, tuple(b.borrowed)) for b in blocks},
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
    routes = tuple(sorted(planner.routes.values(), key=RouteUpdate.sort_key))
    used = {(r.via, r.dst.version) for r in routes if r.is_vxlan}
    peers = tuple(
        sorted(
            (p for p in planner.peers.values() if (p.tunnel_addr, p.tunnel_addr.version) in used),
            key=VxlanPeerUpdate.sort_key,
        )
    )
    return RoutePlan(peers, routes)
