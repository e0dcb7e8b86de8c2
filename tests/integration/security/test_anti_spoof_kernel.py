"""Anti-spoofing and workload-interface ownership in the real kernel, with forged packets.

Topology (built once for the module, removed even when a test fails): a host
namespace H and three workload namespaces behind ``gh`` veths, addressed as
gingham's plumbing does (/32 and /128 inside, default routes via link-local
gateways, static neighbours), plus a namespace R on H's "uplink" ``up0``.
H's ``rp_filter`` (all and default) is 0 and TCP timestamps are off in the
workloads, so unless a test says otherwise only what gingham programs stands
between a forger and its victim, and a forged segment with the right
sequence numbers is one the victim's stack accepts.

Forgeries are whole Ethernet frames sent by w3 from an AF_PACKET socket, with
another workload's (or a server's) address as source. Each test first shows
the frame is good: the same bytes sent by their rightful owner do arrive.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from gingham.calc import messages as m
from gingham.calc.messages import (
    InSync,
    ParsedRule,
    ProfileUpdate,
    WorkloadEndpointID,
    WorkloadEndpointUpdate,
)
from gingham.dataplane.apply import Applier, rule_counters
from gingham.dataplane.managers import PolicyDataplane
from gingham.dataplane.nft import NFT
from gingham.lab.netns import add_netns, delete_netns, run
from tests.fixtures.netns import test_prefix
from tests.integration.security import packets as pk

pytestmark = pytest.mark.integration

HOST_MAC = "ee:ee:ee:ee:ee:ee"
HOST4, HOST6 = "192.0.2.1", "2001:db8:ffff::1"
UPLINK_H, UPLINK_R = "203.0.113.1", "203.0.113.2"
PROFILE = "kns.ns1"
ALLOW_ALL = ProfileUpdate(PROFILE, (ParsedRule("profile:kns.ns1:i0", "allow"),),
                          (ParsedRule("profile:kns.ns1:e0", "allow"),))


@dataclass
class Wl:
    ns: str
    ifname: str
    ip: str
    ip6: str
    mac: str
    wid: WorkloadEndpointID

    def addr(self, family: int) -> str:
        return self.ip if family == 4 else self.ip6


@dataclass
class Topo:
    host: str
    router: str
    wl: list[Wl]


def _sysctl(ns: str, *settings: str) -> None:
    run(["nsenter", f"--net=/run/netns/{ns}", "sysctl", "-q", "-w", *settings])


@pytest.fixture(scope="module")
def topo() -> Iterator[Topo]:
    # "ght<pid>-<n>-": the shape the netns fixture's orphan sweep recognises
    prefix = f"{test_prefix()}97-as"
    made: list[str] = []
    try:
        host = add_netns(f"{prefix}-h")
        made.append(host)
        run(["ip", "-n", host, "addr", "add", f"{HOST4}/32", "dev", "lo"])
        run(["ip", "-n", host, "-6", "addr", "add", f"{HOST6}/128", "dev", "lo"])
        _sysctl(host, "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0", "net.ipv6.conf.all.forwarding=1")
        router = add_netns(f"{prefix}-r")
        made.append(router)
        run(["ip", "-n", host, "link", "add", "up0", "type", "veth", "peer", "name", "eth0",
             "netns", router])
        run(["ip", "-n", host, "addr", "add", f"{UPLINK_H}/24", "dev", "up0"])
        run(["ip", "-n", host, "link", "set", "up0", "up"])
        run(["ip", "-n", router, "addr", "add", f"{UPLINK_R}/24", "dev", "eth0"])
        run(["ip", "-n", router, "link", "set", "eth0", "up"])
        wls = []
        for i in range(1, 4):
            ns = add_netns(f"{prefix}-w{i}")
            made.append(ns)
            ifname, ip, ip6 = f"gh{i:011d}", f"198.18.0.{i}", f"2001:db8::{i}"
            mac = f"02:00:00:00:00:{i:02x}"
            run(["ip", "-n", host, "link", "add", ifname, "address", HOST_MAC, "type", "veth",
                 "peer", "name", "eth0", "address", mac, "netns", ns])
            for cmd in (["link", "set", ifname, "up"],
                        ["route", "add", f"{ip}/32", "dev", ifname],
                        ["neigh", "replace", ip, "lladdr", mac, "dev", ifname, "nud", "permanent"],
                        ["-6", "route", "add", f"{ip6}/128", "dev", ifname],
                        ["-6", "neigh", "replace", ip6, "lladdr", mac, "dev", ifname, "nud",
                         "permanent"]):
                run(["ip", "-n", host, *cmd])
            for cmd in (["addr", "add", f"{ip}/32", "dev", "eth0"],
                        ["link", "set", "eth0", "up"],
                        ["route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"],
                        ["route", "add", "default", "via", "169.254.1.1", "dev", "eth0"],
                        ["neigh", "replace", "169.254.1.1", "lladdr", HOST_MAC, "dev", "eth0",
                         "nud", "permanent"],
                        ["-6", "addr", "add", f"{ip6}/128", "dev", "eth0", "nodad"],
                        ["-6", "neigh", "replace", "fe80::1", "lladdr", HOST_MAC, "dev", "eth0",
                         "nud", "permanent"],
                        ["-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0"]):
                run(["ip", "-n", ns, *cmd])
            _sysctl(ns, "net.ipv4.tcp_timestamps=0")
            wls.append(Wl(ns, ifname, ip, ip6, mac, WorkloadEndpointID("ns1", f"w{i}")))
        yield Topo(host, router, wls)
    finally:
        for ns in reversed(made):
            delete_netns(ns)


def endpoint(w: Wl, *, v4: tuple[str, ...] = (), v6: tuple[str, ...] = (),
             spoof: tuple[str, ...] = (), ifname: str | None = None) -> WorkloadEndpointUpdate:
    return WorkloadEndpointUpdate(w.wid, ifname or w.ifname, (f"{w.ip}/32", *v4),
                                  (f"{w.ip6}/128", *v6), None, (), (PROFILE,),
                                  allow_spoofed_prefixes=spoof)


@pytest.fixture
def t(topo: Topo) -> Iterator[Topo]:
    NFT(netns=topo.host).delete_table()
    try:
        yield topo
    finally:
        NFT(netns=topo.host).delete_table()


def program(t: Topo, *msgs: m.Message, to_host: str = "Accept") -> Applier:
    """Allow-all profile, w1..w3 known (unless ``msgs`` say otherwise), programmed."""
    ap = Applier(NFT(netns=t.host), PolicyDataplane())
    ap.dataplane.on_messages([
        m.ConfigUpdate(endpoint_to_host_action=to_host), ALLOW_ALL,
        *(endpoint(w) for w in t.wl), *msgs, InSync(),
    ])
    ap.apply()
    return ap


def counter(t: Topo, name: str) -> int:
    return rule_counters(NFT(netns=t.host)).get(name, (0, 0))[0]


def fam(family: int) -> socket.AddressFamily:
    return socket.AF_INET if family == 4 else socket.AF_INET6


def send_as(w: Wl, packet: bytes, times: int = 3) -> None:
    """``packet`` put on the wire by ``w``'s eth0, whatever its source address says."""
    s = pk.packet_socket(w.ns, "eth0")
    try:
        for _ in range(times):
            s.send(pk.frame(HOST_MAC, w.mac, packet))
    finally:
        s.close()


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("path", ["forward", "input"])
@pytest.mark.parametrize("family", [4, 6])
def test_forged_segment_on_an_established_tcp_connection_does_not_arrive(
        t: Topo, family: int, path: str) -> None:
    """w1 talks to a server (w2, or the host itself); w3 injects a segment with w1's
    address and port and the exact next sequence numbers. Conntrack calls it
    established, so only a check before ``ct state established accept`` stops it."""
    w1, w2, w3 = t.wl
    program(t)
    server_ns, server_ip = (w2.ns, w2.addr(family)) if path == "forward" else (
        t.host, HOST4 if family == 4 else HOST6)
    sniff = pk.packet_socket(w2.ns, "eth0") if path == "forward" else pk.packet_socket(
        t.host, w1.ifname)
    lsock = pk.socket_in(server_ns, fam(family), socket.SOCK_STREAM)
    client = pk.socket_in(w1.ns, fam(family), socket.SOCK_STREAM)
    try:
        lsock.bind((server_ip, 7001))
        lsock.listen(1)
        client.settimeout(3)
        client.connect((server_ip, 7001))
        lsock.settimeout(3)
        conn, _ = lsock.accept()
        try:
            client.sendall(b"hello")
            conn.settimeout(3)
            assert conn.recv(5) == b"hello"
            segs = [s for s in map(pk.parse_tcp, pk.drain(sniff)) if s is not None]
            last = [s for s in segs if s.dport == 7001 and s.payload == b"hello"][-1]
            seg = pk.tcp(last.src, server_ip, last.sport, 7001, last.seq + 5, last.ack,
                         pk.PSH | pk.ACK, b"FORGED!")
            forged = pk.ip_packet(last.src, server_ip, pk.TCP, seg)
            before = counter(t, "anti-spoof")
            send_as(w3, forged)
            assert pk.received(conn, 0.7) is None, "a forged segment reached the server"
            assert counter(t, "anti-spoof") - before >= 3
            send_as(w1, forged, times=1)  # the same bytes from their owner: accepted
            assert pk.received(conn, 3) == b"FORGED!"
        finally:
            conn.close()
    finally:
        for s in (client, lsock, sniff):
            s.close()


