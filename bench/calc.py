"""Calculation-graph benchmark: full sync and incremental endpoint updates on one host.

    .venv/bin/python bench/calc.py [--quick] [--local 250] [--updates 5000]

Each size runs in its own subprocess (so its peak RSS is its own) and prints
one JSON object with, per size:
- ``sync_seconds``: feeding every resource, ``on_in_sync`` and the first flush;
- ``rss_inputs_mb``: resident memory once the model objects are built (before
  the graph sees them; the bench holds them throughout), ``sync_peak_rss_mb``:
  peak resident memory of the process at the end of the full sync (what the
  sync target is about), ``peak_rss_mb``: at the end of the run (the update
  phase adds its 5000 prepared model copies);
- ``updates_per_second``: endpoint label changes, each followed by a flush as
  the agent does for a single event (95% remote endpoints, 5% local);
- counts of what reached the dataplane.

Cluster shape: namespaces of ~100 endpoints, each with a namespace profile;
endpoints labelled with an app (20 per namespace), a role and a version, some
with a named port; namespaced policies ``app == X`` allowing from a role (half
of them with a named port), one in ten from another namespace by
``namespaceSelector``, plus a few global policies and network sets.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import subprocess
import sys
import time
from typing import Any

SIZES = {"small": (10_000, 1_000), "large": (100_000, 2_000)}
HOST = "bench-host"
EPS_PER_NS = 100
APPS_PER_NS = 20


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build(endpoints: int, policies: int, local: int, seed: int) -> dict[str, Any]:
    from gingham.calc.inputs import ResourceKey
    from gingham.model import (
        NetworkSet,
        ObjectMeta,
        Profile,
        ProfileSpec,
        WorkloadEndpoint,
        WorkloadEndpointPort,
        WorkloadEndpointSpec,
        parse_resource,
    )
    from gingham.model.endpoints import NetworkSetSpec

    rng = random.Random(seed)
    namespaces = max(1, endpoints // EPS_PER_NS)
    updates: list[tuple[str, Any]] = []
    for n in range(namespaces):
        ns = f"ns{n}"
        labels = {"pcns.team": f"team{n % 10}", "pcns.projectcalico.org/name": ns}
        prof = Profile.model_construct(
            metadata=ObjectMeta.model_construct(name=f"kns.{ns}", labels={}),
            spec=ProfileSpec.model_construct(labels_to_apply=labels, ingress=(), egress=()),
        )
        updates.append((ResourceKey("Profile", f"kns.{ns}"), prof))
    local_ids = set(rng.sample(range(endpoints), min(local, endpoints)))
    http = (WorkloadEndpointPort.model_construct(name="http", protocol="TCP", port=8080),)
    wep_keys: list[tuple[Any, Any]] = []
    for i in range(endpoints):
        ns = f"ns{i % namespaces}"
        name = f"pod{i}"
        ip = f"198.{18 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}/32"
        spec = WorkloadEndpointSpec.model_construct(
            node=HOST if i in local_ids else f"host{i % 500}",
            orchestrator="k8s",
            interface_name=f"gh{i:011x}",
            ip_networks=(ip,),
            profiles=(f"kns.{ns}",),
            ports=http if i % 3 == 0 else (),
            service_account_name=None,
            mac=None,
            allow_spoofed_source_prefixes=(),
        )
        meta = ObjectMeta.model_construct(
            name=name,
            namespace=ns,
            labels={
                "app": f"app{rng.randrange(APPS_PER_NS)}",
                "role": rng.choice(["frontend", "backend", "db", "cache"]),
                "version": f"v{rng.randrange(5)}",
            },
        )
        wep = WorkloadEndpoint.model_construct(metadata=meta, spec=spec)
        key = ResourceKey("WorkloadEndpoint", name, ns)
        updates.append((key, wep))
        wep_keys.append((key, wep))
    for n in range(50):
        gns = NetworkSet.model_construct(
            metadata=ObjectMeta.model_construct(
                name=f"ext{n}", namespace=f"ns{n % namespaces}", labels={"role": "external"}
            ),
            spec=NetworkSetSpec.model_construct(nets=(f"203.0.113.{n * 4}/30",)),
        )
        updates.append((ResourceKey("NetworkSet", f"ext{n}", f"ns{n % namespaces}"), gns))
    for p in range(policies):
        ns = f"ns{p % namespaces}"
        app = f"app{rng.randrange(APPS_PER_NS)}"
        src: dict[str, Any] = {"selector": f"role == '{rng.choice(['frontend', 'backend'])}'"}
        if p % 10 == 0:
            src["namespaceSelector"] = f"team == 'team{p % 10}'"
        dst: dict[str, Any] = {"ports": ["http"] if p % 2 else [5432, "8000:8100"]}
        doc = {
            "apiVersion": "projectcalico.org/v3",
            "kind": "NetworkPolicy",
            "metadata": {"name": f"pol{p}", "namespace": ns},
            "spec": {
                "selector": f"app == '{app}'",
                "order": p % 7,
                "ingress": [
                    {"action": "Allow", "protocol": "TCP", "source": src, "destination": dst}
                ],
                "egress": [
                    {"action": "Allow", "destination": {"selector": "role == 'db'"}},
                    {"action": "Deny", "destination": {"selector": "role == 'external'"}},
                ],
            },
        }
        updates.append((ResourceKey("NetworkPolicy", f"pol{p}", ns), parse_resource(doc)))
    for g in range(5):
        doc = {
            "apiVersion": "projectcalico.org/v3",
            "kind": "GlobalNetworkPolicy",
            "metadata": {"name": f"global{g}"},
            "spec": {
                "selector": "all()",
                "order": 1000 + g,
                "ingress": [{"action": "Pass", "source": {"selector": f"version == 'v{g}'"}}],
            },
        }
        updates.append(
            (ResourceKey("GlobalNetworkPolicy", f"global{g}"), parse_resource(doc))
        )
    rng.shuffle(updates)
    return {"updates": updates, "weps": wep_keys}


def run_size(
    endpoints: int, policies: int, local: int, n_updates: int, seed: int
) -> dict[str, Any]:
    from gingham.calc import CalcGraph
    from gingham.calc import messages as m

    t0 = time.perf_counter()
    inputs = build(endpoints, policies, local, seed)
    build_s = time.perf_counter() - t0
    rss_inputs = _rss_mb()

    graph = CalcGraph(HOST)
    t0 = time.perf_counter()
    for key, value in inputs["updates"]:
        graph.on_update(key, value)
    graph.on_in_sync()
    out = graph.flush()
    sync_s = time.perf_counter() - t0
    sync_rss = _rss_mb()
    counts: dict[str, int] = {}
    for msg in out:
        counts[type(msg).__name__] = counts.get(type(msg).__name__, 0) + 1
    members = sum(len(x.members) for x in out if isinstance(x, m.IPSetUpdate))

    rng = random.Random(seed + 1)
    weps = inputs["weps"]
    local_weps = [(k, v) for k, v in weps if v.spec.node == HOST]
    remote_weps = [(k, v) for k, v in weps if v.spec.node != HOST]
    changes = []
    for _ in range(n_updates):
        key, wep = rng.choice(local_weps if rng.random() < 0.05 else remote_weps)
        labels = dict(wep.metadata.labels)
        labels["role"] = rng.choice(["frontend", "backend", "db", "cache"])
        labels["app"] = f"app{rng.randrange(APPS_PER_NS)}"
        meta = wep.metadata.model_copy(update={"labels": labels})
        changes.append((key, wep.model_copy(update={"metadata": meta})))
    emitted = 0
    t0 = time.perf_counter()
    for key, value in changes:
        graph.on_update(key, value)
        emitted += len(graph.flush())
    upd_s = time.perf_counter() - t0
    return {
        "endpoints": endpoints,
        "policies": policies,
        "local_endpoints": len(local_weps),
        "build_inputs_seconds": round(build_s, 3),
        "sync_seconds": round(sync_s, 3),
        "sync_messages": counts,
        "ip_set_members_sent": members,
        "graph": graph.stats(),
        "rss_inputs_mb": round(rss_inputs, 1),
        "sync_peak_rss_mb": round(sync_rss, 1),
        "peak_rss_mb": round(_rss_mb(), 1),
        "endpoint_updates": n_updates,
        "updates_per_second": round(n_updates / upd_s, 1),
        "microseconds_per_update": round(upd_s / n_updates * 1e6, 1),
        "update_messages": emitted,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only the 10,000-endpoint size")
    ap.add_argument("--local", type=int, default=250, help="local endpoints on the host")
    ap.add_argument("--updates", type=int, default=5000, help="incremental endpoint updates")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one size in this process
    args = ap.parse_args()
    if args.one:
        endpoints, policies = SIZES[args.one]
        print(json.dumps(run_size(endpoints, policies, args.local, args.updates, args.seed)))
        return
    results = {}
    for name in ["small"] if args.quick else ["small", "large"]:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            name,
            "--local",
            str(args.local),
            "--updates",
            str(args.updates),
            "--seed",
            str(args.seed),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            results[name] = {"error": proc.stderr.strip().splitlines()[-1:]}
        else:
            results[name] = json.loads(proc.stdout)
    print(
        json.dumps(
            {
                "benchmark": "calc",
                "python": platform.python_version(),
                "targets": {
                    "updates_per_second_at_100k": 2000,
                    "sync_seconds_at_100k": 10,
                    "sync_peak_rss_mb_at_100k": 500,
                    "peak_rss_mb": 2048,
                },
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
