"""A real top-of-rack router: FRR (bgpd + zebra) in the lab's router namespace.

The whole path is driven by gingham's own agents: a lab of three hosts on two
subnets (h1, h2 on 192.0.2.0/24, h3 on 198.51.100.0/24), an IP pool without
encapsulation, no node-to-node mesh, and one per-node BGPPeer from each host to
the router's address on its subnet. The router (AS 64513) peers eBGP with every
host (AS 64512, Calico's default), learns each host's blocks and zebra programs
them into the router's kernel (``proto bgp``). Because all hosts share one AS,
the router rewrites that AS in what it sends back (``as-override``); otherwise
each host's BGP loop check would drop its neighbours' routes. The mesh is off
because with a ToR it is redundant, and across subnets it could not work anyway
(iBGP next hops behind the router are ones BIRD here cannot resolve).

Then workloads on different subnets reach each other through the router with
no VXLAN, and a namespace behind the router (203.0.113.0/24, which is in no
pool and which no host knows about) reaches every workload.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from ipaddress import ip_address, ip_network
from typing import Any

import pytest

from gingham.datastore import keys, open_datastore
from gingham.datastore.resources import ResourceStore
from gingham.lab import lab as labmod
from gingham.lab import matrix, workloads
from gingham.lab import state as labstate
from gingham.lab.fabric import Fabric
from gingham.lab.lab import gingham_binary
from gingham.lab.netns import add_netns, add_veth, delete_netns, ip_batch, run_in_netns, wait_for
from gingham.lab.state import LabState, WorkloadState
from gingham.model import parse_resource

from .frr import Neighbor, bgpd_config, frr_available, frr_router
from .topo import COUNTERS

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(frr_available() is not None, reason=str(frr_available())),
]

HOST_AS = 64512
TOR_AS = 64513
EXTERNAL = "203.0.113.10"
CALICO = "projectcalico.org/v3"


@pytest.fixture
def lab_name() -> Iterator[str]:
    # t<pid>x0: the netns fixtures recognise it as an orphan if this process dies;
    # their own counters start at 1, so the name is not taken by another test here
    name = f"t{os.getpid()}x0"
    labmod.down(name)
    try:
        yield name
    finally:
        labmod.down(name)


def _apply(url: str, *docs: dict[str, Any]) -> None:
    ds = open_datastore(url)
    try:
        store = ResourceStore(ds)
        for doc in docs:
            store.apply(parse_resource(doc))
    finally:
        ds.close()


def _delete(url: str, kind: str, name: str) -> None:
    ds = open_datastore(url)
    try:
        ResourceStore(ds).delete(kind, name)
    finally:
        ds.close()


def _host_blocks(url: str) -> dict[str, str]:
    """Every affine IPAM block (CIDR) -> the host that owns it."""
    ds = open_datastore(url)
    try:
        kvs = ds.list(keys.IPAM + "blocks/")[0]
    finally:
        ds.close()
    out = {}
    for kv in kvs:
        affinity = kv.value.get("affinity") or ""
        if affinity.startswith("host:") and ip_network(kv.value["cidr"]).version == 4:
            out[kv.value["cidr"]] = affinity[len("host:") :]
    return out


def _routes(netns: str, *selector: str) -> list[dict[str, Any]]:
    out = run_in_netns(netns, ["ip", "-j", "route", "show", *selector]).stdout
    return json.loads(out) if out.strip() else []


def _counters(switch: str) -> dict[str, int]:
    out = run_in_netns(switch, ["nft", "-j", "list", "counters", "table", "bridge", "gh_fabric"])
    return {
        item["counter"]["name"]: item["counter"]["packets"]
        for item in json.loads(out.stdout)["nftables"]
        if "counter" in item
    }


Cells = dict[str, dict[str, bool]]


def _measure(lab: str, until: Callable[[Cells], bool], timeout: float) -> Cells:
    """The reachability matrix, measured again until ``until(cells)`` or time is up."""
    deadline = time.monotonic() + timeout
    while True:
        cells = matrix.measure(labstate.load(lab)).cells
        if until(cells) or time.monotonic() > deadline:
            return cells


def _all_open(cells: Cells) -> bool:
    return all(all(row.values()) for row in cells.values())


def _add_external(lab: str, router: str) -> WorkloadState:
    """A namespace behind the router on 203.0.113.0/24; named under the lab's prefix."""
    ns = add_netns(f"gh-{lab}-x")
    add_veth("x0", "eth0", netns=router, peer_netns=ns)
    ip_batch(router, ["addr add 203.0.113.1/24 dev x0", "link set x0 up"])
    ip_batch(
        ns,
        [
            f"addr add {EXTERNAL}/24 dev eth0",
            "link set eth0 up",
            "route add default via 203.0.113.1",
        ],
    )
    # probes take a WorkloadState; only its namespace matters for a source
    return WorkloadState(namespace="ext", name="ext", host="", netns=ns, container_id="")


