"""Workload isolation on a real lab: anti-spoofing, host ports, failsafes.

- A workload that sends from another workload's address (added to its eth0,
  or forged in a raw IP header) reaches nobody: a listener on the target
  never sees the packet, the same send from its own address arrives, and the
  anti-spoof counters of the sender's host went up.
- A workload cannot open connections to its own host (agent, BIRD, datastore
  ports) while defaultEndpointToHostAction is Drop; Accept opens them.
- A HostEndpoint whose policy denies everything still lets the operator in
  on the failsafe ports (tcp 22 from the router namespace).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator

import pytest

from gingham.datastore.resources import ResourceStore
from gingham.errors import NotFound
from gingham.lab import workloads
from gingham.lab.state import LabState
from gingham.model import load_manifests
from tests.integration.faults import tools

pytestmark = pytest.mark.integration

SEND_UDP = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if sys.argv[3]:
    s.bind((sys.argv[3], 0))
for i in range(5):
    s.sendto(b'x', (sys.argv[1], int(sys.argv[2])))
print('sent')
"""
SEND_RAW = """
import socket, struct, sys
src, dst, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
payload = b'forged'
udp = struct.pack('!HHHH', 40000, port, 8 + len(payload), 0) + payload
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                 socket.inet_aton(src), socket.inet_aton(dst))
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for i in range(5):
    s.sendto(ip + udp, (dst, 0))
print('sent')
"""
HOST_PORTS = ["tcp:9091", "tcp:2379", "tcp:22"]  # stand-ins for metrics, etcd; and ssh
ACCEPT_TO_HOST = """
apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata: {name: default}
spec: {defaultEndpointToHostAction: Accept}
"""
HEP_DENY_ALL = """
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: h1-eth0, labels: {hep: h1}}
spec: {node: h1, interfaceName: eth0, expectedIPs: [%s]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: hep-deny-all}
spec: {selector: has(hep), types: [Ingress, Egress]}
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[str]:
    with tools.running_lab(91, hosts=2) as name:
        workloads.add(name, "sp/a", "h1", {"role": "a"}, [])
        workloads.add(name, "sp/c", "h1", {"role": "c"}, [])
        workloads.add(name, "sp/b", "h2", {"role": "b"}, [])
        yield name


def _spoof_drops(lab: LabState, host: str) -> int:
    out = subprocess.run(
        tools.nsenter(lab.host(host).netns, "nft", "-j", "list", "table", "inet", "gingham"),
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    total = 0
    for item in json.loads(out)["nftables"]:
        rule = item.get("rule")
        if rule and rule.get("comment") == "anti-spoof":
            for stmt in rule["expr"]:
                if "counter" in stmt:
                    total += stmt["counter"]["packets"]
    return total


def _apply(lab: LabState, text: str) -> list[object]:
    ds = tools.datastore(lab)
    try:
        return [ResourceStore(ds).apply(r) for r in load_manifests(text)]
    finally:
        ds.close()


def _delete(lab: LabState, text: str) -> None:
    ds = tools.datastore(lab)
    try:
        store = ResourceStore(ds)
        for res in load_manifests(text):
            with contextlib.suppress(NotFound):
                store.delete_resource(res)
    finally:
        ds.close()


def _rp_filter_drops(lab: LabState, host: str) -> int:
    out = subprocess.run(tools.nsenter(lab.host(host).netns, "nstat", "-az", "-j"),
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    counters = json.loads(out)["kernel"]
    return int(counters.get("TcpExtIPReversePathFilter", 0))


@contextlib.contextmanager
def _rp_filter(lab: LabState, host: str, ifname: str, value: int | None) -> Iterator[None]:
    """Reverse-path filtering of the host (all + the workload's veth) set to ``value``."""
    if value is None:
        yield
        return
    keys = ["net.ipv4.conf.all.rp_filter", f"net.ipv4.conf.{ifname}.rp_filter"]
    netns = lab.host(host).netns
    old = [subprocess.run(tools.nsenter(netns, "sysctl", "-n", k), capture_output=True,
                          text=True, check=True).stdout.strip() for k in keys]  # fmt: skip
    try:
        for k in keys:
            subprocess.run(tools.nsenter(netns, "sysctl", "-qw", f"{k}={value}"), check=True)
        yield
    finally:
        for k, v in zip(keys, old, strict=True):
            subprocess.run(tools.nsenter(netns, "sysctl", "-qw", f"{k}={v}"), check=False)


@pytest.mark.parametrize("rp_filter", [None, 0], ids=["kernel-rp-filter-on", "rp-filter-off"])
def test_sending_from_another_workloads_address_is_dropped(lab: str, rp_filter: int | None) -> None:
    """With the lab's loose reverse-path filter the kernel already drops these (the source
    routes out of another veth); with it off, the nft anti-spoof rule must."""
    st = tools.reload(lab)
    a, b, c = st.workload("sp/a"), st.workload("sp/b"), st.workload("sp/c")
    subprocess.run(tools.nsenter(a.netns, "ip", "addr", "add", f"{c.ips[0]}/32", "dev", "eth0"),
                   check=True)  # fmt: skip
    try:
        nft_before, rp_before = _spoof_drops(st, "h1"), _rp_filter_drops(st, "h1")
        with _rp_filter(st, "h1", a.interface, rp_filter), \
                tools.listener(b.netns, "udp:5555", "tcp:5556") as rx:  # fmt: skip
            assert tools.run_py(a.netns, SEND_UDP, b.ips[0], "5555", "").stdout.strip() == "sent"
            assert tools.run_py(a.netns, SEND_UDP, b.ips[0], "5555", c.ips[0]).returncode == 0
            assert tools.tcp_open(a.netns, b.ips[0], 5556)
            assert not tools.tcp_open(a.netns, b.ips[0], 5556, source=c.ips[0])
            seen = tools.arrivals(rx)
        sources = {line.split()[1] for line in seen}
        assert a.ips[0] in sources, seen  # the listener works
        assert c.ips[0] not in sources, f"spoofed packets arrived: {seen}"
        nft_drops = _spoof_drops(st, "h1") - nft_before
        rp_drops = _rp_filter_drops(st, "h1") - rp_before
        assert nft_drops + rp_drops >= 5, (nft_drops, rp_drops)
        if rp_filter == 0:
            assert nft_drops >= 5, f"anti-spoof rule dropped {nft_drops} of 5+ packets"
    finally:
        subprocess.run(tools.nsenter(a.netns, "ip", "addr", "del", f"{c.ips[0]}/32", "dev", "eth0"),
                       check=False)  # fmt: skip


@pytest.mark.parametrize("rp_filter", [None, 0], ids=["kernel-rp-filter-on", "rp-filter-off"])
def test_raw_packets_with_forged_sources_are_dropped(lab: str, rp_filter: int | None) -> None:
    st = tools.reload(lab)
    a, b, c = st.workload("sp/a"), st.workload("sp/b"), st.workload("sp/c")
    forged = [c.ips[0], b.ips[0], "198.19.200.1", "192.0.2.1"]
    nft_before, rp_before = _spoof_drops(st, "h1"), _rp_filter_drops(st, "h1")
    with _rp_filter(st, "h1", a.interface, rp_filter), tools.listener(b.netns, "udp:5557") as rx:
        for src in [a.ips[0], *forged]:
            assert tools.run_py(a.netns, SEND_RAW, src, b.ips[0], "5557").returncode == 0
        seen = tools.arrivals(rx)
    sources = {line.split()[1] for line in seen}
    assert a.ips[0] in sources, seen
    assert not sources & set(forged), f"forged packets arrived: {seen}"
    nft_drops = _spoof_drops(st, "h1") - nft_before
    rp_drops = _rp_filter_drops(st, "h1") - rp_before
    assert nft_drops + rp_drops >= 5 * len(forged), (nft_drops, rp_drops)
    if rp_filter == 0:
        assert nft_drops >= 5 * len(forged), (nft_drops, rp_drops)


def test_workload_cannot_reach_its_host_unless_configured(lab: str) -> None:
    st = tools.reload(lab)
    a = st.workload("sp/a")
    h1 = st.host("h1")
    router = st.fabric["router"]
    with tools.listener(h1.netns, *HOST_PORTS):
        for port in (9091, 2379, 22):
            assert tools.tcp_open(router, h1.address, port), f"listener on {port} not reachable"
            assert not tools.tcp_open(a.netns, h1.address, port), f"workload reached host:{port}"
        for port in (9099, 179):  # the agent's own health port, BIRD
            assert not tools.tcp_open(a.netns, h1.address, port)
        try:
            _apply(st, ACCEPT_TO_HOST)
            tools.wait_until(lambda: tools.tcp_open(a.netns, h1.address, 9091, timeout=0.5), 10,
                             "endpoint-to-host Accept")  # fmt: skip
        finally:
            _delete(st, ACCEPT_TO_HOST)
        tools.wait_until(lambda: not tools.tcp_open(a.netns, h1.address, 9091, timeout=0.5), 10,
                         "endpoint-to-host back to Drop")  # fmt: skip


def test_failsafe_ports_survive_a_deny_all_host_endpoint(lab: str) -> None:
    st = tools.reload(lab)
    h1 = st.host("h1")
    router = st.fabric["router"]
    manifests = HEP_DENY_ALL % h1.address
    with tools.listener(h1.netns, "tcp:9091", "tcp:22"):
        assert tools.tcp_open(router, h1.address, 9091)
        try:
            _apply(st, manifests)
            tools.wait_until(lambda: not tools.tcp_open(router, h1.address, 9091, timeout=0.5),
                             10, "host endpoint deny-all enforced")  # fmt: skip
            assert tools.tcp_open(router, h1.address, 22), "failsafe tcp 22 was closed"
            # Workloads elsewhere keep working (forwarded traffic is not host traffic).
            a, b = st.workload("sp/a"), st.workload("sp/b")
            assert tools.run_py(a.netns, SEND_UDP, b.ips[0], "9", "").returncode == 0
        finally:
            _delete(st, manifests)
        tools.wait_until(lambda: tools.tcp_open(router, h1.address, 9091, timeout=0.5), 10,
                         "host endpoint removed")  # fmt: skip
