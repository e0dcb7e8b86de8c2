"""Routing benchmark: iperf3 single-stream TCP between workloads on two hosts.

    .venv/bin/python bench/routing.py [--seconds 3] [--rounds 3]

Needs root. Builds, in namespaces of its own (removed at the end, also on
error):

- a bare veth between two namespaces (``veth_baseline``);
- two hosts on one bridged underlay subnet with a workload each, routed first
  directly (pool ``vxlanMode: Never``: ``direct_routing``) and then through VXLAN
  (``Always``: ``vxlan``); ``vxlan_over_direct`` compares these two;
- the lab's fabric (:func:`gingham.lab.fabric.build_fabric`) with two hosts on two
  subnets and the lab's router between them, routed directly (``Never``, the router
  knowing each host's block as BGP to a top-of-rack router would teach it:
  ``cross_subnet_direct``) and through VXLAN (``CrossSubnet``: ``cross_subnet_vxlan``).
  Same hosts, same underlay path, same workload plumbing; only the encapsulation
  differs (and the workloads' MTU with it, 1500 against 1450, as the CNI plugin
  sets it). ``vxlan_over_direct_same_path`` is the median over rounds of each
  round's VXLAN over direct, target >= 0.90; ``..._by_cpu`` is the same comparison
  by CPU-seconds per Gbit (direct's over VXLAN's), which the share of the cores
  that other processes leave to a run does not move.

Routes and VXLAN peers come from :func:`gingham.calc.routes.plan_routes`, the
device from :class:`gingham.dataplane.vxlan.VxlanDriver` (the product's). Every
path is measured in each of the interleaved rounds (the router pair twice, A B B
A) so that load from other processes hits them alike; ``per_round`` has each
round's figures with the load average. Single-stream TCP is CPU-bound: on a
shared machine compare ratios within a run, not absolute figures across runs.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from ipaddress import IPv4Address, IPv4Network, ip_network
from typing import NamedTuple

from gingham.agent.detect import detect_underlay_mtu
from gingham.calc.messages import RouteUpdate
from gingham.calc.routes import RoutePlan, plan_routes
from gingham.calc.routing_types import VXLAN_DEVICE, HostInfo, PoolInfo, workload_mtu
from gingham.dataplane.vxlan import VxlanDriver
from gingham.ipam.info import BlockInfo
from gingham.lab.fabric import build_fabric, destroy_fabric, lab_prefix
from gingham.lab.netns import (
    add_netns,
    add_veth,
    delete_netns_prefix,
    ip_batch,
    run_in_netns,
    spawn_in_netns,
    stop_process,
    write_sysctl,
)

SUBNET = IPv4Network("192.0.2.0/24")


def route_argv(r: RouteUpdate) -> list[str]:
    """``ip route replace`` arguments (without the protocol)."""
    if r.kind == "blackhole":
        return ["blackhole", str(r.dst)]
    out = [str(r.dst)]
    if r.via is not None:
        out += ["via", str(r.via)]
    if r.dev is not None:
        out += ["dev", r.dev]
    if r.onlink:
        out.append("onlink")
    return out


class Run(NamedTuple):
    gbit_per_s: float  # receiver side
    cpus: float  # CPUs the sending and the receiving iperf3 kept busy (user + system)


def iperf(server_ns: str, client_ns: str, server_ip: str, seconds: int) -> Run:
    """One single-stream TCP run.

    ``cpus`` is iperf3's own figure (getrusage of both ends over the run). With veths
    the whole path (veth, bridge, router, VXLAN encapsulation and decapsulation)
    runs in softirq in the context of one of the two iperf3 processes, and with the
    kernel's tick accounting that time is charged to them, so ``cpus / gbit_per_s``
    is the CPU the path costs per Gbit: unlike throughput it does not depend on how
    much of the 2 cores other processes leave to the run.
    """
    server = spawn_in_netns(server_ns, ["iperf3", "-s", "-1", "-B", server_ip])
    try:
        for _ in range(50):  # wait until the server listens
            probe = run_in_netns(server_ns, ["ss", "-Hltn", "sport", "= :5201"], check=False).stdout
            if probe.strip():
                break
            time.sleep(0.05)
        out = run_in_netns(
            client_ns,
            ["iperf3", "-c", server_ip, "-t", str(seconds), "-J"],
            timeout=seconds + 30,
        ).stdout
    finally:
        stop_process(server)
    end = json.loads(out)["end"]
    cpu = end["cpu_utilization_percent"]
    return Run(
        float(end["sum_received"]["bits_per_second"]) / 1e9,
        (float(cpu["host_total"]) + float(cpu["remote_total"])) / 100,
    )


def baseline_pair(prefix: str) -> tuple[str, str]:
    a, b = add_netns(prefix + "va"), add_netns(prefix + "vb")
    add_veth("eth0", "eth0", netns=a, peer_netns=b)
    ip_batch(a, ["addr add 198.18.0.1/24 dev eth0", "link set eth0 up"])
    ip_batch(b, ["addr add 198.18.0.2/24 dev eth0", "link set eth0 up"])
    return a, b


def add_workload(prefix: str, host_ns: str, i: int, block: IPv4Network) -> tuple[str, str]:
    """Workload ``w<i>`` with the first address of ``block``, plumbed as the CNI plugin does."""
    wl = add_netns(f"{prefix}w{i}")
    wl_ip = str(block.network_address + 1)
    add_veth(f"gh{i}", "eth0", netns=host_ns, peer_netns=wl)
    ip_batch(
        wl,
        [
            f"addr add {wl_ip}/32 dev eth0",
            "link set eth0 up",
            "route add 169.254.1.1 dev eth0 scope link",
            "route add default via 169.254.1.1 dev eth0",
        ],
    )
    write_sysctl(host_ns, f"net.ipv4.conf.gh{i}.proxy_arp", 1)
    write_sysctl(host_ns, f"net.ipv4.neigh.gh{i}.proxy_delay", 0)
    ip_batch(host_ns, [f"link set gh{i} up", f"route add {wl_ip}/32 dev gh{i}"])
    return wl, wl_ip


class Hosts:
    """Hosts h1 and h2 with one workload each; routes from :func:`plan_routes`."""

    router: str | None = None

    def __init__(self) -> None:
        self.hosts: list[tuple[str, HostInfo, IPv4Network]] = []
        self.workloads: list[tuple[str, str]] = []

    def route(self, mode: str) -> None:
        infos = [h for _, h, _ in self.hosts]
        blocks = [BlockInfo(b, h.name, (), (), b.num_addresses) for _, h, b in self.hosts]
        pools = [PoolInfo(ip_network("198.18.0.0/16"), vxlan_mode=mode)]  # type: ignore[arg-type]
        for (ns, info, _), (wl, _ip) in zip(self.hosts, self.workloads, strict=True):
            plan: RoutePlan = plan_routes(info.name, infos, blocks, pools)
            # workload interfaces get the MTU of the path they use, as the CNI plugin would
            assert info.address_v4 is not None
            mtu = workload_mtu(detect_underlay_mtu(info.address_v4, ns), plan.needs_vxlan)
            ip_batch(ns, [f"link set gh{info.name[1:]} mtu {mtu}"])
            ip_batch(wl, [f"link set eth0 mtu {mtu}"])
            driver = VxlanDriver(ns)
            if plan.needs_vxlan:
                assert info.vxlan_tunnel_v4 is not None
                driver.ensure_device(info.address_v4, info.mac, mtu, [info.vxlan_tunnel_v4])
                driver.add_peers(plan.vxlan_peers)
            # the agent removes the routes a plan no longer has; here: all of them
            ip_batch(ns, ["route flush proto 201"])
            ip_batch(
                ns, [f"route replace {' '.join(route_argv(r))} proto 201" for r in plan.routes]
            )

    def measure(self, seconds: int, expect_dev: str) -> Run:
        (client, _), (server, server_ip) = self.workloads
        path = run_in_netns(self.hosts[0][0], ["ip", "route", "get", server_ip]).stdout
        if f" dev {expect_dev} " not in path:  # measure the path we claim to measure
            raise SystemExit(f"expected the path via {expect_dev}, got: {path.strip()}")
        return iperf(server, client, server_ip, seconds)


class TwoHosts(Hosts):
    """Two hosts on one bridged underlay subnet (no router between them)."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.switch = add_netns(prefix + "sw")
        ip_batch(self.switch, ["link add br0 type bridge", "link set br0 up"])
        for i in (1, 2):
            ns = add_netns(f"{prefix}h{i}")
            addr = SUBNET.network_address + 10 + i
            block = IPv4Network(f"198.18.{i}.0/26")
            add_veth("eth0", f"h{i}", netns=ns, peer_netns=self.switch)
            ip_batch(self.switch, [f"link set h{i} master br0", f"link set h{i} up"])
            # a gateway address inside the lab so proxy ARP answers (FIELD-NOTES)
            ip_batch(
                ns,
                [
                    f"addr add {addr}/24 dev eth0",
                    "link set eth0 up",
                    f"route add default via {SUBNET.network_address + 1} dev eth0 onlink",
                ],
            )
            write_sysctl(ns, "net.ipv4.ip_forward", 1)
            info = HostInfo(
                f"h{i}", IPv4Address(addr), SUBNET, vxlan_tunnel_v4=block.network_address
            )
            self.hosts.append((ns, info, block))
            self.workloads.append(add_workload(prefix, ns, i, block))