@pytest.mark.parametrize("family", [4, 6])
def test_forged_udp_reply_does_not_reach_the_client(t: Topo, family: int) -> None:
    """w1 asks w2:5353; w3 answers first, as w2:5353. The forged answer matches the
    reply direction of w1's conntrack entry: established, so it must die earlier."""
    w1, w2, w3 = t.wl
    program(t)
    server = pk.socket_in(w2.ns, fam(family), socket.SOCK_DGRAM)
    client = pk.socket_in(w1.ns, fam(family), socket.SOCK_DGRAM)
    try:
        server.bind((w2.addr(family), 5353))
        client.connect((w2.addr(family), 5353))
        client.send(b"query")
        server.settimeout(3)
        data, peer = server.recvfrom(100)
        assert data == b"query"
        cport = client.getsockname()[1]
        dgram = pk.udp(w2.addr(family), w1.addr(family), 5353, cport, b"FORGED-REPLY")
        forged = pk.ip_packet(w2.addr(family), w1.addr(family), pk.UDP, dgram)
        before = counter(t, "anti-spoof")
        send_as(w3, forged)
        assert pk.received(client, 0.7) is None, "the forged reply reached the client"
        assert counter(t, "anti-spoof") - before >= 3
        send_as(w2, forged, times=1)  # from the real server's interface: delivered
        assert pk.received(client, 3) == b"FORGED-REPLY"
        server.sendto(b"REAL", peer)
        assert pk.received(client, 3) == b"REAL"
    finally:
        server.close()
        client.close()


