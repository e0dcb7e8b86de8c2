"""Routing in the calculation graph: routes, VXLAN, NAT outgoing, BGP and the workload MTU.

    Node, IPPool, BGPConfiguration, BGPPeer (model resources), IPAM blocks,
    local workload endpoints (from the graph), the underlay MTU (the agent's)
          |
          v
    +--------------------+   plan_routes() (routes.py), pure
    | RoutingCalculator  |-----------------------------------+
    | (this module)      |                                   |
    +--------------------+                                   v
          | desired state per key; the sequencer sends what changed, in order:
          v
    MtuUpdate, TunnelAddressWanted, VxlanDeviceUpdate, VxlanPeerUpdate,
    RouteUpdate, RouteRemove, VxlanPeerRemove, VxlanDeviceRemove,
    NatOutgoingUpdate, BgpUpdate

Routes are keyed by destination: a local workload's route (over its veth)
wins over a planned route to the same destination, and between two local
workloads claiming one address the smaller endpoint id wins, so the result
never depends on the order updates came in. A workload coming or going
touches its own destinations only; the plan (every block of every host) is
computed again only when a Node, pool, block, BGP resource or the MTU changed
what routing reads of it.

Rules beyond the plan's (``routes.py``):
- The VXLAN device is wanted when some pool encapsulates (``vxlanMode`` other
  than ``Never``) and this host has an IPv4 underlay address and a published
  IPv4 tunnel address; without it no VXLAN route or peer is sent (they could
  not carry a packet). While the tunnel address is missing,
  ``TunnelAddressWanted`` asks the agent's housekeeping for one.
- The workload MTU is the underlay MTU, less VXLAN's overhead when some pool
  encapsulates; unknown until the agent reports the underlay MTU (the file the
  CNI plugin reads then keeps what it said).
- BGP is on when a BGPConfiguration ``default`` exists; BIRD's inputs are sent
  only once this host has an IPv4 address (the router id): without its own
  Node, BIRD is left as it was rather than stopped. Per-node configurations
  (``node.<host>``) give that host's listenPort (every host's is read: peers
  connect to it), logSeverityScreen and prefixAdvertisements.
- The service CIDRs (serviceClusterIPs, serviceExternalIPs) go to BIRD, which
  advertises them, and to ``ServiceLoopUpdate``: forwarded traffic to them that
  no DNAT rewrote is dropped rather than sent back to the router.
- FelixConfiguration (``calc.felix.RoutingSettings``): ``vxlanVNI`` and
  ``vxlanPort`` are the device's (a change re-creates it; its peers and routes
  are put back), ``vxlanMTU`` its MTU and, while some pool encapsulates, the
  workload MTU; ``natOutgoingAddress`` replaces masquerade in its family.
- What the host lacks (``calc.felix.HostSupport``, probed by the agent) is not
  planned: no VXLAN device, peers, routes or tunnel address without the
  module, no NAT message without nftables NAT (even an empty NAT chain needs
  it), BGP off for BIRD without BIRD. :meth:`RoutingCalculator.wanted_capabilities`
  tells the agent what the cluster asks of the host, so it can report what is
  not in effect.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import ip_address, ip_interface, ip_network
from types import MappingProxyType
from typing import Any

from gingham.calc.felix import HostSupport, RoutingSettings
from gingham.calc.inputs import (
    BlockKey,
    BlockView,
    IPAddress,
    IPAMBlock,
    IPNetwork,
    ResourceKey,
    route_view,
)
from gingham.calc.messages import (
    BgpConfig,
    BgpUpdate,
    MtuUpdate,
    NatOutgoingUpdate,
    RouteUpdate,
    ServiceLoopUpdate,
    TunnelAddressWanted,
    VxlanDeviceUpdate,
    VxlanPeerUpdate,
    WorkloadEndpointID,
)
from gingham.calc.routes import plan_routes
from gingham.calc.routing_types import (
    BGPSettings,
    HostInfo,
    PeerInfo,
    PoolInfo,
    PrefixAdvertisementInfo,
    exported_prefixes,
    vxlan_mac,
    workload_mtu,
)
from gingham.calc.sequencer import Sequencer
from gingham.errors import RoutingError
from gingham.model import BGPConfiguration, BGPPeer, IPPool, Node

log = logging.getLogger(__name__)

DEFAULT_DEVICE_MTU = 1500  # the VXLAN device's MTU while the underlay's is unknown


def host_from_node(node: Node) -> HostInfo:
    """Routing's view of a Node (addresses as the model validated them)."""
    spec = node.spec
    bgp = spec.bgp
    v4 = ip_interface(bgp.ipv4_address) if bgp is not None and bgp.ipv4_address else None
    v6 = ip_interface(bgp.ipv6_address) if bgp is not None and bgp.ipv6_address else None
    tunnel = spec.ipv4_vxlan_tunnel_addr
    tunnel6 = spec.ipv6_vxlan_tunnel_addr
    name = node.metadata.name
    return HostInfo(
        name=name,
        address_v4=v4.ip if v4 else None,  # type: ignore[arg-type]
        subnet_v4=v4.network if v4 else None,  # type: ignore[arg-type]
        address_v6=v6.ip if v6 else None,  # type: ignore[arg-type]
        subnet_v6=v6.network if v6 else None,  # type: ignore[arg-type]
        as_number=bgp.as_number if bgp is not None else None,
        rr_cluster_id=(bgp.route_reflector_cluster_id or None) if bgp is not None else None,
        labels=MappingProxyType(dict(node.metadata.labels or {})),
        vxlan_tunnel_v4=ip_address(tunnel) if tunnel else None,  # type: ignore[arg-type]
        vxlan_tunnel_v6=ip_address(tunnel6) if tunnel6 else None,  # type: ignore[arg-type]
        vxlan_mac=spec.vxlan_tunnel_mac_addr or vxlan_mac(name),
    )