class RoutedHosts(Hosts):
    """The lab's fabric (:func:`gingham.lab.fabric.build_fabric`) with h1 and h2 on two
    subnets and the lab's router between them: every packet of both modes takes the
    same underlay path h1 eth0 -> bridge -> router -> bridge -> h2 eth0.

    ``Never`` across subnets is direct routing through a fabric that knows the blocks
    (what BGP to a top-of-rack router gives): the router has a route to each host's
    block via that host, the hosts send by their default route to the router.
    ``CrossSubnet`` is VXLAN through the same router, which then only sees the
    hosts' underlay addresses.
    """

    def __init__(self, lab: str) -> None:
        super().__init__()
        self.lab = lab
        fabric = build_fabric(lab, hosts=2, subnets=2)
        self.router = fabric.router
        prefix = lab_prefix(lab)
        for i, h in enumerate(fabric.hosts, start=1):
            block = IPv4Network(f"198.18.{i}.0/26")
            info = HostInfo(
                h.name,
                IPv4Address(h.address),
                IPv4Network(h.subnet),
                vxlan_tunnel_v4=block.network_address,
            )
            self.hosts.append((h.netns, info, block))
            self.workloads.append(add_workload(prefix, h.netns, i, block))
        ip_batch(self.router, [f"route replace {b} via {h.address_v4}" for _, h, b in self.hosts])