@pytest.mark.parametrize("family", [4, 6])
def test_reverse_path_check_is_a_second_wall(t: Topo, family: int) -> None:
    """Stale data has w3's endpoint claim w1's address too, so the anti-spoofing set
    lets w3 send from it. Strict reverse-path filtering still drops it: the host
    routes w1's address to w1's veth, not w3's (IPv4: the interface's rp_filter,
    IPv6: nft ``fib``)."""
    w1, w2, w3 = t.wl
    stale = endpoint(w3, v4=(f"{w1.ip}/32",), v6=(f"{w1.ip6}/128",))
    program(t, stale)
    rx = pk.socket_in(w2.ns, fam(family), socket.SOCK_DGRAM)
    try:
        rx.bind((w2.addr(family), 5400))
        dst = w2.addr(family)

        def packet(src: str, payload: bytes) -> bytes:
            return pk.ip_packet(src, dst, pk.UDP, pk.udp(src, dst, 40000, 5400, payload))

        send_as(w3, packet(w3.addr(family), b"own"), times=1)
        assert pk.received(rx, 3) == b"own"
        rpf4 = pk.nstat_counter(t.host, "TcpExtIPReversePathFilter")
        rpf6 = counter(t, "reverse-path")
        send_as(w3, packet(w1.addr(family), b"stolen"))
        assert pk.received(rx, 0.7) is None, "a packet from another workload's address arrived"
        if family == 4:
            assert pk.nstat_counter(t.host, "TcpExtIPReversePathFilter") - rpf4 >= 3
        else:
            assert counter(t, "reverse-path") - rpf6 >= 3
    finally:
        rx.close()


