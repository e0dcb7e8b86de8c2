"""The pieces together: workloads plumbed by gingham.cni.plumbing on two lab
hosts of one subnet reach each other through routes set by
gingham.dataplane.netlink.sync_routes, which leaves the workload routes alone."""

from __future__ import annotations

import sys
from ipaddress import ip_address, ip_network

import pytest

from gingham.cni.plumbing import veth_name
from gingham.dataplane.netlink import Netlink, Route, not_workload_route, sync_routes
from gingham.lab.fabric import Fabric, lab_prefix
from gingham.lab.netns import add_netns, delete_netns, run_in_netns

pytestmark = pytest.mark.integration


def _plumb(host_netns: str, wl_netns: str, ifname: str, ip: str) -> None:
    code = (
        "from gingham.cni.plumbing import setup_workload_interface as s; "
        f"s('/run/netns/{wl_netns}', '{ifname}', ['{ip}/32'], 1500)"
    )
    run_in_netns(host_netns, [sys.executable, "-c", code])


def test_workloads_on_two_hosts(fabric: Fabric) -> None:
    h1, h2, _h3 = fabric.hosts
    # named with the lab's prefix: destroy_fabric removes them even if this test dies
    w1, w2 = f"{lab_prefix(fabric.lab)}w1", f"{lab_prefix(fabric.lab)}w2"
    made = []
    try:
        for ns in (w1, w2):
            made.append(add_netns(ns))
        _plumb(h1.netns, w1, veth_name("ns", "w1"), "198.18.1.1")
        _plumb(h2.netns, w2, veth_name("ns", "w2"), "198.18.2.1")
        blocks = {h1.name: "198.18.1.0/26", h2.name: "198.18.2.0/26"}
        for here, there in ((h1, h2), (h2, h1)):
            want = {
                Route(ip_network(blocks[there.name]), ip_address(there.address), "eth0"),
                Route(ip_network(blocks[here.name]), kind="blackhole"),
            }
            diff = sync_routes(want, here.netns, owned=not_workload_route)
            assert len(diff.add) == 2 and not diff.remove
        out = run_in_netns(w1, ["busybox", "ping", "-c", "1", "-W", "2", "198.18.2.1"], check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        # the CNI plugin's /32 survived the route sync
        with Netlink(h1.netns) as nl:
            routes = {str(r.dst): r for r in nl.list_routes()}
        assert routes["198.18.1.1/32"].dev == veth_name("ns", "w1")
        # an address of the local block that no workload holds is dropped here
        out = run_in_netns(w2, ["busybox", "ping", "-c", "1", "-W", "1", "198.18.1.9"], check=False)
        assert out.returncode != 0
        assert routes["198.18.1.0/26"].kind == "blackhole"
    finally:
        for ns in made:
            delete_netns(ns)
