"""The fan-out server's own delay: a datastore write until a client has the delta.

    .venv/bin/python bench/fanout_latency.py [--writes 200] [--gap 0.05] [--clients 1]

No root needed. One sqlite datastore, one ``FanoutServer`` in a process of its
own (as ``gingham fanout serve`` runs), ``--clients`` clients in this process.
Every ``--gap`` seconds one key is written; the time from the write's return
(committed) until every client has decoded the delta is measured. With
``--gap`` above the server's idle back-off this shows a poll interval, if the
server has one (before the follower thread: 5 ms after a change, backing off
to 20 ms). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PREFIX = "/gingham/v1/resources/Bench/"


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def serve(url: str, path: str) -> None:
    import threading

    from gingham.datastore import open_datastore
    from gingham.fanout import FanoutServer

    ds = open_datastore(url)
    server = FanoutServer(ds, PREFIX, path)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    server.serve(stop.is_set)


def run(writes: int, gap: float, clients: int) -> dict[str, Any]:
    from gingham.datastore import open_datastore
    from gingham.fanout import FanoutClient

    with tempfile.TemporaryDirectory(prefix="gingham-bench-fanout-") as tmp:
        url = f"sqlite://{Path(tmp) / 'g.db'}"
        path = str(Path(tmp) / "f.sock")
        ds = open_datastore(url, create=True)
        srv = subprocess.Popen([sys.executable, __file__, "--serve", url, path],
                               stdin=subprocess.PIPE, text=True)  # fmt: skip
        cs = [FanoutClient(path, retry_interval=0.05) for _ in range(clients)]
        try:
            deadline = time.monotonic() + 60
            while not all(c.status.in_sync for c in cs):
                if time.monotonic() > deadline:
                    raise RuntimeError("clients never in sync")
                for c in cs:
                    c.poll(0.01)
            lat: list[float] = []
            for i in range(writes):
                time.sleep(gap)
                t0 = time.perf_counter()
                rev = ds.create(f"{PREFIX}{i}", {"i": i})
                pending = list(cs)
                while pending:
                    select.select([c.fileno() for c in pending], [], [], 1.0)
                    for c in pending:
                        c.poll(0)
                    pending = [c for c in pending if c.status.revision < rev]
                lat.append(time.perf_counter() - t0)
        finally:
            for c in cs:
                c.close()
            assert srv.stdin is not None
            srv.stdin.close()
            srv.wait(30)
            ds.close()
    ms = [x * 1e3 for x in lat]
    return {"writes": writes, "gap_s": gap, "clients": clients,
            "p50_ms": round(statistics.median(ms), 2), "p90_ms": round(pct(ms, 0.9), 2),
            "p99_ms": round(pct(ms, 0.99), 2), "max_ms": round(max(ms), 2),
            "min_ms": round(min(ms), 2)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writes", type=int, default=200)
    ap.add_argument("--gap", type=float, default=0.05, help="seconds between writes")
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(*args.serve)
        return
    result = {"bench": "fanout_latency",
              "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                          "loadavg_before": list(os.getloadavg())},
              "result": run(args.writes, args.gap, args.clients)}  # fmt: skip
    result["machine"]["loadavg_after"] = list(os.getloadavg())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
