"""Routing in the calculation graph: Nodes, pools, IPAM blocks and BGP resources in;
routes, VXLAN, NAT, BGP, MTU and tunnel-address messages out, in flush order, the same
whatever path the inputs took."""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gingham.calc import messages as m
from gingham.calc.inputs import BlockKey, IPAMBlock, ResourceKey
from gingham.calc.routing_types import (
    VXLAN_DEVICE,
    PeerInfo,
    PrefixAdvertisementInfo,
    vxlan_mac,
)
from gingham.ipam.info import BlockInfo
from gingham.model import parse_resource
from tests.unit.calc.builders import API, HOST, Harness, wep
from tests.unit.routing.blocks import block

OTHER = "host-b"
FAR = "host-c"


def node(name: str, addr: str, tunnel: str | None = None, **labels: str) -> tuple[Any, Any]:
    spec: dict[str, Any] = {"bgp": {"ipv4Address": addr}}
    if tunnel:
        spec["ipv4VXLANTunnelAddr"] = tunnel
    doc = {"apiVersion": API, "kind": "Node", "metadata": {"name": name, "labels": labels},
           "spec": spec}
    return ResourceKey("Node", name), parse_resource(doc)


def pool(cidr: str = "198.18.0.0/16", vxlan: str = "Never", nat: bool = False,
         name: str = "p") -> tuple[Any, Any]:
    doc = {"apiVersion": API, "kind": "IPPool", "metadata": {"name": name},
           "spec": {"cidr": cidr, "vxlanMode": vxlan, "natOutgoing": nat}}
    return ResourceKey("IPPool", name), parse_resource(doc)


def ipam_block(cidr: str, host: str | None, borrowed: tuple[tuple[str, str], ...] = ()
               ) -> tuple[Any, Any]:
    info = block(cidr, host, borrowed)
    return BlockKey(cidr), IPAMBlock(info, {"cidr": cidr})


def bgp(name: str = "default", **spec: Any) -> tuple[Any, Any]:
    doc = {"apiVersion": API, "kind": "BGPConfiguration", "metadata": {"name": name},
           "spec": spec}
    return ResourceKey("BGPConfiguration", name), parse_resource(doc)


def peer(name: str, **spec: Any) -> tuple[Any, Any]:
    doc = {"apiVersion": API, "kind": "BGPPeer", "metadata": {"name": name}, "spec": spec}
    return ResourceKey("BGPPeer", name), parse_resource(doc)


def cluster() -> list[tuple[Any, Any]]:
    return [
        node(HOST, "192.0.2.11/24", "198.18.1.0"),
        node(OTHER, "192.0.2.12/24", "198.18.2.0"),
        node(FAR, "198.51.100.13/24", "198.18.3.0"),
        pool(vxlan="CrossSubnet", nat=True),
        ipam_block("198.18.1.0/26", HOST),
        ipam_block("198.18.2.0/26", OTHER),
        ipam_block("198.18.3.0/26", FAR),
    ]


def synced(*items: tuple[Any, Any], mtu: int | None = 1500) -> Harness:
    h = Harness()
    for key, value in items:
        h.graph.on_update(key, value)
    h.graph.set_underlay_mtu(mtu)
    h.graph.on_in_sync()
    h.flush()
    return h


def test_nothing_before_in_sync() -> None:
    h = Harness()
    assert h.put(*cluster()) == []
    h.graph.on_in_sync()
    assert h.flush()


def test_cross_subnet_cluster() -> None:
    h = synced(*cluster())
    s = h.state
    assert s.routes[ip_network("198.18.1.0/26")].kind == "blackhole"
    assert s.routes[ip_network("198.18.2.0/26")] == m.RouteUpdate(
        ip_network("198.18.2.0/26"), via=ip_address("192.0.2.12"))
    assert s.routes[ip_network("198.18.3.0/26")] == m.RouteUpdate(
        ip_network("198.18.3.0/26"), via=ip_address("198.18.3.0"), dev=VXLAN_DEVICE,
        onlink=True)
    assert set(s.peers) == {ip_address("198.18.3.0")}
    assert s.device == m.VxlanDeviceUpdate(ip_address("192.0.2.11"), vxlan_mac(HOST), 1450,
                                           (ip_address("198.18.1.0"),))
    assert s.mtu == m.MtuUpdate(1450)
    assert s.nat == m.NatOutgoingUpdate((ip_network("198.18.0.0/16"),),
                                        (ip_network("198.18.0.0/16"),))
    assert s.bgp == m.BgpUpdate(None)
    assert s.tunnel == m.TunnelAddressWanted(4, False)


