"""The lab fabric: planning (pure), building in real namespaces, reachability
across the router, JSON round trip and crash-proof destruction."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from gingham.errors import LabError
from gingham.lab.fabric import (
    Fabric,
    build_fabric,
    destroy_fabric,
    lab_prefix,
    plan_fabric,
)
from gingham.lab.netns import (
    list_netns,
    run_in_netns,
    spawn_in_netns,
    stop_process,
    wait_for,
)


def test_plan_spreads_hosts_over_subnets() -> None:
    f = plan_fabric("demo", hosts=3, subnets=2)
    assert [(h.name, h.netns, h.address, h.gateway) for h in f.hosts] == [
        ("h1", "gh-demo-h1", "192.0.2.11", "192.0.2.1"),
        ("h2", "gh-demo-h2", "192.0.2.12", "192.0.2.1"),
        ("h3", "gh-demo-h3", "198.51.100.13", "198.51.100.1"),
    ]
    assert f.subnets == ("192.0.2.0/24", "198.51.100.0/24")
    assert (f.router, f.switch) == ("gh-demo-rt", "gh-demo-sw")
    f3 = plan_fabric("demo", hosts=["a", "b", "c"], subnets=3, layout=[2, 2, 0])
    assert [h.subnet for h in f3.hosts] == ["203.0.113.0/24", "203.0.113.0/24", "192.0.2.0/24"]
    assert f3.host("b").prefixlen == 24


def test_plan_json_round_trip() -> None:
    f = plan_fabric("demo", hosts=2, subnets=1, mtu=9000)
    text = f.to_json()
    assert json.loads(text)["hosts"][0]["netns"] == "gh-demo-h1"
    assert Fabric.from_json(text) == f
    with pytest.raises(LabError, match="bad fabric"):
        Fabric.from_json('{"lab": "x"}')
    with pytest.raises(LabError, match="line 1"):
        Fabric.from_json("{nope")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lab": "with-dash"},
        {"lab": ""},
        {"lab": "ok", "hosts": 0},
        {"lab": "ok", "subnets": 4},
        {"lab": "ok", "hosts": ["sw"]},
        {"lab": "ok", "hosts": ["a", "a"]},
        {"lab": "ok", "hosts": ["Bad"]},
        {"lab": "ok", "hosts": 2, "layout": [0]},
        {"lab": "ok", "hosts": 2, "subnets": 1, "layout": [0, 1]},
    ],
)
def test_plan_rejects_bad_input(kwargs: dict[str, object]) -> None:
    with pytest.raises(LabError):
        plan_fabric(**kwargs)  # type: ignore[arg-type]


def _ping(netns: str, dst: str) -> bool:
    argv = ["busybox", "ping", "-c", "1", "-W", "2", dst]
    return run_in_netns(netns, argv, check=False, timeout=10).returncode == 0


@pytest.mark.integration
def test_three_hosts_two_subnets(fabric: Fabric) -> None:
    h1, h2, h3 = fabric.hosts
    assert h1.subnet == h2.subnet != h3.subnet
    for a in fabric.hosts:
        for b in fabric.hosts:
            if a is not b:
                assert _ping(a.netns, b.address), f"{a.name} -> {b.name}"
    # across the router: h1 -> h3 goes via h1's gateway, TTL drops by one
    out = run_in_netns(h1.netns, ["busybox", "ping", "-c", "1", "-W", "2", h3.address]).stdout
    assert "ttl=63" in out
    for h in fabric.hosts:
        routes = json.loads(run_in_netns(h.netns, ["ip", "-j", "route", "show", "default"]).stdout)
        assert [r["gateway"] for r in routes] == [h.gateway]
        assert run_in_netns(h.netns, ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"
        rpf = run_in_netns(h.netns, ["sysctl", "-n", "net.ipv4.conf.all.rp_filter"]).stdout
        assert rpf.strip() == "0"  # each interface decides: strict on workload veths
    # nothing in the lab routes to an address outside it
    assert not _ping(h1.netns, "203.0.113.200")


@pytest.mark.integration
def test_destroy_after_crash_removes_everything() -> None:
    lab = "tcrash"
    destroy_fabric(lab)
    fabric = build_fabric(lab, hosts=2, subnets=1)
    with pytest.raises(LabError, match="already has namespaces"):
        build_fabric(lab, hosts=2)
    # a daemon left running in a host namespace, as after a crash of `gingham lab`
    proc = spawn_in_netns(fabric.hosts[0].netns, ["sleep", "300"])
    try:
        # nsenter has entered the namespace once it is sleep (under load it may not
        # have yet, and then no sweep of the namespace could find it)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{proc.pid}/comm").read_text().strip() != "sleep":
            assert time.monotonic() < deadline, "nsenter never ran sleep"
            time.sleep(0.01)
        gone = destroy_fabric(lab)
        assert set(gone) == {h.netns for h in fabric.hosts} | {fabric.router, fabric.switch}
        assert not [n for n in list_netns() if n.startswith(lab_prefix(lab))]
        proc.wait(timeout=5)  # killed with its namespace
        assert destroy_fabric(lab) == []
    finally:
        stop_process(proc)
        destroy_fabric(lab)


@pytest.mark.integration
def test_spawn_in_netns_stops_the_whole_group(netns: object) -> None:
    ns = netns("spawn")  # type: ignore[operator]
    proc = spawn_in_netns(ns, ["sh", "-c", "sleep 300 & sleep 300 & wait"],
                          stdout=subprocess.PIPE)
    try:
        # nsenter needs a moment to enter the namespace: wait rather than race it.
        assert wait_for(lambda: run_in_netns(None, ["ip", "netns", "pids", ns]).stdout.split())
    finally:
        stop_process(proc, timeout=2)
    assert proc.poll() is not None
    # children died with the group
    assert wait_for(lambda: not run_in_netns(None, ["ip", "netns", "pids", ns]).stdout.split())