def _node_status(lab: LabState, host: str) -> list[dict[str, str]]:
    env = dict(os.environ, GINGHAM_RUN_DIR=lab.run_dir)
    proc = subprocess.run(
        [gingham_binary(), "node", "status", "--name", host, "-o", "json"],
        capture_output=True, text=True, env=env, timeout=20, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_frr_tor_learns_every_block_into_its_kernel(lab_name: str) -> None:
    lab = labmod.up(lab_name, hosts=3, subnets=2, make_current=False)  # h1, h2: subnet 1; h3: 2
    fabric = Fabric.from_dict(lab.fabric)
    run_in_netns(fabric.switch, ["nft", "-f", "-"], input=COUNTERS)
    ext_ns = f"gh-{lab_name}-x"
    try:
        _apply(
            lab.datastore,
            {
                "apiVersion": CALICO,
                "kind": "IPPool",
                "metadata": {"name": "default-ipv4-ippool"},
                "spec": {"cidr": "198.18.0.0/16", "blockSize": 26, "vxlanMode": "Never"},
            },
        )
        for i, h in enumerate(fabric.hosts, start=1):
            workloads.add(lab_name, f"tor/w{i}", h.name, {}, [(80, "tcp", "")])
        ext = _add_external(lab_name, fabric.router)
        st = labstate.load(lab_name)
        wls = {w.host: w for w in st.workloads.values()}

        # Without BGP nothing tells the router where the blocks are: same-subnet
        # workloads meet (the agents' direct routes), the rest do not.
        cells = _measure(lab_name, lambda c: c["tor/w1"]["tor/w2"], timeout=10)
        assert cells["tor/w1"]["tor/w2"] and cells["tor/w2"]["tor/w1"], cells
        assert not any(cells[f"tor/w{i}"]["tor/w3"] for i in (1, 2)), cells
        assert not any(cells["tor/w3"][f"tor/w{i}"] for i in (1, 2)), cells

        neighbors = [Neighbor(h.address, HOST_AS) for h in fabric.hosts]
        conf = bgpd_config(TOR_AS, fabric.hosts[0].gateway, neighbors, as_override=True)
        with frr_router(fabric.router, conf) as tor:
            _apply(
                lab.datastore,
                *[
                    {
                        "apiVersion": CALICO,
                        "kind": "BGPPeer",
                        "metadata": {"name": f"tor-{h.name}"},
                        "spec": {"node": h.name, "peerIP": h.gateway, "asNumber": TOR_AS},
                    }
                    for h in fabric.hosts
                ],
                {
                    "apiVersion": CALICO,
                    "kind": "BGPConfiguration",
                    "metadata": {"name": "default"},
                    "spec": {"asNumber": HOST_AS, "nodeToNodeMeshEnabled": False},
                },
            )
            addresses = {h.address for h in fabric.hosts}
            assert wait_for(lambda: tor.established() == addresses, 30, 0.3), (
                tor.peers(),
                tor.log("bgpd"),
            )

            # zebra put every host's blocks into the router's kernel, via that host
            blocks = _host_blocks(lab.datastore)
            want = {cidr: fabric.host(owner).address for cidr, owner in blocks.items()}

            def router_routes() -> dict[str, str]:
                return {
                    r["dst"]: r.get("gateway", "") for r in _routes(fabric.router, "proto", "bgp")
                }

            assert wait_for(lambda: router_routes() == want, 20, 0.3), (router_routes(), want)
            for host, w in wls.items():  # each workload's address is in its host's block
                ip = ip_address(w.ips[0])
                assert any(ip in ip_network(c) and blocks[c] == host for c in blocks), (w, blocks)

            # each host learnt the others' blocks from the router (BIRD, proto bird)
            def host_routes(host: str) -> dict[str, str]:
                ns = fabric.host(host).netns
                return {r["dst"]: r.get("gateway", "") for r in _routes(ns, "proto", "bird")}

            for h in fabric.hosts:
                others = {c for c, owner in blocks.items() if owner != h.name}
                assert wait_for(lambda h=h, o=others: o <= set(host_routes(h.name)), 15, 0.3), (
                    h.name,
                    host_routes(h.name),
                )
            # FRR passes a same-subnet next hop on unchanged (h1 -> h2 direct); a block
            # across the router is reached through the router
            block_of = {owner: c for c, owner in blocks.items()}
            assert host_routes("h1")[block_of["h2"]] == fabric.host("h2").address
            assert host_routes("h1")[block_of["h3"]] == fabric.host("h1").gateway
            assert host_routes("h3")[block_of["h1"]] == fabric.host("h3").gateway

            status = _node_status(st, "h1")
            assert [(s["peer"], s["type"], s["state"]) for s in status] == [
                (fabric.host("h1").gateway, "node specific", "up")
            ], status
            assert status[0]["info"].startswith("Established"), status

            # workloads on both subnets reach each other, unencapsulated
            run_in_netns(
                fabric.switch, ["nft", "reset", "counters", "table", "bridge", "gh_fabric"]
            )
            cells = _measure(lab_name, _all_open, timeout=15)
            assert _all_open(cells), cells
            c = _counters(fabric.switch)
            assert c["vxlan"] == 0 and c["plain"] > 0, c
            for h in fabric.hosts:
                text = run_in_netns(h.netns, ["ip", "route", "show"]).stdout
                assert "vxlan.gingham" not in text, (h.name, text)

            # a host behind the router reaches every workload on port 80
            for w in wls.values():
                assert matrix.probe(ext, w, 80), w.ref

            # h3's peering goes: its agent reconfigures BIRD, the session closes and
            # zebra withdraws h3's block from the router's kernel; the rest stays
            _delete(lab.datastore, "BGPPeer", "tor-h3")
            gone = {c: a for c, a in want.items() if c != block_of["h3"]}
            assert wait_for(lambda: router_routes() == gone, 15, 0.3), router_routes()
            assert tor.established() == addresses - {fabric.host("h3").address}
            assert not matrix.probe(ext, wls["h3"], 80)
            assert matrix.probe(ext, wls["h1"], 80)
    finally:
        delete_netns(ext_ns)
