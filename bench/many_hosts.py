"""Many hosts: a simulated cluster of 1,000 agents driven by one sqlite datastore.

    .venv/bin/python bench/many_hosts.py [--quick] [--hosts 1000] [--workers 4] [--modes direct,fanout]

No root needed. Each simulated agent is the real thing minus the kernel: its
own datastore follower, its own :class:`CalcGraph` for its host and its own
policy dataplane (managers + the apply step's planning) whose driver counts
the nft commands it is given: kernel writes are counted, not made. 1,000
processes do not fit on 2 cores, so ``--workers`` processes each run
hosts/workers agents in one loop (honest about it: agents in a process share
its CPU and take turns; a document is decoded once per process and the
frozen model shared by its agents, which removes 1,000-fold pydantic work
that would only measure pydantic).

Cluster: every host has ``--endpoints`` workload endpoints (labels app/role
in 10 namespaces), ``--policies`` namespaced policies, and one global policy
``bench-change`` selecting every endpoint, whose port the driver changes.

Modes:
- ``direct``: every agent follows the datastore itself (a ``Syncer`` and a
  watch each), polled every 5 ms after a change, backing off to 20 ms when
  idle: the schedule ``SqliteWatch`` had before it slept on the commit
  doorbell (with the doorbell, a poll of an idle sqlite watch is one read of
  a shared word, so the 'reads/s' column counts polls, not database reads);
- ``fanout``: one :class:`gingham.fanout.FanoutServer` process follows the
  datastore once (its watch wakes it; no poll interval) and every agent
  connects to it over a unix socket, woken by its socket.

Measured per mode: time until every agent has its first full sync; while
idle for ``--idle`` seconds, datastore reads (polls) per second and the CPU
of the worker and server processes; then ``--changes`` policy changes, each
applied with ``ResourceStore.apply`` at t0: per change, the time until every
agent has processed it (p50, p99 and max over hosts) and nft commands
counted. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import selectors
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

NAMESPACES = 10
POLL_MIN, POLL_MAX = 0.005, 0.02  # the schedule of gingham.datastore.sqlite.SqliteWatch


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def host_name(i: int) -> str:
    return f"host{i:04d}"


# -- the cluster ---------------------------------------------------------------


def change_policy(port: int) -> dict[str, Any]:
    return {
        "apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
        "metadata": {"name": "bench-change"},
        "spec": {"selector": "all()", "order": 1,
                 "ingress": [{"action": "Allow", "protocol": "TCP",
                              "source": {"selector": "role == 'frontend'"},
                              "destination": {"ports": [port]}}]},
    }  # fmt: skip


def populate(url: str, hosts: int, per_host: int, policies: int, seed: int) -> int:
    """Write the cluster in wire format; returns the number of keys."""
    from gingham.datastore import keys, open_datastore
    from gingham.datastore.resources import ResourceStore
    from gingham.model import parse_resource

    rng = random.Random(seed)
    n = 0
    with open_datastore(url, create=True) as ds:
        for k in range(NAMESPACES):
            ns = f"ns{k}"
            ds.create(keys.resource_key("Namespace", ns), {
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"team": f"t{k % 3}"}}})  # fmt: skip
            n += 1
        i = 0
        for h in range(hosts):
            for e in range(per_host):
                ns = f"ns{i % NAMESPACES}"
                name = f"{host_name(h)}-k8s-w{e}-eth0"
                doc = {
                    "apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
                    "metadata": {"name": name, "namespace": ns, "labels": {
                        "app": f"app{rng.randrange(20)}",
                        "role": rng.choice(["frontend", "backend", "db"])}},
                    "spec": {"orchestrator": "k8s", "workload": f"w{i}", "node": host_name(h),
                             "endpoint": "eth0", "interfaceName": f"gh{i:011x}",
                             "ipNetworks": [f"198.18.{i >> 8}.{i & 255}/32"],
                             "profiles": [f"kns.{ns}"]},
                }  # fmt: skip
                ds.create(keys.resource_key("WorkloadEndpoint", name, ns), doc)
                i += 1
                n += 1
        store = ResourceStore(ds)
        for p in range(policies):
            ns = f"ns{p % NAMESPACES}"
            store.apply(parse_resource({
                "apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
                "metadata": {"name": f"pol{p}", "namespace": ns},
                "spec": {"selector": f"app == 'app{rng.randrange(20)}'",
                         "ingress": [{"action": "Allow", "protocol": "TCP",
                                      "source": {"selector": f"role == '{rng.choice(['frontend', 'backend'])}'"},
                                      "destination": {"ports": [8000 + p]}}]},
            }))  # fmt: skip
            n += 1
        store.apply(parse_resource(change_policy(1)))
        n += 1
    return n


# -- a worker: many agents in one loop -------------------------------------------


class CountingNFT:
    """A kernel that counts the nft commands it is given and keeps nothing.

    After its first (full) apply the apply step plans from what it programmed
    last, never reading the kernel again, so an empty kernel is all it needs.
    """

    family = "inet"
    table = "gingham"

    def __init__(self) -> None:
        self.commands = 0
        self.transactions = 0

    def run(self, tx: Any) -> None:
        self.commands += len(tx)
        self.transactions += 1

    def check(self, tx: Any) -> None:
        pass

    def snapshot(self) -> None:
        return None

    def table_exists(self) -> bool:
        return False

    def delete_table(self) -> bool:
        return False

    def list_chains(self) -> list[Any]:
        return []

    def list_rules(self, chain: str) -> list[Any]:
        return []

    def list_sets(self) -> list[Any]:
        return []

    def list_elements(self, name: str) -> list[Any]:
        return []

    def counters(self) -> list[Any]:
        return []


class SimAgent:
    def __init__(self, host: str, source: Any, decode: Any) -> None:
        from gingham.calc import CalcGraph
        from gingham.dataplane.apply import Applier
        from gingham.dataplane.managers import PolicyDataplane

        self.host = host
        self.source = source
        self.decode = decode
        self.graph = CalcGraph(host)
        self.applier = Applier(CountingNFT(), PolicyDataplane(), fast_elements=False)
        self.synced = False
        self.commands = 0
        self.interval = POLL_MIN
        self.due = 0.0

    def step(self) -> tuple[bool, int]:
        """One poll; (anything processed, nft commands)."""
        from gingham.dataplane.apply import apply_messages

        was = self.source.status.in_sync
        updates = self.source.poll(0)
        if not self.source.status.in_sync:
            return False, 0
        for key, value in updates:
            typed = self.decode(key, value)
            if typed is not None:
                self.graph.on_update(*typed)
        first = not was and not self.synced
        if first:
            self.graph.on_in_sync()
            self.synced = True
        msgs = self.graph.flush()
        cmds = 0
        if msgs or first:
            res = apply_messages(self.applier, msgs)
            cmds = res.commands if res else 0
            self.commands += cmds
        return bool(updates) or first, cmds


def make_decoder() -> Any:
    from gingham.agent.daemon import _not_for_agents
    from gingham.agent.decode import decode as decode_one

    cache: dict[tuple[str, str], Any] = {}

    def decode(key: str, value: Any) -> Any:
        if value is None or _not_for_agents(key):
            return decode_one(key, value)
        # Every agent of a process decoded the same bytes: same key order, same text.
        text = json.dumps(value, separators=(",", ":"))
        hit = cache.get((key, text))
        if hit is None:
            if len(cache) > 100_000:
                cache.clear()
            hit = cache[(key, text)] = decode_one(key, value)
        return hit

    return decode


def worker(url: str, mode: str, sock_path: str, first: int, count: int) -> None:
    from gingham.agent.daemon import _not_for_agents
    from gingham.datastore import keys, open_datastore
    from gingham.datastore.syncer import Syncer
    from gingham.fanout import FanoutClient

    out = sys.stdout
    decode = make_decoder()
    ds = open_datastore(url) if mode == "direct" else None
    agents = []
    for i in range(first, first + count):
        src: Any = (Syncer(ds, keys.ROOT, ignore=_not_for_agents) if ds is not None
                    else FanoutClient(sock_path, retry_interval=0.05))
        agents.append(SimAgent(host_name(i), src, decode))
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ, None)  # stdin closing means stop
    registered: set[int] = set()
    polls, poll_seconds = 0, 0.0
    next_stats = time.monotonic() + 1.0
    stop = False
    while not stop:
        now = time.monotonic()
        if mode == "direct":
            ready = [a for a in agents if a.due <= now]
        else:
            ready = [a for a in agents if a.source.fileno() < 0]  # (re)connect
        for a in ready:
            t0 = time.perf_counter()
            did, cmds = a.step()
            poll_seconds += time.perf_counter() - t0
            polls += 1
            t = time.monotonic()
            if did:
                out.write(f"rev {a.host} {a.source.status.revision} {t!r} {cmds}\n")
                a.interval = POLL_MIN
            else:
                a.interval = min(a.interval * 1.5, POLL_MAX)
            a.due = t + a.interval
            fd = a.source.fileno() if mode == "fanout" else -1
            if fd >= 0 and fd not in registered:
                sel.register(fd, selectors.EVENT_READ, a)
                registered.add(fd)
        if time.monotonic() >= next_stats:
            out.write(f"stats {polls} {poll_seconds!r}\n")
            next_stats = time.monotonic() + 1.0
        out.flush()
        if mode == "direct":
            wait = max(0.0, min(a.due for a in agents) - time.monotonic())
        else:
            wait = 0.05 if any(a.source.fileno() < 0 for a in agents) else 0.2
        for sk, _ in sel.select(min(wait, 0.2)):
            if sk.data is None:
                if not os.read(0, 4096):
                    stop = True
                continue
            a = sk.data
            t0 = time.perf_counter()
            did, cmds = a.step()
            poll_seconds += time.perf_counter() - t0
            polls += 1
            if a.source.fileno() < 0:  # lost; re-register after reconnecting
                sel.unregister(sk.fileobj)
                registered.discard(sk.fd)
            if did:
                out.write(f"rev {a.host} {a.source.status.revision} {time.monotonic()!r} {cmds}\n")
    out.write(f"stats {polls} {poll_seconds!r}\n")
    out.flush()


def server(url: str, sock_path: str) -> None:
    from gingham.agent.daemon import _not_for_agents
    from gingham.datastore import keys, open_datastore
    from gingham.fanout import FanoutServer

    ds = open_datastore(url)
    srv = FanoutServer(ds, keys.ROOT, sock_path, ignore=_not_for_agents)
    stop = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    srv.serve(stop.is_set)
    print(json.dumps({"polls": srv.stats.polls, "frames": srv.stats.frames,
                      "bytes_sent": srv.stats.bytes_sent, "clients": srv.stats.accepted,
                      "disconnected": srv.stats.disconnected,
                      "dropped_as_too_slow": srv.stats.dropped}), flush=True)  # fmt: skip


# -- the driver --------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Fleet:
    """The worker processes and what they report."""

    def __init__(self, url: str, mode: str, sock_path: str, hosts: int, workers: int) -> None:
        self.lock = threading.Condition()
        self.revs: dict[str, list[tuple[int, float, int]]] = {}
        self.polls: dict[int, tuple[int, float]] = {}
        self.procs: list[subprocess.Popen[str]] = []
        per = -(-hosts // workers)
        for w in range(workers):
            first, count = w * per, min(per, hosts - w * per)
            if count <= 0:
                break
            proc = subprocess.Popen(
                [sys.executable, __file__, "--worker", url, mode, sock_path, str(first), str(count)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
            self.procs.append(proc)
            threading.Thread(target=self._read, args=(w, proc), daemon=True).start()

    def _read(self, w: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            parts = line.split()
            with self.lock:
                if parts[0] == "rev":
                    self.revs.setdefault(parts[1], []).append(
                        (int(parts[2]), float(parts[3]), int(parts[4])))
                elif parts[0] == "stats":
                    self.polls[w] = (int(parts[1]), float(parts[2]))
                self.lock.notify_all()

    def wait_revision(self, hosts: list[str], revision: int, timeout: float) -> dict[str, tuple[float, int]]:
        """Per host, the first (time, nft commands) at which it had processed ``revision``."""
        deadline = time.monotonic() + timeout
        next_note = time.monotonic() + 10
        with self.lock:
            while True:
                done = {}
                for h in hosts:
                    for rev, t, cmds in self.revs.get(h, ()):
                        if rev >= revision:
                            done[h] = (t, cmds)
                            break
                if len(done) == len(hosts) or time.monotonic() >= deadline:
                    return done
                if time.monotonic() >= next_note:  # progress on stderr for long runs
                    next_note = time.monotonic() + 10
                    print(f"{len(done)}/{len(hosts)} agents at revision {revision}",
                          file=sys.stderr, flush=True)
                dead = [p.args for p in self.procs if p.poll() is not None]
                if dead:
                    raise RuntimeError(f"a worker exited early: {dead[0]!r}")
                self.lock.wait(min(1.0, deadline - time.monotonic()))

    def total_polls(self) -> tuple[int, float]:
        with self.lock:
            return (sum(p for p, _ in self.polls.values()), sum(s for _, s in self.polls.values()))

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            if p.stdin:
                p.stdin.close()
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def run_mode(mode: str, hosts: int, workers: int, per_host: int, policies: int, changes: int,
             idle: float, seed: int, backend: str = "sqlite") -> dict[str, Any]:
    from gingham.datastore.etcd_process import start_etcd_cluster, stop_etcd_cluster

    with tempfile.TemporaryDirectory(prefix="gingham-bench-many-") as tmp:
        if backend == "sqlite":
            return _run_mode(mode, hosts, workers, per_host, policies, changes, idle, seed,
                             f"sqlite://{Path(tmp) / 'gingham.db'}", tmp, None)
        members = start_etcd_cluster(Path(tmp) / "etcd", 1, die_with_parent=True)
        try:
            proc = members[0].proc
            return _run_mode(mode, hosts, workers, per_host, policies, changes, idle, seed,
                             members[0].datastore_url, tmp, proc.pid if proc else None)
        finally:
            stop_etcd_cluster(members)


def _run_mode(mode: str, hosts: int, workers: int, per_host: int, policies: int, changes: int,
              idle: float, seed: int, url: str, tmp: str, store_pid: int | None) -> dict[str, Any]:
    from gingham.datastore import open_datastore
    from gingham.datastore.resources import ResourceStore
    from gingham.model import parse_resource

    out: dict[str, Any] = {"mode": mode, "hosts": hosts, "workers": workers,
                           "datastore": url.split(":", 1)[0]}
    sock_path = str(Path(tmp) / "fanout.sock")
    t0 = time.monotonic()
    out["keys"] = populate(url, hosts, per_host, policies, seed)
    out["populate_seconds"] = round(time.monotonic() - t0, 2)
    srv: subprocess.Popen[str] | None = None
    fleet: Fleet | None = None
    names = [host_name(i) for i in range(hosts)]
    try:
        if mode == "fanout":
            srv = subprocess.Popen([sys.executable, __file__, "--server", url, sock_path],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            while not Path(sock_path).exists() and srv.poll() is None:
                time.sleep(0.05)
        ds = open_datastore(url)
        rev0 = ds.revision()
        t0 = time.monotonic()
        fleet = Fleet(url, mode, sock_path, hosts, workers)
        synced = fleet.wait_revision(names, rev0, timeout=3600)
        out["first_sync"] = {
            "agents_synced": len(synced),
            "all_seconds": round(max(t for t, _ in synced.values()) - t0, 2) if synced else None,
            "p50_seconds": round(statistics.median(t for t, _ in synced.values()) - t0, 2)
            if synced else None,
        }  # fmt: skip
        time.sleep(1.0)
        p0, s0 = fleet.total_polls()
        c0 = fleet.cpu()
        cs0 = cpu_seconds(srv.pid) if srv else 0.0
        ds0 = cpu_seconds(store_pid) if store_pid else 0.0
        time.sleep(idle)
        time.sleep(1.1)  # the workers' stats lines come once a second
        p1, s1 = fleet.total_polls()
        wall = idle + 1.1
        out["idle"] = {
            "seconds": round(wall, 1),
            "agent_datastore_polls_per_second": round((p1 - p0) / wall, 1),
            "agent_seconds_in_poll_per_second": round((s1 - s0) / wall, 3),
            "worker_cpu_percent": round((fleet.cpu() - c0) / wall * 100, 1),
            "server_cpu_percent": round(((cpu_seconds(srv.pid) if srv else 0.0) - cs0) / wall * 100, 1),
            "etcd_cpu_percent": round((cpu_seconds(store_pid) - ds0) / wall * 100, 1)
            if store_pid else None,
        }  # fmt: skip
        store = ResourceStore(ds)
        conv: list[dict[str, Any]] = []
        for c in range(changes):
            c0 = fleet.cpu()
            cs0 = cpu_seconds(srv.pid) if srv else 0.0
            ds0 = cpu_seconds(store_pid) if store_pid else 0.0
            t0 = time.monotonic()
            store.apply(parse_resource(change_policy(2 + c)))
            rev = ds.revision()
            got = fleet.wait_revision(names, rev, timeout=600)
            lat = [t - t0 for t, _ in got.values()]
            conv.append({
                "converged": len(got),
                "all_ms": round(max(lat) * 1e3, 1) if lat else None,
                # The first host: the fan-out's own delay plus one agent's work.
                "first_ms": round(min(lat) * 1e3, 1) if lat else None,
                "p50_ms": round(statistics.median(lat) * 1e3, 1) if lat else None,
                "p99_ms": round(pct(lat, 0.99) * 1e3, 1) if lat else None,
                "nft_commands_total": sum(cmds for _, cmds in got.values()),
                "worker_cpu_seconds": round(fleet.cpu() - c0, 2),
                "server_cpu_seconds": round((cpu_seconds(srv.pid) if srv else 0.0) - cs0, 3),
                "etcd_cpu_seconds": round(cpu_seconds(store_pid) - ds0, 3) if store_pid else None,
            })  # fmt: skip
            time.sleep(1.0)
        out["changes"] = conv
        alls = [c["all_ms"] for c in conv if c["all_ms"] is not None]
        out["convergence_all_hosts_ms"] = {
            "p50": round(statistics.median(alls), 1) if alls else None,
            "max": max(alls) if alls else None,
        }
        ds.close()
    finally:
        if fleet is not None:
            fleet.stop()
        if srv is not None:
            if srv.stdin:
                srv.stdin.close()
                srv.stdin = None  # communicate() must not flush a closed pipe
            try:
                stats = srv.communicate(timeout=30)[0]
                out["server"] = json.loads(stats.strip().splitlines()[-1]) if stats.strip() else None
            except (subprocess.TimeoutExpired, ValueError):
                srv.kill()
                srv.wait()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 hosts, 2 changes")
    ap.add_argument("--hosts", type=int, default=0, help="simulated hosts (default 1000)")
    ap.add_argument("--workers", type=int, default=4, help="processes the agents are spread over")
    ap.add_argument("--endpoints", type=int, default=1, help="workload endpoints per host")
    ap.add_argument("--policies", type=int, default=20)
    ap.add_argument("--changes", type=int, default=0, help="policy changes (default 5)")
    ap.add_argument("--idle", type=float, default=5.0, help="idle seconds measured")
    ap.add_argument("--modes", default="direct,fanout")
    ap.add_argument("--datastore", default="sqlite", choices=["sqlite", "etcd"],
                    help="etcd: a private single-member etcd 3.4 on loopback")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--server", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        url, mode, sock, first, count = args.worker
        worker(url, mode, sock, int(first), int(count))
        return
    if args.server:
        server(*args.server)
        return
    hosts = args.hosts or (100 if args.quick else 1000)
    changes = args.changes or (2 if args.quick else 5)
    idle = 2.0 if args.quick else args.idle
    result: dict[str, Any] = {
        "bench": "many_hosts",
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "loadavg_before": list(os.getloadavg())},
        "cluster": {"hosts": hosts, "endpoints_per_host": args.endpoints,
                    "policies": args.policies + 1, "datastore": args.datastore},
        "results": [],
    }  # fmt: skip
    for mode in args.modes.split(","):
        result["results"].append(
            run_mode(mode, hosts, args.workers, args.endpoints, args.policies, changes, idle,
                     args.seed, args.datastore))  # fmt: skip
    result["machine"]["loadavg_after"] = list(os.getloadavg())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
