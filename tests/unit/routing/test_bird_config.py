"""BIRD configuration: golden files (tests/golden/bird/), parse check with `bird -p`, sessions."""

from __future__ import annotations

import os
import shutil
import subprocess
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gingham.calc.routing import bgp_config
from gingham.calc.routing_types import BGPSettings, HostInfo, PeerInfo, PoolInfo
from gingham.errors import ValidationError
from gingham.ipam.info import BlockInfo
from gingham.routing.bird_config import plan_sessions, render_bird_config
from tests.unit.routing.blocks import block

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "bird"
UPDATE = os.environ.get("GINGHAM_UPDATE_GOLDEN") == "1"
SUBNET = IPv4Network("192.0.2.0/24")
POOLS = [PoolInfo(ip_network("198.18.0.0/16")), PoolInfo(ip_network("2001:db8:1::/64"))]
FAST = dict(hold_time=6, keepalive_time=2, connect_retry_time=1)


def node(i: int, *, rr: str | None = None, asn: int | None = None, **labels: str) -> HostInfo:
    return HostInfo(
        name=f"node{i}",
        address_v4=IPv4Address(f"192.0.2.{10 + i}"),
        subnet_v4=SUBNET,
        rr_cluster_id=rr,
        as_number=asn,
        labels=labels,
    )


def blocks_for(n: int) -> list[BlockInfo]:
    out = [block(f"198.18.{i}.0/26", f"node{i}") for i in range(1, n + 1)]
    # node2 borrowed an address from node1's block
    out[0] = block(out[0].cidr, "node1", (("198.18.1.7", "node2"),))
    return out


def render(settings: BGPSettings, me: HostInfo, hosts: list[HostInfo], blocks: list[BlockInfo],
           pools: list[PoolInfo] | tuple[()] = (), **kw: object) -> str:
    return render_bird_config(bgp_config(settings, me, hosts, blocks, pools), **kw)  # type: ignore[arg-type]


def _six(i: int) -> HostInfo:
    return HostInfo(
        name=f"node{i}",
        address_v4=IPv4Address(f"192.0.2.{10 + i}"),
        subnet_v4=SUBNET,
        address_v6=IPv6Address(f"2001:db8:ffff::{10 + i}"),
        subnet_v6=IPv6Network("2001:db8:ffff::/64"),
    )


def scenario(name: str) -> str:
    if name == "mesh3":
        hosts = [node(1), node(2), node(3)]
        return render(BGPSettings(True, **FAST), hosts[0], hosts, blocks_for(3), POOLS)
    if name == "mesh3_borrower":
        hosts = [node(1), node(2), node(3)]
        return render(BGPSettings(True), hosts[1], hosts, blocks_for(3), POOLS)
    if name in ("rr_server", "rr_client"):
        hosts = [node(1, rr="244.0.0.1"), node(2), node(3), node(4, rr="244.0.0.1")]
        me = hosts[0] if name == "rr_server" else hosts[1]
        return render(BGPSettings(True, **FAST), me, hosts, blocks_for(4), POOLS)
    if name == "peers":
        hosts = [node(1, asn=65001, rack="r1"), node(2, rack="r2"), node(3, rack="r1", tor="yes")]
        peers = (
            PeerInfo("global-tor", peer_ip=ip_address("192.0.2.254"), as_number=65000),
            PeerInfo("far-router", peer_ip=ip_address("203.0.113.1"), as_number=65100),
            PeerInfo(
                "rack1",
                peer_ip=ip_address("192.0.2.253"),
                as_number=65000,
                node_selector="rack == 'r1'",
                password="s3cret",
            ),
            PeerInfo(
                "rack2",
                peer_ip=ip_address("192.0.2.252"),
                as_number=65000,
                node_selector="rack == 'r2'",
            ),
            PeerInfo(
                "just-node1",
                peer_ip=ip_address("192.0.2.251"),
                as_number=65002,
                node="node1",
                keep_original_next_hop=True,
            ),
            PeerInfo("to-tors", node="node1", peer_selector="has(tor)"),
        )
        settings = BGPSettings(True, node_to_node_mesh=False, peers=peers)
        return render(
            settings,
            hosts[0],
            hosts,
            blocks_for(3),
            POOLS,
            log_file="/run/gingham/node1/bird/bird.log",
        )
    if name == "ipv6":
        hosts = [_six(1), _six(2), _six(3)]
        blocks = [
            *blocks_for(3),
            block("2001:db8:1::/122", "node1"),
            block("2001:db8:1::40/122", "node2"),
        ]
        return render(BGPSettings(True, **FAST), hosts[0], hosts, blocks, POOLS)
    raise AssertionError(name)


SCENARIOS = ["mesh3", "mesh3_borrower", "rr_server", "rr_client", "peers", "ipv6"]