def test_local_workload_routes_come_and_go_with_the_endpoint() -> None:
    h = synced(*cluster())
    out = h.put(wep("ns", "w1", ips=["198.18.1.5/32", "2001:db8:1::5/128"]))
    routes = [x for x in out if isinstance(x, m.RouteUpdate)]
    assert [(str(r.dst), r.workload) for r in routes] == [("198.18.1.5/32", True),
                                                          ("2001:db8:1::5/128", True)]
    assert all(r.dev and r.dev.startswith("gh") for r in routes)
    # nothing else about routing is computed again for a workload
    assert {type(x) for x in out} <= {m.WorkloadEndpointUpdate, m.RouteUpdate, m.ProfileUpdate,
                                      m.IPSetUpdate, m.PolicyUpdate}
    out = h.delete(wep("ns", "w1"))
    assert {x.dst for x in out if isinstance(x, m.RouteRemove)} == {
        ip_network("198.18.1.5/32"), ip_network("2001:db8:1::5/128")}
    # a remote workload has no route of its own
    assert not [x for x in h.put(wep("ns", "r", node=OTHER, ips=["198.18.2.9/32"]))
                if isinstance(x, m.RouteUpdate)]


def test_a_local_workload_wins_its_destination_and_the_smaller_endpoint_between_two() -> None:
    borrowed = ipam_block("198.18.2.0/26", OTHER, (("198.18.2.7", OTHER), ("198.18.2.9", FAR)))
    h = synced(*cluster(), borrowed)
    dst = ip_network("198.18.2.9/32")
    assert h.state.routes[dst].via == ip_address("198.18.3.0")  # borrowed by the far host
    h.put(wep("ns", "zz", ips=["198.18.2.9/32"]))
    assert h.state.routes[dst].workload and h.state.routes[dst].dev == wep(
        "ns", "zz")[1].spec.interface_name
    h.put(wep("ns", "aa", ips=["198.18.2.9/32"]))
    assert h.state.routes[dst].dev == wep("ns", "aa")[1].spec.interface_name
    h.delete(wep("ns", "aa"), wep("ns", "zz"))
    assert h.state.routes[dst].via == ip_address("198.18.3.0")  # the plan's again


def test_tunnel_address_is_asked_for_and_the_device_follows_it() -> None:
    items = cluster()
    items[0] = node(HOST, "192.0.2.11/24")  # no tunnel address yet
    h = synced(*items)
    assert h.state.tunnel == m.TunnelAddressWanted(4, True)
    assert h.state.device is None and not h.state.peers
    assert not any(r.is_vxlan for r in h.state.routes.values())  # no device: no VXLAN route
    h.put(node(HOST, "192.0.2.11/24", "198.18.1.0"))
    assert h.state.tunnel == m.TunnelAddressWanted(4, False)
    assert h.state.device is not None and h.state.peers
    # no pool encapsulates any more: peers, then the device go, after their routes
    out = h.put(pool(vxlan="Never", nat=True))
    kinds = [type(x) for x in out]
    assert kinds.index(m.RouteRemove) < kinds.index(m.VxlanPeerRemove) < kinds.index(
        m.VxlanDeviceRemove)
    assert h.state.device is None and h.state.mtu == m.MtuUpdate(1500)


def test_bgp_on_sends_birds_inputs_and_keeps_only_blackholes_and_vxlan() -> None:
    h = synced(*cluster())
    h.put(bgp(asNumber=64513, nodeToNodeMeshEnabled=False))
    update = h.state.bgp
    assert update is not None and update.config is not None
    cfg = update.config
    assert (cfg.settings.as_number, cfg.settings.node_to_node_mesh) == (64513, False)
    assert cfg.me.name == HOST and [x.name for x in cfg.hosts] == sorted([HOST, OTHER, FAR])
    assert cfg.exported == (ip_network("198.18.1.0/26"),)
    assert ip_network("198.18.2.0/26") not in h.state.routes  # BIRD learns it
    assert h.state.routes[ip_network("198.18.3.0/26")].is_vxlan
    h.delete(bgp())
    assert h.state.bgp == m.BgpUpdate(None)
    assert ip_network("198.18.2.0/26") in h.state.routes


