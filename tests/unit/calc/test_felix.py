"""FelixConfiguration in the graph: default and node.<host> merged field by field into a typed
ConfigUpdate and routing's settings; what the host lacks is not planned."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

from gingham.calc import messages as m
from gingham.calc.felix import HostSupport, failsafe_port
from gingham.calc.routing_types import vxlan_mac
from gingham.model.config import DEFAULT_FAILSAFE_INBOUND, DEFAULT_FAILSAFE_OUTBOUND
from tests.unit.calc.builders import HOST, Harness, felix
from tests.unit.calc.test_routing import FAR, OTHER, bgp, cluster, ipam_block, node, pool, synced


def config(h: Harness) -> m.ConfigUpdate:
    assert h.state.config is not None
    return h.state.config


def test_node_settings_override_default_field_by_field() -> None:
    h = synced(
        felix("default", defaultEndpointToHostAction="Accept", logSeverityScreen="Debug",
              failsafeInboundHostPorts=[{"protocol": "tcp", "port": 22}]),
        felix(f"node.{HOST}", logSeverityScreen="Warning", healthPort=9199),
        felix("node.someone-else", defaultEndpointToHostAction="Return", healthPort=1),
    )
    c = config(h)
    assert c.endpoint_to_host_action == "Accept"  # from default: the node's does not set it
    assert c.log_severity == "Warning"  # the node's wins
    assert c.failsafe_inbound == (m.FailsafePort("tcp", 22),)
    assert c.failsafe_outbound == m.DEFAULT_FAILSAFE_OUTBOUND  # nobody set it
    assert c.health == m.Listener("localhost", 9199)
    # Values are plain (no model objects reach the dataplane).
    assert all(type(p) is m.FailsafePort for p in c.failsafe_inbound)
    # The node's resource goes: default's values come back.
    h.delete(felix(f"node.{HOST}"))
    assert (config(h).log_severity, config(h).health) == ("Debug", m.Listener("localhost", 9099))
    h.delete(felix("default"))
    assert config(h) == m.ConfigUpdate(health=m.Listener("localhost", 9099))


def test_failsafe_ports_keep_their_net() -> None:
    h = synced(felix("default", failsafeInboundHostPorts=[
        {"protocol": "TCP", "port": 22, "net": "192.0.2.0/24"},
        {"protocol": "udp", "port": 68},
        {"port": 2222, "net": "2001:DB8::/32"},
    ], failsafeOutboundHostPorts=[{"protocol": "TCP", "port": 2379, "net": "198.51.100.7/32"}]))
    c = config(h)
    assert c.failsafe_inbound == (m.FailsafePort("tcp", 22, "192.0.2.0/24"),
                                  m.FailsafePort("udp", 68),
                                  m.FailsafePort("tcp", 2222, "2001:db8::/32"))
    assert c.failsafe_outbound == (m.FailsafePort("tcp", 2379, "198.51.100.7/32"),)
    # The messages' defaults are the model's, converted.
    assert tuple(map(failsafe_port, DEFAULT_FAILSAFE_INBOUND)) == m.DEFAULT_FAILSAFE_INBOUND
    assert tuple(map(failsafe_port, DEFAULT_FAILSAFE_OUTBOUND)) == m.DEFAULT_FAILSAFE_OUTBOUND


def test_health_and_metrics_listeners() -> None:
    h = synced(felix("default", healthHost="127.0.0.1", prometheusMetricsEnabled=True))
    assert config(h).health == m.Listener("127.0.0.1", 9099)
    # Unset, the metrics server listens where health does (Calico: every address).
    assert config(h).metrics == m.Listener("127.0.0.1", 9091)
    h.put(felix(f"node.{HOST}", prometheusMetricsHost="", prometheusMetricsPort=9300,
                healthEnabled=False))
    assert config(h).health is None
    assert config(h).metrics == m.Listener("", 9300)
    assert str(config(h).metrics) == "*:9300"
    h.put(felix(f"node.{HOST}", prometheusMetricsEnabled=False))
    assert (config(h).health, config(h).metrics) == (m.Listener("127.0.0.1", 9099), None)


def test_tunnel_settings_for_the_dataplane() -> None:
    h = synced()
    c = config(h)
    assert (c.vxlan_port, c.allow_vxlan_from_workloads, c.allow_ipip_from_workloads) == (
        4789, False, False)  # Calico's defaults: workloads may not send into tunnels
    h.put(felix("default", vxlanPort=8472, allowIPIPPacketsFromWorkloads=True))
    c = config(h)
    assert (c.vxlan_port, c.allow_vxlan_from_workloads, c.allow_ipip_from_workloads) == (
        8472, False, True)


def test_vxlan_settings_reach_the_device_and_the_mtu() -> None:
    h = synced(*cluster())
    assert h.state.device is not None
    assert (h.state.device.vni, h.state.device.port, h.state.device.mtu) == (4096, 4789, 1450)
    peers_before = dict(h.state.peers)
    routes_before = dict(h.state.routes)
    out = h.put(felix("default", vxlanVNI=5000, vxlanPort=8472))
    assert [type(x) for x in out] == [m.ConfigUpdate, m.VxlanDeviceUpdate]
    assert h.state.device == m.VxlanDeviceUpdate(
        ip_address("192.0.2.11"), vxlan_mac(HOST), 1450, (ip_address("198.18.1.0"),),
        vni=5000, port=8472)
    # Peers and routes stay as they were (the dataplane puts them back on a new device).
    assert h.state.peers == peers_before and h.state.routes == routes_before
    # vxlanMTU: the device's and the workloads' MTU, whatever the underlay's.
    h.put(felix(f"node.{HOST}", vxlanMTU=1400))
    assert (h.state.device.mtu, h.state.mtu) == (1400, m.MtuUpdate(1400))
    h.graph.set_underlay_mtu(9000)
    h.flush()
    assert (h.state.device.mtu, h.state.mtu) == (1400, m.MtuUpdate(1400))
    # 0 is Calico's "from the underlay".
    h.put(felix(f"node.{HOST}", vxlanMTU=0))
    assert (h.state.device.mtu, h.state.mtu) == (8950, m.MtuUpdate(8950))
    # No pool encapsulates: workloads get the underlay's MTU, vxlanMTU or not.
    h.put(felix(f"node.{HOST}", vxlanMTU=1400), pool(vxlan="Never", nat=True))
    assert h.state.device is None and h.state.mtu == m.MtuUpdate(9000)


def test_nat_outgoing_address_replaces_masquerade() -> None:
    h = synced(*cluster())
    pools = (ip_network("198.18.0.0/16"),)
    assert h.state.nat == m.NatOutgoingUpdate(pools, pools)
    h.put(felix("default", natOutgoingAddress="192.0.2.100"))
    assert h.state.nat == m.NatOutgoingUpdate(pools, pools, snat_v4=ip_address("192.0.2.100"))
    h.put(felix(f"node.{HOST}", natOutgoingAddress="2001:db8::64"))
    assert h.state.nat == m.NatOutgoingUpdate(pools, pools, snat_v6=ip_address("2001:db8::64"))
    h.delete(felix(f"node.{HOST}"), felix("default"))
    assert h.state.nat == m.NatOutgoingUpdate(pools, pools)


def test_missing_capabilities_plan_nothing_that_needs_them() -> None:
    h = Harness()
    h.graph.set_host_support(HostSupport(vxlan=False, nat=False, bird=False))
    h.put(node(HOST, "192.0.2.11/24"), node(OTHER, "192.0.2.12/24", "198.18.2.0"),
          node(FAR, "198.51.100.13/24", "198.18.3.0"), pool(vxlan="CrossSubnet", nat=True),
          ipam_block("198.18.1.0/26", HOST), ipam_block("198.18.2.0/26", OTHER),
          ipam_block("198.18.3.0/26", FAR), bgp())
    h.graph.set_underlay_mtu(1500)
    h.graph.on_in_sync()
    h.flush()
    assert h.graph.wanted_capabilities() == {"vxlan", "nat", "bird"}
    s = h.state
    # No VXLAN: no device, peer or route through it, and no tunnel address asked for.
    assert s.device is None and not s.peers
    assert not any(r.is_vxlan for r in s.routes.values())
    assert s.tunnel is None or not s.tunnel.wanted
    assert s.nat is None  # not even an empty NAT chain: it needs nftables NAT
    assert s.bgp == m.BgpUpdate(None)
    # The capabilities appear (a module loaded, BIRD installed): everything follows.
    h.graph.set_host_support(HostSupport())
    h.flush()
    assert s.tunnel == m.TunnelAddressWanted(4, True)
    assert s.nat is not None and s.bgp is not None and s.bgp.config is not None
    h.put(node(HOST, "192.0.2.11/24", "198.18.1.0"))
    assert s.device is not None and set(s.peers) == {ip_address("198.18.3.0")}
    # Nothing asked of the host: nothing wanted.
    h.delete(pool(vxlan="CrossSubnet", nat=True), bgp())
    assert h.graph.wanted_capabilities() == frozenset()


def test_service_loop_prevention_reaches_the_service_loop_message() -> None:
    h = synced(*cluster(), bgp(serviceClusterIPs=[{"cidr": "198.19.128.0/20"}]))
    services = (ip_network("198.19.128.0/20"),)
    assert h.state.service_loop == m.ServiceLoopUpdate(services, "Drop")  # Calico's default
    h.put(felix("default", serviceLoopPrevention="Reject"))
    assert h.state.service_loop == m.ServiceLoopUpdate(services, "Reject")
    h.put(felix(f"node.{HOST}", serviceLoopPrevention="Disabled"))
    assert h.state.service_loop == m.ServiceLoopUpdate(services, "Disabled")