def pool_from_model(pool: IPPool) -> PoolInfo:
    spec = pool.spec
    return PoolInfo(
        cidr=ip_network(spec.cidr, strict=False),
        vxlan_mode=spec.vxlan_mode,
        nat_outgoing=spec.nat_outgoing,
        disabled=spec.disabled,
    )


def peer_from_model(peer: BGPPeer) -> PeerInfo:
    spec = peer.spec
    address = spec.peer_address
    return PeerInfo(
        name=peer.metadata.name,
        peer_ip=ip_address(address) if address else None,
        as_number=spec.as_number,
        node=spec.node or None,
        node_selector=spec.node_selector or None,
        peer_selector=spec.peer_selector or None,
        keep_original_next_hop=spec.keep_original_next_hop,
        password_file=spec.password.file if spec.password is not None else None,
        port=spec.peer_port,
    )


def _advertisements(config: BGPConfiguration) -> tuple[PrefixAdvertisementInfo, ...]:
    spec = config.spec
    return tuple(
        PrefixAdvertisementInfo(ip_network(ad.cidr), spec.community_values(ad.communities))
        for ad in spec.prefix_advertisements
    )


def bgp_settings(config: BGPConfiguration | None, peers: Iterable[PeerInfo],
                 nodes: Mapping[str, BGPConfiguration] | None = None,
                 hostname: str | None = None) -> BGPSettings:
    """BGP is on when the ``default`` BGPConfiguration exists. ``nodes``: the per-node
    configurations by host name; ``hostname``'s own overrides the log severity and the
    prefix advertisements (as in Calico, its list replaces the cluster's)."""
    ordered = tuple(sorted(peers, key=lambda p: p.name))
    if config is None:
        return BGPSettings(enabled=False, peers=ordered)
    spec = config.spec
    nodes = nodes or {}
    mine = nodes.get(hostname) if hostname is not None else None
    severity, adverts = spec.log_severity_screen, config
    if mine is not None:
        if "log_severity_screen" in mine.spec.model_fields_set:
            severity = mine.spec.log_severity_screen
        if "prefix_advertisements" in mine.spec.model_fields_set:
            adverts = mine
    services = {ip_network(c.cidr) for c in (*spec.service_cluster_ips,
                                              *spec.service_external_ips)}
    mesh_password = spec.node_mesh_password
    return BGPSettings(
        enabled=True,
        as_number=spec.as_number,
        node_to_node_mesh=spec.node_to_node_mesh_enabled,
        listen_port=spec.listen_port,
        peers=ordered,
        log_severity=severity,
        prefix_advertisements=_advertisements(adverts),
        service_cidrs=tuple(sorted(services, key=lambda n: (n.version, int(n.network_address),
                                                            n.prefixlen))),
        mesh_password_file=mesh_password.file if mesh_password is not None else None,
        node_listen_ports=tuple(sorted(
            (name, node.spec.listen_port) for name, node in nodes.items()
            if "listen_port" in node.spec.model_fields_set
        )),
    )


