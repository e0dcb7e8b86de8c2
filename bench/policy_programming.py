"""Policy programming cost: 1,000 policies reaching the kernel from cold, and one edit among them.

    .venv/bin/python bench/policy_programming.py [--quick] [--policies 1000] [--edits 20] [--reps 3]

Needs root. A private 1-host lab (sqlite, the real agent and nft; removed at
the end, also on error) with one workload on h1 that every policy selects.
Policy i allows TCP from 203.0.113.x to port 10000 + i, so each policy's port
stands alone in the host's nft table, whatever the rendering (a rule, a set or
map element, an end of a range).

When the kernel has a change is read from ``nft monitor`` run in the host's
namespace: the kernel multicasts every object of a committed transaction and
then its new generation, so a change is in the kernel at the first ``# new
generation`` line at or after the last port it waits for (each line is
timestamped as it is read; the monitor's own printing is included, so this is
an upper bound). The end state is checked once more with ``nft list table``.

- ``cold_apply``: the host has the workload and no policy; all the policies are
  written at once through the datastore API (transactions of up to
  ``MAX_TXN_KEYS`` keys). Time from the start of the first write until the
  kernel holds every policy's port; ``--reps`` times (the policies are deleted
  in between and the table is waited on until it holds none).
- ``cold_agent_start``: the policies are in the datastore; the agent is stopped,
  the gingham table deleted, then the agent started (its supervisor, as the lab
  starts it). Time from the start until the kernel holds every policy's port:
  interpreter start, datastore read, calculation, rendering and the kernel
  transaction (``first_transaction_ms``: the first kernel transaction after the
  start, in either cold case).
- ``edit``: with all policies programmed, ``--edits`` times one policy (a
  different one each time) gets a new port (``ResourceStore.apply``); time from
  the write until the kernel holds the new port. Each edit waits for the
  previous one and 0.2 s more.

The agent's own apply-latency histogram (datastore event received ->
dataplane applied, from its /metrics) is scraped around each phase and given
next to it (count, mean, buckets): it leaves out the write and the watch, and
its buckets are too coarse for a p99 of a few milliseconds, hence the monitor.
So is the agent's CPU over each phase (``process_cpu_seconds_total``, 10 ms
ticks; per edit: over all edits, the 0.2 s gaps included), which moves less
with the machine's load than the wall times do.

Targets (issue 18): cold (1,000 policies) <= 1 s; one edit among them <= 10 ms
(p50 and p99). Prints one JSON object.
"""

from __future__ import annotations

import os

os.environ.setdefault("GINGHAM_LAB_RUN_DIR", f"/run/gingham-bench-{os.getpid()}")

import argparse
import json
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from dataplane_cost import ports_in, table_text, write_batched  # bench/dataplane_cost.py

BASE_PORT = 10000  # policy i allows BASE_PORT + i
EDIT_PORT = 30000  # edit e gives a policy port EDIT_PORT + e
METRICS_PORT = 9099
_COUNTERS = re.compile(r"packets \d+ bytes \d+")


def policy_doc(i: int, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
        "metadata": {"name": f"prog-{i}", "namespace": "prog"},
        "spec": {"selector": "role == 'server'", "order": i, "types": ["Ingress"],
                 "ingress": [{"action": "Allow", "protocol": "TCP",
                              "source": {"nets": [f"203.0.113.{i % 250}/32"]},
                              "destination": {"ports": [port]}}]},
    }  # fmt: skip


