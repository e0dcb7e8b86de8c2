"""Datastore write throughput: compare-and-swap writes per second, sqlite and etcd.

    .venv/bin/python bench/datastore.py [--seconds 3] [--procs 8] [--backends sqlite,etcd]

Prints one JSON object. For each backend:
- ``seq_cas_per_s``: one process updating one key, each update CAS'd on the
  revision the previous one returned (no read in between);
- ``seq_create_per_s``: one process creating fresh keys;
- ``procs_own_key_per_s``: N processes, each CAS-updating its own key (no
  conflicts; measures how the backend serialises writers);
- ``watch_latency_ms_p50/p99``: from the start of a write (one every 10 ms)
  to its event coming out of another handle's watch;
- ``procs_shared_key_per_s``: N processes incrementing one shared counter with
  read + CAS + retry (successful increments/s; ``conflicts`` lost the race);
- ``watchers`` (sqlite): for each count in ``--watchers``, that many watches,
  each with its own datastore handle and thread looping on ``next_batch(0.1)``
  as an agent does, spread over 4 processes: their CPU while nothing is
  written (``idle_cpu_percent``, of one core, all processes together) and,
  for writes 0.2 s apart, the time from the start of a write until every
  watcher has delivered it (``all_delivered_ms_p50/max``) and until half have
  (``half_delivered_ms_p50``).
The etcd run starts a private single-member etcd 3.4 on loopback in a temporary
directory and removes it afterwards. Figures vary with machine load: compare
within one run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from gingham.datastore import open_datastore
from gingham.datastore.etcd_process import start_etcd_cluster, stop_etcd_cluster
from gingham.errors import RevisionConflict


def _seq_cas(url: str, seconds: float) -> float:
    with open_datastore(url, create=True) as ds:
        rev = ds.create("/bench/seq", {"n": 0})
        n = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            n += 1
            rev = ds.update("/bench/seq", {"n": n}, revision=rev)
        return n / (time.perf_counter() - t0)


def _seq_create(url: str, seconds: float) -> float:
    with open_datastore(url) as ds:
        n = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            ds.create(f"/bench/create/{n:08d}", {"n": n})
            n += 1
        return n / (time.perf_counter() - t0)


def _own_key_worker(url: str, index: int, start_at: float, seconds: float) -> int:
    with open_datastore(url) as ds:
        key = f"/bench/own/{index}"
        rev = ds.create(key, {"n": 0})
        while time.time() < start_at:
            time.sleep(0.001)
        n = 0
        end = start_at + seconds
        while time.time() < end:
            n += 1
            rev = ds.update(key, {"n": n}, revision=rev)
        return n


def _shared_worker(url: str, start_at: float, seconds: float) -> tuple[int, int]:
    with open_datastore(url) as ds:
        while time.time() < start_at:
            time.sleep(0.001)
        done = conflicts = 0
        end = start_at + seconds
        while time.time() < end:
            kv = ds.get("/bench/shared")
            assert kv is not None
            try:
                ds.update("/bench/shared", {"n": kv.value["n"] + 1}, revision=kv.mod_revision)
                done += 1
            except RevisionConflict:
                conflicts += 1
        return done, conflicts


def _parallel(url: str, procs: int, seconds: float) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    with open_datastore(url) as ds:
        ds.create("/bench/shared", {"n": 0})
    with ctx.Pool(procs) as pool:
        start_at = time.time() + 1.5  # let every worker import and connect first
        own = pool.starmap(_own_key_worker, [(url, i, start_at, seconds) for i in range(procs)])
        start_at = time.time() + 0.5
        shared = pool.starmap(_shared_worker, [(url, start_at, seconds)] * procs)
    with open_datastore(url) as ds:
        kv = ds.get("/bench/shared")
        assert kv is not None
        final = kv.value["n"]
    done = sum(d for d, _ in shared)
    if final != done:
        raise SystemExit(f"lost updates: counter {final}, successful increments {done}")
    return {
        "procs_own_key_per_s": round(sum(own) / seconds, 1),
        "procs_shared_key_per_s": round(done / seconds, 1),
        "procs_shared_conflicts": sum(c for _, c in shared),
    }


def _watch_latency(url: str, n: int = 200, gap: float = 0.01) -> dict[str, float]:
    """Milliseconds from the start of a write to its event leaving ``next_batch``."""
    import threading

    started: dict[int, float] = {}
    with open_datastore(url) as ds, open_datastore(url) as writer_ds:
        start = ds.revision() + 1
        with ds.watch("/bench/lat/", start_revision=start) as watch:

            def writer() -> None:
                for i in range(n):
                    t = time.perf_counter()
                    rev = writer_ds.create(f"/bench/lat/{i:05d}", {"i": i})
                    started[rev] = t
                    time.sleep(gap)

            thread = threading.Thread(target=writer)
            thread.start()
            latencies: list[float] = []
            deadline = time.monotonic() + n * gap + 30
            while len(latencies) < n and time.monotonic() < deadline:
                for event in watch.next_batch(0.5):
                    now = time.perf_counter()
                    while event.revision not in started and thread.is_alive():
                        time.sleep(0.0001)  # the writer has not recorded it yet
                    latencies.append((now - started[event.revision]) * 1000)
            thread.join()
    latencies.sort()
    return {
        "watch_latency_ms_p50": round(latencies[len(latencies) // 2], 2),
        "watch_latency_ms_p99": round(latencies[int(len(latencies) * 0.99) - 1], 2),
    }


def _watchers_worker(url: str, count: int, ready: Any, stop: Any, out: Any) -> None:
    """``count`` watches, one thread and handle each; reports key -> arrival times."""
    arrivals: dict[str, list[float]] = {}
    lock = threading.Lock()
    opened = threading.Barrier(count + 1)

    def follow() -> None:
        with open_datastore(url) as ds:
            watch = ds.watch("/bench/fan/", start_revision=ds.revision() + 1)
            watch.next_batch(0)
            opened.wait()
            while not stop.is_set():
                for event in watch.next_batch(0.1):
                    now = time.time()
                    with lock:
                        arrivals.setdefault(event.key, []).append(now)
            watch.close()

    threads = [threading.Thread(target=follow, daemon=True) for _ in range(count)]
    for t in threads:
        t.start()
    opened.wait()
    ready.put(os.getpid())
    for t in threads:
        t.join()
    out.put(arrivals)


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _watchers(url: str, count: int, idle: float = 5.0, writes: int = 10) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    ready, out, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    nproc = min(4, count)
    shares = [count // nproc + (1 if i < count % nproc else 0) for i in range(nproc)]
    procs = [ctx.Process(target=_watchers_worker, args=(url, n, ready, stop, out))
             for n in shares]  # fmt: skip
    for p in procs:
        p.start()
    try:
        pids = [ready.get(timeout=300) for _ in procs]
        time.sleep(1.0)
        c0, t0 = _cpu_seconds(pids), time.monotonic()
        time.sleep(idle)
        idle_cpu = (_cpu_seconds(pids) - c0) / (time.monotonic() - t0) * 100
        started: dict[str, float] = {}
        with open_datastore(url) as ds:
            for i in range(writes):
                key = f"/bench/fan/{count}/{i:03d}"
                started[key] = time.time()
                ds.create(key, {"i": i})
                time.sleep(0.2)
        time.sleep(2.0)
        stop.set()
        arrivals: dict[str, list[float]] = {}
        for _ in procs:
            for key, times in out.get(timeout=120).items():
                arrivals.setdefault(key, []).extend(times)
    finally:
        stop.set()
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    complete = [k for k in started if len(arrivals.get(k, ())) == count]
    all_ms = sorted((max(arrivals[k]) - started[k]) * 1000 for k in complete)
    half_ms = sorted((sorted(arrivals[k])[count // 2] - started[k]) * 1000 for k in complete)
    return {
        "watchers": count,
        "idle_cpu_percent": round(idle_cpu, 1),
        "writes_delivered_to_all": f"{len(complete)}/{writes}",
        "all_delivered_ms_p50": round(statistics.median(all_ms), 2) if all_ms else None,
        "all_delivered_ms_max": round(all_ms[-1], 2) if all_ms else None,
        "half_delivered_ms_p50": round(statistics.median(half_ms), 2) if half_ms else None,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def bench(url: str, procs: int, seconds: float) -> dict[str, Any]:
    return {
        "seq_cas_per_s": round(_seq_cas(url, seconds), 1),
        "seq_create_per_s": round(_seq_create(url, seconds), 1),
        **_parallel(url, procs, seconds),
        **_watch_latency(url),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--procs", type=int, default=8)
    parser.add_argument("--backends", default="sqlite,etcd")
    parser.add_argument("--watchers", default="10,100,1000",
                        help="watcher counts for the idle-CPU and fan-out measure (sqlite)")
    args = parser.parse_args()
    out: dict[str, Any] = {
        "procs": args.procs,
        "seconds": args.seconds,
        "cpus": os.cpu_count(),
        "loadavg_1m": os.getloadavg()[0],
    }
    tmp = Path(tempfile.mkdtemp(prefix="gingham-bench-ds-"))
    try:
        if "sqlite" in args.backends:
            url = f"sqlite://{tmp / 'bench.db'}"
            out["sqlite"] = bench(url, args.procs, args.seconds)
            # keyed, not listed: docs/BENCHMARKS.md shows dicts
            out["sqlite"]["watchers"] = {f"n{n}": _watchers(url, int(n))
                                         for n in args.watchers.split(",") if n}
        if "etcd" in args.backends:
            if shutil.which("etcd") is None:
                out["etcd"] = {"skipped": "etcd not installed"}
            else:
                members = start_etcd_cluster(tmp / "etcd", 1, die_with_parent=True)
                try:
                    out["etcd"] = bench(members[0].datastore_url, args.procs, args.seconds)
                finally:
                    stop_etcd_cluster(members)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out["loadavg_1m_after"] = os.getloadavg()[0]
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
