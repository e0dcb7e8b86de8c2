"""Policy propagation: from ``gingham apply`` of a policy to the matrix reflecting it on every host.

    .venv/bin/python bench/propagation.py [--quick] [--hosts 3,10] [--trials 20] [--datastore etcd]

Needs root. For each host count, a private lab (sqlite or etcd datastore, real agents
and nft; state under a private run directory; removed at the end, also on
error) with one workload per host in namespace ``prop`` serving TCP 80, under
a default-deny ingress policy. The matrix is every ordered pair of distinct
workloads, so with H hosts every host's dataplane is in it.

One trial: ``ResourceStore.apply`` of an allow policy (ingress TCP 80 from the
namespace's members) at t0, then every source workload opens a new
connection to every destination every millisecond (sockets opened inside the
source's network namespace by a thread that entered it) until each cell
connects: ``open`` is the time of the last cell (the matrix reflects the
policy everywhere), per host the time of that host's cells. Then the policy
is deleted at t1 and each cell is probed with attempts 2 ms apart that each
get 15 ms to connect: ``close`` is when the first attempt of the last cell
failed to connect (an upper bound with about 2 ms of resolution plus any
established handshake; the opening figure is the precise one).

Prints one JSON object with p50/p99 over the trials for each host count.
"""

from __future__ import annotations

import os

os.environ.setdefault("GINGHAM_LAB_RUN_DIR", f"/run/gingham-bench-{os.getpid()}")

import argparse
import ctypes
import errno
import json
import platform
import selectors
import shutil
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

CLONE_NEWNET = 0x40000000
PORT = 80
_libc = ctypes.CDLL(None, use_errno=True)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def summary_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values) * 1e3, 2),
        "p99_ms": round(pct(values, 0.99) * 1e3, 2),
        "mean_ms": round(statistics.fmean(values) * 1e3, 2),
        "min_ms": round(min(values) * 1e3, 2),
        "max_ms": round(max(values) * 1e3, 2),
    }


def _connect(address: str) -> socket.socket | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    if s.connect_ex((address, PORT)) not in (0, errno.EINPROGRESS):
        s.close()
        return None
    return s


@dataclass
class Source:
    """A thread living inside one workload's network namespace that probes on request."""

    ref: str
    netns_file: str
    request: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    job: tuple[str, float, dict[str, str], float] | None = None  # mode, t0, {ref: ip}, timeout
    result: dict[str, float] = field(default_factory=dict)
    stop: bool = False

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        fd = os.open(self.netns_file, os.O_RDONLY)
        ok = _libc.setns(fd, CLONE_NEWNET) == 0  # this thread only, for its whole life
        os.close(fd)
        while not self.stop:
            self.request.wait()
            self.request.clear()
            if self.stop or self.job is None:
                break
            mode, t0, targets, timeout = self.job
            self.result = {} if not ok else (
                self._first(t0, targets, timeout, want_open=mode == "open"))
            self.done.set()

    @staticmethod
    def _first(t0: float, targets: dict[str, str], timeout: float,
               want_open: bool) -> dict[str, float]:
        """Per destination, seconds from t0 until the state ``want_open`` is first seen.

        Open: to the first established connection (attempts every millisecond,
        each given 50 ms). Closed: to the start of the first attempt that did not
        connect within 15 ms (attempts every 2 ms) -- an upper bound.
        """
        interval, window = (0.001, 0.05) if want_open else (0.002, 0.015)
        sel = selectors.DefaultSelector()
        out: dict[str, float] = {}
        socks: dict[socket.socket, tuple[str, float]] = {}
        last = 0.0
        try:
            while len(out) < len(targets) and time.monotonic() - t0 < timeout:
                now = time.monotonic()
                if now - last >= interval:
                    last = now
                    for ref, ip in targets.items():
                        if ref not in out:
                            s = _connect(ip)
                            if s is not None:
                                socks[s] = (ref, now)
                                sel.register(s, selectors.EVENT_WRITE)
                for key, _ in sel.select(0.001):
                    done = key.fileobj
                    assert isinstance(done, socket.socket)
                    ref, t = socks.pop(done)
                    sel.unregister(done)
                    connected = done.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                    if connected == want_open and ref not in out:
                        out[ref] = (time.monotonic() if want_open else t) - t0
                    done.close()
                now = time.monotonic()
                for s, (ref, t) in list(socks.items()):
                    if now - t > window:
                        sel.unregister(s)
                        del socks[s]
                        s.close()
                        if not want_open and ref not in out:
                            out[ref] = t - t0
        finally:
            for s in socks:
                s.close()
            sel.close()
        return out


