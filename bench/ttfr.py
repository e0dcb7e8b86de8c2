"""Time to first response: a new workload under policy, from CNI ADD to its first connection.

    .venv/bin/python bench/ttfr.py [--quick] [--workloads 300] [--rate 5] [--policies 100]
                                   [--cni-path agent|direct]

Needs root. Brings up a private 3-host lab (sqlite datastore, real agents,
real nft), its state under a private run directory so that no one else's
"current lab" changes, and removes it at the end (also on error).

Setup: namespace ``ttfr`` with a default-deny policy (ingress and egress),
an egress allow for the client, an ingress allow on TCP 8080 from the client
to every ``role == server`` workload, and filler policies up to ``--policies``
(each selecting one of ten ``app`` values, so every new workload is selected
by about a tenth of them). The client runs on h1; new workloads alternate
between h2 and h3.

For each new workload, at a steady rate: a network namespace, a listening
socket on TCP 8080 opened inside it *before* the ADD (so no server start-up
is counted), then ``gingham-cni ADD`` exactly as the lab runs it. The moment
ADD returns, the bench asks a long-lived helper inside the client's network
namespace (over a pipe) to connect to the new address; the helper opens a new
non-blocking connection every millisecond until one is established and
answers with the CLOCK_MONOTONIC time of success (the clock is shared by all
namespaces). TTFR is that time minus the time ADD returned; ``ttfr_from_add_start``
is that time minus the time ADD was started (what a pod's start waits for).

``--cni-path``: the plugin hands ADD to the host's agent (the default; the
agent programs the new endpoint from its own write, without waiting for its
watch) or does the work itself (``agent: false``).

To see where the time goes, a watcher in the bench process follows the
datastore with the same sqlite watch the agents use and records when each
WorkloadEndpoint write became visible (relative to ADD returning; negative:
before ADD returned).

Targets: from ADD returning (issue 8) p50 <= 10 ms, p99 <= 50 ms; from ADD
start (issue 14) p50 <= 30 ms, p99 <= 60 ms. Prints one JSON object.
"""

from __future__ import annotations

import os

# A private lab run directory: the lab's state and "current lab" file stay out of
# /run/gingham, where other users' labs live. Must be set before gingham.lab loads.
os.environ.setdefault("GINGHAM_LAB_RUN_DIR", f"/run/gingham-bench-{os.getpid()}")

import argparse
import ctypes
import json
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

CLONE_NEWNET = 0x40000000
PORT = 8080
_libc = ctypes.CDLL(None, use_errno=True)

# The client-side helper: stdlib only, started once inside the client's netns.
# Reads "ID ADDRESS PORT TIMEOUT" lines; answers "ID ok|fail T_MONOTONIC ATTEMPTS".
HELPER = r"""
import errno, os, selectors, socket, sys, time
INTERVAL, STALE = 0.001, 0.05
sel = selectors.DefaultSelector()
os.set_blocking(0, False)
sel.register(0, selectors.EVENT_READ, None)
probes = {}
buf = b""
def attempt(p):
    p["attempts"] += 1
    p["last"] = time.monotonic()
    fam = socket.AF_INET6 if ":" in p["addr"] else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setblocking(False)
    code = s.connect_ex((p["addr"], p["port"]))
    if code not in (0, errno.EINPROGRESS):
        s.close()
        return
    p["socks"][s] = p["last"]
    sel.register(s, selectors.EVENT_WRITE, p["id"])
def finish(p, ok, t):
    for s in p["socks"]:
        sel.unregister(s)
        s.close()
    del probes[p["id"]]
    sys.stdout.write(f"{p['id']} {'ok' if ok else 'fail'} {t!r} {p['attempts']}\n")
    sys.stdout.flush()
while True:
    events = sel.select(INTERVAL if probes else None)
    now = time.monotonic()
    for key, _ in events:
        if key.data is None:
            chunk = os.read(0, 65536)
            if not chunk:
                sys.exit(0)
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                pid, addr, port, timeout = line.decode().split()
                p = {"id": pid, "addr": addr, "port": int(port), "deadline": now + float(timeout),
                     "socks": {}, "attempts": 0, "last": 0.0}
                probes[pid] = p
                attempt(p)
            continue
        p = probes.get(key.data)
        if p is None:
            continue
        s = key.fileobj
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
            finish(p, True, now)
        else:
            sel.unregister(s)
            del p["socks"][s]
            s.close()
    now = time.monotonic()
    for p in list(probes.values()):
        if now >= p["deadline"]:
            finish(p, False, now)
            continue
        for s, t in list(p["socks"].items()):
            if now - t > STALE:
                sel.unregister(s)
                del p["socks"][s]
                s.close()
        if now - p["last"] >= INTERVAL:
            attempt(p)
"""


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def summary_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values) * 1e3, 2),
        "p90_ms": round(pct(values, 0.90) * 1e3, 2),
        "p99_ms": round(pct(values, 0.99) * 1e3, 2),
        "mean_ms": round(statistics.fmean(values) * 1e3, 2),
        "min_ms": round(min(values) * 1e3, 2),
        "max_ms": round(max(values) * 1e3, 2),
    }