def _rp_filter(t: Topo, ifname: str) -> str:
    return run(["nsenter", f"--net=/run/netns/{t.host}", "sysctl", "-n",
                f"net.ipv4.conf.{ifname}.rp_filter"]).stdout.strip()


def test_rp_filter_strict_on_programmed_interfaces_and_restored_after_a_restart(t: Topo) -> None:
    w1, w2, w3 = t.wl
    for w in t.wl:
        _sysctl(t.host, f"net.ipv4.conf.{w.ifname}.rp_filter=0")
    ap = program(t)
    assert [_rp_filter(t, w.ifname) for w in t.wl] == ["1", "1", "1"]
    # an endpoint that may send from other IPv4 prefixes: its own check is off
    # (the anti-spoofing set lists exactly what it may use)
    ap.dataplane.on_message(endpoint(w1, spoof=("198.19.0.0/24",)))
    ap.apply()
    assert [_rp_filter(t, w.ifname) for w in t.wl] == ["0", "1", "1"]
    ap.dataplane.on_message(endpoint(w1))
    ap.apply()
    assert _rp_filter(t, w1.ifname) == "1"
    # changed behind the agent's back, then a restart (a new applier reads back)
    _sysctl(t.host, f"net.ipv4.conf.{w2.ifname}.rp_filter=0")
    again = Applier(NFT(netns=t.host), ap.dataplane)
    res = again.apply()
    assert res is not None and res.resync and res.commands == 0
    assert _rp_filter(t, w2.ifname) == "1"
    assert "all" not in again.interface_problems
    # loose 'all' defeats per-interface strict: said, not hidden
    _sysctl(t.host, "net.ipv4.conf.all.rp_filter=2")
    try:
        third = Applier(NFT(netns=t.host), ap.dataplane)
        third.apply()
        assert "loose" in third.interface_problems["all"]
    finally:
        _sysctl(t.host, "net.ipv4.conf.all.rp_filter=0")
    del w3


def test_endpoint_naming_the_uplink_is_refused_and_the_uplink_keeps_working(t: Topo) -> None:
    """A WorkloadEndpoint with ``interfaceName: up0`` (the host's own uplink) would put
    the uplink into the dispatch maps and anti-spoofing sets: every packet from
    the router would be judged as the workload's and dropped."""
    uplink = WorkloadEndpointUpdate(WorkloadEndpointID("ns1", "evil"), "up0", ("198.18.0.99/32",),
                                    (), None, (), (PROFILE,))
    lsock = pk.socket_in(t.host, socket.AF_INET, socket.SOCK_STREAM)
    try:
        lsock.bind((UPLINK_H, 7002))
        lsock.listen(4)
        ap = program(t, uplink, to_host="Drop")
        client = pk.socket_in(t.router, socket.AF_INET, socket.SOCK_STREAM)
        try:
            client.settimeout(2)
            client.connect((UPLINK_H, 7002))  # the uplink is not filtered as a workload
        finally:
            client.close()
        table = NFT(netns=t.host).dump()
        assert '"up0"' not in table and "up0 " not in table
        assert "up0" in ap.dataplane.refused_endpoints[uplink.endpoint_id]
        # the workloads are still programmed and still protected
        w1, w2, w3 = t.wl
        rx = pk.socket_in(w2.ns, socket.AF_INET, socket.SOCK_DGRAM)
        try:
            rx.bind((w2.ip, 5401))
            dgram = pk.udp(w1.ip, w2.ip, 40000, 5401, b"x")
            send_as(w3, pk.ip_packet(w1.ip, w2.ip, pk.UDP, dgram))
            assert pk.received(rx, 0.7) is None
        finally:
            rx.close()
    finally:
        lsock.close()
