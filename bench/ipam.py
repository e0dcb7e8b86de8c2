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
allocation is one transaction writing its handle and its block; before that
it was two compare-and-swap writes). And where the CPU went, per allocation
(and per raw write): ``client_cpu_ms`` in the allocator processes,
``server_cpu_ms`` in etcd (absent for sqlite, which runs in the clients).
With C cores, C * 1000 / (client + server CPU ms) bounds the rate from above.
Prints one JSON object.
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
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(allocs):
        ipam.auto_assign(f"bench.w{worker}.{i}", {"namespace": "bench", "workload": f"p{i}"})
    end = time.perf_counter()
    queue.put({"start": start, "end": end, "allocs": allocs, "calls": ds.calls,
               "wall": time.time(), "cpu": time.process_time() - cpu})
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
    cpu = time.process_time()
    for i in range(writes):
        ds.create(f"/bench/raw/{worker}/{i}", {"i": i})
    queue.put({"wall": time.time(), "cpu": time.process_time() - cpu})
    ds.close()


def server_cpu(pids: list[int]) -> float:
    """CPU seconds the server processes have used so far."""
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def raw_writes(url: str, concurrency: int, writes: int, pids: list[int]) -> dict[str, float]:
    _wipe(url)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(concurrency + 1)
    queue = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, w, writes, barrier, queue))
             for w in range(concurrency)]
    for p in procs:
        p.start()
    barrier.wait(timeout=120)
    t0, s0 = time.time(), server_cpu(pids)
    results = _collect(procs, queue)
    n = concurrency * writes
    out = {"raw_writes_per_s": round(n / (max(float(r["wall"]) for r in results) - t0), 1),
           "raw_write_client_cpu_ms": round(sum(r["cpu"] for r in results) / n * 1000, 3)}
    if pids:
        out["raw_write_server_cpu_ms"] = round((server_cpu(pids) - s0) / n * 1000, 3)
    return out


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


def run(url: str, concurrency: int, allocs: int, hosts_per: int,
        pids: list[int]) -> dict[str, Any]:
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
    t0, s0 = time.time(), server_cpu(pids)
    results = _collect(procs, queue)
    s1 = server_cpu(pids)
    wall = max(r["wall"] for r in results) - t0
    total = sum(r["allocs"] for r in results)
    cpu = {"client_cpu_ms": round(sum(r["cpu"] for r in results) / total * 1000, 3)}
    if pids:
        cpu["server_cpu_ms"] = round((s1 - s0) / total * 1000, 3)
    return {
        "allocators": concurrency,
        "hosts": (concurrency + hosts_per - 1) // hosts_per,
        "allocations": total,
        "seconds": round(wall, 3),
        "allocations_per_s": round(total / wall, 1),
        "datastore_calls_per_allocation": round(sum(r["calls"] for r in results) / total, 2),
        **cpu,
        "load_average": round(os.getloadavg()[0], 2),
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
            pids: list[int] = []
            if backend == "sqlite":
                url = f"sqlite://{base / 'bench.db'}"
            elif backend == "etcd":
                from gingham.datastore.etcd_process import cluster_url, start_etcd_cluster

                members = start_etcd_cluster(base / "etcd", 1)
                url = cluster_url(members)
                pids = [m.proc.pid for m in members if m.proc is not None]
            else:
                raise SystemExit(f"unknown backend {backend!r}")
            rows: dict[str, Any] = {}  # keyed, not listed: docs/BENCHMARKS.md shows dicts
            for c in args.concurrency.split(","):
                row = run(url, int(c), args.allocs, args.hosts_per, pids)
                # context: the datastore's own ceiling, same concurrency, same moment
                row.update(raw_writes(url, int(c), args.allocs, pids))
                rows[f"allocators_{c}"] = row
            out["results"][backend] = rows
    finally:
        if members:
            from gingham.datastore.etcd_process import stop_etcd_cluster

            stop_etcd_cluster(members)
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
