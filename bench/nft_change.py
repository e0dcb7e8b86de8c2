"""Cost of one policy-dataplane change that needs chains, before and after the nfnetlink path.

    .venv/bin/python bench/nft_change.py [--quick] [--reps 30]

Needs root. For each number of remote endpoints (IP-set members spread over
100 sets: 0, 3,000 and 30,000; quick: 0 and 3,000) a throwaway network
namespace gets P policies (1,000; quick 100) and 250 local workloads through
the real managers and :class:`~gingham.dataplane.apply.Applier`, programmed
once through ``nft -f -`` and once as one nfnetlink batch (``full_sync``).
Then, on that table, ``--reps`` changes of each kind, each applied once
through ``nft -f -`` (what every change needing a chain cost before: nft
1.0.6 reads the whole ruleset first) and once as gingham's own nfnetlink
batch (after), the two paths taking turns on the same table:

- ``endpoint_new_policies``: a local endpoint whose policy combination no
  endpoint has (two new workload chains, dispatch-map and anti-spoofing
  elements) -- issue 14's "local endpoint with new policies";
- ``policy_edit``: a policy's rules change (its chains flushed and refilled);
- ``endpoint_remove``: such an endpoint goes again (its chains deleted).

Per kind and path: wall time p50/p99 and CPU (this process plus its ``nft``
children) mean and p50 per apply, from handing the message to the managers
to the kernel having committed. Target (issue 14): CPU of a local endpoint
with new policies at 30,000 remote endpoints <= 5 ms. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import dataplane as shape  # bench/dataplane.py: the same policies, sets and workloads

from gingham.calc import messages as m
from gingham.calc.messages import InSync, ParsedRule, PolicyID, PolicyUpdate
from gingham.dataplane.apply import Applier
from gingham.dataplane.managers import PolicyDataplane
from gingham.dataplane.nft import NFT
from gingham.lab.netns import add_netns, delete_netns

LOCAL = 250
KINDS = ("endpoint_new_policies", "policy_edit", "endpoint_remove")
PATHS = ("nft", "netlink")


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def edited(i: int, port: int) -> PolicyUpdate:
    pid = PolicyID("default", f"p{i}", "bench")
    return PolicyUpdate(pid, (
        ParsedRule(f"policy:{pid}:i0", "allow", protocol=6, src_set_ids=(f"s:{i % 100}",),
                   dst_ports=((80, 80), (port, port))),
        ParsedRule(f"policy:{pid}:i1", "deny", src_nets=("198.19.0.0/16",)),
    ), (ParsedRule(f"policy:{pid}:e0", "allow", dst_set_ids=(f"s:{(i * 7 + 3) % 100}",)),))


def apply(ap: Applier, msgs: list[m.Message], path: str) -> dict[str, Any]:
    driver = ap.driver
    assert isinstance(driver, NFT)
    driver.netlink = path == "netlink"
    c0, t0 = _cpu(), time.perf_counter()
    ap.dataplane.on_messages(msgs)
    res = ap.apply()
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    assert res is not None and res.commands > 0
    return {"wall": wall, "cpu": cpu, "via": res.via, "fallback": res.fallback,
            "commands": res.commands}


def summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [s["wall"] for s in samples]
    cpus = [s["cpu"] for s in samples]
    return {
        "n": len(samples),
        "wall_p50_ms": round(statistics.median(walls) * 1e3, 2),
        "wall_p99_ms": round(pct(walls, 0.99) * 1e3, 2),
        "cpu_mean_ms": round(statistics.fmean(cpus) * 1e3, 2),
        "cpu_p50_ms": round(statistics.median(cpus) * 1e3, 2),
        "commands_mean": round(statistics.fmean(s["commands"] for s in samples), 1),
        "via": sorted({s["via"] for s in samples}),
        "fallbacks": sum(1 for s in samples if s["fallback"]),
    }


def full_sync(ns: str, n: int, n_pol: int, path: str) -> tuple[Applier, float, float]:
    ap = Applier(NFT(netns=ns, netlink=path == "netlink"), PolicyDataplane())
    ap.dataplane.on_messages([*shape.sets(n), *shape.policies(n_pol), shape.profile(),
                              *(shape.workload(i, n_pol) for i in range(LOCAL)), InSync()])
    c0, t0 = _cpu(), time.perf_counter()
    res = ap.apply()
    assert res is not None and res.via == path, res
    return ap, time.perf_counter() - t0, _cpu() - c0


def run_size(n: int, n_pol: int, reps: int, ns_name: str) -> dict[str, Any]:
    ns = add_netns(ns_name)
    try:
        out: dict[str, Any] = {"remote_endpoints": n, "policies": n_pol,
                               "local_endpoints": LOCAL, "full_sync": {}}
        for path in PATHS:
            if path == "netlink":
                NFT(netns=ns).delete_table()
            ap, wall, cpu = full_sync(ns, n, n_pol, path)
            out["full_sync"][path] = {"seconds": round(wall, 3), "cpu_seconds": round(cpu, 3)}
        samples: dict[str, dict[str, list[dict[str, Any]]]] = {
            k: {p: [] for p in PATHS} for k in KINDS}
        serial = 0
        for r in range(reps):
            for path in PATHS if r % 2 == 0 else reversed(PATHS):
                serial += 1
                i = 10 * n + serial  # never an existing workload or address
                wl = shape.workload(i, n_pol, combo=serial, width=5)
                samples["endpoint_new_policies"][path].append(apply(ap, [wl], path))
                pol = (serial * 13) % n_pol
                samples["policy_edit"][path].append(
                    apply(ap, [edited(pol, 20000 + serial)], path))
                samples["endpoint_remove"][path].append(
                    apply(ap, [m.WorkloadEndpointRemove(wl.endpoint_id)], path))
        out["changes"] = {k: {p: summary(samples[k][p]) for p in PATHS} for k in KINDS}
        driver = ap.driver
        assert isinstance(driver, NFT)
        out["driver_counts"] = dict(driver.counts)
        driver.close()
        return out
    finally:
        delete_netns(ns)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="0 and 3,000 remote endpoints, 100 policies")
    ap.add_argument("--reps", type=int, default=0, help="changes of each kind per path (default 30, quick 10)")
    args = ap.parse_args()
    sizes, n_pol = ((0, 3000), 100) if args.quick else ((0, 3000, 30000), 1000)
    reps = args.reps or (10 if args.quick else 30)
    rows = [run_size(n, n_pol, reps, f"ghbnc{os.getpid()}-{n}") for n in sizes]
    target = next((r["changes"]["endpoint_new_policies"]["netlink"]["cpu_mean_ms"]
                   for r in rows if r["remote_endpoints"] == 30000), None)
    print(json.dumps({
        "bench": "nft_change",
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
        "sizes": rows,
        "target": {"what": "CPU of a local endpoint with new policies, 30,000 remote endpoints",
                   "limit_ms": 5.0, "measured_ms": target},
    }, indent=2))


if __name__ == "__main__":
    main()