def bgp_config(settings: BGPSettings, me: HostInfo, hosts: Iterable[HostInfo],
               blocks: Iterable[BlockView], pools: Iterable[PoolInfo] = ()) -> BgpConfig:
    """BIRD's inputs for host ``me``, in a canonical order (same cluster, same config)."""
    return BgpConfig(
        settings=settings,
        me=me,
        hosts=tuple(sorted(hosts, key=lambda h: h.name)),
        exported=exported_prefixes(me.name, blocks),
        pools=tuple(sorted(set(pools), key=lambda p: (p.cidr.version,
                                                      int(p.cidr.network_address)))),
    )


def nat_outgoing(pools: Iterable[PoolInfo], address: IPAddress | None = None) -> NatOutgoingUpdate:
    """NAT outgoing for ``pools``; ``address`` (natOutgoingAddress) replaces masquerade in
    its family."""
    ordered = sorted(set(pools), key=lambda p: (p.cidr.version, int(p.cidr.network_address)))
    return NatOutgoingUpdate(
        masquerade=tuple(p.cidr for p in ordered if p.nat_outgoing),
        pools=tuple(p.cidr for p in ordered),
        snat_v4=address if address is not None and address.version == 4 else None,
        snat_v6=address if address is not None and address.version == 6 else None,
    )


@dataclass(frozen=True)
class RoutingView:
    """What routing reads of its inputs now (tests, and the chaos test's oracle)."""

    hosts: Mapping[str, HostInfo]
    pools: Mapping[ResourceKey, PoolInfo]
    blocks: Mapping[BlockKey, tuple[Any, ...]]  # calc.inputs.route_view of each block
    bgp: BGPSettings


