"""Workload interfaces with a real agent on a lab host (issue 12).

- The agent sets strict reverse-path filtering on the host side of the
  workload veths it programs, and sets it again after a restart when someone
  loosened it meanwhile.
- A WorkloadEndpoint that names the host's uplink (``interfaceName: eth0``,
  written straight into the datastore, as a buggy or hostile writer would)
  is not programmed: the uplink is not filtered as a workload, the host stays
  reachable and workloads on other hosts still talk to this one.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from gingham.datastore import keys
from gingham.lab import lab as labmod
from gingham.lab import workloads
from tests.integration.faults import tools

pytestmark = pytest.mark.integration

EVIL = "h1-k8s-evil-eth0"
UPLINK = "eth0"  # a lab host's interface on its subnet (lab/fabric.py)


@pytest.fixture(scope="module")
def lab() -> Iterator[str]:
    with tools.running_lab(96, hosts=2) as name:
        workloads.add(name, "wi/a", "h1", {"role": "a"}, [])
        workloads.add(name, "wi/b", "h2", {"role": "b"}, [])
        yield name


def _rp_filter(netns: str, ifname: str) -> str:
    return subprocess.run(tools.nsenter(netns, "sysctl", "-n", f"net.ipv4.conf.{ifname}.rp_filter"),
                          capture_output=True, text=True, check=True).stdout.strip()


def _map_interfaces(netns: str, name: str) -> set[str]:
    out = subprocess.run(tools.nsenter(netns, "nft", "-j", "list", "map", "inet", "gingham", name),
                         capture_output=True, text=True, check=True).stdout
    found = set()
    for item in json.loads(out)["nftables"]:
        for elem in item.get("map", {}).get("elem", []):
            found.add(elem[0])
    return found


def _table_text(netns: str) -> str:
    return subprocess.run(tools.nsenter(netns, "nft", "list", "table", "inet", "gingham"),
                          capture_output=True, text=True, check=True).stdout


def test_agent_keeps_rp_filter_strict_on_workload_veths_across_a_restart(lab: str) -> None:
    st = tools.reload(lab)
    a, h1 = st.workload("wi/a"), st.host("h1")
    tools.wait_until(lambda: _rp_filter(h1.netns, a.interface) == "1", 15,
                     "strict rp_filter on the workload veth")
    labmod.stop_agent(lab, "h1")
    try:
        subprocess.run(tools.nsenter(h1.netns, "sysctl", "-qw",
                                     f"net.ipv4.conf.{a.interface}.rp_filter=0"), check=True)
    finally:
        labmod.start_agent(lab, "h1", wait=True)
    tools.wait_until(lambda: _rp_filter(h1.netns, a.interface) == "1", 15,
                     "rp_filter restored by the restarted agent")


def test_endpoint_naming_the_uplink_is_not_programmed(lab: str) -> None:
    st = tools.reload(lab)
    h1 = st.host("h1")
    router = st.fabric["router"]
    doc = {"apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
           "metadata": {"name": EVIL, "namespace": "wi"},
           "spec": {"node": "h1", "orchestrator": "k8s", "pod": "evil", "endpoint": "eth0",
                    "interfaceName": UPLINK, "ipNetworks": ["198.18.250.1/32"],
                    "profiles": ["kns.wi"]}}
    key = keys.resource_key("WorkloadEndpoint", EVIL, "wi")
    ds = tools.datastore(st)
    try:
        ds.create(key, doc)
        try:
            # a workload added after it: once its veth is programmed, the agent
            # has read the earlier key too
            workloads.add(lab, "wi/later", "h1", {"role": "later"}, [])
            later = tools.reload(lab).workload("wi/later")
            tools.wait_until(lambda: later.interface in _map_interfaces(h1.netns, "from-wl"), 15,
                             "the later workload programmed")
            for name in ("from-wl", "to-wl"):
                assert UPLINK not in _map_interfaces(h1.netns, name)
            assert "198.18.250.1" not in _table_text(h1.netns)
            with tools.listener(h1.netns, "tcp:9091"):
                assert tools.tcp_open(router, h1.address, 9091), "the host's uplink is filtered"
            b = st.workload("wi/b")
            with tools.listener(b.netns, "tcp:5560"):
                assert tools.tcp_open(st.workload("wi/a").netns, b.ips[0], 5560)
        finally:
            kv = ds.get(key)
            if kv is not None:
                ds.delete(key, revision=kv.mod_revision)
    finally:
        ds.close()
