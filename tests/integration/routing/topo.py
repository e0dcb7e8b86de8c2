"""A small lab for routing tests: hosts on 1..3 underlay subnets, a router, workloads.

Layout (all namespaces made by the ``netns`` fixture, so they vanish at teardown):
a switch namespace holds one bridge per subnet; every host's ``eth0`` and one
leg of the router hang off its subnet's bridge. Nft counters on the bridges
count, on the fabric itself, UDP 4789 frames and unencapsulated frames sourced
from workload addresses. Workloads are plumbed the way DESIGN.md section 4 says
(a /32 on eth0, default via 169.254.1.1, proxy ARP on the host side).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path

from gingham.agent.detect import detect_underlay_mtu
from gingham.calc import messages as m
from gingham.calc.routes import RoutePlan, plan_routes
from gingham.calc.routing_types import HostInfo, PoolInfo, workload_mtu
from gingham.dataplane import nft
from gingham.dataplane.mtu_file import MtuFile
from gingham.dataplane.nat import NAT_TABLE, NatOutgoing
from gingham.dataplane.netlink import Netlink
from gingham.dataplane.routes import KernelRoutes
from gingham.dataplane.routing import RoutingDataplane
from gingham.dataplane.vxlan import Vxlan, VxlanDriver
from gingham.ipam.info import BlockInfo
from gingham.lab.fabric import Fabric
from gingham.lab.netns import add_veth, ip_batch, run, run_in_netns, write_sysctl
from tests.unit.routing.blocks import block

SUBNETS = [
    IPv4Network("192.0.2.0/24"),
    IPv4Network("198.51.100.0/24"),
    IPv4Network("203.0.113.0/24"),
]
POOL = ip_network("198.18.0.0/16")
POOL6 = ip_network("2001:db8:1::/64")

COUNTERS = """\
table bridge gh_fabric {
  counter vxlan { }
  counter plain { }
  chain forward_count {
    type filter hook forward priority 0; policy accept;
    udp dport 4789 counter name vxlan
    ip saddr 198.18.0.0/15 counter name plain
  }
}
"""


@dataclass
class Host:
    name: str
    ns: str
    index: int
    subnet: IPv4Network
    address: IPv4Address
    block: IPv4Network
    workloads: dict[str, tuple[str, IPv4Address]] = field(default_factory=dict)

    @property
    def block6(self) -> IPv6Network:
        return IPv6Network(f"2001:db8:1::{self.index * 64:x}/122")

    @property
    def tunnel(self) -> IPv4Address:
        return self.block.network_address  # type: ignore[return-value]

    def info(self, **kw: object) -> HostInfo:
        return HostInfo(
            name=self.name,
            address_v4=self.address,
            subnet_v4=self.subnet,
            vxlan_tunnel_v4=self.tunnel,
            vxlan_tunnel_v6=self.block6.network_address,  # type: ignore[arg-type]
            **kw,  # type: ignore[arg-type]
        )


class HostDataplane:
    """One host's routing dataplane (the agent's managers and drivers, real kernel),
    fed plans the way the graph would feed it: what changed since the last one."""

    def __init__(self, host: Host) -> None:
        self.netlink = Netlink(host.ns)
        self.dataplane = RoutingDataplane(
            KernelRoutes(self.netlink),
            Vxlan(VxlanDriver(host.ns)),
            NatOutgoing(nft.NFT(table=NAT_TABLE, netns=host.ns)),
            MtuFile(Path("/nonexistent/mtu")),  # no MtuUpdate is sent here: never written
        )
        self.plan = RoutePlan((), ())
        self.device: m.VxlanDeviceUpdate | None = None

    def apply(self, host: Host, plan: RoutePlan) -> None:
        msgs: list[object] = [m.InSync()]
        if plan.needs_vxlan and self.device is None:
            mtu = workload_mtu(detect_underlay_mtu(host.address, host.ns), True)
            self.device = m.VxlanDeviceUpdate(
                host.address, host.info().mac, mtu, (host.tunnel, host.block6.network_address))
            msgs.append(self.device)
        msgs += [p for p in plan.vxlan_peers if p not in self.plan.vxlan_peers]
        msgs += [r for r in plan.routes if r not in self.plan.routes]
        new_dsts = {r.dst for r in plan.routes}
        msgs += [m.RouteRemove(r.dst) for r in self.plan.routes if r.dst not in new_dsts]
        new_peers = {p.tunnel_addr for p in plan.vxlan_peers}
        msgs += [m.VxlanPeerRemove(p.tunnel_addr) for p in self.plan.vxlan_peers
                 if p.tunnel_addr not in new_peers]
        self.plan = plan
        self.dataplane.apply(msgs)

    def close(self) -> None:
        self.netlink.close()


@dataclass
class Topo:
    switch: str
    router: str
    hosts: list[Host]
    make_ns: Callable[[str], str]
    dataplanes: dict[str, HostDataplane] = field(default_factory=dict)

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    # -- workloads --------------------------------------------------------------
    def add_workload(
        self, host: Host, label: str, addr: str, mtu: int = 1500, addr6: str | None = None
    ) -> str:
        ns = self.make_ns(f"w{host.index}{label}")
        hif = f"gh{host.index}{label}"
        add_veth(hif, "eth0", netns=host.ns, peer_netns=ns, mtu=mtu)
        ip_batch(
            ns,
            [
                f"addr add {addr}/32 dev eth0",
                "link set eth0 up",
                "route add 169.254.1.1 dev eth0 scope link",
                "route add default via 169.254.1.1 dev eth0",
            ],
        )
        write_sysctl(host.ns, f"net.ipv4.conf.{hif}.proxy_arp", 1)
        write_sysctl(host.ns, f"net.ipv4.neigh.{hif}.proxy_delay", 0)
        ip_batch(host.ns, [f"link set {hif} up", f"route add {addr}/32 dev {hif}"])
        if addr6:
            # IPv6: the host side answers as fe80::1, the workload's default gateway
            ip_batch(
                host.ns,
                [f"addr add fe80::1/64 dev {hif} nodad", f"route add {addr6}/128 dev {hif}"],
            )
            ip_batch(
                ns,
                [f"addr add {addr6}/128 dev eth0 nodad", "route add default via fe80::1 dev eth0"],
            )
        host.workloads[label] = (ns, IPv4Address(addr))
        return ns

    def remove_workload(self, host: Host, label: str) -> None:
        ns, _addr = host.workloads.pop(label)
        run(["ip", "-n", host.ns, "link", "del", f"gh{host.index}{label}"], check=False)
        run(["ip", "netns", "delete", ns], check=False)

    # -- the agent's job, done by hand ------------------------------------------
    def plan(
        self,
        host: Host,
        blocks: Sequence[BlockInfo],
        mode: str,
        bgp: bool = False,
        infos: Sequence[HostInfo] | None = None,
    ) -> RoutePlan:
        hosts = infos or [h.info() for h in self.hosts]
        pools = [PoolInfo(POOL, vxlan_mode=mode), PoolInfo(POOL6, vxlan_mode=mode)]  # type: ignore[arg-type]
        return plan_routes(host.name, hosts, blocks, pools, bgp_enabled=bgp)

    def apply(self, host: Host, plan: RoutePlan) -> None:
        """What the agent's routing dataplane does with this plan: device and peers, then
        routes (the first time compared with the whole table), then stale peers."""
        if host.name not in self.dataplanes:
            self.dataplanes[host.name] = HostDataplane(host)
        self.dataplanes[host.name].apply(host, plan)

    def close(self) -> None:
        for dp in self.dataplanes.values():
            dp.close()
        self.dataplanes.clear()

    def counters(self) -> dict[str, int]:
        out = run_in_netns(
            self.switch, ["nft", "-j", "list", "counters", "table", "bridge", "gh_fabric"]
        )
        result = {}
        for item in json.loads(out.stdout)["nftables"]:
            if "counter" in item:
                result[item["counter"]["name"]] = item["counter"]["packets"]
        return result

    def reset_counters(self) -> None:
        run_in_netns(self.switch, ["nft", "reset", "counters", "table", "bridge", "gh_fabric"])


def ping(ns: str, dst: IPv4Address | str, count: int = 1) -> bool:
    proc = run_in_netns(
        ns, ["busybox", "ping", "-c", str(count), "-A", "-W", "2", "-w", "4", str(dst)], check=False
    )
    return proc.returncode == 0


def build(
    make_ns: Callable[[str], str],
    make_fabric: Callable[[Sequence[int]], Fabric],
    layout: Sequence[int],
) -> Topo:
    """``layout[i]`` = the subnet index (0..2) of host i+1; hosts are named h1, h2, ...

    The underlay is a :mod:`gingham.lab.fabric`; workloads and the external host
    come from ``make_ns`` (the ``netns`` fixture).
    """
    fabric = make_fabric(layout)
    run_in_netns(fabric.switch, ["nft", "-f", "-"], input=COUNTERS)
    hosts = []
    for fh in fabric.hosts:
        own = ip_network(f"198.18.{fh.index}.0/26")
        hosts.append(
            Host(
                fh.name, fh.netns, fh.index, IPv4Network(fh.subnet), IPv4Address(fh.address), own
            )  # type: ignore[arg-type]
        )
    topo = Topo(fabric.switch, fabric.router, hosts, make_ns)
    OPEN.append(topo)
    return topo


# Topologies built by the running test: their netlink sockets are closed after it
# (tests/integration/routing/conftest.py).
OPEN: list[Topo] = []


def own_blocks(topo: Topo) -> list[BlockInfo]:
    return [block(h.block, h.name) for h in topo.hosts] + [
        block(h.block6, h.name) for h in topo.hosts
    ]


def addr(text: str) -> IPv4Address:
    return ip_address(text)  # type: ignore[return-value]


def add_external(topo: Topo) -> tuple[str, IPv4Address]:
    """A namespace behind the router on 203.0.113.0/24 (outside every pool)."""
    ext = topo.make_ns("ext")
    add_veth("x0", "eth0", netns=topo.router, peer_netns=ext)
    ip_batch(topo.router, ["addr add 203.0.113.1/24 dev x0", "link set x0 up"])
    ip_batch(
        ext,
        [
            "addr add 203.0.113.10/24 dev eth0",
            "link set eth0 up",
            "route add default via 203.0.113.1",
        ],
    )
    return ext, IPv4Address("203.0.113.10")


GOBGP_NEIGHBOUR = """
[[neighbors]]
  [neighbors.config]
    neighbor-address = "{ip}"
    peer-as = {asn}
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 6
    keepalive-interval = 2
"""


def gobgp_config(router_id: str, asn: int, neighbours: Sequence[tuple[str, int]]) -> str:
    text = f'[global.config]\n  as = {asn}\n  router-id = "{router_id}"\n'
    return text + "".join(GOBGP_NEIGHBOUR.format(ip=ip, asn=a) for ip, a in neighbours)