class Monitor:
    """``nft monitor`` in a namespace, every line timestamped as it is read."""

    def __init__(self, netns: str) -> None:
        from gingham.lab.netns import in_netns

        # Rule events only: nft 1.0.6's monitor crashes (SIGSEGV) printing the elements of
        # concatenated ranges (a compiled tier's map), and the ports are in the rules of
        # the policy and segment chains anyway. Events come at the commit, so the last
        # wanted port seen is the transaction that brought it (filtered, the monitor
        # prints no generation lines).
        argv = ["nft", "monitor", "rules"]
        if shutil.which("stdbuf"):
            argv = ["stdbuf", "-oL", *argv]
        self.proc = subprocess.Popen(
            in_netns(netns, argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True,
            errors="replace")  # fmt: skip
        self.lines: list[tuple[float, str]] = []
        self.lost = 0
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            t = time.monotonic()
            with self.cond:
                if "lost" in line.lower() and line.startswith("#"):
                    self.lost += 1
                self.lines.append((t, line))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def mark(self) -> int:
        with self.cond:
            return len(self.lines)

    def wait_ports(self, start: int, wanted: set[int], low: int, high: int,
                   timeout: float) -> dict[str, Any]:
        """From line ``start`` on: when every port of ``wanted`` (in ``[low, high)``) has
        been seen and the transaction that brought the last of them has ended."""
        left = set(wanted)
        i, generations, last_port_t, first_gen_t = start, 0, None, None
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                while i < len(self.lines):
                    t, line = self.lines[i]
                    i += 1
                    if line.startswith("# new generation"):
                        generations += 1
                        first_gen_t = first_gen_t or t
                        if not left:
                            return {"t": t, "last_port_t": last_port_t, "first_gen_t": first_gen_t,
                                    "transactions": generations, "lines": i - start}
                        continue
                    first_gen_t = first_gen_t or t
                    found = ports_in(_COUNTERS.sub("", line), low, high) & left
                    if found:
                        left -= found
                        last_port_t = t
                        if not left:
                            return {"t": t, "last_port_t": t, "first_gen_t": first_gen_t,
                                    "transactions": None, "lines": i - start}
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.proc.poll() is not None:
                    tail = [line[:200] for _, line in self.lines[-3:]]
                    raise RuntimeError(f"nft monitor did not show {len(left)} of "
                                       f"{len(wanted)} ports (e.g. {sorted(left)[:5]}); "
                                       f"exit {self.proc.poll()}, last lines {tail}")
                self.cond.wait(min(remaining, 0.5))

    def close(self) -> None:
        from gingham.lab.netns import stop_process

        stop_process(self.proc)  # type: ignore[arg-type]


def scrape(netns: str) -> dict[str, float]:
    """The agent's apply-latency histogram series and CPU seconds (its /metrics, from
    inside the host)."""
    from gingham.lab.netns import in_netns

    code = ("import urllib.request\n"
            f"print(urllib.request.urlopen('http://127.0.0.1:{METRICS_PORT}/metrics', "
            "timeout=5).read().decode())")  # fmt: skip
    proc = subprocess.run(in_netns(netns, [sys.executable, "-I", "-S", "-c", code]),
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    out: dict[str, float] = {}
    for line in proc.stdout.splitlines():
        if line.startswith(("gingham_apply_latency_seconds", "process_cpu_seconds_total")):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def histogram_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    d = {k: after[k] - before.get(k, 0.0) for k in after}
    cpu = d.get("process_cpu_seconds_total")
    count = d.get("gingham_apply_latency_seconds_count", 0.0)
    total = d.get("gingham_apply_latency_seconds_sum", 0.0)
    buckets = {k.split('le="')[1].rstrip('"}'): int(v) for k, v in d.items() if 'le="' in k}
    return {"applies": int(count), "mean_ms": round(total / count * 1e3, 2) if count else None,
            "cpu_ms": round(cpu * 1e3, 1) if cpu is not None else None,
            "cumulative_buckets_seconds": buckets}


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def summary(ms: list[float]) -> dict[str, Any]:
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 2),
            "p99_ms": round(pct(ms, 0.99), 2), "min_ms": round(min(ms), 2),
            "max_ms": round(max(ms), 2), "all_ms": [round(v, 2) for v in ms]}


