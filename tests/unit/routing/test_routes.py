"""Route plan (calc.routes): rules per vxlanMode, borrowed addresses, blackholes, BGP split."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address, ip_network

from hypothesis import given, settings
from hypothesis import strategies as st

from gingham.calc.messages import RouteUpdate
from gingham.calc.routes import plan_routes
from gingham.calc.routing_types import VXLAN_DEVICE, HostInfo, PoolInfo, vxlan_mac
from tests.unit.routing.blocks import block

POOL4 = ip_network("198.18.0.0/16")
POOL6 = ip_network("2001:db8:1::/64")


def host(name: str, addr: str, subnet: str, tun: str, tun6: str | None = None) -> HostInfo:
    return HostInfo(
        name=name,
        address_v4=IPv4Address(addr),
        subnet_v4=IPv4Network(subnet),
        vxlan_tunnel_v4=IPv4Address(tun),
        vxlan_tunnel_v6=IPv6Address(tun6) if tun6 else None,
    )


A = host("a", "192.0.2.1", "192.0.2.0/24", "198.18.0.0", "2001:db8:1::")
B = host("b", "192.0.2.2", "192.0.2.0/24", "198.18.0.64", "2001:db8:1::40")
C = host("c", "198.51.100.3", "198.51.100.0/24", "198.18.0.128", "2001:db8:1::80")
HOSTS = [A, B, C]
BLOCKS = [
    block(ip_network("198.18.0.0/26"), "a"),
    block(ip_network("198.18.0.64/26"), "b", ((ip_address("198.18.0.70"), "c"),)),
    block(ip_network("198.18.0.128/26"), "c"),
    block(ip_network("2001:db8:1::/122"), "a"),
    block(ip_network("2001:db8:1::40/122"), "b"),
    block(ip_network("2001:db8:1::80/122"), "c"),
]


def pools(mode: str) -> list[PoolInfo]:
    return [PoolInfo(POOL4, vxlan_mode=mode), PoolInfo(POOL6, vxlan_mode=mode)]  # type: ignore[arg-type]


def routes_by_dst(plan):
    return {str(r.dst): r for r in plan.routes}


def test_never_same_subnet_direct_cross_subnet_nothing():
    plan = plan_routes("a", HOSTS, BLOCKS, pools("Never"))
    r = routes_by_dst(plan)
    assert r["198.18.0.0/26"].kind == "blackhole"
    assert r["2001:db8:1::/122"].kind == "blackhole"
    assert r["198.18.0.64/26"] == RouteUpdate(ip_network("198.18.0.64/26"), via=B.address_v4)
    assert "198.18.0.128/26" not in r  # other subnet: BGP's job
    assert "198.18.0.70/32" not in r  # borrowed by c, in another subnet
    # no IPv6 underlay: no direct IPv6 route
    assert "2001:db8:1::40/122" not in r
    assert plan.vxlan_peers == ()


def test_cross_subnet_encapsulates_only_across_subnets():
    plan = plan_routes("a", HOSTS, BLOCKS, pools("CrossSubnet"))
    r = routes_by_dst(plan)
    assert r["198.18.0.64/26"].via == B.address_v4 and not r["198.18.0.64/26"].is_vxlan
    c_route = r["198.18.0.128/26"]
    assert c_route == RouteUpdate(
        ip_network("198.18.0.128/26"), via=C.vxlan_tunnel_v4, dev=VXLAN_DEVICE, onlink=True
    )
    assert r["198.18.0.70/32"].via == C.vxlan_tunnel_v4
    # IPv6 has no v6 underlay subnet in common, so it rides VXLAN over the IPv4 underlay
    assert r["2001:db8:1::40/122"].via == B.vxlan_tunnel_v6
    peers = {(p.host, str(p.tunnel_addr)): p for p in plan.vxlan_peers}
    assert set(peers) == {("b", "2001:db8:1::40"), ("c", "198.18.0.128"), ("c", "2001:db8:1::80")}
    assert peers[("c", "198.18.0.128")].underlay == C.address_v4
    assert peers[("c", "198.18.0.128")].mac == vxlan_mac("c")


def test_always_encapsulates_everything_remote():
    plan = plan_routes("a", HOSTS, BLOCKS, pools("Always"))
    remote = [r for r in plan.routes if r.kind == "unicast"]
    assert remote and all(r.is_vxlan for r in remote)
    assert {p.host for p in plan.vxlan_peers} == {"b", "c"}


def test_borrowed_from_own_block_routes_to_borrower_and_own_borrow_is_left_alone():
    blocks = [
        block(ip_network("198.18.0.0/26"), "a", ((ip_address("198.18.0.9"), "b"),)),
        block(ip_network("198.18.0.64/26"), "b", ((ip_address("198.18.0.65"), "a"),)),
    ]
    r = routes_by_dst(plan_routes("a", HOSTS, blocks, pools("Never")))
    assert r["198.18.0.9/32"].via == B.address_v4
    assert "198.18.0.65/32" not in r
    assert r["198.18.0.0/26"].kind == "blackhole"


def test_bgp_enabled_keeps_only_blackholes_and_vxlan():
    plan = plan_routes("a", HOSTS, BLOCKS, pools("CrossSubnet"), bgp_enabled=True)
    assert all(r.kind == "blackhole" or r.is_vxlan for r in plan.routes)
    assert "198.18.0.128/26" in routes_by_dst(plan)


def test_unknown_host_and_unknown_remote():
    assert plan_routes("zz", HOSTS, BLOCKS, pools("Never")).routes == ()
    blocks = [block(ip_network("198.18.1.0/26"), "ghost")]
    assert plan_routes("a", HOSTS, blocks, pools("Always")).routes == ()


def test_block_outside_pools_is_never_and_disabled_pool_still_routes():
    r = routes_by_dst(plan_routes("a", HOSTS, BLOCKS, []))
    assert r["198.18.0.64/26"].via == B.address_v4
    assert "198.18.0.128/26" not in r
    p = [PoolInfo(POOL4, vxlan_mode="Always", disabled=True)]
    assert routes_by_dst(plan_routes("a", HOSTS, BLOCKS, p))["198.18.0.64/26"].is_vxlan


def test_conflicting_claims_prefer_own_block():
    blocks = [
        block(ip_network("198.18.0.0/26"), "b"),
        block(ip_network("198.18.0.0/26"), "a"),
    ]
    assert routes_by_dst(plan_routes("a", HOSTS, blocks, []))["198.18.0.0/26"].kind == "blackhole"
    assert (
        routes_by_dst(plan_routes("c", HOSTS, blocks, pools("Always")))["198.18.0.0/26"].via
        == A.vxlan_tunnel_v4
    )


def test_no_tunnel_address_no_vxlan_route():
    bare = HostInfo("c", IPv4Address("198.51.100.3"), IPv4Network("198.51.100.0/24"))
    r = routes_by_dst(plan_routes("a", [A, B, bare], BLOCKS, pools("Always")))
    assert "198.18.0.128/26" not in r


def test_mac_is_stable_unicast_and_local():
    mac = vxlan_mac("host-1")
    assert mac == vxlan_mac("host-1") != vxlan_mac("host-2")
    first = int(mac.split(":")[0], 16)
    assert first & 1 == 0 and first & 2 == 2


# --- properties ---------------------------------------------------------------

SUBNETS = ["192.0.2.0/24", "198.51.100.0/24"]


@st.composite
def worlds(draw):
    n = draw(st.integers(1, 5))
    hosts = []
    for i in range(n):
        sub = draw(st.sampled_from(SUBNETS))
        net = ip_network(sub)
        hosts.append(host(f"h{i}", str(net.network_address + 10 + i), sub, f"198.18.{i}.0"))
    names = [h.name for h in hosts] + ["gone"]
    blocks = []
    for j in draw(st.lists(st.integers(0, 15), max_size=8)):
        cidr = ip_network(f"198.18.{j // 4}.{(j % 4) * 64}/26")
        borrowed = tuple(
            (cidr.network_address + k, draw(st.sampled_from(names)))
            for k in sorted(draw(st.sets(st.integers(1, 62), max_size=2)))
        )
        blocks.append(block(cidr, draw(st.sampled_from([*names, None])), borrowed))
    mode = draw(st.sampled_from(["Never", "Always", "CrossSubnet"]))
    return hosts, blocks, [PoolInfo(POOL4, vxlan_mode=mode)]


@settings(max_examples=150, deadline=None)
@given(worlds(), st.randoms(use_true_random=False), st.booleans())
def test_result_independent_of_input_order_and_duplicates(world, rnd, bgp):
    hosts, blocks, pls = world
    first = plan_routes("h0", hosts, blocks, pls, bgp_enabled=bgp)
    h2, b2 = list(hosts), list(blocks) * 2
    rnd.shuffle(h2)
    rnd.shuffle(b2)
    assert plan_routes("h0", h2, b2, pls, bgp_enabled=bgp) == first


@settings(max_examples=150, deadline=None)
@given(worlds())
def test_plan_invariants(world):
    hosts, blocks, pls = world
    plan = plan_routes("h0", hosts, blocks, pls)
    dsts = [r.dst for r in plan.routes]
    assert len(dsts) == len(set(dsts))
    peer_tunnels = {p.tunnel_addr for p in plan.vxlan_peers}
    for r in plan.routes:
        if r.is_vxlan:
            assert r.via in peer_tunnels and r.onlink  # every VXLAN route has its endpoint
        if r.kind == "unicast" and not r.is_vxlan:
            assert r.via in {h.address_v4 for h in hosts if h.name != "h0"}
    # every VXLAN peer is used by a route
    assert peer_tunnels <= {r.via for r in plan.routes if r.is_vxlan}
    # own blocks are never routed away
    own = {b.cidr for b in blocks if b.host == "h0"}
    for r in plan.routes:
        if r.dst in own:
            assert r.kind == "blackhole"
