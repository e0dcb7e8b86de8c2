"""Routing benchmark: iperf3 single-stream TCP between workloads on two hosts.

    .venv/bin/python bench/routing.py [--seconds 3]

Needs root. Builds, in namespaces of its own (removed at the end, also on
error): a bare veth between two namespaces (baseline), and two hosts on one
bridged underlay subnet with a workload each, routed first directly (pool
``vxlanMode: Never``) and then through VXLAN (``Always``), with routes and VXLAN
peers from :func:`gingham.calc.routes.plan_routes`. All three are measured
in one run, in interleaved rounds (medians reported) so that load from other
processes hits all three alike; compare ratios, not absolute figures, across runs.
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

from gingham.agent.detect import detect_underlay_mtu
from gingham.calc.messages import RouteUpdate
from gingham.calc.routes import RoutePlan, plan_routes
from gingham.calc.routing_types import VXLAN_DEVICE, HostInfo, PoolInfo, workload_mtu
from gingham.dataplane.vxlan import VxlanDriver
from gingham.ipam.info import BlockInfo
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


def iperf(server_ns: str, client_ns: str, server_ip: str, seconds: int) -> float:
    """Single-stream TCP throughput in Gbit/s, receiver side."""
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
    return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e9


def baseline_pair(prefix: str) -> tuple[str, str]:
    a, b = add_netns(prefix + "va"), add_netns(prefix + "vb")
    add_veth("eth0", "eth0", netns=a, peer_netns=b)
    ip_batch(a, ["addr add 198.18.0.1/24 dev eth0", "link set eth0 up"])
    ip_batch(b, ["addr add 198.18.0.2/24 dev eth0", "link set eth0 up"])
    return a, b


class TwoHosts:
    def __init__(self, prefix: str) -> None:
        self.switch = add_netns(prefix + "sw")
        ip_batch(self.switch, ["link add br0 type bridge", "link set br0 up"])
        self.hosts: list[tuple[str, HostInfo, IPv4Network]] = []
        self.workloads: list[tuple[str, str]] = []
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
            wl = add_netns(f"{prefix}w{i}")
            wl_ip = str(block.network_address + 1)
            add_veth(f"gh{i}", "eth0", netns=ns, peer_netns=wl)
            ip_batch(
                wl,
                [
                    f"addr add {wl_ip}/32 dev eth0",
                    "link set eth0 up",
                    "route add 169.254.1.1 dev eth0 scope link",
                    "route add default via 169.254.1.1 dev eth0",
                ],
            )
            write_sysctl(ns, f"net.ipv4.conf.gh{i}.proxy_arp", 1)
            write_sysctl(ns, f"net.ipv4.neigh.gh{i}.proxy_delay", 0)
            ip_batch(ns, [f"link set gh{i} up", f"route add {wl_ip}/32 dev gh{i}"])
            self.workloads.append((wl, wl_ip))

    def route(self, mode: str) -> None:
        infos = [h for _, h, _ in self.hosts]
        blocks = [BlockInfo(b, h.name, (), (), b.num_addresses) for _, h, b in self.hosts]
        pools = [PoolInfo(ip_network("198.18.0.0/16"), vxlan_mode=mode)]  # type: ignore[arg-type]
        for (ns, info, _), (wl, _ip) in zip(self.hosts, self.workloads, strict=True):
            # workload interfaces get the MTU of the path they use, as the CNI plugin would
            assert info.address_v4 is not None
            mtu = workload_mtu(detect_underlay_mtu(info.address_v4, ns), mode != "Never")
            ip_batch(ns, [f"link set gh{info.name[1:]} mtu {mtu}"])
            ip_batch(wl, [f"link set eth0 mtu {mtu}"])
            plan: RoutePlan = plan_routes(info.name, infos, blocks, pools)
            driver = VxlanDriver(ns)
            if plan.needs_vxlan:
                assert info.vxlan_tunnel_v4 is not None
                driver.ensure_device(info.address_v4, info.mac, mtu, [info.vxlan_tunnel_v4])
                driver.add_peers(plan.vxlan_peers)
            ip_batch(ns, [f"route replace {' '.join(route_argv(r))} proto 201"
                          for r in plan.routes])

    def measure(self, seconds: int, expect_dev: str) -> float:
        (client, _), (server, server_ip) = self.workloads
        path = run_in_netns(self.hosts[0][0], ["ip", "route", "get", server_ip]).stdout
        if f" dev {expect_dev} " not in path:  # measure the path we claim to measure
            raise SystemExit(f"expected the path via {expect_dev}, got: {path.strip()}")
        return iperf(server, client, server_ip, seconds)


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
    samples: dict[str, list[float]] = {"veth_baseline": [], "direct_routing": [], "vxlan": []}
    try:
        a, b = baseline_pair(prefix)
        lab = TwoHosts(prefix)
        # interleaved rounds: load from other processes hits all three alike
        for _ in range(args.rounds):
            samples["veth_baseline"].append(iperf(b, a, "198.18.0.2", args.seconds))
            lab.route("Never")
            samples["direct_routing"].append(lab.measure(args.seconds, "eth0"))
            lab.route("Always")
            samples["vxlan"].append(lab.measure(args.seconds, VXLAN_DEVICE))
    except subprocess.SubprocessError as exc:
        raise SystemExit(f"benchmark failed: {exc}") from exc
    finally:
        delete_netns_prefix(prefix)
    veth, direct, vxlan = (statistics.median(samples[k]) for k in samples)
    print(
        json.dumps(
            {
                "benchmark": "routing",
                "tool": "iperf3 single TCP stream",
                "seconds_per_run": args.seconds,
                "rounds": args.rounds,
                "load_average_1m": round(os.getloadavg()[0], 2),
                "samples_gbit_per_s": {k: [round(x, 2) for x in v] for k, v in samples.items()},
                "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
                "median_gbit_per_s": {
                    "veth_baseline": round(veth, 2),
                    "direct_routing": round(direct, 2),
                    "vxlan": round(vxlan, 2),
                },
                "ratio_to_baseline": {
                    "direct_routing": round(direct / veth, 3),
                    "vxlan": round(vxlan / veth, 3),
                },
                "vxlan_over_direct": round(vxlan / direct, 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
