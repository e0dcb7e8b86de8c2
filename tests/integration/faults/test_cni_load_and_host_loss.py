"""IPAM under load and after losing a host (sqlite lab, real CNI processes).

- 50 CNI ADDs at once on one host, then 50 DELs: every call succeeds, no
  address twice, and afterwards nothing is left (veths, routes, endpoints,
  IPAM handles and allocations); a leak check with no grace finds nothing.
- A host that dies for good (agent killed, liveness gone, Node deleted): two
  leak checks and a release free its addresses and blocks, and the routes
  the other hosts had towards its blocks disappear.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from gingham.lab import lab as labmod
from gingham.lab import workloads
from gingham.lab.state import LabState
from tests.integration.cni.node_agent import eventually
from tests.integration.faults import tools

pytestmark = pytest.mark.integration

N = 50


@pytest.fixture(scope="module")
def lab() -> Iterator[str]:
    with tools.running_lab(83) as name:
        yield name


def _leak_check(lab: LabState, *extra: str) -> dict[str, object]:
    r = tools.gingham_cli(lab, "ipam", "check", "--grace", "0", "-o", "json", *extra)
    assert r.returncode == 0, r.stderr
    doc: dict[str, object] = json.loads(r.stdout)
    return doc


def test_fifty_parallel_adds_then_dels(lab: str) -> None:
    st = tools.reload(lab)
    names = [f"gw-{lab}-p{i:02d}" for i in range(N)]
    veths_before = tools.host_veths(st, "h1")
    handles_before = tools.ipam_handles(st)
    with tools.throwaway_netns(names):
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=N) as pool:
            adds = list(pool.map(
                lambda i: tools.cni("ADD", st, "h1", names[i], f"par-{i}", "par", f"w{i}"),
                range(N)))  # fmt: skip
        add_seconds = time.monotonic() - start
        failed = [(i, out) for i, (code, out) in enumerate(adds) if code != 0]
        assert not failed, failed[:3]
        ips = [out["ips"][0]["address"] for _, out in adds if out]
        assert len(ips) == N and len(set(ips)) == N, "an address was handed out twice"
        allocated = [a for a in tools.ipam_allocations(st) if a[1].startswith("gingham.par-")]
        assert sorted(a[0] for a in allocated) == sorted(ip.split("/")[0] for ip in ips)
        assert len(tools.host_veths(st, "h1") - veths_before) == N
        assert len([e for e in tools.endpoints(st) if e["namespace"] == "par"]) == N

        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=N) as pool:
            dels = list(pool.map(
                lambda i: tools.cni("DEL", st, "h1", names[i], f"par-{i}", "par", f"w{i}"),
                range(N)))  # fmt: skip
        del_seconds = time.monotonic() - start
        failed = [(i, out) for i, (code, out) in enumerate(dels) if code != 0]
        assert not failed, failed[:3]
    # DEL through the agent takes each veth out of service at once; the kernel's deletion
    # of it (10-20 ms each, one after another in the agent's reaper) ends a little later.
    assert eventually(lambda: tools.host_veths(st, "h1") == veths_before, timeout=10.0)
    assert not [e for e in tools.endpoints(st) if e["namespace"] == "par"]
    assert tools.ipam_handles(st) == handles_before
    assert not [a for a in tools.ipam_allocations(st) if a[1].startswith("gingham.par-")]
    # Host routes only: a workload may have had a block's first address, and the
    # block's own route (x.x.x.0/26) rightly stays.
    left = {ip.split("/")[0] for ip in ips}
    routes = {r["dst"] for r in tools.host_routes(st, "h1") if "/" not in r["dst"]}
    assert not routes & left, "routes to deleted workloads are left"
    _leak_check(st)
    report = _leak_check(st)
    assert report["leaks"] == [], report
    print(f"\nRELIABILITY {{\"parallel_cni\": {N}, \"add_wall_s\": {add_seconds:.2f}, "
          f"\"del_wall_s\": {del_seconds:.2f}}}")  # fmt: skip


def _blocks_of(lab: LabState, host: str) -> set[str]:
    return {cidr for cidr, aff in tools.ipam_blocks(lab).items() if aff == f"host:{host}"}


def _routes_to(lab: LabState, host: str, cidrs: set[str]) -> set[str]:
    return {r["dst"] for r in tools.host_routes(lab, host)} & cidrs


def test_removed_host_releases_blocks_and_routes_go(lab: str) -> None:
    workloads.add(lab, "gone/w3", "h3", {}, [])
    st = tools.reload(lab)
    blocks = _blocks_of(st, "h3")
    assert blocks, "h3 claimed no block"
    tools.wait_until(lambda: _routes_to(st, "h1", blocks) == blocks, 15, "routes to h3's block")

    labmod.stop_agent(lab, "h3")
    ds = tools.datastore(st)
    try:  # what lease expiry does 10 s after the agent died, done at once
        ds.delete("/gingham/v1/liveness/h3")
    finally:
        ds.close()
    r = tools.gingham_cli(st, "delete", "node", "h3")
    assert r.returncode == 0, r.stderr

    wl_ip = st.workload("gone/w3").ips[0]
    released = []
    for _ in range(4):  # first sighting, then release; emptied blocks go in a later round
        report = _leak_check(st, "--release")
        outcome = report.get("release")
        if isinstance(outcome, dict):
            released += outcome.get("released", [])
        if not _blocks_of(st, "h3"):
            break
    assert not _blocks_of(st, "h3"), f"h3 still holds {_blocks_of(st, 'h3')}"
    assert wl_ip not in {a[0] for a in tools.ipam_allocations(st)}
    for host in ("h1", "h2"):
        tools.wait_until(lambda h=host: not _routes_to(st, h, blocks), 15,  # type: ignore[misc]
                         f"routes on {host} to the removed host's blocks")  # fmt: skip
    assert released, "the leak check released nothing"
    print(f'\nRELIABILITY {{"host_removed_released": {json.dumps(released)}}}')