TARGET_VXLAN_OVER_DIRECT = 0.90


def gbit(runs: list[Run]) -> float:
    return sum(r.gbit_per_s for r in runs)


def cpu_per_gbit(runs: list[Run]) -> float:
    """CPU-seconds per Gbit transferred over ``runs`` (all of one length)."""
    return sum(r.cpus for r in runs) / gbit(runs)


def vxlan_device_settings(netns: str) -> dict[str, object]:
    """What the VXLAN device of ``netns`` was created with (``ip -d link``)."""
    out = run_in_netns(netns, ["ip", "-j", "-d", "link", "show", VXLAN_DEVICE]).stdout
    link = json.loads(out)[0]
    data = link.get("linkinfo", {}).get("info_data", {})
    keys = ("udp_csum", "udp_zero_csum6_tx", "udp_zero_csum6_rx", "learning")
    return {"mtu": link.get("mtu"), **{k: data.get(k) for k in keys}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds; medians are reported"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/routing.py needs root (network namespaces)")
    prefix = f"ghbench{os.getpid()}-"
    lab = f"bench{os.getpid()}"
    keys = ("veth_baseline", "direct_routing", "vxlan", "cross_subnet_direct", "cross_subnet_vxlan")
    samples: dict[str, list[Run]] = {k: [] for k in keys}
    rounds: list[dict[str, object]] = []
    ratios: list[float] = []  # per round: cross-subnet VXLAN over direct, throughput
    cpu_ratios: list[float] = []  # the same, by CPU per Gbit (direct's over VXLAN's)
    device: dict[str, object] = {}
    try:
        a, b = baseline_pair(prefix)
        same = TwoHosts(prefix)
        routed = RoutedHosts(lab)
        # interleaved rounds: load from other processes hits every path alike
        for n in range(args.rounds):
            load_before = os.getloadavg()[0]
            got: dict[str, list[Run]] = {k: [] for k in keys}
            got["veth_baseline"].append(iperf(b, a, "198.18.0.2", args.seconds))
            same.route("Never")
            got["direct_routing"].append(same.measure(args.seconds, "eth0"))
            same.route("Always")
            got["vxlan"].append(same.measure(args.seconds, VXLAN_DEVICE))
            # through the router: A B B A (B A A B in odd rounds), so that load rising or
            # falling during the round hits both modes alike
            ab = ("Never", "CrossSubnet") if n % 2 == 0 else ("CrossSubnet", "Never")
            for mode in (*ab, *reversed(ab)):
                routed.route(mode)
                if mode == "Never":
                    got["cross_subnet_direct"].append(routed.measure(args.seconds, "eth0"))
                else:
                    device = vxlan_device_settings(routed.hosts[0][0])
                    got["cross_subnet_vxlan"].append(routed.measure(args.seconds, VXLAN_DEVICE))
            for k in keys:
                samples[k] += got[k]
            vx, dr = got["cross_subnet_vxlan"], got["cross_subnet_direct"]
            ratio = gbit(vx) / gbit(dr)
            cpu_ratio = cpu_per_gbit(dr) / cpu_per_gbit(vx)
            ratios.append(ratio)
            cpu_ratios.append(cpu_ratio)
            rounds.append(
                {
                    "round": n + 1,
                    "load_average_1m_before": round(load_before, 2),
                    "load_average_1m_after": round(os.getloadavg()[0], 2),
                    "gbit_per_s": {k: [round(r.gbit_per_s, 2) for r in got[k]] for k in keys},
                    "cpu_seconds_per_gbit": {k: round(cpu_per_gbit(got[k]), 4) for k in keys},
                    "vxlan_over_direct_same_path": round(ratio, 3),
                    "vxlan_over_direct_same_path_by_cpu": round(cpu_ratio, 3),
                }
            )
    except subprocess.SubprocessError as exc:
        raise SystemExit(f"benchmark failed: {exc}") from exc
    finally:
        delete_netns_prefix(prefix)
        destroy_fabric(lab)
    med = {k: statistics.median(r.gbit_per_s for r in samples[k]) for k in keys}
    veth, direct, vxlan = med["veth_baseline"], med["direct_routing"], med["vxlan"]
    same_path = statistics.median(ratios)
    print(
        json.dumps(
            {
                "benchmark": "routing",
                "tool": "iperf3 single TCP stream",
                "seconds_per_run": args.seconds,
                "rounds": args.rounds,
                "load_average_1m": round(os.getloadavg()[0], 2),
                "samples_gbit_per_s": {
                    k: [round(r.gbit_per_s, 2) for r in v] for k, v in samples.items()
                },
                "per_round": rounds,
                "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
                "vxlan_device": device,
                "median_gbit_per_s": {k: round(v, 2) for k, v in med.items()},
                "ratio_to_baseline": {
                    "direct_routing": round(direct / veth, 3),
                    "vxlan": round(vxlan / veth, 3),
                    "cross_subnet_direct": round(med["cross_subnet_direct"] / veth, 3),
                    "cross_subnet_vxlan": round(med["cross_subnet_vxlan"] / veth, 3),
                },
                "vxlan_over_direct": round(vxlan / direct, 3),
                # like with like: same hosts, same router, same run; median of the
                # per-round ratios (each round: direct and VXLAN twice, A B B A)
                "vxlan_over_direct_same_path": round(same_path, 3),
                "vxlan_over_direct_same_path_target": TARGET_VXLAN_OVER_DIRECT,
                "vxlan_over_direct_same_path_meets_target": same_path >= TARGET_VXLAN_OVER_DIRECT,
                # CPU per Gbit (both iperf3 ends, the path's softirq work included):
                # what the encapsulation costs whatever share of the cores the run got
                "cpu_seconds_per_gbit": {k: round(cpu_per_gbit(v), 4) for k, v in samples.items()},
                "vxlan_over_direct_same_path_by_cpu": round(statistics.median(cpu_ratios), 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
