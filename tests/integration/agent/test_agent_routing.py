"""Agents route between hosts on two subnets (direct and VXLAN), then with BGP; health and metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from gingham.datastore import open_datastore
from gingham.datastore.resources import ResourceStore
from gingham.lab import lab as labmod
from gingham.lab import matrix, workloads
from gingham.lab import state as labstate
from gingham.model import load_manifests
from gingham.routing.bird import BirdProcess

pytestmark = pytest.mark.integration

BGP = """
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {asNumber: 64512, nodeToNodeMeshEnabled: true}
"""


@pytest.fixture(scope="module")
def two_subnets() -> Iterator[str]:
    name = f"s{os.getpid() % 100000}"
    labmod.down(name)
    try:
        labmod.up(name, hosts=3, subnets=2, make_current=False)  # h1, h2: subnet 1; h3: 2
        for i, host in enumerate(("h1", "h2", "h3"), start=1):
            workloads.add(name, f"r/w{i}", host, {}, [(80, "tcp", "")])
        yield name
    finally:
        labmod.down(name)


def _all_reach(lab: str, timeout: float = 15.0) -> dict[str, dict[str, bool]]:
    deadline = time.monotonic() + timeout
    while True:
        cells = matrix.measure(labstate.load(lab)).cells
        if all(all(row.values()) for row in cells.values()) or time.monotonic() > deadline:
            return cells


def _ip(netns: str, *args: str) -> str:
    return subprocess.run(
        ["ip", "-n", netns, *args], capture_output=True, text=True, check=True
    ).stdout


def test_cross_subnet_uses_vxlan_only_across_the_router(two_subnets: str) -> None:
    cells = _all_reach(two_subnets)
    assert all(all(row.values()) for row in cells.values()), cells
    st = labstate.load(two_subnets)
    routes_h2 = _ip(st.host("h2").netns, "route", "show", "proto", "201")
    # h3 is across the router: VXLAN; h1 shares h2's subnet: direct via its underlay address.
    vxlan = [line for line in routes_h2.splitlines() if "vxlan.gingham" in line]
    assert len(vxlan) == 1 and "onlink" in vxlan[0], routes_h2
    assert any(f"via {st.host('h1').address} dev eth0" in line for line in routes_h2.splitlines())
    # Encapsulation is in use: workloads get the underlay MTU less VXLAN's 50 bytes.
    eth0 = subprocess.run(["ip", "-n", st.workload("r/w2").netns, "-j", "link", "show", "eth0"],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert json.loads(eth0)[0]["mtu"] == 1450


def test_bgp_mesh_comes_up_and_traffic_still_flows(two_subnets: str) -> None:
    st = labstate.load(two_subnets)
    ds = open_datastore(st.datastore)
    try:
        for res in load_manifests(BGP):
            ResourceStore(ds).apply(res)
        deadline = time.monotonic() + 30
        from pathlib import Path

        bird = BirdProcess("h2", run_dir=Path(st.run_dir))
        while True:
            peers = bird.status() if bird.running() else []
            if any(p.established and p.peer == st.host("h1").address for p in peers):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert any(p.established and p.peer == st.host("h1").address for p in peers), peers
        # h1's block is learnt from BIRD on h2 (same subnet)
        deadline = time.monotonic() + 15
        while "proto bird" not in _ip(st.host("h2").netns, "route") and time.monotonic() < deadline:
            time.sleep(0.3)
        assert "proto bird" in _ip(st.host("h2").netns, "route")
        cells = _all_reach(two_subnets)
        assert all(all(row.values()) for row in cells.values()), cells
    finally:
        for kv in ds.list("/gingham/v1/resources/BGPConfiguration/")[0]:
            ds.delete(kv.key)
        ds.close()


def test_health_ready_and_metrics(two_subnets: str) -> None:
    st = labstate.load(two_subnets)
    code = (
        "import json, urllib.request\n"
        "out = {}\n"
        "for p in ('healthz', 'readyz', 'metrics'):\n"
        "    r = urllib.request.urlopen('http://127.0.0.1:9099/' + p, timeout=2)\n"
        "    out[p] = [r.status, r.read().decode()]\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        ["nsenter", f"--net=/run/netns/{st.host('h1').netns}", "--", sys.executable, "-I", "-S", "-c", code],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    out = json.loads(proc.stdout)
    assert out["healthz"][0] == 200 and out["readyz"][0] == 200
    assert "gingham_apply_latency_seconds_bucket" in out["metrics"][1]
    assert "gingham_in_sync 1.0" in out["metrics"][1]
    metrics = dict(
        line.rsplit(" ", 1) for line in out["metrics"][1].splitlines() if line.startswith("gingham_")
    )
    assert float(metrics["gingham_local_endpoints"]) == 1  # r/w1 lives on h1
    assert float(metrics["gingham_rules_programmed"]) > 0
    assert float(metrics["gingham_ipsets_programmed"]) > 0