def wait_table(netns: str, want: set[int], timeout: float = 120.0) -> float:
    """Poll ``nft list table`` until the policies' ports in it are exactly ``want``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if ports_in(table_text(netns), BASE_PORT, EDIT_PORT + 10000) == want:
            return time.monotonic() - t0
        time.sleep(0.2)
    raise RuntimeError(f"the nft table in {netns} did not come to hold {len(want)} policy ports")


def run(n: int, reps: int, edits: int) -> dict[str, Any]:
    from gingham.datastore import open_datastore
    from gingham.datastore.resources import ResourceStore
    from gingham.lab import lab as labmod
    from gingham.lab import state as labstate
    from gingham.lab import workloads as wlmod
    from gingham.lab.netns import run_in_netns
    from gingham.model import parse_resource

    name = f"bprog{os.getpid() % 100000}"
    labmod.down(name)
    lab = labmod.up(name, hosts=1, datastore="sqlite", make_current=False)
    out: dict[str, Any] = {"policies": n}
    monitor: Monitor | None = None
    try:
        ds = open_datastore(lab.datastore)
        store = ResourceStore(ds)
        wlmod.add(name, "prog/server", "h1", {"role": "server"}, [(80, "tcp", "")])
        h1 = labstate.load(name).host("h1").netns
        time.sleep(1.0)
        monitor = Monitor(h1)
        time.sleep(0.5)  # the monitor has subscribed
        policies = [parse_resource(policy_doc(i, BASE_PORT + i)) for i in range(n)]
        keys = [store.key_of(r) for r in policies]
        ports = {BASE_PORT + i for i in range(n)}
        high = EDIT_PORT + 10000

        cold: list[dict[str, Any]] = []
        for rep in range(reps):
            if rep:
                write_batched(ds, store, [], keys)
                wait_table(h1, set())
                time.sleep(0.5)
            m0 = scrape(h1)
            start = monitor.mark()
            t0 = time.monotonic()
            write = write_batched(ds, store, policies, [])
            seen = monitor.wait_ports(start, ports, BASE_PORT, high, timeout=120)
            cold.append({"ms": round((seen["t"] - t0) * 1e3, 1),
                         "write_ms": round(write * 1e3, 1),
                         "last_port_seen_ms": round((seen["last_port_t"] - t0) * 1e3, 1),
                         "first_transaction_ms": round((seen["first_gen_t"] - t0) * 1e3, 1),
                         "transactions": seen["transactions"], "monitor_lines": seen["lines"],
                         "agent_apply_latency": histogram_delta(m0, scrape(h1)),
                         "loadavg1": os.getloadavg()[0]})  # fmt: skip
            wait_table(h1, ports)
        out["cold_apply"] = {"reps": cold,
                             "p50_ms": statistics.median(c["ms"] for c in cold)}

        # the agent starts with the policies already in the datastore, on an empty table
        labmod.stop_agent(name, "h1", signal.SIGTERM)
        run_in_netns(h1, ["nft", "delete", "table", "inet", "gingham"], check=False)
        time.sleep(0.5)  # the monitor has read the deletion: it is no part of the start
        start = monitor.mark()
        t0 = time.monotonic()
        labmod.start_agent(name, "h1", wait=False)
        seen = monitor.wait_ports(start, ports, BASE_PORT, high, timeout=120)
        out["cold_agent_start"] = {"ms": round((seen["t"] - t0) * 1e3, 1),
                                   "first_transaction_ms": round((seen["first_gen_t"] - t0) * 1e3, 1),
                                   "transactions": seen["transactions"],
                                   "loadavg1": os.getloadavg()[0]}  # fmt: skip
        wait_table(h1, ports)
        labmod.wait_ready(labstate.load(name))
        time.sleep(1.0)

        took: list[float] = []
        detail: list[dict[str, Any]] = []
        m0 = scrape(h1)
        for e in range(edits):
            i = (e * 53 + 7) % n  # a different policy each time (n >= edits, 53 prime)
            res = parse_resource(policy_doc(i, EDIT_PORT + e))
            start = monitor.mark()
            t0 = time.monotonic()
            store.apply(res)
            t_write = time.monotonic()
            seen = monitor.wait_ports(start, {EDIT_PORT + e}, BASE_PORT, high, timeout=30)
            took.append((seen["t"] - t0) * 1e3)
            detail.append({"policy": i, "ms": round(took[-1], 2),
                           "write_ms": round((t_write - t0) * 1e3, 2),
                           "transactions": seen["transactions"]})
            time.sleep(0.2)
        edit_metrics = histogram_delta(m0, scrape(h1))
        want = (ports - {BASE_PORT + (e * 53 + 7) % n for e in range(edits)}) | {
            EDIT_PORT + e for e in range(edits)}
        wait_table(h1, want, timeout=10)
        cpu = edit_metrics["cpu_ms"]
        out["edit"] = {**summary(took), "edits": detail, "agent_apply_latency": edit_metrics,
                       "agent_cpu_ms_per_edit": round(cpu / edits, 2) if cpu is not None else None,
                       "loadavg1": os.getloadavg()[0]}
        out["monitor_lost_events"] = monitor.lost
        ds.close()
    finally:
        if monitor is not None:
            monitor.close()
        labmod.down(name)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="300 policies, 1 rep, 5 edits")
    ap.add_argument("--policies", type=int, default=0, help="policies (default 1000)")
    ap.add_argument("--reps", type=int, default=0, help="cold applies (default 3)")
    ap.add_argument("--edits", type=int, default=0, help="edits (default 20)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/policy_programming.py needs root (network namespaces)")
    n = args.policies or (300 if args.quick else 1000)
    reps = args.reps or (1 if args.quick else 3)
    edits = args.edits or (5 if args.quick else 20)
    if edits > n:
        sys.exit("--edits may not exceed --policies (each edit changes another policy)")
    result: dict[str, Any] = {
        "bench": "policy_programming",
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "loadavg_before": list(os.getloadavg())},
    }  # fmt: skip
    try:
        result["result"] = res = run(n, reps, edits)
    finally:
        shutil.rmtree(os.environ["GINGHAM_LAB_RUN_DIR"], ignore_errors=True)
    cold, start, edit = res["cold_apply"]["p50_ms"], res["cold_agent_start"]["ms"], res["edit"]
    result["target"] = {
        "policies": n,
        "checks": [
            {"what": f"{n} policies written at once -> in the kernel (p50 ms)", "limit": "<= 1000",
             "measured": cold, "met": cold <= 1000},
            {"what": f"agent start with {n} policies stored -> in the kernel (ms)",
             "limit": "<= 1000", "measured": start, "met": start <= 1000},
            {"what": f"one policy edit among {n} -> in the kernel p50 (ms)", "limit": "<= 10",
             "measured": edit["p50_ms"], "met": edit["p50_ms"] <= 10},
            {"what": f"one policy edit among {n} -> in the kernel p99 (ms)", "limit": "<= 10",
             "measured": edit["p99_ms"], "met": edit["p99_ms"] <= 10},
        ],
    }  # fmt: skip
    result["machine"]["loadavg_after"] = list(os.getloadavg())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
