"""Policy dataplane benchmark: nft programming cost, full and incremental.

    .venv/bin/python bench/dataplane.py [--quick]

Needs root. Works in a throwaway network namespace (removed at the end, also
on error). Measures, through the real managers, apply step and ``nft``:

- ``full_sync_ipset_members``: one transaction programming N endpoint
  addresses as IP-set members (remote endpoints) plus 250 local workloads
  (chains and dispatch-map entries) and P policies;
- ``full_sync_local_endpoints``: one transaction programming N local
  workloads (2 chains + 2 verdict-map entries each);
- ``label_change``, ``endpoint_add_same_policies`` (a workload whose
  policies an existing workload has: set and map elements only) and
  ``endpoint_add_new_policies`` (two new chains), each one nfnetlink batch of
  gingham's own encoding (``bench/nft_change.py`` compares that with
  ``nft -f -``): with P policies programmed, from handing the message to the
  managers to the kernel having applied it, p50/p99 over R repetitions.
  Target p50 <= 5 ms.

Defaults: N=10,000, P=1,000, R=200; ``--quick``: N=1,000, P=100, R=50.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from ipaddress import IPv4Address

from gingham.calc import messages as m
from gingham.calc.messages import (
    InSync,
    IPSetDeltaUpdate,
    IPSetUpdate,
    ParsedRule,
    PolicyID,
    PolicyUpdate,
    ProfileUpdate,
    TierInfo,
    WorkloadEndpointID,
    WorkloadEndpointUpdate,
)
from gingham.dataplane.apply import Applier
from gingham.dataplane.managers import PolicyDataplane
from gingham.dataplane.nft import NFT
from gingham.lab.netns import add_netns, delete_netns

BASE = int(IPv4Address("198.18.0.0"))
N_SETS = 100


def ip(i: int) -> str:
    return str(IPv4Address(BASE + i))


def policies(n: int) -> list[m.Message]:
    out: list[m.Message] = []
    for i in range(n):
        pid = PolicyID("default", f"p{i}", "bench")
        a, b = f"s:{i % N_SETS}", f"s:{(i * 7 + 3) % N_SETS}"
        out.append(PolicyUpdate(pid, (
            ParsedRule(f"policy:{pid}:i0", "allow", protocol=6, src_set_ids=(a,),
                       dst_ports=((80, 80), (8000 + i % 100, 8000 + i % 100))),
            ParsedRule(f"policy:{pid}:i1", "deny", src_nets=("198.19.0.0/16",)),
        ), (
            ParsedRule(f"policy:{pid}:e0", "allow", dst_set_ids=(b,)),
        )))
    return out


def workload(i: int, n_policies: int, combo: int | None = None, width: int = 4,
             ) -> WorkloadEndpointUpdate:
    """Workload ``i`` under ``width`` policies; ``combo`` picks them (default: ``i``)."""
    c = i if combo is None else combo
    pids = tuple(PolicyID("default", f"p{(c + k) % n_policies}", "bench") for k in range(width))
    return WorkloadEndpointUpdate(
        WorkloadEndpointID("bench", f"w{i}"), f"gh{i:011x}", (f"{ip(i)}/32",), (), None,
        (TierInfo("default", "deny", pids, pids[:2]),), ("kns.bench",))


def profile() -> ProfileUpdate:
    return ProfileUpdate("kns.bench", (ParsedRule("profile:kns.bench:i0", "allow"),),
                         (ParsedRule("profile:kns.bench:e0", "allow"),))


def sets(n_members: int) -> list[m.Message]:
    members: list[set[str]] = [set() for _ in range(N_SETS)]
    for i in range(n_members):
        members[i % N_SETS].add(f"{ip(i)}/32")
    return [IPSetUpdate(f"s:{k}", "net", frozenset(v)) for k, v in enumerate(members)]


def timed_apply(ap: Applier, msgs: list[m.Message]) -> tuple[float, int]:
    t0 = time.perf_counter()
    ap.dataplane.on_messages(msgs)
    res = ap.apply()
    assert res is not None
    return time.perf_counter() - t0, res.commands


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def run(n: int, n_pol: int, reps: int, ns_prefix: str) -> dict[str, object]:
    out: dict[str, object] = {}

    ns = add_netns(f"{ns_prefix}-a")
    try:
        ap = Applier(NFT(netns=ns), PolicyDataplane())
        msgs = [*sets(n), *policies(n_pol), profile(),
                *(workload(i, n_pol) for i in range(250)), InSync()]
        t0 = time.perf_counter()
        ap.dataplane.on_messages(msgs)
        t_managers = time.perf_counter() - t0
        res = ap.apply()
        assert res is not None
        out["full_sync_ipset_members"] = {
            "endpoint_addresses": n, "policies": n_pol, "local_workloads": 250,
            "nft_commands": res.commands, "managers_seconds": round(t_managers, 3),
            "apply_seconds": round(res.seconds, 3)}

        # incremental, on top of that table
        label, add_same, add_new = [], [], []
        for r in range(reps):
            member = f"{ip(n + r)}/32"
            dt, c = timed_apply(ap, [IPSetDeltaUpdate(f"s:{r % N_SETS}", frozenset({member}),
                                                      frozenset())])
            assert c == 1
            label.append(dt)
            # like a replica of an existing workload: its chains exist already
            dt, c = timed_apply(ap, [workload(n + r, n_pol, combo=r % 250)])
            add_same.append(dt)
            # a policy combination no endpoint has yet: two new chains
            dt, c = timed_apply(ap, [workload(2 * n + r, n_pol, combo=r, width=5)])
            add_new.append(dt)
        for name, vals in (("label_change", label), ("endpoint_add_same_policies", add_same),
                           ("endpoint_add_new_policies", add_new)):
            out[name] = {
                "policies_programmed": n_pol, "repetitions": reps,
                "p50_ms": round(statistics.median(vals) * 1000, 2),
                "p99_ms": round(pct(vals, 0.99) * 1000, 2),
                "target_p50_ms": 5.0,
            }
        t0 = time.perf_counter()
        res = Applier(NFT(netns=ns), ap.dataplane).apply()  # a restart: read back and compare
        assert res is not None
        out["restart_resync"] = {"seconds": round(time.perf_counter() - t0, 3),
                                 "commands": res.commands}
    finally:
        delete_netns(ns)

    ns = add_netns(f"{ns_prefix}-b")
    try:
        ap = Applier(NFT(netns=ns), PolicyDataplane())
        msgs = [*policies(min(n_pol, 100)), profile(),
                *(workload(i, min(n_pol, 100)) for i in range(n)), InSync()]
        t0 = time.perf_counter()
        ap.dataplane.on_messages(msgs)
        t_managers = time.perf_counter() - t0
        res = ap.apply()
        assert res is not None
        out["full_sync_local_endpoints"] = {
            "local_workloads": n, "nft_commands": res.commands,
            "managers_seconds": round(t_managers, 3),
            "apply_seconds": round(res.seconds, 3)}
    finally:
        delete_netns(ns)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N=1,000, P=100, R=50")
    args = ap.parse_args()
    n, n_pol, reps = (1000, 100, 50) if args.quick else (10_000, 1000, 200)
    result = {
        "bench": "dataplane",
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
        **run(n, n_pol, reps, f"ghbench{os.getpid()}"),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
