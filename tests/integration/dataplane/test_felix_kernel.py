"""FelixConfiguration settings in the real kernel, decided by real packets: a failsafe port
with a net admits that net and no other source (or destination); VXLAN and IPIP packets
that workloads send are dropped unless allowed.

Topology (per test, every namespace removed at teardown):

    near (192.0.2.100) --eth1-- host --eth2-- far (198.51.100.100)
                                 | gh00000000009
                              workload 198.18.0.9
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from gingham.calc import messages as m
from gingham.calc.messages import (
    ConfigUpdate,
    FailsafePort,
    InSync,
    ParsedRule,
    PolicyID,
    PolicyUpdate,
    TierInfo,
    WorkloadEndpointID,
    WorkloadEndpointUpdate,
)
from gingham.dataplane.apply import Applier, rule_counters
from gingham.dataplane.managers import PolicyDataplane
from gingham.dataplane.nft import NFT
from gingham.lab.netns import run, spawn_in_netns, stop_process
from tests.integration.dataplane.test_policy_kernel import (
    ALLOW_ALL_PROFILE,
    PROFILE,
    SERVER,
    _wait_ready,
    probe,
)
from tests.integration.security.packets import socket_in

pytestmark = pytest.mark.integration

HOST_NEAR, HOST_FAR = "192.0.2.10", "198.51.100.10"
NEAR, FAR = "192.0.2.100", "198.51.100.100"
WL_IP, WL_IF = "198.18.0.9", "gh00000000009"


@dataclass
class Lab:
    host: str
    near: str
    far: str
    wl: str


@pytest.fixture
def lab(netns: Callable[[str], str]) -> Iterator[Lab]:
    host, near, far, wl = netns("fxh"), netns("fxn"), netns("fxf"), netns("fxw")
    run(["ip", "-n", host, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0",
         "netns", near])
    run(["ip", "-n", host, "link", "add", "eth2", "type", "veth", "peer", "name", "eth0",
         "netns", far])
    run(["ip", "-n", host, "link", "add", WL_IF, "address", "ee:ee:ee:ee:ee:ee", "type", "veth",
         "peer", "name", "eth0", "address", "02:00:00:00:00:09", "netns", wl])
    for ns, cmds in (
        (host, [["addr", "add", f"{HOST_NEAR}/24", "dev", "eth1"], ["link", "set", "eth1", "up"],
                ["addr", "add", f"{HOST_FAR}/24", "dev", "eth2"], ["link", "set", "eth2", "up"],
                ["link", "set", WL_IF, "up"], ["route", "add", f"{WL_IP}/32", "dev", WL_IF],
                ["neigh", "replace", WL_IP, "lladdr", "02:00:00:00:00:09", "dev", WL_IF,
                 "nud", "permanent"]]),
        (near, [["addr", "add", f"{NEAR}/24", "dev", "eth0"], ["link", "set", "eth0", "up"],
                ["route", "add", "default", "via", HOST_NEAR]]),
        (far, [["addr", "add", f"{FAR}/24", "dev", "eth0"], ["link", "set", "eth0", "up"],
               ["route", "add", "default", "via", HOST_FAR]]),
        (wl, [["addr", "add", f"{WL_IP}/32", "dev", "eth0"], ["link", "set", "eth0", "up"],
              ["route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"],
              ["route", "add", "default", "via", "169.254.1.1", "dev", "eth0"],
              ["neigh", "replace", "169.254.1.1", "lladdr", "ee:ee:ee:ee:ee:ee", "dev", "eth0",
               "nud", "permanent"]]),
    ):
        for cmd in cmds:
            run(["ip", "-n", ns, *cmd])
    run(["nsenter", f"--net=/run/netns/{host}", "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
    try:
        yield Lab(host, near, far, wl)
    finally:
        NFT(netns=host).delete_table()


def _servers(*where: tuple[str, int]) -> list[subprocess.Popen[bytes]]:
    procs = [spawn_in_netns(ns, [sys.executable, "-c", SERVER, str(port)], stdout=subprocess.PIPE)
             for ns, port in where]
    for proc in procs:
        _wait_ready(proc)
    return procs


HOST_POLICY = PolicyID("security", "host-https-only")


def _deny_all_but_https(lab: Lab, config: ConfigUpdate) -> Applier:
    """A host endpoint on every interface whose policy allows inbound 443 only and no
    outbound at all: what reaches the host beyond that is the failsafe ports' doing."""
    dp = PolicyDataplane()
    dp.on_messages([
        config,
        PolicyUpdate(HOST_POLICY, (ParsedRule(f"policy:{HOST_POLICY}:i0", "allow", protocol=6,
                                              dst_ports=((443, 443),)),), ()),
        m.HostEndpointUpdate("h-all", "*", (HOST_NEAR, HOST_FAR), (),
                             (TierInfo("security", "deny", (HOST_POLICY,), (HOST_POLICY,)),),
                             (), (), (), ()),
        InSync(),
    ])
    ap = Applier(NFT(netns=lab.host), dp)
    ap.apply()
    return ap


