"""Dataplane cost: throughput and connection rate with 0, 100 and 1,000 policies on the receiver.

    .venv/bin/python bench/dataplane_cost.py [--quick] [--seconds 3]

Needs root and iperf3. A private 2-host lab (sqlite, real agents and nft;
removed at the end, also on error): a client workload on h1, a server on h2
serving TCP 80 (accept, answer, close) and an ``iperf3 -s`` inside it.

Policy sets applied to the server (all select it; each is a separate
NetworkPolicy with its own chain): P-1 fillers that allow TCP from an address
that never sends (203.0.113.x) on a port of their own, and one last policy
(highest order, so a new connection passes every filler first) allowing TCP
from the client. P = 0 means no policy (the namespace profile allows).

For each P, after the server's host has programmed them (its nft table has
settled with at least P policy chains): single-stream TCP throughput
(``iperf3 -J``, client to server) and the rate of sequential new TCP
connections (connect, read the answer, close) from a loop inside the client
for ``--seconds``. The sizes run in the order 0, 100, 1000, 1000, 100, 0 so that
drift in machine load falls on all of them alike; each figure is the mean of
its two runs and is reported as a ratio to P = 0 of the same run.

Target (issue 8): throughput with 1,000 policies >= 95 % of no policy.
Prints one JSON object.
"""

from __future__ import annotations

import os

os.environ.setdefault("GINGHAM_LAB_RUN_DIR", f"/run/gingham-bench-{os.getpid()}")

import argparse
import contextlib
import json
import platform
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any

PORT = 80
IPERF_PORT = 5201

CONNECT_LOOP = r"""
import socket, struct, sys, time
# close with RST (linger 0): no TIME_WAIT on the client, whose ephemeral ports would
# otherwise run out within seconds and make every connect() search for a free one
LINGER0 = struct.pack("ii", 1, 0)
addr, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
n = fail = 0
took = []
end = time.monotonic() + seconds
while time.monotonic() < end:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
    s.settimeout(1.0)
    t0 = time.monotonic()
    try:
        s.connect((addr, port))
        s.recv(16)
        n += 1
        took.append(time.monotonic() - t0)
    except OSError:
        fail += 1
    finally:
        s.close()
took.sort()
q = lambda f: took[min(len(took) - 1, int(f * len(took)))] * 1e3 if took else -1
print(n / seconds, fail, q(0.5), q(0.99), q(1.0) if took else -1)
"""


def policy_docs(n: int) -> list[dict[str, Any]]:
    if n == 0:
        return []
    docs: list[dict[str, Any]] = []
    for i in range(n - 1):
        docs.append({
            "apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
            "metadata": {"name": f"filler-{i}", "namespace": "cost"},
            "spec": {"selector": "role == 'server'", "order": i, "types": ["Ingress"],
                     "ingress": [{"action": "Allow", "protocol": "TCP",
                                  "source": {"nets": [f"203.0.113.{i % 250}/32"]},
                                  "destination": {"ports": [10000 + i]}}]},
        })  # fmt: skip
    docs.append({
        "apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
        "metadata": {"name": "allow-client", "namespace": "cost"},
        "spec": {"selector": "role == 'server'", "order": 100000, "types": ["Ingress"],
                 "ingress": [{"action": "Allow", "protocol": "TCP",
                              "source": {"selector": "role == 'client'"}}]},
    })  # fmt: skip
    return docs


def count_chains(netns: str) -> int:
    from gingham.lab.netns import run_in_netns

    proc = run_in_netns(netns, ["nft", "-j", "list", "chains", "inet"], check=False)
    try:
        items = json.loads(proc.stdout or "{}").get("nftables", [])
    except ValueError:
        return -1
    return sum(1 for it in items if "chain" in it and it["chain"].get("table") == "gingham")


def wait_settled(netns: str, at_least: int, at_most: int, timeout: float = 120.0) -> float:
    """Seconds until the table's chain count is within bounds and steady for 1 s."""
    t0 = time.monotonic()
    last, since = -2, time.monotonic()
    while time.monotonic() - t0 < timeout:
        n = count_chains(netns)
        if n != last:
            last, since = n, time.monotonic()
        elif at_least <= n <= at_most and time.monotonic() - since >= 1.0:
            return time.monotonic() - t0
        time.sleep(0.2)
    raise RuntimeError(f"nft table in {netns} did not settle ({last} chains)")


