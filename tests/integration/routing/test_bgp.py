"""BGP with real BIRD 2 in host namespaces, and GoBGP as the top-of-rack router.

Timers are short (hold 6 s, keepalive 2 s, connect retry/delay 1 s), so sessions
come up in about a second.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterator
from ipaddress import ip_address, ip_network
from pathlib import Path

import pytest

from gingham.calc.routing import bgp_config
from gingham.calc.routing_types import BGPSettings, PeerInfo, PoolInfo
from gingham.errors import RoutingError
from gingham.ipam.info import BlockInfo
from gingham.lab.netns import run_in_netns, spawn_in_netns, stop_process, wait_for
from gingham.routing import bgp_status
from gingham.routing.bird import BirdProcess
from gingham.routing.bird_config import render_bird_config
from gingham.routing.status import birdc
from tests.unit.routing.blocks import block

from .topo import POOL, Topo, add_external, build, gobgp_config, own_blocks, ping

pytestmark = pytest.mark.integration
FAST = dict(hold_time=6, keepalive_time=2, connect_retry_time=1)
POOLS = [PoolInfo(POOL)]


@contextlib.contextmanager
def birds(topo: Topo, run_dir: Path) -> Iterator[dict[str, BirdProcess]]:
    procs = {h.name: BirdProcess(h.name, h.ns, run_dir) for h in topo.hosts}
    try:
        yield procs
    finally:
        for p in procs.values():
            with contextlib.suppress(Exception):
                p.stop()


def render(topo: Topo, host, settings: BGPSettings, blocks, infos=None) -> str:
    infos = infos or [h.info() for h in topo.hosts]
    me = next(i for i in infos if i.name == host.name)
    return render_bird_config(bgp_config(settings, me, infos, blocks, POOLS), log_file=None)


def bird_routes(ns: str) -> dict[str, str]:
    out = run_in_netns(ns, ["ip", "-j", "route", "show", "proto", "bird"]).stdout
    return {r["dst"]: r.get("gateway", "") for r in json.loads(out)}


def learned_everything(topo: Topo, blocks: list[BlockInfo]) -> bool:
    for h in topo.hosts:
        routes = bird_routes(h.ns)
        for b in blocks:
            if b.host != h.name and str(b.cidr) not in routes:
                return False
    return True


def _start_agents(topo: Topo, procs, settings, blocks, infos=None) -> None:
    for h in topo.hosts:
        topo.apply(h, topo.plan(h, blocks, "Never", bgp=True, infos=infos))  # blackholes only
        assert procs[h.name].apply(render(topo, h, settings, blocks, infos)) == "started"


def _all_pairs_ping(topo: Topo) -> None:
    wls = [h.workloads["a"] for h in topo.hosts]
    for (src_ns, _), (_, dst) in itertools.permutations(wls, 2):
        assert ping(src_ns, dst), f"{src_ns} -> {dst}"


def test_full_mesh_with_gobgp_top_of_rack(netns, make_fabric, tmp_path: Path) -> None:
    topo = build(netns, make_fabric, [0, 0, 0])
    for h in topo.hosts:
        topo.add_workload(h, "a", str(h.block.network_address + 1))
    ext_ns, _ = add_external(topo)
    tor = ip_address("192.0.2.1")  # the router is the top-of-rack BGP speaker
    conf = tmp_path / "gobgp.toml"
    conf.write_text(gobgp_config(str(tor), 65000, [(str(h.address), 64512) for h in topo.hosts]))
    log = open(tmp_path / "gobgp.log", "wb")  # noqa: SIM115
    gobgpd = spawn_in_netns(
        topo.router,
        ["gobgpd", "-f", str(conf), "--api-hosts", "127.0.0.1:50051", "-p"],
        stdout=log,
        stderr=log,
    )
    settings = BGPSettings(True, peers=(PeerInfo("tor", peer_ip=tor, as_number=65000),), **FAST)
    blocks = [b for b in own_blocks(topo) if b.cidr.version == 4]  # IPv4-only underlay
    try:
        with birds(topo, tmp_path) as procs:
            _start_agents(topo, procs, settings, blocks)
            assert wait_for(lambda: learned_everything(topo, blocks), timeout=20), {
                h.name: bird_routes(h.ns) for h in topo.hosts
            }
            # the kernel routes came from BIRD, via the owning host's underlay address
            h1 = topo.hosts[0]
            assert bird_routes(h1.ns)["198.18.2.0/26"] == "192.0.2.12"
            status = bgp_status(procs["h1"].sock)
            assert {(s.peer, s.type) for s in status} == {
                ("192.0.2.12", "node-to-node mesh"),
                ("192.0.2.13", "node-to-node mesh"),
                ("192.0.2.1", "global"),
            }
            assert wait_for(lambda: all(s.established for s in bgp_status(procs["h1"].sock)), 15)
            topo.reset_counters()
            _all_pairs_ping(topo)
            c = topo.counters()
            assert c["vxlan"] == 0 and c["plain"] >= 12

            # the top-of-rack router learned every host's block, next hop = that host
            def rib() -> dict[str, str]:
                out = run_in_netns(
                    topo.router, ["gobgp", "-u", "127.0.0.1", "-p", "50051", "global", "rib", "-j"]
                ).stdout
                table = json.loads(out) if out.strip() else {}
                result = {}
                for prefix, paths in table.items():
                    for path in paths:
                        if path.get("best"):
                            hops = [a["nexthop"] for a in path["attrs"] if "nexthop" in a]
                            result[prefix] = hops[0] if hops else ""
                return result

            want = {str(h.block): str(h.address) for h in topo.hosts}
            assert wait_for(lambda: rib() == want, timeout=15), rib()
            # GoBGP has no kernel FIB without zebra: program its RIB by hand, then a
            # host behind the router reaches every workload through it
            for prefix, hop in rib().items():
                run_in_netns(topo.router, ["ip", "route", "replace", prefix, "via", hop])
            for h in topo.hosts:
                assert ping(ext_ns, h.workloads["a"][1]), h.name

            # a new block on h1: BIRD reloads (not restarts), the others learn it
            blocks2 = [*blocks, block("198.18.101.0/26", "h1")]
            assert procs["h1"].apply(render(topo, h1, settings, blocks2)) == "reloaded"
            assert procs["h1"].apply(render(topo, h1, settings, blocks2)) == "unchanged"
            assert wait_for(lambda: "198.18.101.0/26" in bird_routes(topo.hosts[2].ns), 10)
            assert all(s.established for s in bgp_status(procs["h1"].sock))
    finally:
        stop_process(gobgpd)
        log.close()


def test_route_reflector(netns, make_fabric, tmp_path: Path) -> None:
    topo = build(netns, make_fabric, [0, 0, 0])
    for h in topo.hosts:
        topo.add_workload(h, "a", str(h.block.network_address + 1))
    infos = [h.info(rr_cluster_id="244.0.0.1" if h.name == "h1" else None) for h in topo.hosts]
    settings = BGPSettings(True, **FAST)
    blocks = [b for b in own_blocks(topo) if b.cidr.version == 4]  # IPv4-only underlay
    with birds(topo, tmp_path) as procs:
        _start_agents(topo, procs, settings, blocks, infos)
        assert wait_for(lambda: learned_everything(topo, blocks), timeout=20), {
            h.name: bird_routes(h.ns) for h in topo.hosts
        }
        h2, h3 = topo.hosts[1], topo.hosts[2]
        # h2 and h3 do not peer; h3's route reaches h2 through the reflector with
        # h3 as next hop (not the reflector)
        assert [(s.peer, s.type) for s in bgp_status(procs["h2"].sock)] == [
            ("192.0.2.11", "route reflector")
        ]
        assert bird_routes(h2.ns)[str(h3.block)] == str(h3.address)
        assert {s.type for s in bgp_status(procs["h1"].sock)} == {"route reflector client"}
        _all_pairs_ping(topo)


def test_bgp_with_cross_subnet_vxlan(netns, make_fabric, tmp_path: Path) -> None:
    """BIRD carries same-subnet routes, the agent's VXLAN routes carry the rest; no double
    programming: a BGP route to a block across the router is never installed."""
    topo = build(netns, make_fabric, [0, 0, 1])
    h1, h2, h3 = topo.hosts
    for h in topo.hosts:
        topo.add_workload(h, "a", str(h.block.network_address + 1))
    settings = BGPSettings(True, **FAST)
    blocks = [b for b in own_blocks(topo) if b.cidr.version == 4]
    with birds(topo, tmp_path) as procs:
        for h in topo.hosts:
            topo.apply(h, topo.plan(h, blocks, "CrossSubnet", bgp=True))
            procs[h.name].apply(render(topo, h, settings, blocks))
        assert wait_for(lambda: str(h2.block) in bird_routes(h1.ns), timeout=20)
        # the multihop session across the router comes up too ...
        assert wait_for(
            lambda: (
                all(s.established for s in bgp_status(procs["h1"].sock))
                and len(bgp_status(procs["h1"].sock)) == 2
            ),
            timeout=20,
        ), bgp_status(procs["h1"].sock)

        # ... h3's block arrives in BIRD, but (next hop outside the subnet) not in the kernel
        def bird_has_h3() -> bool:
            try:  # birdc fails with "Network not found" until the route arrives
                return str(h3.block) in birdc(procs["h1"].sock, "show", "route", str(h3.block))
            except RoutingError:
                return False

        assert wait_for(bird_has_h3, timeout=10)
        assert "unreachable" in birdc(procs["h1"].sock, "show", "route", str(h3.block))
        assert str(h3.block) not in bird_routes(h1.ns)
        assert str(h1.block) not in bird_routes(h3.ns)
        route = run_in_netns(h1.ns, ["ip", "route", "show", str(h3.block)]).stdout
        assert "vxlan.gingham" in route and "proto 201" in route
        _all_pairs_ping(topo)
        topo.reset_counters()
        assert ping(h1.workloads["a"][0], h3.workloads["a"][1], count=2)
        c = topo.counters()
        assert c["vxlan"] >= 4 and c["plain"] == 0
        topo.reset_counters()
        assert ping(h1.workloads["a"][0], h2.workloads["a"][1], count=2)
        c = topo.counters()
        assert c["vxlan"] == 0 and c["plain"] >= 4


def _v6_underlay(topo: Topo) -> list:
    """Give every host an IPv6 underlay address too; return HostInfos that carry it."""
    infos = []
    for h in topo.hosts:
        v6 = ip_address(f"2001:db8:ffff::{10 + h.index}")
        run_in_netns(h.ns, ["ip", "addr", "add", f"{v6}/64", "dev", "eth0", "nodad"])
        infos.append(h.info(address_v6=v6, subnet_v6=ip_network("2001:db8:ffff::/64")))
        topo.add_workload(
            h, "a", str(h.block.network_address + 1), addr6=str(h.block6.network_address + 1)
        )
    return infos


def _ping6(src_ns: str, dst) -> bool:
    argv = ["busybox", "ping", "-6", "-c", "1", "-w", "4", str(dst)]
    return run_in_netns(src_ns, argv, check=False).returncode == 0


def test_ipv6_underlay_direct_routes_then_bgp(netns, make_fabric, tmp_path: Path) -> None:
    topo = build(netns, make_fabric, [0, 0])
    h1, h2 = topo.hosts
    infos = _v6_underlay(topo)
    blocks = own_blocks(topo)
    dst6 = h2.block6.network_address + 1
    # without BGP: a direct IPv6 route via h2's IPv6 underlay address
    for h in topo.hosts:
        topo.apply(h, topo.plan(h, blocks, "Never", infos=infos))
    route = run_in_netns(h1.ns, ["ip", "-6", "route", "show", str(h2.block6)]).stdout
    assert "via 2001:db8:ffff::12 dev eth0" in route
    assert _ping6(h1.workloads["a"][0], dst6)
    # with BGP: IPv6 sessions between the IPv6 underlay addresses carry the IPv6 blocks
    settings = BGPSettings(True, **FAST)
    with birds(topo, tmp_path) as procs:
        for h in topo.hosts:
            topo.apply(h, topo.plan(h, blocks, "Never", bgp=True, infos=infos))
            procs[h.name].apply(render(topo, h, settings, blocks, infos))

        def learned6() -> bool:
            out = run_in_netns(h1.ns, ["ip", "-6", "route", "show", "proto", "bird"]).stdout
            return str(h2.block6) in out and "via 2001:db8:ffff::12" in out

        assert wait_for(learned6, timeout=20)
        assert {s.peer for s in bgp_status(procs["h1"].sock)} == {"192.0.2.12", "2001:db8:ffff::12"}
        assert _ping6(h1.workloads["a"][0], dst6)
        # The IPv4 session may learn its route a moment after the IPv6 one.
        assert wait_for(lambda: ping(h1.workloads["a"][0], h2.workloads["a"][1]), timeout=20)
