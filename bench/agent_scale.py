"""Scale of one agent: calculation graph + policy dataplane for one host, in process.

    .venv/bin/python bench/agent_scale.py [--quick] [--fake-nft] [--reps 100]

The real :class:`CalcGraph` and :class:`PolicyDataplane` with the real ``nft``
in a throwaway network namespace (root; removed at the end, also on error),
or with ``--fake-nft`` the in-memory FakeNFT. The cluster is the one
``bench/calc.py`` builds (namespaces of 100 endpoints, namespaced policies by
app/role, some named ports, network sets, five global policies).

Two sweeps, each size in a subprocess of its own so its memory is its own:
- ``local``: 10 / 100 / 250 local endpoints, 10,000 remote endpoints, 1,000
  policies (quick: 10 / 100 local, 2,000 remote, 200 policies);
- ``cluster``: 100 local endpoints, 1,000 policies, 1,000 / 3,000 / 10,000 /
  30,000 remote endpoints (quick: 1,000 / 4,000 remote): the cost of one update
  must follow what it touches, not the size of the cluster.

Per size: the full sync (all inputs, ``InSync``, one apply) in seconds and
CPU; resident memory; then, for each kind of update, ``--reps`` times: the
wall time and CPU (this process plus the ``nft`` children) from handing the
update to the graph to the dataplane having applied it, and how much it
touched (calculation messages, nft commands):
- ``remote_label``: a remote endpoint's role changes (IP-set members move);
- ``local_label``: a local endpoint's app changes (other policies select it);
- ``policy_edit``: a port in a policy that selects a local endpoint changes
  (its rule chain is rewritten);
- ``local_add``: a new local endpoint appears (chains + dispatch-map entries).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

KINDS = ("remote_label", "local_label", "policy_edit", "local_add")


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def make_updates(inputs: dict[str, Any], host: str, reps: int, seed: int) -> dict[str, list[Any]]:
    from gingham.calc.inputs import ResourceKey
    from gingham.model import parse_resource, to_dict

    rng = random.Random(seed)
    weps = inputs["weps"]
    local = [(k, v) for k, v in weps if v.spec.node == host]
    remote = [(k, v) for k, v in weps if v.spec.node != host]
    # Edits of policies that select a local endpoint: the others rightly touch nothing here.
    local_apps = {(v.metadata.namespace, v.metadata.labels.get("app")) for _k, v in local}
    pols = [(k, v) for k, v in inputs["updates"] if k.kind == "NetworkPolicy"
            and (v.metadata.namespace, v.spec.selector.split("'")[1]) in local_apps]

    def relabel(key: str, wep: Any, **labels: str) -> tuple[str, Any]:
        meta = wep.metadata.model_copy(update={"labels": {**wep.metadata.labels, **labels}})
        return key, wep.model_copy(update={"metadata": meta})

    out: dict[str, list[Any]] = {k: [] for k in KINDS}
    roles = ["frontend", "backend", "db", "cache"]
    for r in range(reps):
        k, w = rng.choice(remote)
        out["remote_label"].append(relabel(k, w, role=roles[r % 4]))
        k, w = rng.choice(local)
        out["local_label"].append(relabel(k, w, app=f"app{rng.randrange(20)}"))
        k, p = rng.choice(pols)
        doc = to_dict(p)
        doc["spec"]["ingress"][0]["destination"]["ports"] = [20000 + r]
        out["policy_edit"].append((k, parse_resource(doc)))
        k, w = local[r % len(local)]
        name = f"new{r}"
        meta = w.metadata.model_copy(update={"name": name})
        spec = w.spec.model_copy(update={
            "interface_name": f"ghn{r:010x}",
            "ip_networks": (f"198.19.{200 + r // 250}.{r % 250}/32",),
        })  # fmt: skip
        key = ResourceKey("WorkloadEndpoint", name, w.metadata.namespace)
        out["local_add"].append((key, w.model_copy(update={"metadata": meta, "spec": spec})))
    return out


def run_size(local: int, remote: int, policies: int, reps: int, fake: bool, seed: int) -> dict[str, Any]:
    import calc as calc_bench  # bench/calc.py: the shared cluster shape

    from gingham.calc import CalcGraph
    from gingham.dataplane.apply import Applier, apply_messages
    from gingham.dataplane.managers import PolicyDataplane
    from gingham.dataplane.nft import NFT
    from gingham.dataplane.nft_fake import FakeNFT
    from gingham.lab.netns import add_netns, delete_netns

    rss0 = _rss_mb()
    inputs = calc_bench.build(remote + local, policies, local, seed)
    rss_inputs = _rss_mb()
    updates = make_updates(inputs, calc_bench.HOST, reps, seed + 1)
    ns = None if fake else add_netns(f"ghbscale{os.getpid()}")
    try:
        driver: Any = FakeNFT() if fake else NFT(netns=ns)
        applier = Applier(driver, PolicyDataplane())
        graph = CalcGraph(calc_bench.HOST)
        t0, c0 = time.perf_counter(), _cpu()
        for key, value in inputs["updates"]:
            graph.on_update(key, value)
        graph.on_in_sync()
        msgs = graph.flush()
        t_calc = time.perf_counter() - t0
        res = apply_messages(applier, msgs)
        full = {
            "seconds": round(time.perf_counter() - t0, 3),
            "calc_seconds": round(t_calc, 3),
            "cpu_seconds": round(_cpu() - c0, 3),
            "messages": len(msgs),
            "nft_commands": res.commands if res else 0,
        }
        rss_synced = _rss_mb()
        per_kind: dict[str, Any] = {}
        for kind in KINDS:
            wall, cpu, nmsg, ncmd, tnft = [], [], [], [], []
            for key, value in updates[kind]:
                t0, c0 = time.perf_counter(), _cpu()
                graph.on_update(key, value)
                msgs = graph.flush()
                res = apply_messages(applier, msgs)
                wall.append(time.perf_counter() - t0)
                cpu.append(_cpu() - c0)
                nmsg.append(len(msgs))
                ncmd.append(res.commands if res else 0)
                tnft.append(res.seconds if res else 0.0)
            per_kind[kind] = {
                "p50_ms": round(statistics.median(wall) * 1e3, 3),
                "p99_ms": round(pct(wall, 0.99) * 1e3, 3),
                "apply_ms_p50": round(statistics.median(tnft) * 1e3, 3),
                "cpu_ms_mean": round(statistics.fmean(cpu) * 1e3, 3),
                "messages_mean": round(statistics.fmean(nmsg), 1),
                "nft_commands_mean": round(statistics.fmean(ncmd), 1),
            }
        stats = graph.stats()
        applier.close()
    finally:
        if ns is not None:
            delete_netns(ns)
    return {
        "local_endpoints": local,
        "remote_endpoints": remote,
        "policies": policies,
        "nft": "fake" if fake else "real",
        "full_sync": full,
        "rss_mb": {"start": round(rss0, 1), "inputs_built": round(rss_inputs, 1),
                   "synced": round(rss_synced, 1), "end": round(_rss_mb(), 1)},
        "graph": {k: stats[k] for k in ("items", "local_endpoints", "ip_sets") if k in stats},
        "updates": per_kind,
        "reps": reps,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--fake-nft", action="store_true", help="FakeNFT instead of nft in a netns")
    ap.add_argument("--reps", type=int, default=0, help="updates of each kind (default 100)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: LOCAL,REMOTE,POLICIES
    args = ap.parse_args()
    reps = args.reps or (30 if args.quick else 100)
    if args.one:
        local, remote, pols = (int(x) for x in args.one.split(","))
        print(json.dumps(run_size(local, remote, pols, reps, args.fake_nft, args.seed)))
        return
    if not args.fake_nft and os.geteuid() != 0:
        sys.exit("bench/agent_scale.py needs root for nft in a netns (or --fake-nft)")
    if args.quick:
        local_sweep = [(n, 2000, 200) for n in (10, 100)]
        cluster_sweep = [(100, n, 200) for n in (1000, 4000)]
    else:
        local_sweep = [(n, 10_000, 1000) for n in (10, 100, 250)]
        cluster_sweep = [(100, n, 1000) for n in (1000, 3000, 10_000, 30_000)]
    result: dict[str, Any] = {
        "bench": "agent_scale",
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "loadavg_before": list(os.getloadavg())},
        "sweeps": {},
    }  # fmt: skip
    cache: dict[tuple[int, int, int], Any] = {}
    for name, sweep in (("local", local_sweep), ("cluster", cluster_sweep)):
        rows = []
        for size in sweep:
            if size not in cache:
                cmd = [sys.executable, __file__, "--one", ",".join(map(str, size)),
                       "--reps", str(reps), "--seed", str(args.seed)]  # fmt: skip
                if args.fake_nft:
                    cmd.append("--fake-nft")
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    cache[size] = {"size": size, "error": proc.stderr.strip().splitlines()[-3:]}
                else:
                    cache[size] = json.loads(proc.stdout)
            rows.append(cache[size])
        result["sweeps"][name] = rows
    result["machine"]["loadavg_after"] = list(os.getloadavg())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