def by_order(values: list[float], windows: int = 6) -> list[dict[str, Any]]:
    """p50 of consecutive slices in creation order: does TTFR grow as a host fills up?"""
    size = max(1, -(-len(values) // windows))
    return [{"workloads": f"{i}-{min(i + size, len(values)) - 1}",
             "p50_ms": round(statistics.median(values[i:i + size]) * 1e3, 2)}
            for i in range(0, len(values), size)]  # fmt: skip


def listen_in(netns_file: str, port: int) -> socket.socket:
    """A listening TCP socket inside another network namespace (setns in a thread of its own)."""
    result: list[Any] = []

    def work() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open(netns_file, os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", port))
            s.listen(256)  # the kernel completes handshakes; nobody needs to accept
            result.append(s)
        except BaseException as exc:
            result.append(exc)
        finally:
            _libc.setns(own, CLONE_NEWNET)
            os.close(own)
            os.close(fd)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]  # type: ignore[no-any-return]


def agent_metrics(netns_file: str, port: int = 9099) -> dict[str, float]:
    """The apply-latency histogram of the agent inside ``netns_file`` (its /metrics, read in place)."""
    import urllib.request

    out: dict[str, float] = {}

    def work() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open(netns_file, os.O_RDONLY)
        try:
            _libc.setns(fd, CLONE_NEWNET)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                text = r.read().decode()
            for line in text.splitlines():
                if line.startswith("gingham_apply_latency_seconds"):
                    name, _, value = line.rpartition(" ")
                    out[name] = float(value)
        except OSError:
            pass
        finally:
            _libc.setns(own, CLONE_NEWNET)
            os.close(own)
            os.close(fd)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    return out


def metrics_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Count, mean and bucket counts of the agent's apply latency between two scrapes."""
    d = {k: after[k] - before.get(k, 0.0) for k in after}
    count = d.get("gingham_apply_latency_seconds_count", 0.0)
    total = d.get("gingham_apply_latency_seconds_sum", 0.0)
    buckets = {k.split('le="')[1].rstrip('"}'): int(v) for k, v in d.items() if 'le="' in k}
    return {"applies": int(count), "mean_ms": round(total / count * 1e3, 2) if count else None,
            "cumulative_buckets_seconds": buckets}


class Client:
    """The long-lived connect helper inside the client's netns."""

    def __init__(self, netns_file: str) -> None:
        self.proc = subprocess.Popen(
            ["nsenter", f"--net={netns_file}", "--", sys.executable, "-I", "-S", "-c", HELPER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
            start_new_session=True,
        )  # fmt: skip
        self.results: dict[str, tuple[bool, float, int]] = {}
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            pid, status, t, attempts = line.split()
            with self.cond:
                self.results[pid] = (status == "ok", float(t), int(attempts))
                self.cond.notify_all()

    def probe(self, pid: str, address: str, port: int, timeout: float) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{pid} {address} {port} {timeout}\n")
        self.proc.stdin.flush()

    def wait_all(self, ids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not all(i in self.results for i in ids):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.cond.wait(left)

    def close(self) -> None:
        from gingham.lab.netns import stop_process

        if self.proc.stdin:
            self.proc.stdin.close()
        stop_process(self.proc)  # type: ignore[arg-type]


class EndpointWatcher:
    """Records when each WorkloadEndpoint write becomes visible through a datastore watch."""

    def __init__(self, url: str) -> None:
        from gingham.datastore import keys, open_datastore

        self.ds = open_datastore(url)
        self.prefix = keys.resource_prefix("WorkloadEndpoint")
        _items, rev = self.ds.list(self.prefix)
        self.watch = self.ds.watch(self.prefix, start_revision=rev + 1)
        self.seen: dict[str, float] = {}  # "ns/name" -> monotonic time first seen
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop:
            for ev in self.watch.next_batch(0.1):
                now = time.monotonic()
                if ev.value is None:
                    continue
                meta = ev.value.get("metadata") or {}
                spec = ev.value.get("spec") or {}
                ref = f"{meta.get('namespace')}/{spec.get('workload', meta.get('name'))}"
                self.seen.setdefault(ref, now)

    def close(self) -> None:
        self.stop = True
        self.thread.join(2)
        self.watch.close()
        self.ds.close()


def policies(n: int) -> list[dict[str, Any]]:
    ns = "ttfr"
    base: list[dict[str, Any]] = [
        {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
         "metadata": {"name": "default-deny", "namespace": ns},
         "spec": {"selector": "all()", "types": ["Ingress", "Egress"]}},
        {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
         "metadata": {"name": "client-egress", "namespace": ns},
         "spec": {"selector": "role == 'client'", "types": ["Egress"],
                  "egress": [{"action": "Allow"}]}},
        {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
         "metadata": {"name": "allow-client", "namespace": ns},
         "spec": {"selector": "role == 'server'", "types": ["Ingress"],
                  "ingress": [{"action": "Allow", "protocol": "TCP",
                               "source": {"selector": "role == 'client'"},
                               "destination": {"ports": [PORT]}}]}},
    ]  # fmt: skip
    for i in range(max(0, n - len(base))):
        base.append({
            "apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
            "metadata": {"name": f"filler-{i}", "namespace": ns},
            "spec": {"selector": f"app == 'app{i % 10}'", "types": ["Ingress"],
                     "ingress": [{"action": "Allow", "protocol": "TCP",
                                  "source": {"selector": f"team == 'team{i}'"},
                                  "destination": {"ports": [9000 + i]}}]},
        })  # fmt: skip
    return base[:n] if n >= 3 else base


def run(n: int, rate: float, n_policies: int, lab_name: str, timeout: float,
        via_agent: bool = True) -> dict[str, Any]:
    from gingham.datastore import open_datastore
    from gingham.datastore.resources import ResourceStore
    from gingham.lab import lab as labmod
    from gingham.lab import state as labstate
    from gingham.lab import workloads as wlmod
    from gingham.lab.netns import add_netns, netns_path
    from gingham.lab.state import WorkloadState
    from gingham.model import parse_resource

    out: dict[str, Any] = {}
    t0 = time.monotonic()
    labmod.down(lab_name)
    lab = labmod.up(lab_name, hosts=3, datastore="sqlite")
    out["lab_up_seconds"] = round(time.monotonic() - t0, 1)
    sockets: list[socket.socket] = []
    client: Client | None = None
    watcher: EndpointWatcher | None = None
    try:
        ds = open_datastore(lab.datastore)
        store = ResourceStore(ds)
        for doc in policies(n_policies):
            store.apply(parse_resource(doc))
        wlmod.add(lab_name, "ttfr/client", "h1", {"role": "client"})
        lab = labstate.load(lab_name)
        client = Client(netns_path(lab.workload("ttfr/client").netns))
        watcher = EndpointWatcher(lab.datastore)
        time.sleep(1.0)  # let the agents program the policies before the clock starts
        servers = {h: netns_path(lab.host(h).netns) for h in ("h2", "h3")}
        metrics_before = {h: agent_metrics(f) for h, f in servers.items()}

        period = 1.0 / rate
        records: list[dict[str, Any]] = []
        start = time.monotonic()
        for i in range(n):
            due = start + i * period
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            host = "h2" if i % 2 == 0 else "h3"
            name = f"w{i}"
            wl = WorkloadState(namespace="ttfr", name=name, host=host,
                               netns=wlmod.workload_netns(lab.name, "ttfr", name),
                               container_id=f"{lab.name}-ttfr-{name}",
                               labels={"role": "server", "app": f"app{i % 10}"})  # fmt: skip
            add_netns(wl.netns)
            sockets.append(listen_in(netns_path(wl.netns), PORT))
            args = {"namespace": "ttfr", "name": name, "labels": wl.labels}
            conf = wlmod.network_config(lab.datastore, host, args, lab.run_dir, via_agent)
            t_call = time.monotonic()
            result = wlmod.run_cni("ADD", lab, lab.host(host).netns, wl, conf)
            t_add = time.monotonic()
            assert result is not None
            address = result["ips"][0]["address"].split("/")[0]
            client.probe(str(i), address, PORT, timeout)
            records.append({"id": str(i), "ref": f"ttfr/{name}", "host": host,
                            "address": address, "add_called": t_call, "add_returned": t_add})
        client.wait_all([r["id"] for r in records], timeout + 2)
        elapsed = time.monotonic() - start
        out["agent_apply_latency"] = {
            h: metrics_delta(metrics_before[h], agent_metrics(f)) for h, f in servers.items()}
    finally:
        if watcher is not None:
            watcher.close()
        if client is not None:
            client.close()
        for s in sockets:
            s.close()
        labmod.down(lab_name)
        shutil.rmtree(os.environ["GINGHAM_LAB_RUN_DIR"], ignore_errors=True)

    ttfr, adds, seen, failed, attempts, from_seen, from_start = [], [], [], 0, [], [], []
    samples = []
    for r in records:
        res = client.results.get(r["id"])
        adds.append(r["add_returned"] - r["add_called"])
        if r["ref"] in watcher.seen:
            seen.append(watcher.seen[r["ref"]] - r["add_returned"])
        if res is None or not res[0]:
            failed += 1
            continue
        dt = res[1] - r["add_returned"]
        from_start.append(res[1] - r["add_called"])
        if r["ref"] in watcher.seen:
            from_seen.append(res[1] - watcher.seen[r["ref"]])
        ttfr.append(dt)
        attempts.append(res[2])
        samples.append({"i": int(r["id"]), "host": r["host"], "address": r["address"],
                        "ttfr_ms": round(dt * 1e3, 2)})  # fmt: skip
    samples.sort(key=lambda s: -s["ttfr_ms"])
    out.update({
        "workloads": n,
        "rate_per_second": rate,
        "achieved_rate_per_second": round(n / elapsed, 2),
        "policies": n_policies,
        "failed": failed,
        "cni_path": "agent" if via_agent else "direct",
        "ttfr": summary_ms(ttfr),
        "ttfr_ms_all": [round(x * 1e3, 3) for x in ttfr],
        "ttfr_from_add_start": summary_ms(from_start),
        "ttfr_p50_ms_by_order": by_order(ttfr),
        "connect_attempts_p50": statistics.median(attempts) if attempts else None,
        "cni_add": summary_ms(adds),
        "endpoint_visible_in_watch_after_add": summary_ms(seen),
        "first_response_after_endpoint_visible": summary_ms(from_seen),
        "slowest": samples[:5],
        "target": {"p50_ms": 10.0, "p99_ms": 50.0, "from_add_start_p50_ms": 30.0,
                   "from_add_start_p99_ms": 60.0},
    })  # fmt: skip
    if ttfr:
        out["target"]["met"] = (statistics.median(ttfr) <= 0.010 and pct(ttfr, 0.99) <= 0.050)
        out["target"]["from_add_start_met"] = (statistics.median(from_start) <= 0.030
                                               and pct(from_start, 0.99) <= 0.060)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="60 workloads")
    ap.add_argument("--workloads", type=int, default=0, help="new workloads (default 300)")
    ap.add_argument("--rate", type=float, default=4.0, help="new workloads per second")
    ap.add_argument("--policies", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=5.0, help="give up on one workload after")
    ap.add_argument("--cni-path", choices=("agent", "direct"), default="agent",
                    help="ADD through the host's agent, or by the plugin on its own")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/ttfr.py needs root (network namespaces)")
    n = args.workloads or (60 if args.quick else 300)
    result: dict[str, Any] = {
        "bench": "ttfr",
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "loadavg_before": list(os.getloadavg())},
    }  # fmt: skip
    result.update(run(n, args.rate, args.policies, f"bttfr{os.getpid() % 100000}", args.timeout,
                      args.cni_path == "agent"))
    result["machine"]["loadavg_after"] = list(os.getloadavg())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