class RoutingCalculator:
    """Routing's part of the graph for host ``hostname`` (see the module docstring)."""

    def __init__(self, hostname: str, seq: Sequencer) -> None:
        self.hostname = hostname
        self._seq = seq
        self._hosts: dict[str, HostInfo] = {}
        self._pools: dict[ResourceKey, PoolInfo] = {}
        self._blocks: dict[BlockKey, BlockView] = {}
        self._bgp: BGPConfiguration | None = None
        self._bgp_nodes: dict[str, BGPConfiguration] = {}  # node.<host>, by host
        self._peers: dict[ResourceKey, PeerInfo] = {}
        self._underlay_mtu: int | None = None
        self._settings = RoutingSettings()
        self._support = HostSupport()
        self._in_sync = False  # nothing is planned from half a snapshot
        self._dirty = True  # the plan and everything derived from the cluster
        # Local workloads' routes, and which endpoints claim each destination.
        self._local: dict[WorkloadEndpointID, tuple[RouteUpdate, ...]] = {}
        self._claims: dict[IPNetwork, set[WorkloadEndpointID]] = {}
        self._planned: dict[IPNetwork, RouteUpdate] = {}
        self._dirty_dsts: set[IPNetwork] = set()
        self._peers_sent: set[Any] = set()

    # --- inputs -----------------------------------------------------------------

    def on_node(self, key: ResourceKey, value: Node | None) -> None:
        new = host_from_node(value) if value is not None else None
        self._put(self._hosts, key.name, new)

    def on_pool(self, key: ResourceKey, value: IPPool | None) -> None:
        self._put(self._pools, key, pool_from_model(value) if value is not None else None)

    def on_block(self, key: BlockKey, value: IPAMBlock | None) -> None:
        new = value.info if value is not None else None
        old = self._blocks.get(key)
        if new is None:
            if old is not None:
                del self._blocks[key]
                self._dirty = True
            return
        self._blocks[key] = new
        if old is None or route_view(old) != route_view(new):
            self._dirty = True

    def on_bgp_configuration(self, key: ResourceKey, value: BGPConfiguration | None) -> None:
        if key.name == "default":
            if value != self._bgp:
                self._bgp = value
                self._dirty = True
        elif key.name.startswith("node."):  # every host's: peers need each other's port
            self._put(self._bgp_nodes, key.name[len("node."):], value)

    def on_bgp_peer(self, key: ResourceKey, value: BGPPeer | None) -> None:
        self._put(self._peers, key, peer_from_model(value) if value is not None else None)

    def set_underlay_mtu(self, mtu: int | None) -> None:
        if mtu != self._underlay_mtu:
            self._underlay_mtu = mtu
            self._dirty = True

    def set_settings(self, settings: RoutingSettings) -> None:
        """FelixConfiguration's VXLAN and NAT settings for this host (``calc.felix``)."""
        if settings != self._settings:
            self._settings = settings
            self._dirty = True

    def set_support(self, support: HostSupport) -> None:
        """What the host can do: no VXLAN without the module, no NAT rules without
        nftables NAT, no BIRD without BIRD (the agent reports each as not in effect)."""
        if support != self._support:
            self._support = support
            self._dirty = True

    def wanted_capabilities(self) -> frozenset[str]:
        """The host capabilities the cluster's routing asks of this host now (``vxlan``,
        ``nat``, ``bird``), whether or not the host has them."""
        pools = self._pools.values()
        wanted = set()
        if any(p.vxlan_mode != "Never" for p in pools):
            wanted.add("vxlan")
        if any(p.nat_outgoing for p in pools):
            wanted.add("nat")
        if self._bgp is not None:
            wanted.add("bird")
        return frozenset(wanted)

    def local_workload(self, ep: WorkloadEndpointID, interface: str | None,
                       nets: Iterable[str]) -> None:
        """A local workload endpoint's routes (``interface`` None: the endpoint is gone)."""
        routes = tuple(
            RouteUpdate(ip_network(net), dev=interface, workload=True) for net in nets
        ) if interface else ()
        old = self._local.get(ep, ())
        if routes == old:
            return
        for r in old:
            claims = self._claims[r.dst]
            claims.discard(ep)
            if not claims:
                del self._claims[r.dst]
            self._dirty_dsts.add(r.dst)
        for r in routes:
            self._claims.setdefault(r.dst, set()).add(ep)
            self._dirty_dsts.add(r.dst)
        if routes:
            self._local[ep] = routes
        else:
            self._local.pop(ep, None)

    def _put(self, table: dict[Any, Any], key: Any, new: Any) -> None:
        if table.get(key) == new:
            return
        self._dirty = True
        if new is None:
            table.pop(key, None)
        else:
            table[key] = new

    # --- output -----------------------------------------------------------------

    def on_in_sync(self) -> None:
        self._in_sync = True

    def flush(self) -> None:
        """Hand the sequencer everything that may have changed since the last flush."""
        if not self._in_sync:
            return
        if self._dirty:
            self._dirty = False
            self._replan()
        for dst in sorted(self._dirty_dsts, key=lambda n: (n.version, str(n))):
            self._seq.route(dst, self._effective(dst))
        self._dirty_dsts.clear()

    def _effective(self, dst: IPNetwork) -> RouteUpdate | None:
        claims = self._claims.get(dst)
        if claims:
            winner = min(claims)
            return next(r for r in self._local[winner] if r.dst == dst)
        return self._planned.get(dst)

    def _replan(self) -> None:
        me = self._hosts.get(self.hostname)
        pools = list(self._pools.values())
        encapsulating = any(p.vxlan_mode != "Never" for p in pools)
        settings = self._bgp_settings()
        mtu = self._workload_mtu(encapsulating)
        if mtu is not None:
            self._seq.mtu(MtuUpdate(mtu))
        device = self._device(me, encapsulating, mtu)
        self._seq.tunnel_wanted(TunnelAddressWanted(4, bool(
            me is not None and me.address_v4 is not None and encapsulating
            and me.vxlan_tunnel_v4 is None and self._support.vxlan
        )))
        plan = plan_routes(self.hostname, self._hosts.values(), self._blocks.values(), pools,
                           bgp_enabled=settings.enabled)
        routes = plan.routes
        peers = plan.vxlan_peers
        if device is None:  # VXLAN routes and peers could not carry a packet
            routes = tuple(r for r in routes if not r.is_vxlan)
            peers = ()
        planned = {r.dst: r for r in routes}
        for dst in self._planned.keys() | planned.keys():
            if self._planned.get(dst) != planned.get(dst):
                self._dirty_dsts.add(dst)
        self._planned = planned
        self._seq.vxlan_device(device)
        wanted: dict[Any, VxlanPeerUpdate] = {p.tunnel_addr: p for p in peers}
        for addr in self._peers_sent | wanted.keys():
            self._seq.vxlan_peer(addr, wanted.get(addr))
        self._peers_sent = set(wanted)
        if self._support.nat:  # a NAT chain needs nftables NAT, even an empty one
            self._seq.nat(nat_outgoing(pools, self._settings.nat_address))
        self._seq.service_loop(ServiceLoopUpdate(settings.service_cidrs,
                                                 self._settings.service_loop))
        if not settings.enabled or not self._support.bird:
            self._seq.bgp(BgpUpdate(None))
        elif me is not None and me.address_v4 is not None:
            self._seq.bgp(BgpUpdate(bgp_config(
                settings, me, self._hosts.values(), self._blocks.values(), pools)))

    def _bgp_settings(self) -> BGPSettings:
        return bgp_settings(self._bgp, self._peers.values(), self._bgp_nodes, self.hostname)

    def _workload_mtu(self, encapsulating: bool) -> int | None:
        if encapsulating and self._settings.vxlan_mtu is not None:
            return self._settings.vxlan_mtu  # vxlanMTU: the device's, and the workloads'
        if self._underlay_mtu is None:
            return None
        try:
            return workload_mtu(self._underlay_mtu, encapsulating, 4)
        except RoutingError as exc:
            log.error("no workload MTU: %s", exc)
            return None

    def _device(self, me: HostInfo | None, encapsulating: bool,
                mtu: int | None) -> VxlanDeviceUpdate | None:
        if me is None or me.address_v4 is None or not encapsulating:
            return None
        if me.vxlan_tunnel_v4 is None or not self._support.vxlan:
            return None
        return VxlanDeviceUpdate(
            local=me.address_v4,
            mac=me.mac,
            mtu=mtu or DEFAULT_DEVICE_MTU,
            tunnel_addrs=(me.vxlan_tunnel_v4,),
            vni=self._settings.vxlan_vni,
            port=self._settings.vxlan_port,
        )

    # --- introspection ---------------------------------------------------------------

    def view(self) -> RoutingView:
        return RoutingView(
            MappingProxyType(dict(self._hosts)),
            MappingProxyType(dict(self._pools)),
            MappingProxyType({k: route_view(b) for k, b in self._blocks.items()}),
            self._bgp_settings(),
        )

    def stats(self) -> Mapping[str, int]:
        return {
            "routing_hosts": len(self._hosts),
            "routing_pools": len(self._pools),
            "routing_blocks": len(self._blocks),
            "routing_peers": len(self._peers),
            "routing_local_workloads": len(self._local),
            "routing_claims": len(self._claims),
            "routing_planned": len(self._planned),
        }