def run_trials(sources: list[Source], ips: dict[str, str], mode: str, t0: float,
               timeout: float) -> dict[tuple[str, str], float]:
    for src in sources:
        src.job = (mode, t0, {r: ip for r, ip in ips.items() if r != src.ref}, timeout)
        src.done.clear()
        src.request.set()
    out: dict[tuple[str, str], float] = {}
    for src in sources:
        src.done.wait(timeout + 5)
        for dst, t in src.result.items():
            out[(src.ref, dst)] = t
    return out


def run_lab(hosts: int, trials: int, timeout: float, datastore: str = "sqlite") -> dict[str, Any]:
    from gingham.datastore import open_datastore
    from gingham.datastore.resources import ResourceStore
    from gingham.lab import lab as labmod
    from gingham.lab import state as labstate
    from gingham.lab import workloads as wlmod
    from gingham.lab.netns import netns_path
    from gingham.model import parse_resource

    name = f"bprop{hosts}x{os.getpid() % 10000}"
    deny = parse_resource({
        "apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny", "namespace": "prop"},
        "spec": {"selector": "all()", "types": ["Ingress"]}})  # fmt: skip
    allow = parse_resource({
        "apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
        "metadata": {"name": "allow-members", "namespace": "prop"},
        "spec": {"selector": "role == 'member'", "types": ["Ingress"],
                 "ingress": [{"action": "Allow", "protocol": "TCP",
                              "source": {"selector": "role == 'member'"},
                              "destination": {"ports": [PORT]}}]}})  # fmt: skip
    out: dict[str, Any] = {"hosts": hosts, "trials": trials, "datastore": datastore}
    sources: list[Source] = []
    t_up = time.monotonic()
    labmod.down(name)
    lab = labmod.up(name, hosts=hosts, datastore=datastore)
    try:
        out["lab_up_seconds"] = round(time.monotonic() - t_up, 1)
        ds = open_datastore(lab.datastore)
        store = ResourceStore(ds)
        store.apply(deny)
        for h in lab.hosts:
            wlmod.add(name, f"prop/w-{h.name}", h.name, {"role": "member"}, [(PORT, "tcp", "")])
        lab = labstate.load(name)
        ips = {ref: wl.ips[0] for ref, wl in lab.workloads.items()}
        host_of = {ref: wl.host for ref, wl in lab.workloads.items()}
        sources = [Source(ref, netns_path(wl.netns)) for ref, wl in lab.workloads.items()]
        for s in sources:
            s.start()
        time.sleep(1.0)
        opens, closes, apply_calls = [], [], []
        per_host: dict[str, list[float]] = {h.name: [] for h in lab.hosts}
        incomplete = 0
        cells = len(ips) * (len(ips) - 1)
        info = store.info_of(allow)
        for _ in range(trials):
            t0 = time.monotonic()
            store.apply(allow)
            apply_calls.append(time.monotonic() - t0)
            got = run_trials(sources, ips, "open", t0, timeout)
            if len(got) < cells:
                incomplete += 1
            else:
                opens.append(max(got.values()))
                for hname in per_host:
                    per_host[hname].append(
                        max(t for (_s, d), t in got.items() if host_of[d] == hname))
            time.sleep(0.2)
            t1 = time.monotonic()
            store.delete(info, "allow-members", "prop")
            got = run_trials(sources, ips, "close", t1, timeout)
            if len(got) == cells:
                closes.append(max(got.values()))
            else:
                incomplete += 1
            time.sleep(0.2)
        out.update({
            "matrix_cells": cells,
            "incomplete_trials": incomplete,
            "apply_call": summary_ms(apply_calls),
            "open": summary_ms(opens),
            "open_ms_all": [round(x * 1e3, 2) for x in opens],
            "close": summary_ms(closes),
            "open_by_destination_host_p50_ms": {
                h: round(statistics.median(v) * 1e3, 2) for h, v in per_host.items() if v},
        })  # fmt: skip
        ds.close()
    finally:
        for s in sources:
            s.stop = True
            s.request.set()
        labmod.down(name)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 trials per host count")
    ap.add_argument("--hosts", default="3,10", help="comma-separated host counts")
    ap.add_argument("--trials", type=int, default=0, help="trials per host count (default 20)")
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--datastore", choices=("sqlite", "etcd"), default="sqlite")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/propagation.py needs root (network namespaces)")
    trials = args.trials or (5 if args.quick else 20)
    result: dict[str, Any] = {
        "bench": "propagation",
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "loadavg_before": list(os.getloadavg())},
        "results": [],
    }  # fmt: skip
    try:
        for h in (int(x) for x in args.hosts.split(",")):
            result["results"].append(run_lab(h, trials, args.timeout, args.datastore))
    finally:
        shutil.rmtree(os.environ["GINGHAM_LAB_RUN_DIR"], ignore_errors=True)
    result["machine"]["loadavg_after"] = list(os.getloadavg())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
