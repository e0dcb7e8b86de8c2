"""IPAM benchmark: allocations per second with 1 and 8 concurrent allocators.

    .venv/bin/python bench/ipam.py [--backends sqlite,etcd] [--allocs 400] [--hosts-per 1]

Each allocator is its own process (as CNI invocations are) with its own IPAM
and datastore connection, allocating one IPv4 address per fresh handle (one
container each) from a 198.18.0.0/16 pool with /26 blocks. With ``--hosts-per
1`` every allocator is a different host (no contention on blocks, as on a real
cluster); ``--hosts-per 2`` puts two allocators on each host, so they race for
the same blocks. etcd runs as a single local member started for the run.
Each row also gives ``raw_writes_per_s``: plain creates by as many writer
processes, the datastore's own ceiling on this machine at this moment (an
allocation costs two writes: its handle and its block). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

POOL = {"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
        "metadata": {"name": "bench"}, "spec": {"cidr": "198.18.0.0/16", "blockSize": 26}}


class Counting:
    """Counts datastore round trips of one allocator."""

    def __init__(self, ds: Any) -> None:
        self.ds = ds
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.ds, name)
        if name in ("get", "list", "create", "update", "delete", "txn"):
            def counted(*a: Any, **kw: Any) -> Any:
                self.calls += 1
                return attr(*a, **kw)
            return counted
        return attr


def _allocator(url: str, host: str, worker: int, allocs: int, barrier: Any, queue: Any) -> None:
    from gingham.datastore import open_datastore
    from gingham.ipam import IPAM

    ds = Counting(open_datastore(url))
    ipam = IPAM(ds, host)  # type: ignore[arg-type]
    ipam.pools()  # warm the connection and caches before the clock starts
    barrier.wait()
    start = time.perf_counter()
    for i in range(allocs):
        ipam.auto_assign(f"bench.w{worker}.{i}", {"namespace": "bench", "workload": f"p{i}"})
    end = time.perf_counter()
    queue.put({"start": start, "end": end, "allocs": allocs, "calls": ds.calls,
               "wall": time.time()})
    ds.ds.close()


def _collect(procs: list[Any], queue: Any, timeout: float = 600) -> list[dict[str, Any]]:
    """One result per process; fail fast (not after the timeout) if one dies."""
    import queue as queue_mod

    results: list[dict[str, Any]] = []
    deadline = time.time() + timeout
    while len(results) < len(procs):
        try:
            results.append(queue.get(timeout=0.5))
        except queue_mod.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead or time.time() > deadline:
                for p in procs:
                    p.kill()
                raise SystemExit(f"an allocator failed (exit codes {dead}) or timed out") from None
    for p in procs:
        p.join()
    return results


def _writer(url: str, worker: int, writes: int, barrier: Any, queue: Any) -> None:
    """The datastore's own ceiling: plain creates of small keys, no IPAM."""
    from gingham.datastore import open_datastore

    ds = open_datastore(url)
    ds.get("/bench/warm")
    barrier.wait()
    for i in range(writes):
        ds.create(f"/bench/raw/{worker}/{i}", {"i": i})
    queue.put({"wall": time.time()})
    ds.close()


def raw_writes(url: str, concurrency: int, writes: int) -> float:
    _wipe(url)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(concurrency + 1)
    queue = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, w, writes, barrier, queue))
             for w in range(concurrency)]
    for p in procs:
        p.start()
    barrier.wait(timeout=120)
    t0 = time.time()
    walls = [float(r["wall"]) for r in _collect(procs, queue)]
    return round(concurrency * writes / (max(walls) - t0), 1)


def _wipe(url: str) -> None:
    from gingham.datastore import open_datastore

    ds = open_datastore(url, create=True)
    try:
        for prefix in ("/gingham/", "/bench/"):
            for kv in ds.list(prefix)[0]:
                ds.delete(kv.key)
        ds.create("/gingham/v1/resources/IPPool/bench", POOL)
    finally:
        ds.close()


def run(url: str, concurrency: int, allocs: int, hosts_per: int) -> dict[str, Any]:
    _wipe(url)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(concurrency + 1)
    queue = ctx.Queue()
    procs = [ctx.Process(target=_allocator,
                         args=(url, f"bench-host{w // hosts_per}", w, allocs, barrier, queue))
             for w in range(concurrency)]
    for p in procs:
        p.start()
    barrier.wait(timeout=120)
    t0 = time.time()
    results = _collect(procs, queue)
    wall = max(r["wall"] for r in results) - t0
    total = sum(r["allocs"] for r in results)
    return {
        "allocators": concurrency,
        "hosts": (concurrency + hosts_per - 1) // hosts_per,
        "allocations": total,
        "seconds": round(wall, 3),
        "allocations_per_s": round(total / wall, 1),
        "datastore_calls_per_allocation": round(sum(r["calls"] for r in results) / total, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backends", default="sqlite,etcd")
    ap.add_argument("--allocs", type=int, default=400, help="allocations per allocator")
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--hosts-per", type=int, default=1, help="allocators sharing one host")
    args = ap.parse_args()
    # so that the finally below stops etcd and removes the directory
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

    out: dict[str, Any] = {"bench": "ipam", "python": platform.python_version(),
                           "cpus": os.cpu_count(), "load_average": os.getloadavg()[0],
                           "allocs_per_allocator": args.allocs,
                           "hosts_per": args.hosts_per, "results": {}}
    base = Path(tempfile.mkdtemp(prefix="gingham-bench-ipam-"))
    members: list[Any] = []
    try:
        for backend in args.backends.split(","):
            if backend == "sqlite":
                url = f"sqlite://{base / 'bench.db'}"
            elif backend == "etcd":
                from gingham.datastore.etcd_process import cluster_url, start_etcd_cluster

                members = start_etcd_cluster(base / "etcd", 1)
                url = cluster_url(members)
            else:
                raise SystemExit(f"unknown backend {backend!r}")
            rows = []
            for c in args.concurrency.split(","):
                row = run(url, int(c), args.allocs, args.hosts_per)
                # context: allocations need two writes each (handle, block)
                row["raw_writes_per_s"] = raw_writes(url, int(c), args.allocs)
                rows.append(row)
            out["results"][backend] = rows
    finally:
        if members:
            from gingham.datastore.etcd_process import stop_etcd_cluster

            stop_etcd_cluster(members)
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
