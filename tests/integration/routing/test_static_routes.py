"""Routes from the route plan, applied by the agent's routing dataplane in real namespaces
(no BGP).

Counters on the fabric bridges tell encapsulated (UDP 4789) from plain frames
carrying workload addresses.
"""

from __future__ import annotations

import itertools

import pytest

from gingham.calc.routing_types import vxlan_mac
from gingham.dataplane.vxlan import VxlanDriver
from tests.unit.routing.blocks import block

from .topo import addr, build, own_blocks, ping

pytestmark = pytest.mark.integration


def _workloads(topo):
    for h in topo.hosts:
        topo.add_workload(h, "a", str(h.block.network_address + 1))


def _pairs(topo):
    wls = [(h, *h.workloads["a"]) for h in topo.hosts]
    return [(a, b) for a, b in itertools.permutations(wls, 2)]


def _apply_all(topo, blocks, mode):
    for h in topo.hosts:
        topo.apply(h, topo.plan(h, blocks, mode))


def test_one_subnet_direct_routes_no_encapsulation(netns, make_fabric):
    topo = build(netns, make_fabric, [0, 0, 0])
    _workloads(topo)
    _apply_all(topo, own_blocks(topo), "Never")
    topo.reset_counters()
    for (_, src_ns, _), (_, _, dst_ip) in _pairs(topo):
        assert ping(src_ns, dst_ip), f"{src_ns} -> {dst_ip}"
    c = topo.counters()
    assert c["vxlan"] == 0
    assert c["plain"] >= 12  # 6 pairs, echo + reply each, workload addresses on the wire
    # no VXLAN device was made where none is needed
    assert VxlanDriver(topo.hosts[0].ns).device_info() is None


def test_block_moves_between_hosts_and_converges(netns, make_fabric):
    topo = build(netns, make_fabric, [0, 0, 0])
    h1, h2, h3 = topo.hosts
    _workloads(topo)
    # a second block, first on h3 ...
    extra = addr("198.18.9.0")
    blocks = [*own_blocks(topo), block("198.18.9.0/26", "h3")]
    topo.add_workload(h3, "m", str(extra + 5))
    _apply_all(topo, blocks, "Never")
    assert ping(h1.workloads["a"][0], extra + 5)
    # ... the workload goes, the block is released and claimed by h2 for a new one
    topo.remove_workload(h3, "m")
    blocks[-1] = block(blocks[-1].cidr, "h2")
    topo.add_workload(h2, "n", str(extra + 6))
    _apply_all(topo, blocks, "Never")
    assert ping(h1.workloads["a"][0], extra + 6)
    assert ping(h3.workloads["a"][0], extra + 6)
    from gingham.lab.netns import run_in_netns

    r3 = run_in_netns(h3.ns, ["ip", "route", "show", "198.18.9.0/26"]).stdout
    assert "blackhole" not in r3 and str(h2.address) in r3  # h3's old blackhole was swept


def test_cross_subnet_encapsulates_only_across_the_router(netns, make_fabric):
    topo = build(netns, make_fabric, [0, 0, 1])  # h1, h2 on 192.0.2.0/24; h3 on 198.51.100.0/24
    h1, h2, h3 = topo.hosts
    _workloads(topo)
    _apply_all(topo, own_blocks(topo), "CrossSubnet")
    # every pair reaches every other
    for (_, src_ns, _), (_, _, dst_ip) in _pairs(topo):
        assert ping(src_ns, dst_ip), f"{src_ns} -> {dst_ip}"
    # same subnet: plain
    topo.reset_counters()
    assert ping(h1.workloads["a"][0], h2.workloads["a"][1], count=3)
    c = topo.counters()
    assert c["vxlan"] == 0 and c["plain"] >= 6
    # across subnets: only VXLAN frames, never a bare workload address on the fabric
    topo.reset_counters()
    assert ping(h1.workloads["a"][0], h3.workloads["a"][1], count=3)
    c = topo.counters()
    assert c["plain"] == 0 and c["vxlan"] >= 6
    # the device and its peers on h1: only h3 is a VXLAN peer
    d = VxlanDriver(h1.ns)
    # (IPv6 has no underlay of its own here, so it rides VXLAN to h2 as well)
    v4 = {a: m for a, m in d.neighbours().items() if ":" not in a}
    assert v4 == {str(h3.tunnel): vxlan_mac("h3")}
    assert d.fdb() == {(vxlan_mac("h3"), str(h3.address)), (vxlan_mac("h2"), str(h2.address))}
    info = d.device_info()
    assert info is not None and info["mtu"] == 1450
    # switching the pool to Never sweeps the VXLAN routes and peers
    _apply_all(topo, own_blocks(topo), "Never")
    assert d.neighbours() == {} and d.fdb() == set()
    assert not ping(h1.workloads["a"][0], h3.workloads["a"][1])


def test_ipv6_pool_across_subnets_rides_vxlan(netns, make_fabric):
    topo = build(netns, make_fabric, [0, 1])  # the fabric's underlay is IPv4 only
    h1, h2 = topo.hosts
    w1 = topo.add_workload(h1, "a", "198.18.1.1", addr6=str(h1.block6.network_address + 1))
    topo.add_workload(h2, "a", "198.18.2.1", addr6=str(h2.block6.network_address + 1))
    _apply_all(topo, own_blocks(topo), "CrossSubnet")
    from gingham.lab.netns import run_in_netns

    r = run_in_netns(h1.ns, ["ip", "-6", "route", "show", str(h2.block6)]).stdout
    assert f"via {h2.block6.network_address} dev vxlan.gingham" in r and "onlink" in r
    topo.reset_counters()
    proc = run_in_netns(
        w1,
        ["busybox", "ping", "-6", "-c", "2", "-A", "-w", "4", str(h2.block6.network_address + 1)],
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    c = topo.counters()
    assert c["vxlan"] >= 4 and c["plain"] == 0
