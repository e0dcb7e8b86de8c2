"""BIRD configuration: golden files (tests/golden/bird/), parse check with `bird -p`, sessions."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gingham.calc.routing import bgp_config
from gingham.calc.routing_types import (
    BGPSettings,
    HostInfo,
    PeerInfo,
    PoolInfo,
    PrefixAdvertisementInfo,
)
from gingham.errors import RoutingError, ValidationError
from gingham.ipam.info import BlockInfo
from gingham.routing.bird_config import LeftOut, plan_sessions, render_bird_config
from gingham.routing.secrets import read_password, read_passwords
from tests.unit.routing.blocks import block

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "bird"
UPDATE = os.environ.get("GINGHAM_UPDATE_GOLDEN") == "1"
SUBNET = IPv4Network("192.0.2.0/24")
POOLS = [PoolInfo(ip_network("198.18.0.0/16")), PoolInfo(ip_network("2001:db8:1::/64"))]
FAST = dict(hold_time=6, keepalive_time=2, connect_retry_time=1)
RACK1_PASS = "/etc/gingham/rack1.pass"
MESH_PASS = "/etc/gingham/mesh.pass"
TOR_PASS = "/etc/gingham/tor.pass"


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


SETTINGS_HOSTS = [_six(1), _six(2), _six(3)]
SETTINGS = BGPSettings(
    True,
    listen_port=1790,
    node_listen_ports=(("node1", 1791), ("node3", 1793)),
    mesh_password_file=MESH_PASS,
    log_severity="Debug",
    service_cidrs=(ip_network("198.19.128.0/20"), ip_network("203.0.113.64/26"),
                   ip_network("2001:db8:5e::/112")),
    prefix_advertisements=(
        PrefixAdvertisementInfo(ip_network("198.18.0.0/16"), ("64512:120", "64512:300:100")),
        PrefixAdvertisementInfo(ip_network("198.19.128.0/20"), ("64512:200",)),
        PrefixAdvertisementInfo(ip_network("2001:db8:1::/64"), ("64512:600",)),
    ),
    peers=(
        PeerInfo("tor", peer_ip=ip_address("192.0.2.1"), as_number=65000, port=1179,
                 password_file=TOR_PASS),
        PeerInfo("tor6", peer_ip=ip_address("2001:db8:ffff::1"), as_number=65000),
    ),
    **FAST,  # type: ignore[arg-type]
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
                password_file=RACK1_PASS,
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
            secrets={RACK1_PASS: "s3cret"},
        )
    if name == "ipv6":
        hosts = [_six(1), _six(2), _six(3)]
        blocks = [
            *blocks_for(3),
            block("2001:db8:1::/122", "node1"),
            block("2001:db8:1::40/122", "node2"),
        ]
        return render(BGPSettings(True, **FAST), hosts[0], hosts, blocks, POOLS)
    if name == "settings":
        return render(SETTINGS, SETTINGS_HOSTS[0], SETTINGS_HOSTS, [
            *blocks_for(3), block("2001:db8:1::/122", "node1")], POOLS,
            secrets={MESH_PASS: "mesh-pw", TOR_PASS: "tor pw 1"})
    raise AssertionError(name)


SCENARIOS = ["mesh3", "mesh3_borrower", "rr_server", "rr_client", "peers", "ipv6", "settings"]


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


def _parses(text: str, tmp_path: Path) -> None:
    if shutil.which("bird"):
        conf = tmp_path / "bird.conf"
        conf.write_text(text)
        proc = subprocess.run(["bird", "-p", "-c", str(conf)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def _settings_text(**changes: object) -> str:
    settings = replace(SETTINGS, **changes)  # type: ignore[arg-type]
    return render(settings, SETTINGS_HOSTS[0], SETTINGS_HOSTS, blocks_for(3), POOLS,
                  secrets={MESH_PASS: "mesh-pw", TOR_PASS: "tor pw 1"})


@pytest.mark.parametrize(("severity", "log", "debug"), [
    ("Trace", "all", True),
    ("Debug", "all", True),
    ("Info", "all", False),
    ("Warning", "{ warning, error, auth, fatal, bug }", False),
    ("Error", "{ error, auth, fatal, bug }", False),
    ("Fatal", "{ fatal, bug }", False),
])
def test_log_severity_chooses_birds_log(severity: str, log: str, debug: bool,
                                        tmp_path: Path) -> None:
    text = _settings_text(log_severity=severity)
    lines = text.splitlines()
    assert lines[1] == f"log stderr {log};"
    assert ("debug protocols all;" in lines) is debug
    _parses(text, tmp_path)


def test_listen_ports_follow_each_host(tmp_path: Path) -> None:
    text = _settings_text()
    # node1 listens on its own port; node2 has none of its own (the cluster's), node3 its own
    assert "  local 192.0.2.11 port 1791 as 64512;" in text
    assert "  local 2001:db8:ffff::11 port 1791 as 64512;" in text
    assert "  neighbor 192.0.2.12 port 1790 as 64512;" in text
    assert "  neighbor 192.0.2.13 port 1793 as 64512;" in text
    assert "  neighbor 2001:db8:ffff::13 port 1793 as 64512;" in text
    # an external peer: the port of its peerIP, or 179
    assert "  neighbor 192.0.2.1 port 1179 as 65000;" in text
    assert "  neighbor 2001:db8:ffff::1 as 65000;" in text
    assert SETTINGS.port_of("node2") == 1790 and SETTINGS.port_of("node3") == 1793
    # all on the default: no port anywhere
    plain = _settings_text(listen_port=179, node_listen_ports=(),
                           peers=(replace(SETTINGS.peers[0], port=179),))
    assert " port " not in plain
    _parses(text, tmp_path)


def test_service_cidrs(tmp_path: Path) -> None:
    text = _settings_text()
    assert ("protocol static gingham_services4 {\n  ipv4;\n  route 198.19.128.0/20 blackhole;\n"
            "  route 203.0.113.64/26 blackhole;\n}") in text
    assert ("protocol static gingham_services6 {\n  ipv6;\n  route 2001:db8:5e::/112 blackhole;"
            "\n}") in text
    assert '  if proto = "gingham_services4" then accept;' in text
    assert '  if proto = "gingham_services6" then accept;' in text
    # what peers announce for them (every host does) never reaches the kernel
    kernel = text.split("filter gingham_kernel_export {")[1].split("}")[0]
    assert kernel.splitlines()[1:3] == [
        "  if net.type = NET_IP4 && net ~ [ 198.19.128.0/20+, 203.0.113.64/26+ ] then reject;",
        "  if net.type = NET_IP6 && net ~ [ 2001:db8:5e::/112+ ] then reject;",
    ]
    none = _settings_text(service_cidrs=())
    assert "gingham_services" not in none and "NET_IP4" not in none
    _parses(text, tmp_path)


def test_communities_on_advertised_prefixes(tmp_path: Path) -> None:
    text = _settings_text()
    assert ("function gingham_communities4() {\n"
            "  if net ~ [ 198.18.0.0/16+ ] then { bgp_community.add((64512, 120)); "
            "bgp_large_community.add((64512, 300, 100)); }\n"
            "  if net ~ [ 198.19.128.0/20+ ] then { bgp_community.add((64512, 200)); }\n"
            "}") in text
    assert ("function gingham_communities6() {\n"
            "  if net ~ [ 2001:db8:1::/64+ ] then { bgp_community.add((64512, 600)); }\n}") in text
    # applied first in the export filters, so every route they accept carries them
    assert "filter gingham_export4 {\n  gingham_communities4();\n" in text
    assert "filter gingham_export6 {\n  gingham_communities6();\n" in text
    none = _settings_text(prefix_advertisements=())
    assert "communities" not in none
    _parses(text, tmp_path)


def test_passwords_come_from_files(tmp_path: Path) -> None:
    good = tmp_path / "good.pass"
    good.write_text("tor pw 1\n")
    good.chmod(0o600)
    assert read_password(str(good)) == "tor pw 1"
    loose = tmp_path / "loose.pass"
    loose.write_text("hunter2")
    loose.chmod(0o640)
    bad_text = tmp_path / "quote.pass"
    bad_text.write_text('a"b')
    bad_text.chmod(0o600)
    long = tmp_path / "long.pass"
    long.write_text("x" * 81)
    long.chmod(0o400)
    cases = {str(loose): "chmod 600", str(bad_text): "quotes", str(long): "longer than 80",
             str(tmp_path / "missing"): "cannot open", str(tmp_path): "not a regular file",
             "relative.pass": "absolute"}
    for path, why in cases.items():
        with pytest.raises(RoutingError) as info:
            read_password(path)
        assert why in str(info.value) and path in str(info.value)
        assert "hunter2" not in str(info.value)
    got = read_passwords([str(good), str(loose), str(good)])
    assert got.secrets == {str(good): "tor pw 1"} and set(got.problems) == {str(loose)}
    assert "tor pw 1" not in repr(got)

    # The mesh and the peer with a password get it; without one, the session is left out.
    notes: list[LeftOut] = []
    text = render(SETTINGS, SETTINGS_HOSTS[0], SETTINGS_HOSTS, [], POOLS,
                  secrets={MESH_PASS: "mesh-pw"}, notes=notes)
    assert text.count('  password "mesh-pw";') == 4  # node2, node3: IPv4 and IPv6
    assert "Global_192_0_2_1 " not in text and "tor pw 1" not in text
    assert notes == [LeftOut("Global_192_0_2_1", f"no password from {TOR_PASS}", TOR_PASS)]
    with pytest.raises(ValidationError, match=TOR_PASS):  # never render one the reader refuses
        render(SETTINGS, SETTINGS_HOSTS[0], SETTINGS_HOSTS, [], POOLS,
               secrets={MESH_PASS: "m", TOR_PASS: 'a"b'})


def test_peer_ip_port_and_ipv6_peers(tmp_path: Path) -> None:
    v4_only = [node(1), node(2)]
    peers = (
        PeerInfo("far", peer_ip=ip_address("203.0.113.1"), as_number=65100, port=1179),
        PeerInfo("six", peer_ip=ip_address("2001:db8:ffff::1"), as_number=65000),
    )
    notes: list[LeftOut] = []
    text = render(BGPSettings(True, peers=peers), v4_only[0], v4_only, [], notes=notes)
    assert "  neighbor 203.0.113.1 port 1179 as 65100;" in text
    # an IPv6 peer of a host without an IPv6 address: left out, the rest stands
    assert "2001:db8:ffff::1" not in text and "Mesh_192_0_2_12" in text
    assert notes == [LeftOut("Global_2001_db8_ffff__1", "this host has no IPv6 address")]
    six = _settings_text()
    assert ("protocol bgp Global_2001_db8_ffff__1 from gingham_peer6 {\n"
            "  neighbor 2001:db8:ffff::1 as 65000;\n") in six
    _parses(text, tmp_path)