def test_bgp_settings_per_node_services_and_peers() -> None:
    h = synced(*cluster())
    h.put(bgp(listenPort=1790, logSeverityScreen="Warning",
              serviceClusterIPs=[{"cidr": "198.19.128.0/20"}],
              serviceExternalIPs=[{"cidr": "203.0.113.64/26"}, {"cidr": "198.19.128.0/20"}],
              communities=[{"name": "pods", "value": "64512:120"}],
              prefixAdvertisements=[{"cidr": "198.18.0.0/16", "communities": ["pods"]}],
              nodeMeshPassword={"file": "/etc/gingham/mesh.pass"}))
    h.put(peer("tor", peerIP="[2001:db8:ffff::1]:1179", asNumber=65000,
               password={"file": "/etc/gingham/tor.pass"}))
    services = (ip_network("198.19.128.0/20"), ip_network("203.0.113.64/26"))
    assert h.state.service_loop == m.ServiceLoopUpdate(services)
    update = h.state.bgp
    assert update is not None and update.config is not None
    s = update.config.settings
    assert (s.listen_port, s.log_severity, s.service_cidrs) == (1790, "Warning", services)
    assert s.prefix_advertisements == (
        PrefixAdvertisementInfo(ip_network("198.18.0.0/16"), ("64512:120",)),)
    assert s.mesh_password_file == "/etc/gingham/mesh.pass"
    assert s.peers == (PeerInfo("tor", ip_address("2001:db8:ffff::1"), 65000, port=1179,
                                password_file="/etc/gingham/tor.pass"),)
    # This host's own configuration overrides what Calico lets it; another host's gives
    # only that host's port (this host connects to it there).
    h.put(bgp(f"node.{HOST}", listenPort=1791, logSeverityScreen="Debug",
              prefixAdvertisements=[{"cidr": "198.18.1.0/26", "communities": ["64512:1"]}]))
    h.put(bgp(f"node.{OTHER}", listenPort=1792, logSeverityScreen="Fatal"))
    update = h.state.bgp
    assert update is not None and update.config is not None
    s = update.config.settings
    assert (s.port_of(HOST), s.port_of(OTHER), s.port_of(FAR)) == (1791, 1792, 1790)
    assert s.log_severity == "Debug"
    assert s.prefix_advertisements == (
        PrefixAdvertisementInfo(ip_network("198.18.1.0/26"), ("64512:1",)),)
    h.delete(bgp(f"node.{HOST}"))
    update = h.state.bgp
    assert update is not None and update.config is not None
    assert update.config.settings.log_severity == "Warning"
    # without default, BGP is off and nothing is advertised or blocked
    h.delete(bgp())
    assert h.state.bgp == m.BgpUpdate(None)
    assert h.state.service_loop == m.ServiceLoopUpdate(())


def test_a_block_allocation_changes_nothing_routing_reads() -> None:
    h = synced(*cluster())
    key, value = ipam_block("198.18.2.0/26", OTHER)
    info = value.info
    busier = BlockInfo(info.cidr, info.host, (ip_address("198.18.2.4"),), (), info.size)
    assert busier != info
    assert h.put((key, IPAMBlock(busier, {"cidr": "198.18.2.0/26"}))) == []


def test_mtu_follows_the_underlay_and_refuses_one_below_the_ipv6_minimum() -> None:
    h = synced(*cluster(), mtu=None)
    assert h.state.mtu is None and h.state.device is not None
    assert h.state.device.mtu == 1500  # until the underlay's is known
    h.graph.set_underlay_mtu(9000)
    h.flush()
    assert h.state.mtu == m.MtuUpdate(8950) and h.state.device.mtu == 8950
    h.graph.set_underlay_mtu(1000)
    h.flush()
    assert h.state.mtu == m.MtuUpdate(8950)  # not below 1280: the last good one stays