def test_failsafe_port_with_a_net_admits_that_net_only(lab: Lab) -> None:
    servers = _servers((lab.host, 7000), (lab.near, 7100), (lab.far, 7100))
    try:
        ap = _deny_all_but_https(lab, ConfigUpdate(
            failsafe_inbound=(FailsafePort("tcp", 7000, "192.0.2.0/24"),),
            failsafe_outbound=(FailsafePort("tcp", 7100, f"{FAR}/32"),),
        ))
        # Inbound: the near network may reach port 7000, the far one may not.
        assert probe(lab.near, [(HOST_NEAR, 7000, None)]) == [True]
        assert probe(lab.far, [(HOST_FAR, 7000, None), (HOST_NEAR, 7000, None)]) == [False, False]
        assert rule_counters(NFT(netns=lab.host)).get("tier-end:security", (0, 0))[0] >= 1
        # Outbound: the host may reach port 7100 at the far address only.
        assert probe(lab.host, [(FAR, 7100, None), (NEAR, 7100, None)]) == [True, False]
        # Without the net the port is open to both (what the manager used to do always).
        ap.dataplane.on_message(ConfigUpdate(failsafe_inbound=(FailsafePort("tcp", 7000),),
                                             failsafe_outbound=(FailsafePort("tcp", 7100),)))
        ap.apply()
        assert probe(lab.far, [(HOST_FAR, 7000, None)]) == [True]
        assert probe(lab.host, [(NEAR, 7100, None)]) == [True]
        # An IPv6 net admits no IPv4 source.
        ap.dataplane.on_message(ConfigUpdate(
            failsafe_inbound=(FailsafePort("tcp", 7000, "2001:db8::/32"),)))
        ap.apply()
        assert probe(lab.near, [(HOST_NEAR, 7000, None)]) == [False]
        ap.close()
    finally:
        for proc in servers:
            stop_process(proc)


# ----------------------------------------------------------------- tunnels from workloads


class Receiver:
    """UDP sockets on ``ports`` and a raw IP protocol 4 socket, all in ``netns``."""

    def __init__(self, netns: str, address: str, ports: tuple[int, ...]) -> None:
        self.udp = {}
        for port in ports:
            s = socket_in(netns, socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((address, port))
            s.setblocking(False)
            self.udp[port] = s
        self.ipip = socket_in(netns, socket.AF_INET, socket.SOCK_RAW, 4)
        self.ipip.setblocking(False)

    def drain(self) -> dict[str, int]:
        """Datagrams each socket got since the last call."""
        time.sleep(0.3)
        got = {}
        for name, s in [*((str(p), s) for p, s in self.udp.items()), ("ipip", self.ipip)]:
            n = 0
            while True:
                try:
                    s.recv(65535)
                except BlockingIOError:
                    break
                n += 1
            got[name] = n
        return got

    def close(self) -> None:
        for s in (*self.udp.values(), self.ipip):
            s.close()


def _send_tunnel_packets(lab: Lab, dst: str, ports: tuple[int, ...]) -> None:
    """From the workload: a UDP datagram to each port and an IPIP packet, each 3 times."""
    udp = socket_in(lab.wl, socket.AF_INET, socket.SOCK_DGRAM)
    raw = socket_in(lab.wl, socket.AF_INET, socket.SOCK_RAW, 4)
    # A plausible inner IPv4 header (workload -> somewhere): what an injected packet carries.
    inner = bytes.fromhex("450000140000000040010000c6120009c0000264")
    try:
        for _ in range(3):
            for port in ports:
                udp.sendto(b"x" * 8, (dst, port))
            raw.sendto(inner, (dst, 0))
    finally:
        udp.close()
        raw.close()


def test_tunnel_packets_from_workloads_are_dropped_unless_allowed(lab: Lab) -> None:
    dp = PolicyDataplane()
    dp.on_messages([
        ALLOW_ALL_PROFILE,
        WorkloadEndpointUpdate(WorkloadEndpointID("ns1", "w9"), WL_IF, (f"{WL_IP}/32",), (),
                               None, (), (PROFILE,)),
        ConfigUpdate(endpoint_to_host_action="Accept"),
        InSync(),
    ])
    ap = Applier(NFT(netns=lab.host), dp)
    ap.apply()
    to_host = Receiver(lab.host, HOST_NEAR, (4789, 4790))
    forwarded = Receiver(lab.near, NEAR, (4789, 4790))
    try:
        # Calico's defaults: both dropped, to the host and through it; other UDP passes.
        for rx, dst in ((to_host, HOST_NEAR), (forwarded, NEAR)):
            _send_tunnel_packets(lab, dst, (4789, 4790))
            assert rx.drain() == {"4789": 0, "4790": 3, "ipip": 0}, dst
        counters = rule_counters(NFT(netns=lab.host))
        assert counters["vxlan-from-workload"][0] == 6
        assert counters["ipip-from-workload"][0] == 6
        # Allowed: they meet policy like any other packet (the profile allows all).
        ap.dataplane.on_message(ConfigUpdate(endpoint_to_host_action="Accept",
                                             allow_vxlan_from_workloads=True,
                                             allow_ipip_from_workloads=True))
        ap.apply()
        _send_tunnel_packets(lab, NEAR, (4789, 4790))
        assert forwarded.drain() == {"4789": 3, "4790": 3, "ipip": 3}
        # The drop follows vxlanPort.
        ap.dataplane.on_message(ConfigUpdate(endpoint_to_host_action="Accept", vxlan_port=4790))
        ap.apply()
        _send_tunnel_packets(lab, HOST_NEAR, (4789, 4790))
        assert to_host.drain() == {"4789": 3, "4790": 0, "ipip": 0}
        ap.close()
    finally:
        to_host.close()
        forwarded.close()