def iperf(client_ns: str, server_ns: str, address: str, seconds: float) -> float:
    from gingham.lab.netns import in_netns, spawn_in_netns, stop_process

    server = spawn_in_netns(server_ns, ["iperf3", "-s", "-1", "-p", str(IPERF_PORT)])
    try:
        time.sleep(0.3)
        proc = subprocess.run(
            # iperf3 takes whole seconds (and -t 0 means "run forever")
            in_netns(client_ns, ["iperf3", "-c", address, "-p", str(IPERF_PORT), "-t",
                                 str(max(1, round(seconds))), "-J"]),
            capture_output=True, text=True, timeout=seconds + 30, check=False)  # fmt: skip
        data = json.loads(proc.stdout)
        return float(data["end"]["sum_received"]["bits_per_second"])
    finally:
        stop_process(server)


def connect_rate(client_ns: str, address: str, seconds: float) -> tuple[float, int, dict[str, float]]:
    from gingham.lab.netns import in_netns

    proc = subprocess.run(
        in_netns(client_ns, [sys.executable, "-I", "-S", "-c", CONNECT_LOOP, address, str(PORT),
                             str(seconds)]),
        capture_output=True, text=True, timeout=seconds + 30, check=True)  # fmt: skip
    rate, fail, p50, p99, worst = proc.stdout.split()
    return float(rate), int(fail), {"p50_ms": round(float(p50), 3), "p99_ms": round(float(p99), 3),
                                    "max_ms": round(float(worst), 3)}


def run(seconds: float, sizes: list[int]) -> dict[str, Any]:
    from gingham.datastore import open_datastore
    from gingham.datastore.resources import ResourceStore
    from gingham.errors import NotFound
    from gingham.lab import lab as labmod
    from gingham.lab import state as labstate
    from gingham.lab import workloads as wlmod
    from gingham.model import parse_resource

    name = f"bcost{os.getpid() % 100000}"
    labmod.down(name)
    lab = labmod.up(name, hosts=2, datastore="sqlite")
    out: dict[str, Any] = {}
    try:
        ds = open_datastore(lab.datastore)
        store = ResourceStore(ds)
        wlmod.add(name, "cost/client", "h1", {"role": "client"})
        wlmod.add(name, "cost/server", "h2", {"role": "server"}, [(PORT, "tcp", "")])
        lab = labstate.load(name)
        client, server = lab.workload("cost/client"), lab.workload("cost/server")
        h2 = lab.host("h2").netns
        time.sleep(1.0)
        base_chains = count_chains(h2)
        order = sizes + sizes[::-1]
        applied: list[Any] = []
        runs: dict[int, list[dict[str, Any]]] = {n: [] for n in sizes}
        for n in order:
            for res in applied:
                with contextlib.suppress(NotFound):
                    store.delete(store.info_of(res), res.metadata.name, res.metadata.namespace)
            applied = [parse_resource(d) for d in policy_docs(n)]
            for res in applied:
                store.apply(res)
            settle = wait_settled(h2, base_chains + n, base_chains + 2 * n + 10) if n else \
                wait_settled(h2, 0, base_chains)
            bps = iperf(client.netns, server.netns, server.ips[0], seconds)
            rate, fails, each = connect_rate(client.netns, server.ips[0], seconds)
            runs[n].append({"bits_per_second": bps, "connections_per_second": rate,
                            "connect_failures": fails, "connection_time": each,
                            "settle_seconds": round(settle, 2),
                            "loadavg1": os.getloadavg()[0]})  # fmt: skip
        base = runs[sizes[0]]
        base_bps = statistics.fmean(r["bits_per_second"] for r in base)
        base_cps = statistics.fmean(r["connections_per_second"] for r in base)
        for n in sizes:
            bps = statistics.fmean(r["bits_per_second"] for r in runs[n])
            cps = statistics.fmean(r["connections_per_second"] for r in runs[n])
            out[str(n)] = {
                "policies": n,
                "gbit_per_second": round(bps / 1e9, 3),
                "connections_per_second": round(cps, 1),
                "throughput_ratio": round(bps / base_bps, 3),
                "connection_rate_ratio": round(cps / base_cps, 3),
                "runs": runs[n],
            }
        ds.close()
    finally:
        labmod.down(name)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2-second runs")
    ap.add_argument("--seconds", type=float, default=0, help="seconds per measurement (default 5)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/dataplane_cost.py needs root (network namespaces)")
    if shutil.which("iperf3") is None:
        sys.exit("bench/dataplane_cost.py needs iperf3")
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    result: dict[str, Any] = {
        "bench": "dataplane_cost",
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "loadavg_before": list(os.getloadavg())},
        "seconds_per_measurement": seconds,
        "target": {"throughput_ratio_at_1000": 0.95},
    }  # fmt: skip
    try:
        result["results"] = run(seconds, [0, 100, 1000])
    finally:
        shutil.rmtree(os.environ["GINGHAM_LAB_RUN_DIR"], ignore_errors=True)
    r = result["results"]["1000"]["throughput_ratio"]
    result["target"]["met"] = r >= 0.95
    result["machine"]["loadavg_after"] = list(os.getloadavg())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