def test_everything_deleted_leaves_nothing() -> None:
    items = cluster()
    h = synced(*items)
    h.put(wep("ns", "w1", ips=["198.18.1.5/32"]))
    h.delete(*items, wep("ns", "w1"))
    assert h.state.routes == {} and h.state.peers == {} and h.state.device is None
    stats = h.graph.stats()
    assert all(v == 0 for k, v in stats.items() if k.startswith(("routing_", "sent_routes",
                                                                   "sent_vxlan"))), stats


# --- path independence ------------------------------------------------------------------

CHOICES: list[list[tuple[Any, Any]]] = [
    [node(HOST, "192.0.2.11/24", "198.18.1.0"), node(HOST, "192.0.2.11/24"),
     node(HOST, "198.51.100.11/24", "198.18.1.0")],
    [node(OTHER, "192.0.2.12/24", "198.18.2.0"), node(OTHER, "198.51.100.12/24", "198.18.2.0")],
    [node(FAR, "198.51.100.13/24", "198.18.3.0")],
    [pool(vxlan="CrossSubnet"), pool(vxlan="Always", nat=True), pool(vxlan="Never")],
    [ipam_block("198.18.1.0/26", HOST), ipam_block("198.18.1.0/26", OTHER)],
    [ipam_block("198.18.2.0/26", OTHER, (("198.18.2.9", FAR),)),
     ipam_block("198.18.2.0/26", OTHER)],
    [ipam_block("198.18.3.0/26", FAR)],
    [bgp(), bgp(asNumber=64600, serviceClusterIPs=[{"cidr": "198.19.0.0/20"}])],
    [bgp(f"node.{HOST}", listenPort=1791), bgp(f"node.{HOST}", logSeverityScreen="Debug")],
    [bgp(f"node.{OTHER}", listenPort=1792)],
    [peer("tor", peerIP="192.0.2.1:1179", asNumber=65000),
     peer("tor", peerIP="192.0.2.1", asNumber=65000, password={"file": "/etc/tor.pass"})],
    [wep("ns", "w1", ips=["198.18.1.5/32"]), wep("ns", "w1", ips=["198.18.2.9/32"])],
    [wep("ns", "w2", ips=["198.18.2.9/32"])],
]


def _states() -> st.SearchStrategy[dict[Any, Any]]:
    return st.fixed_dictionaries({}, optional={
        c[0][0]: st.sampled_from([v for _, v in c] + [None]) for c in CHOICES})


def _run(path: list[dict[Any, Any]], mtu: int) -> tuple[Any, ...]:
    h = Harness()
    h.graph.set_underlay_mtu(mtu)
    h.graph.on_in_sync()
    for state in path:
        for key, value in state.items():
            h.graph.on_update(key, value)
        h.flush()
    final = path[-1]
    for key in {k for s in path for k in s} - final.keys():
        h.graph.on_update(key, None)
    h.flush()
    routes, peers, device, nat, bgp_update, mtu, tunnel, loop = h.state.routing()
    if (final.get(ResourceKey("Node", HOST)) is None
            and final.get(ResourceKey("BGPConfiguration", "default")) is not None):
        bgp_update = "BIRD left as it was"  # without this host's Node, BGP is not decided
    elif bgp_update is None:
        bgp_update = m.BgpUpdate(None)  # never started: as good as stopped
    return routes, peers, device, nat, bgp_update, mtu, tunnel, loop or m.ServiceLoopUpdate(())


@settings(max_examples=80, deadline=None)
@given(st.lists(_states(), min_size=1, max_size=4), st.sampled_from([1500, 9000]))
def test_output_depends_on_the_final_inputs_only(path: list[dict[Any, Any]], mtu: int) -> None:
    """Forward, straight to the end, and with every update doubled: the same routing
    dataplane (the harness checks the flush order message by message)."""
    want = _run(path, mtu)
    assert _run([path[-1]], mtu) == want
    doubled = [s for state in path for s in (state, state)]
    assert _run(doubled, mtu) == want
    assert _run([*list(reversed(path)), path[-1]], mtu) == want
