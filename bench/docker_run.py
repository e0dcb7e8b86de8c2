"""``docker run`` on a gingham network beside ``--network none``, in the same run.

    .venv/bin/python bench/docker_run.py [--quick] [--n 10]

Needs root and docker.io. A private one-host lab with its Docker daemon and
the gingham driver (``gingham lab up --docker``, real agent, sqlite); a
network ``bench`` made with ``-d gingham --ipam-driver gingham``. Timed: the
wall time of ``docker run --rm busybox:gingham true`` (the CLI process, what a
user waits for), the two kinds taking turns so machine load hits both alike,
after one warm-up of each. Also: ``labels_after_run``, from ``docker run -d
-l ...`` returning until the container's labels are on its WorkloadEndpoint
(what policy on Docker labels waits for).
Prints one JSON object; the lab is removed at the end, also on error.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Any

from gingham.datastore import keys, open_datastore
from gingham.lab import docker as labdocker
from gingham.lab import lab as labmod
from gingham.lab import state as labstate

NET = "bench"


def summary_ms(values: list[float]) -> dict[str, float]:
    s = sorted(values)
    return {"n": len(s), "p50_ms": round(statistics.median(s) * 1e3, 1),
            "min_ms": round(s[0] * 1e3, 1), "max_ms": round(s[-1] * 1e3, 1),
            "mean_ms": round(statistics.fmean(s) * 1e3, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10, help="runs of each kind")
    ap.add_argument("--quick", action="store_true", help="3 runs of each kind")
    args = ap.parse_args()
    n = 3 if args.quick else args.n
    name = f"bdr{os.getpid() % 100000}"
    labmod.down(name)
    try:
        lab = labmod.up(name, hosts=1, make_current=False, docker=True)

        def docker(*argv: str) -> float:
            start = time.perf_counter()
            got = labdocker.docker_cli(lab, "h1", *argv)
            took = time.perf_counter() - start
            if got.returncode != 0:
                raise SystemExit(f"docker {' '.join(argv)}: {got.stderr.strip()}")
            return took

        docker("network", "create", "-d", "gingham", "--ipam-driver", "gingham", NET)
        runs: dict[str, list[float]] = {"gingham": [], "none": []}
        networks = {"gingham": NET, "none": "none"}
        for kind in ("gingham", "none"):  # warm-up: image layers, plugin connection
            docker("run", "--rm", "--network", networks[kind], labdocker.IMAGE, "true")
        for _ in range(n):
            for kind in ("gingham", "none"):
                runs[kind].append(docker("run", "--rm", "--network", networks[kind],
                                         labdocker.IMAGE, "true"))
        lags = [labels_lag(lab, docker, i) for i in range(n)]
        load = os.getloadavg()
        result: dict[str, Any] = {
            "bench": "docker_run",
            "machine": {"nproc": os.cpu_count(), "kernel": platform.release(),
                        "loadavg": [round(x, 2) for x in load]},
            "n": n,
            "results": {kind: summary_ms(values) for kind, values in runs.items()},
            "labels_after_run": summary_ms(lags),
        }
        g, none = result["results"]["gingham"], result["results"]["none"]
        result["gingham_minus_none_p50_ms"] = round(g["p50_ms"] - none["p50_ms"], 1)
        result["ratio_p50"] = round(g["p50_ms"] / none["p50_ms"], 2)
        print(json.dumps(result, indent=2))
    finally:
        labmod.down(name)


def labels_lag(lab: labstate.LabState, docker: Any, i: int) -> float:
    """From ``docker run -d -l`` returning until the label is on the endpoint."""
    docker("run", "-d", "--name", f"lag{i}", "--network", NET, "-l", f"seq=n{i}",
           labdocker.IMAGE, "sleep", "600")
    returned = time.perf_counter()
    ds = open_datastore(lab.datastore)
    try:
        deadline = returned + 30
        while time.perf_counter() < deadline:
            items, _ = ds.list(keys.resource_prefix("WorkloadEndpoint", NET))
            if any((kv.value.get("metadata") or {}).get("labels", {}).get("seq") == f"n{i}"
                   for kv in items):
                lag = time.perf_counter() - returned
                break
            time.sleep(0.002)
        else:
            raise SystemExit(f"labels of lag{i} not on its endpoint within 30 s")
    finally:
        ds.close()
    docker("rm", "-f", f"lag{i}")
    return lag


if __name__ == "__main__":
    main()