@pytest.mark.parametrize("name", SCENARIOS)
def test_golden(name: str, tmp_path: Path) -> None:
    text = scenario(name)
    path = GOLDEN / f"{name}.conf"
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text(), f"rendered config differs from {path}"
    assert scenario(name) == text  # deterministic
    if shutil.which("bird"):
        conf = tmp_path / "bird.conf"
        conf.write_text(text.replace("/run/gingham/node1/bird/bird.log", str(tmp_path / "log")))
        proc = subprocess.run(["bird", "-p", "-c", str(conf)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_mesh_off_with_route_reflectors_and_sessions_deduplicated() -> None:
    hosts = [node(1, rr="244.0.0.1"), node(2), node(3)]
    kinds = {s.name: s.kind for s in plan_sessions(BGPSettings(True), hosts[2], hosts)}
    assert kinds == {"RR_192_0_2_11": "rr"}
    server = plan_sessions(BGPSettings(True), hosts[0], hosts)
    assert [(s.name, s.rr_client) for s in server] == [
        ("RRClient_192_0_2_12", True),
        ("RRClient_192_0_2_13", True),
    ]
    # a global peer at a mesh neighbour's address does not make a second session
    peers = (PeerInfo("dup", peer_ip=ip_address("192.0.2.12"), as_number=64512),)
    mesh = [node(1), node(2)]
    assert [s.name for s in plan_sessions(BGPSettings(True, peers=peers), mesh[0], mesh)] == [
        "Mesh_192_0_2_12"
    ]


def test_as_override_makes_ebgp_and_mesh_can_be_switched_off() -> None:
    hosts = [node(1, asn=65001), node(2)]
    (s,) = plan_sessions(BGPSettings(True), hosts[0], hosts)
    assert (s.peer_as, s.direct, s.multihop) == (64512, False, False)
    assert plan_sessions(BGPSettings(True, node_to_node_mesh=False), hosts[0], hosts) == []


def test_bad_inputs_are_named() -> None:
    hosts = [node(1, rr="not-an-ip"), node(2)]
    with pytest.raises(ValidationError, match="routeReflectorClusterID"):
        render(BGPSettings(True), hosts[0], hosts, [])
    peers = (PeerInfo("p", peer_ip=ip_address("192.0.2.99")),)
    with pytest.raises(ValidationError, match="BGPPeer p"):
        plan_sessions(BGPSettings(True, peers=peers), node(1), [node(1)])
    peers = (PeerInfo("p", peer_ip=ip_address("192.0.2.99"), as_number=1, password='a"b'),)
    with pytest.raises(ValidationError, match="password"):
        render(BGPSettings(True, peers=peers), node(1), [node(1)], [])
    with pytest.raises(ValidationError, match="router id"):
        render(BGPSettings(True), HostInfo("x"), [], [])


def test_listen_port_applies_to_gingham_hosts_only(tmp_path: Path) -> None:
    hosts = [node(1), node(2), node(3, tor="yes")]
    peers = (
        PeerInfo("ext", peer_ip=ip_address("192.0.2.254"), as_number=65000),
        PeerInfo("sel", peer_selector="has(tor)"),
    )
    settings = BGPSettings(True, node_to_node_mesh=False, listen_port=1790, peers=peers)
    text = render(settings, hosts[0], hosts, [])
    assert "  local 192.0.2.11 port 1790 as 64512;" in text
    assert "  neighbor 192.0.2.254 as 65000;" in text
    assert "  neighbor 192.0.2.13 port 1790 as 64512;" in text
    if shutil.which("bird"):
        conf = tmp_path / "bird.conf"
        conf.write_text(text)
        proc = subprocess.run(["bird", "-p", "-c", str(conf)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(0, 4), st.booleans())
def test_render_is_independent_of_input_order(rnd, rr_count: int, mesh: bool) -> None:
    hosts = [
        node(i, rr="244.0.0.1" if i <= rr_count else None, rack=f"r{i % 2}") for i in range(1, 6)
    ]
    blocks = blocks_for(5)
    peers = (
        PeerInfo("a", peer_ip=ip_address("192.0.2.254"), as_number=65000),
        PeerInfo("b", node_selector="rack == 'r1'", peer_selector="rack == 'r0'"),
    )
    settings_ = BGPSettings(True, node_to_node_mesh=mesh, peers=peers)
    want = render(settings_, hosts[2], hosts, blocks, POOLS)
    h2, b2, p2 = list(hosts), list(blocks), list(POOLS)
    for seq in (h2, b2, p2):
        rnd.shuffle(seq)
    peers2 = tuple(reversed(peers))
    got = render(
        BGPSettings(True, node_to_node_mesh=mesh, peers=peers2), hosts[2], h2, b2, p2
    )
    assert got == want
