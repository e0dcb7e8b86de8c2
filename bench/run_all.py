"""Run every benchmark, keep their JSON, and write docs/BENCHMARKS.md with plots.

    .venv/bin/python bench/run_all.py [--quick] [--only ttfr,cni] [--report-only]

Each benchmark runs as its own process (``--quick`` passes CI-sized
arguments); its JSON goes to ``bench/out/<name>.json`` (git-ignored) together
with the command, the time it took, the load average before and after and
the exit status. The report (``docs/BENCHMARKS.md``) and the plots
(``docs/bench/*.png``) are then generated from whatever ``bench/out`` holds,
so ``--report-only`` rebuilds them without running anything.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
DOC = ROOT / "docs" / "BENCHMARKS.md"
PLOTS = ROOT / "docs" / "bench"
PY = ".venv/bin/python"

# name -> (full arguments, quick arguments, needs root)
BENCHES: dict[str, tuple[list[str], list[str], bool]] = {
    "ttfr": ([], ["--quick"], True),
    "ttfr_direct": (["--cni-path", "direct"], ["--quick", "--cni-path", "direct"], True),
    "propagation": ([], ["--quick"], True),
    "cni": ([], ["--quick"], True),
    "dataplane_cost": ([], ["--quick"], True),
    "agent_scale": ([], ["--quick"], True),
    "many_hosts": (["--changes", "3", "--idle", "3"], ["--quick"], False),
    "many_hosts_etcd": (["--datastore", "etcd", "--changes", "3", "--idle", "3"],
                        ["--quick", "--datastore", "etcd"], False),
    "fanout_latency": ([], ["--writes", "50"], False),
    "calc": ([], ["--quick"], False),
    "dataplane": ([], ["--quick"], True),
    "nft_change": ([], ["--quick"], True),
    "policy_programming": ([], ["--quick"], True),
    "selector": ([], ["--selectors", "500", "--items", "20000"], False),
    "ipam": ([], ["--backends", "sqlite", "--allocs", "100"], False),
    "datastore": ([], ["--seconds", "1", "--backends", "sqlite"], False),
    "routing": ([], ["--seconds", "2"], True),
    "docker_run": ([], ["--quick"], True),
    "openstack_port": ([], ["--quick"], True),
}
MINE = ("ttfr", "ttfr_direct", "propagation", "cni", "dataplane_cost", "agent_scale", "many_hosts",
        "many_hosts_etcd")
SCRIPTS = {"many_hosts_etcd": "many_hosts",  # a second configuration of one script
           "ttfr_direct": "ttfr"}


def machine() -> dict[str, Any]:
    mem_kb = 0
    model = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nft = shutil.which("nft")
    nft_version = (
        subprocess.run([nft, "--version"], capture_output=True, text=True, check=False).stdout.strip()
        if nft else "absent"
    )  # fmt: skip
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nft": nft_version,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def run_bench(name: str, quick: bool, timeout: float) -> dict[str, Any]:
    full, short, _root = BENCHES[name]
    argv = [PY, f"bench/{SCRIPTS.get(name, name)}.py", *(short if quick else full)]
    meta: dict[str, Any] = {
        "name": name,
        "command": " ".join(argv),
        "quick": quick,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "machine": machine(),
    }
    t0 = time.monotonic()
    try:
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              check=False)  # fmt: skip
        meta["exit"] = proc.returncode
        meta["stderr_tail"] = proc.stderr.strip().splitlines()[-5:]
        try:
            result = json.loads(proc.stdout) if proc.stdout.strip() else None
        except ValueError:
            result = None
            meta["stdout_tail"] = proc.stdout.strip().splitlines()[-5:]
    except subprocess.TimeoutExpired:
        meta["exit"] = "timeout"
        result = None
    meta["seconds"] = round(time.monotonic() - t0, 1)
    meta["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return {"meta": meta, "result": result}


# -- plots -------------------------------------------------------------------------


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_ttfr(res: dict[str, Any], path: Path) -> bool:
    values = res.get("ttfr_ms_all") or []
    if not values:
        return False
    plt = _plt()
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(14, 3.8))
    c.scatter(range(len(values)), values, s=6, color="#4477aa")
    c.set_yscale("log")
    c.set_xlabel("workload, in creation order (alternating h2/h3)")
    c.set_ylabel("TTFR (ms, log)")
    c.set_title("TTFR as the hosts fill up")
    a.hist(values, bins=40, color="#4477aa")
    a.set_xlabel("time to first response (ms)")
    a.set_ylabel("workloads")
    a.set_title(f"TTFR, {len(values)} new workloads")
    s = sorted(values)
    b.plot(s, [i / len(s) for i in range(1, len(s) + 1)], color="#4477aa")
    for x, label in ((10, "p50 target"), (50, "p99 target")):
        b.axvline(x, color="#cc6677", linestyle="--", linewidth=1)
        b.text(x, 0.05, label, rotation=90, color="#cc6677", fontsize=8)
    b.set_xscale("log")
    b.set_xlabel("ms (log)")
    b.set_ylabel("fraction of workloads")
    b.set_title("cumulative distribution")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def plot_propagation(res: dict[str, Any], path: Path) -> bool:
    rows = [r for r in res.get("results", []) if r.get("open_ms_all")]
    if not rows:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.boxplot([r["open_ms_all"] for r in rows])
    ax.set_xticks(range(1, len(rows) + 1), [f"{r['hosts']} hosts" for r in rows])
    ax.set_ylabel("apply -> whole matrix open (ms)")
    ax.set_title("policy propagation")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def plot_agent_scale(res: dict[str, Any], path: Path) -> bool:
    sweeps = res.get("sweeps", {})
    cl = [r for r in sweeps.get("cluster", []) if "updates" in r]
    lo = [r for r in sweeps.get("local", []) if "updates" in r]
    if not cl and not lo:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.9))
    kinds = ("remote_label", "local_label", "policy_edit", "local_add")
    for ax, rows, xkey, title in ((axes[0], cl, "remote_endpoints", "cost vs cluster size"),
                                  (axes[1], lo, "local_endpoints", "cost vs local endpoints")):
        for kind in kinds:
            xs = [r[xkey] for r in rows]
            ax.plot(xs, [r["updates"][kind]["cpu_ms_mean"] for r in rows], marker="o", label=kind)
        ax.set_xlabel(xkey.replace("_", " "))
        ax.set_ylabel("CPU per update (ms, incl. nft)")
        ax.set_title(title)
        if xkey == "remote_endpoints":
            ax.set_xscale("log")
        ax.legend(fontsize=7)
    ax = axes[2]
    for kind in kinds:
        pts = [(r["updates"][k2]["nft_commands_mean"], r["updates"][k2]["cpu_ms_mean"])
               for r in cl + lo for k2 in (kind,)]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], label=kind, s=14)
    ax.set_xlabel("nft commands per update (what it touches)")
    ax.set_ylabel("CPU per update (ms)")
    ax.set_title("cost vs what the update touches")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def plot_many_hosts(res: dict[str, Any], path: Path) -> bool:
    rows = [r for r in res.get("results", []) if r.get("changes")]
    if not rows:
        return False
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    names = [r["mode"] for r in rows]
    a.bar(names, [r["idle"]["agent_datastore_polls_per_second"] for r in rows], color="#4477aa")
    a.set_ylabel("datastore reads / s while idle")
    a.set_title(f"{rows[0]['hosts']} simulated hosts, idle")
    for i, r in enumerate(rows):
        b.scatter([i] * len(r["changes"]), [c["all_ms"] or 0 for c in r["changes"]], color="#cc6677")
    b.set_xticks(range(len(rows)), names)
    b.set_ylabel("policy change -> all hosts (ms)")
    b.set_title("convergence per change")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def plot_cni(res: dict[str, Any], path: Path) -> bool:
    rows = res.get("results") or {}
    if not rows:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    names = list(rows)
    width = 0.2
    for j, (cmd, q) in enumerate((("add", "p50_ms"), ("add", "p99_ms"), ("del", "p50_ms"), ("del", "p99_ms"))):
        ax.bar([i + j * width for i in range(len(names))], [rows[n][cmd][q] for n in names],
               width, label=f"{cmd.upper()} {q[:3]}")  # fmt: skip
    ax.axhline(25, color="#cc6677", linestyle="--", linewidth=1, label="ADD p50 target")
    ax.set_xticks([i + 1.5 * width for i in range(len(names))], names)
    ax.set_ylabel("ms per invocation")
    ax.set_title("CNI plugin latency")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def plot_dataplane_cost(res: dict[str, Any], path: Path) -> bool:
    rows = res.get("results") or {}
    if not rows:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ns = list(rows)
    ax.plot(ns, [rows[n]["throughput_ratio"] for n in ns], marker="o", label="throughput")
    ax.plot(ns, [rows[n]["connection_rate_ratio"] for n in ns], marker="s", label="new connections/s")
    ax.axhline(0.95, color="#cc6677", linestyle="--", linewidth=1, label="95 % target")
    ax.set_xlabel("policies on the receiving workload")
    ax.set_ylabel("ratio to no policy (same run)")
    ax.set_title("dataplane cost of policy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


PLOTTERS: dict[str, Callable[[dict[str, Any], Path], bool]] = {
    "ttfr": plot_ttfr,
    "ttfr_direct": plot_ttfr,
    "propagation": plot_propagation,
    "agent_scale": plot_agent_scale,
    "many_hosts": plot_many_hosts,
    "many_hosts_etcd": plot_many_hosts,
    "cni": plot_cni,
    "dataplane_cost": plot_dataplane_cost,
}

# -- the report ------------------------------------------------------------------


def _load(meta: dict[str, Any]) -> str:
    b, a = meta.get("loadavg_before") or [], meta.get("loadavg_after") or []
    return f"{' / '.join(map(str, b))} before, {' / '.join(map(str, a))} after (1/5/15 min)"


def _fmt(v: Any) -> str:
    return "n/a" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("machine", "python") or k.endswith("_all"):
                continue
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out.append((prefix, obj))
    return out


def _targets(runs: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(what, target, measured, verdict) rows."""
    rows: list[tuple[str, str, str, str]] = []

    def verdict(value: float | None, limit: float, higher_is_better: bool = False) -> str:
        if value is None:
            return "not measured"
        ok = value >= limit if higher_is_better else value <= limit
        if ok:
            return "met"
        if not higher_is_better and value >= 2 * limit:
            return f"missed: {value / limit:.1f}x the target"
        miss = (limit - value) / limit if higher_is_better else (value - limit) / limit
        return f"missed by {miss:.0%}"

    t = (runs.get("ttfr") or {}).get("result") or {}
    tt = t.get("ttfr") or {}
    rows.append(("time to first response p50 (ms)", "<= 10", _fmt(tt.get("p50_ms")),
                 verdict(tt.get("p50_ms"), 10.0)))
    rows.append(("time to first response p99 (ms)", "<= 50", _fmt(tt.get("p99_ms")),
                 verdict(tt.get("p99_ms"), 50.0)))
    fs = t.get("ttfr_from_add_start") or {}
    rows.append(("CNI ADD start -> first response p50 (ms)", "<= 30", _fmt(fs.get("p50_ms")),
                 verdict(fs.get("p50_ms"), 30.0)))
    rows.append(("CNI ADD start -> first response p99 (ms)", "<= 60", _fmt(fs.get("p99_ms")),
                 verdict(fs.get("p99_ms"), 60.0)))
    c = (runs.get("cni") or {}).get("result") or {}
    agent = (c.get("results") or {}).get("gingham (agent)") or {}
    add, dele = agent.get("add") or {}, agent.get("del") or {}
    rows.append(("CNI ADD p50 incl. IPAM, through the agent (ms)", "<= 25",
                 _fmt(add.get("p50_ms")), verdict(add.get("p50_ms"), 25.0)))
    ratio = (c.get("target") or {}).get("add_ratio_to_bridge")
    rows.append(("CNI ADD p50, agent / bridge+host-local same run", "<= 2.5", _fmt(ratio),
                 verdict(ratio, 2.5)))
    rows.append(("CNI DEL p50, through the agent (ms)", "<= 20", _fmt(dele.get("p50_ms")),
                 verdict(dele.get("p50_ms"), 20.0)))
    nc = ((runs.get("nft_change") or {}).get("result") or {}).get("target") or {}
    rows.append(("local endpoint with new policies, 30k remote endpoints (CPU ms)", "<= 5",
                 _fmt(nc.get("measured_ms")), verdict(nc.get("measured_ms"), 5.0)))
    for name in ("dataplane_cost", "policy_programming"):  # issue 18: each bench's own checks
        checks = (((runs.get(name) or {}).get("result") or {}).get("target") or {}).get("checks")
        if not checks:
            rows.append((f"{name} targets", "see section", "n/a", "not measured"))
        for c in checks or ():
            rows.append((c["what"], c["limit"], _fmt(c.get("measured")),
                         "met" if c.get("met") else "missed"))
    cr = ((runs.get("calc") or {}).get("result") or {})
    large = (cr.get("results") or {}).get("large") or {}
    for what, key, limit, higher in (
            ("calc full sync, 100k endpoints / 2k policies (s)", "sync_seconds", 10.0, False),
            ("calc peak RSS at the end of that sync (MB)", "sync_peak_rss_mb", 500.0, False),
            ("endpoint updates/s at 100k", "updates_per_second", 2000.0, True)):
        value = large.get(key)
        rows.append((what, f"{'>=' if higher else '<='} {limit:g}", _fmt(value),
                     verdict(value, limit, higher_is_better=higher)))
    ro = (runs.get("routing") or {}).get("result") or {}
    same = ro.get("vxlan_over_direct_same_path")
    rows.append(("VXLAN / direct routing across the same router, single stream", ">= 0.9",
                 _fmt(same), verdict(same, 0.9, higher_is_better=True)))
    op = ((runs.get("openstack_port") or {}).get("result") or {}).get(
        "port_create_to_first_response") or {}
    for q in ("p50", "p90"):
        rows.append((f"OpenStack port create -> VM first response {q} (ms, Nova's plug "
                     "included)", "none", _fmt(op.get(f"{q}_ms")),
                     "no target" if op else "not measured"))
    return rows


NOTES: dict[str, str] = {
    "ttfr": (
        "What bounds it. `ttfr_from_add_start` (issue 14's measure) is `cni_add` plus what "
        "is left after ADD returns, and `ttfr` (from ADD returning) is about a millisecond: "
        "the host's agent writes the endpoint, hands it to its own loop and programs it "
        "while the plugin still prints its result and exits, so ADD start -> first response "
        "is the ADD itself (see `cni` for what bounds that); `ttfr_direct` is the same run "
        "with the plugin doing the work on its own. `endpoint_visible_in_watch_after_add` "
        "is when the WorkloadEndpoint write became visible to a datastore watch, relative to "
        "ADD returning (negative: before); `first_response_after_endpoint_visible` is the "
        "agent's share (a watch woken by the writer's doorbell, or the CNI server's handover, "
        "calculation, a netlink element batch for an endpoint like an existing one, the "
        "packet); `agent_apply_latency` is the agents' own histogram (event "
        "received -> every plane applied), scraped from their /metrics. A workload whose "
        "address opens a new /26 IPAM block used to wait until every other host had routed "
        "the block (p99 105 ms); agents now claim their next block when fewer than 16 "
        "addresses are left (`IPAM.ensure_spare`), so the block is routed before it is "
        "needed. "
        "History: the first runs of this benchmark (same day) gave p50 270 ms and p99 1.6 s, "
        "growing with every workload; a py-spy profile of an agent then showed 93 % of its "
        "time in `RoutingPlane._program`, run on every IPAM allocation anywhere in the "
        "cluster because a block document counted as a routing change. Commit 160dd75 "
        "(routing inputs dirty only when what routing reads changes; a workload touches only "
        "its own routes) removed that; this report is after it."
    ),
    "agent_scale": (
        "Reading the plot. Left: CPU per update (this process plus its nft children) against "
        "the number of remote endpoints, with local endpoints and policies fixed; middle: "
        "against local endpoints; right: against what the update touched (nft commands). "
        "Updates that only move set or map elements go to the kernel as one netlink batch "
        "without running nft: a remote endpoint's label change, and a new local endpoint "
        "whose policies equal an existing endpoint's (workload chains are shared by "
        "content), both about a millisecond or less at any cluster size. Updates that need a "
        "new chain (a local endpoint whose policies change, a policy's rules) go to the "
        "kernel the same way, as one batch of gingham's own nfnetlink encoding (no `nft` "
        "process, no read of the ruleset; see `nft_change` for the same changes through "
        "`nft -f -`, whose cost grew with the table because nft 1.0.6 reads the whole "
        "ruleset first). Memory follows the cluster: the calculation graph indexes every "
        "endpoint for IP-set membership."
    ),
    "many_hosts": (
        "What bounds it. The agents of a worker process take turns on one core, so "
        "convergence across N agents is bounded below by N x (one agent's CPU for the "
        "change) / cores: it measures this machine's CPU as much as the design. The fan-out's "
        "own share is small: the server follows the datastore on a thread that the watch "
        "wakes (no poll interval; `fanout_latency`: a write reaches a client in about 1 ms, "
        "13 ms with the old 5-20 ms poll), encodes a change once and writes it to 1,000 "
        "sockets in a few milliseconds (the first host has it processed within about 5 ms: "
        "'first host'), and idle agents cost nothing but a ping every 5 s. The rest is the "
        "agents' own work: about 0.3-0.45 ms of CPU per agent and change (the 'worker CPU' "
        "column over 1,000 agents), so 1,000 agents need at least 150-220 ms of two whole "
        "cores, and the driver, the server and other work on the machine share them. "
        "py-spy over 250 simulated agents during policy changes (issue 14): 41 % in the "
        "dataplane's planning of the change (`dataplane.apply.apply_messages`: managers, "
        "rendering the chain, building nft objects), 39 % in the calculation graph "
        "(`CalcGraph.on_update` re-parsing the policy's rules, `flush`), 8 % in the fan-out "
        "client (reading and decoding the frame), 3 % in the simulation's decode cache; "
        "py-spy on the server: under 2 ms of CPU per change for 250 clients, the rest of its "
        "time asleep on the watch. What would move the figure: a cheaper per-agent update of "
        "a changed policy (calc and dataplane), or more cores; each real host has its own. "
        "In `direct` mode every agent follows the datastore itself (its own watch and reads)."
    ),
    "fanout_latency": (
        "A datastore write (sqlite, committed) until a fan-out client has decoded the delta, "
        "writes 50 ms apart so that a polling server would have backed off. Issue 14 "
        "measured 13.4 ms p50 before (the server polled its syncer every 5 ms after a change, "
        "backing off to 20 ms) and 1.2 ms after (the follower thread sleeps on the commit "
        "doorbell and wakes the select loop through a pipe)."
    ),
    "many_hosts_etcd": (
        "The same simulation on a private single-member etcd 3.4 (loopback, JSON gateway). "
        "In `direct` mode every agent has a watch stream of its own (one HTTP stream and one "
        "reader thread each), so here the 'datastore reads/s' column counts the agents' "
        "checks of their local event queues (same 5-20 ms schedule), not requests to etcd; "
        "what the datastore does is the etcd CPU column (idle, and `etcd_cpu_seconds` per "
        "change in the JSON). The agents' calculation still shares 2 cores, which bounds "
        "convergence as in the sqlite run."
    ),
    "nft_change": (
        "Before and after issue 14's 'no process per change', on the same table, the two paths "
        "taking turns. Through `nft -f -` every change pays for nft reading the whole ruleset "
        "first (every chain, rule and set element), so the cost of a local change grew with "
        "the number of remote endpoints in the sets; as gingham's own nfnetlink batch it "
        "does not (the encoder compiles the rule text into nf_tables expressions, byte for "
        "byte what nft sends, checked in tests/integration/dataplane/test_nft_netlink.py). "
        "What remains is mostly Python (the managers, the rule compiler, the batch "
        "encoding) plus about a millisecond of system time for the kernel's commit. "
        "A transaction the encoder does not know goes through `nft -f -` and is counted "
        "(`fallbacks`, `ApplyResult.fallback`)."
    ),
    "dataplane_cost": (
        "Established traffic short-circuits (`ct state established,related accept` first), so "
        "bulk throughput does not depend on the number of policies; single runs vary by "
        "+-20 % on a loaded 2-core machine, so compare the ratios of one run and look at both "
        "of its passes (`runs`). New connections pay for policy once, on their first packet. "
        "A tier with 16 or more policies for an endpoint is compiled (issue 18, "
        "`dataplane/compiled.py`): one `meta l4proto . th dport` verdict-map lookup leads to a "
        "chain holding only the rules that can match that port, so the cost no longer grows "
        "with the number of policies. Before it (same bench, same machine, load 3-5): "
        "connection rate 0.79 / 0.27-0.37 / 0.05-0.09 of no policy with 100 / 1,000 / "
        "5,000 policies, connect p50 0.05 -> 0.105 -> 0.9 ms, every policy a chain jumped to "
        "in order. Ratios above 1 are the machine's noise: the no-policy passes are not "
        "faster in kind. The p99 of a pass follows scheduling on 2 shared cores."
    ),
    "calc": (
        "What bounded it (issue 18, py-spy and tracemalloc): the garbage collector, not "
        "memory: about 530k long-lived tracked objects per sync forced two full collections "
        "of about 3.9 s each; and memory per remote endpoint (a label-postings index, copies "
        "of label dicts, per-item effective labels). Remote endpoints now cost only tuples "
        "of strings in the graph (no model reference, no stored label dict, nothing the "
        "collector tracks), label sets and parent lists are interned, effective labels are "
        "computed when asked, and new IP sets are filled in one batch at the next flush, so "
        "a full sync fills every set once. Before (same day, load 3.7): 9.8 s, 748 MB peak, "
        "11k updates/s; 17-57 s under load 12. Of the peak RSS at the end of the sync, about "
        "405 MB is the bench's own input objects. Left: the validity filter still holds "
        "every key's last valid model (about 3.5 KB per remote endpoint in the agent)."
    ),
    "routing": (
        "`vxlan_over_direct_same_path` compares like with like (issue 18): the same two hosts "
        "on two subnets with the lab's router between them, direct routing (the router "
        "knowing the blocks, as from BGP) against VXLAN, in A B B A order each round; "
        "`_by_cpu` divides iperf3's CPU-seconds per Gbit, which moves less with what other "
        "work leaves of the 2 cores. The old `vxlan_over_direct` (one subnet, no router) is "
        "kept. Encapsulated 60 KB super-packets cross every veth, the bridge and the router "
        "unsplit (GRO and segmentation offloads are on by default), and the VXLAN functions "
        "are about 1 % of CPU samples in a perf profile: VXLAN costs 3-9 % more CPU per "
        "Gbit than direct routing. `vxlan.gingham` is made with `noudpcsum` (an IPv4 outer "
        "checksum of zero, as Calico does; this kernel defaults to on) and IPv6 checksums "
        "kept: on veths it gains nothing measurable, on a real host it avoids software "
        "segmentation by NICs that cannot segment UDP tunnels with outer checksums. Round "
        "ratios range 0.79-1.09 with the load: read the per-round figures."
    ),
    "policy_programming": (
        "What bounds it. Cold: the agent's calculation, rendering 1,000 policy chains and "
        "about 1,000 segment chains of the compiled tier, and one netlink batch (the writes "
        "themselves take 0.1-0.2 s); an agent start adds two interpreter starts. An edit, "
        "py-spy over the agent during 80 edits (idle machine): 40 % the dataplane's planning "
        "(the policy's chain, the tier compiled again from its last compile: only the edited "
        "policy's port ranges are swept again, and the map's elements change by a diff of "
        "about 10 kernel commands), 31 % the kernel's commit of the batch (a map of "
        "concatenated ranges copies its lookup tables on every change), 11 % the "
        "calculation graph, 7 % the watch. Before compiled tiers an edit was 5-12 ms p50 "
        "(0.6 ms of dataplane work) and new connections paid for every policy; the first "
        "compiled version, compiling the whole tier again per edit, gave 14-15 ms p50 and "
        "18.5 ms of agent CPU per edit (now 15). What would move it: a map per protocol "
        "keyed by port alone (an interval tree, no copy per change) and keeping the "
        "segments' elements between edits. Timed with `nft monitor rules` in the host's "
        "namespace (nft 1.0.6's unfiltered monitor crashes printing concatenated range "
        "elements)."
    ),
    "docker_run": (
        "What bounds it. `docker run --rm busybox:gingham true` on a gingham network against "
        "`--network none`, taking turns in one run, one lab host with its agent. The driver's "
        "own calls for one container's life, timed in the plugin (its debug log, a separate "
        "run on this machine): RequestAddress 2.9 ms, CreateEndpoint 2.4-2.9 ms, Join "
        "1.4-1.8 ms, Leave 7.2 ms (deleting the veth), DeleteEndpoint 0.5 ms, ReleaseAddress "
        "0.9 ms: about 16 ms. The rest of the difference is Docker's own work for a network "
        "that is not `none`: the remote-driver round trips, moving and renaming the interface "
        "into the sandbox and back, addresses, routes, /etc/hosts (the field notes measured a "
        "do-nothing probe plugin at about the same cost). `labels_after_run`: from `docker "
        "run -d -l ...` returning until the container's WorkloadEndpoint, with its labels, "
        "is in the datastore; until then the container's traffic is dropped (the endpoint is "
        "pending), so this is the wait a new container has before its first packet."
    ),
    "cni": (
        "What bounds it. Through the agent an ADD is: the plugin's process start (the "
        "interpreter with `-I -S`, what `cni install` writes, and the thin client's imports: "
        "the start-up line above, measured in the same run), one exchange over the agent's "
        "socket, and the agent's share (its own log: GO received -> answer sent). The "
        "agent's work alone, timed stage by stage in-process with nothing else running "
        "(the stage line above), is a few milliseconds (IPAM one sqlite transaction, the "
        "veth about 1 ms of netlink, the endpoint write); in the full run its share is "
        "several times that, because the agent's own loop wakes on each write and programs "
        "the endpoint at the same moment (the interpreter lock and two cores are shared), "
        "and because every netlink change of every process on the machine takes the "
        "kernel's one RTNL lock. So on this 2-core machine, shared with other engineers' "
        "test suites (see the load averages), the figure is bounded by process start-up and "
        "CPU contention, not by the CNI work: a bare interpreter takes 8-12 ms at best and "
        "15-25 ms under this load, most of the 25 ms target by itself. What would move it: "
        "a quieter machine (the fastest ADDs of a run, `min_ms` in the JSON, are what a "
        "quiet moment gives), or a compiled thin client (the Debian Go plugins start in 2-4 "
        "ms; the exchange is a few hundred bytes over a unix socket, `cni/wire.py`), which "
        "would leave the agent's few milliseconds. DEL through the agent takes the veth down "
        "and leaves the kernel's 10-20 ms deletion of it to a reaper thread, so it is the "
        "process start plus a few milliseconds. The direct path (no agent) pays the "
        "interpreter with site-packages, 90-180 ms of imports (the datastore, IPAM and "
        "plumbing modules; pydantic-free) and the `ip`/`nsenter` processes. History: until "
        "2026-12-02 this benchmark gave every container of a gingham row the same workload "
        "name (the plugin names a workload after the first 12 characters of the container "
        "ID), so each ADD first deleted the previous container's veth, a synchronous 10-20 "
        "ms: the 108 ms of issue 14 included it."
    ),
    "propagation": (
        "`open` is exact to about a millisecond (every cell retried every millisecond); "
        "`close` is an upper bound (attempts 2 ms apart, each given 15 ms). The path is: "
        "the writer's commit wakes every host's sqlite watch (a futex doorbell, no poll "
        "interval) -> calculation graph -> one nft transaction per host; the matrix is "
        "complete when the slowest host has applied. A new policy needs a new chain; every "
        "host sends it as one nfnetlink batch (about 0.15 ms in the kernel and 0.7 ms in all "
        "in a quiet namespace, see `nft_change`; it used to be one `nft -f -` run of 10-20 ms "
        "each, all hosts at the same moment, queueing for 2 cores). What bounds it: every "
        "host wakes at the same moment and the hosts' agents, the prober and the other work on "
        "the machine share 2 cores, so N hosts cost about N x (one agent's CPU for the change: "
        "watch read, graph, rendering, batch) of 2 cores; py-spy of an agent under load 14 "
        "found 41 % of its busy time in sending the batch (the kernel's commit, run in the "
        "sending thread), the rest in the watch read, the graph and the renderer. Before "
        "issue 14 (same machine, back to back): 3 hosts 27-28 ms p50. On etcd "
        "(`bench/propagation.py --datastore etcd`, 2026-12-02, load 0.6): 3 hosts 13.5 ms, "
        "10 hosts 43.5 ms p50. "
        "What would move it: one core per host, as real hosts have; a cheaper per-agent "
        "update of a changed policy (re-parse and re-render only the rules that changed)."
    ),
    "openstack_port": (
        "The path: Neutron's API (eventlet WSGI, one process) creates the port in PostgreSQL, "
        "ML2 calls the gingham driver's postcommit hooks and `bind_port`, and the driver "
        "writes the addresses to gingham IPAM and the WorkloadEndpoint to the datastore "
        "before the POST returns (`neutron_create_port`, mostly Neutron's own request "
        "handling and database work). `nova_plug` is the lab's stand-in for Nova and "
        "libvirt (a namespace, a veth named as Nova names the tap, the port's MAC and "
        "address): reported apart, since a real VM's boot is seconds. "
        "`first_response_after_plug` is the host's agent noticing the tap (the endpoint it "
        "programmed already names it; while a workload interface is missing the agent looks "
        "for it every 0.1 s, its loop's wake-up, so about 50 ms on average) and giving it "
        "its route, forwarding and proxy ARP, then the packet. Neutron's own share, measured apart on 2026-12-02 (load 2-3, 12 ports "
        "each): an unbound port 157 ms p50 with no mechanism driver; a port bound to a host "
        "258 ms with no mechanism driver (the binding fails), 439 ms with the gingham "
        "driver; so about 180 ms of a bound create are the driver's binding and writes "
        "(IPAM, endpoint) and the rest is Neutron. No target yet: the issue asks for the "
        "figure."
    ),
}


PROPOSALS = (
    "Many hosts: agents follow the fan-out server now (`node run --fanout`, the lab above "
    "20 hosts); convergence over 1,000 simulated agents is bounded by each agent's own CPU "
    "for a policy change (see the note there). Cheaper per-agent work would move it: "
    "re-parse and re-render only the rules of a policy that changed (gingham/calc/rules.py "
    "`parse_rules`, gingham/dataplane/policy.py `render_rules`), and build fewer nft "
    "objects per planned chain (gingham/dataplane/apply.py `plan`).",
    "CNI: the plugin's process start is most of an ADD through the agent (8-12 ms for a bare "
    "interpreter, more under load; the agent's own share is a few milliseconds): a compiled "
    "thin client speaking the same few hundred bytes over the agent's socket "
    "(gingham/cni/wire.py) would leave the agent's share, as Go plugins start in 2-4 ms.",
    "Propagation across hosts: every host wakes at once and spends its own CPU on the change; "
    "the per-agent work named under many hosts would shorten it on every host.",
    "An edit among 1,000 policies of one compiled tier: the tier is compiled again whole "
    "(gingham/dataplane/compiled.py, about 2 ms) and the endpoint re-rendered over its "
    "chains (about 2 ms); re-sweeping only the edited policy's ports and keeping the "
    "endpoint's chain set across renders would leave the policy's own chain and a few map "
    "elements. An agent start: two interpreter starts before any work.",
)


def _section(name: str, run: dict[str, Any], plot: str | None) -> list[str]:
    meta, res = run.get("meta", {}), run.get("result")
    lines = [f"## {name}", ""]
    lines.append(f"- command: `{meta.get('command')}` (ran {meta.get('started')}, "
                 f"{meta.get('seconds')} s, exit {meta.get('exit')})")
    lines.append(f"- load average: {_load(meta)}")
    if res is None:
        lines += ["", "No result (see `bench/out/" + name + ".json`): "
                  + " / ".join(meta.get("stderr_tail") or []), ""]
        return lines
    lines.append("")
    lines += _figures(name, res)
    if plot:
        lines += ["", f"![{name}]({plot})"]
    note = NOTES.get(name) or NOTES.get(SCRIPTS.get(name, ""))
    if note:
        lines += ["", note]
    lines.append("")
    return lines


def _figures(name: str, res: dict[str, Any]) -> list[str]:
    if name in ("ttfr", "ttfr_direct"):
        keys = ("ttfr", "ttfr_from_add_start", "cni_add", "endpoint_visible_in_watch_after_add",
                "first_response_after_endpoint_visible")
        out = [f"{res.get('workloads')} workloads at {res.get('achieved_rate_per_second')}/s, "
               f"{res.get('policies')} policies, {res.get('failed')} failed, CNI path: "
               f"{res.get('cni_path', 'direct')}.", "",
               "| measure | n | p50 ms | p90 ms | p99 ms | max ms |", "|---|---|---|---|---|---|"]
        for k in keys:
            v = res.get(k) or {}
            out.append(f"| {k} | {_fmt(v.get('n'))} | {_fmt(v.get('p50_ms'))} | "
                       f"{_fmt(v.get('p90_ms'))} | {_fmt(v.get('p99_ms'))} | {_fmt(v.get('max_ms'))} |")
        vals = res.get("ttfr_ms_all") or []
        if vals:
            size = max(1, -(-len(vals) // 6))
            parts = [f"{i}-{min(i + size, len(vals)) - 1}: {sorted(vals[i:i + size])[len(vals[i:i + size]) // 2]:g}"
                     for i in range(0, len(vals), size)]  # fmt: skip
            out += ["", "TTFR p50 (ms) by workloads in creation order: " + "; ".join(parts) + "."]
        for h, m in (res.get("agent_apply_latency") or {}).items():
            out += ["", f"Agent {h}: {m.get('applies')} applies, mean {_fmt(m.get('mean_ms'))} ms "
                    "(datastore event received -> dataplane applied)."]
        return out
    if name == "openstack_port":
        out = [f"{res.get('ports')} ports, {res.get('failed')} without a response; lab up "
               f"{_fmt(res.get('lab_up_seconds'))} s, down {_fmt(res.get('lab_down_seconds'))} s.",
               "", "| measure | n | p50 ms | p90 ms | p99 ms | max ms |",
               "|---|---|---|---|---|---|"]
        for k in ("port_create_to_first_response", "neutron_create_port", "nova_plug",
                  "first_response_after_plug"):
            v = res.get(k) or {}
            out.append(f"| {k} | {_fmt(v.get('n'))} | {_fmt(v.get('p50_ms'))} | "
                       f"{_fmt(v.get('p90_ms'))} | {_fmt(v.get('p99_ms'))} | {_fmt(v.get('max_ms'))} |")
        return out
    if name == "propagation":
        out = ["| hosts | matrix cells | trials | open p50 ms | open p99 ms | close p50 ms | close p99 ms |",
               "|---|---|---|---|---|---|---|"]
        for r in res.get("results", []):
            o, c = r.get("open") or {}, r.get("close") or {}
            out.append(f"| {r.get('hosts')} | {r.get('matrix_cells')} | {r.get('trials')} | "
                       f"{_fmt(o.get('p50_ms'))} | {_fmt(o.get('p99_ms'))} | "
                       f"{_fmt(c.get('p50_ms'))} | {_fmt(c.get('p99_ms'))} |")
        return out
    if name == "cni":
        out = ["| plugin | ADD p50 | ADD p90 | ADD p99 | DEL p50 | DEL p99 | n |",
               "|---|---|---|---|---|---|---|"]
        for p, v in (res.get("results") or {}).items():
            a, d = v["add"], v["del"]
            out.append(f"| {p} | {a['p50_ms']} | {a['p90_ms']} | {a['p99_ms']} | {d['p50_ms']} | "
                       f"{d['p99_ms']} | {a['n']} |")
        out += ["", "(milliseconds per plugin invocation, spawn to exit)"]
        for p, v in (res.get("results") or {}).items():
            if v.get("add_p50_ms_by_order"):
                out += ["", f"{p}: ADD p50 by fifths of the run, in order: "
                        f"{', '.join(map(str, v['add_p50_ms_by_order']))} ms."]
        for p, v in (res.get("results") or {}).items():
            side = v.get("agent_side") or {}
            if side:
                out += ["", f"{p}: the agent's own share (GO received -> answer sent), p50 / p90: "
                        + "; ".join(f"{c.upper()} {s.get('p50_ms')} / {s.get('p90_ms')} ms"
                                    for c, s in side.items()) + "."]
        st = res.get("agent_add_stages") or {}
        if st:
            out += ["", "The agent's ADD in-process, p50 ms by stage: " + ", ".join(
                f"{k} {v.get('p50_ms')}" for k, v in st.items()) + "."]
        su = res.get("gingham_startup_p50_ms")
        if su:
            out += ["", "Start-up cost in the same run, p50 ms: " + ", ".join(
                f"{k.replace('_', ' ')} {v}" for k, v in su.items() if k != "reps") + "."]
        return out
    if name == "dataplane_cost":
        out = ["| policies | Gbit/s | new connections/s | connect p50 ms | connect p99 ms | "
               "throughput ratio | connection-rate ratio | p99 ratio |",
               "|---|---|---|---|---|---|---|---|"]
        for n, v in (res.get("results") or {}).items():
            out.append(f"| {n} | {v['gbit_per_second']} | {v['connections_per_second']} | "
                       f"{_fmt(v.get('connect_p50_ms'))} | {_fmt(v.get('connect_p99_ms'))} | "
                       f"{v['throughput_ratio']} | {v['connection_rate_ratio']} | "
                       f"{_fmt(v.get('connect_p99_ratio'))} |")
        return out
    if name == "agent_scale":
        out = ["| sweep | local | remote | policies | full sync s | RSS MB | update | p50 ms | "
               "nft apply p50 ms | CPU ms | messages | nft cmds |",
               "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for sweep, rows in (res.get("sweeps") or {}).items():
            for r in rows:
                if "updates" not in r:
                    out.append(f"| {sweep} | {r.get('size')} | error: {' '.join(r.get('error', []))[-120:]} |")
                    continue
                for kind, u in r["updates"].items():
                    out.append(f"| {sweep} | {r['local_endpoints']} | {r['remote_endpoints']} | "
                               f"{r['policies']} | {r['full_sync']['seconds']} | "
                               f"{r['rss_mb']['synced']} | {kind} | {u['p50_ms']} | "
                               f"{u.get('apply_ms_p50')} | {u['cpu_ms_mean']} | "
                               f"{u['messages_mean']} | {u['nft_commands_mean']} |")
        return out
    if name == "nft_change":
        out = ["| remote endpoints | policies | change | nft -f - wall p50 ms | p99 | CPU ms "
               "| netlink wall p50 ms | p99 | CPU ms | fallbacks |",
               "|---|---|---|---|---|---|---|---|---|---|"]
        for r in res.get("sizes", []):
            fs = r.get("full_sync") or {}
            out.append(f"| {r['remote_endpoints']} | {r['policies']} | full sync "
                       f"({r['local_endpoints']} local) | {_fmt((fs.get('nft') or {}).get('seconds'))} s"
                       f" | | {_fmt((fs.get('nft') or {}).get('cpu_seconds'))} s | "
                       f"{_fmt((fs.get('netlink') or {}).get('seconds'))} s | | "
                       f"{_fmt((fs.get('netlink') or {}).get('cpu_seconds'))} s | |")
            for kind, v in (r.get("changes") or {}).items():
                a, b = v.get("nft") or {}, v.get("netlink") or {}
                out.append(f"| {r['remote_endpoints']} | {r['policies']} | {kind} | "
                           f"{_fmt(a.get('wall_p50_ms'))} | {_fmt(a.get('wall_p99_ms'))} | "
                           f"{_fmt(a.get('cpu_mean_ms'))} | {_fmt(b.get('wall_p50_ms'))} | "
                           f"{_fmt(b.get('wall_p99_ms'))} | {_fmt(b.get('cpu_mean_ms'))} | "
                           f"{_fmt(b.get('fallbacks'))} |")
        out += ["", "(per apply: from the message handed to the managers to the kernel having "
                "committed; CPU is this process plus its nft children, mean)"]
        return out
    if name.startswith("many_hosts"):
        cl = res.get("cluster") or {}
        out = [f"Cluster: {cl.get('hosts')} hosts, {cl.get('endpoints_per_host')} endpoint(s) per "
               f"host, {cl.get('policies')} policies, datastore {cl.get('datastore')}.", "",
               "| mode | workers | first sync, all agents s | idle datastore reads/s | idle worker CPU % "
               "| idle server CPU % | idle etcd CPU % | change -> all hosts p50 ms | max ms | per-host p50 ms "
               "| first host p50 ms | worker CPU s per change |",
               "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in res.get("results", []):
            i, f = r.get("idle") or {}, r.get("first_sync") or {}
            ch = r.get("changes") or []
            p50h = [c["p50_ms"] for c in ch if c.get("p50_ms") is not None]
            conv = r.get("convergence_all_hosts_ms") or {}
            first = sorted(c["first_ms"] for c in ch if c.get("first_ms") is not None)
            cpu = sorted(c["worker_cpu_seconds"] for c in ch if c.get("worker_cpu_seconds") is not None)
            out.append(f"| {r['mode']} | {r['workers']} | {_fmt(f.get('all_seconds'))} | "
                       f"{_fmt(i.get('agent_datastore_polls_per_second'))} | "
                       f"{_fmt(i.get('worker_cpu_percent'))} | {_fmt(i.get('server_cpu_percent'))} | "
                       f"{_fmt(i.get('etcd_cpu_percent'))} | "
                       f"{_fmt(conv.get('p50'))} | {_fmt(conv.get('max'))} | "
                       f"{_fmt(sorted(p50h)[len(p50h) // 2] if p50h else None)} | "
                       f"{_fmt(first[len(first) // 2] if first else None)} | "
                       f"{_fmt(cpu[len(cpu) // 2] if cpu else None)} |")
        return out
    flat = _flatten(res)
    out = ["| figure | value |", "|---|---|"]
    out += [f"| {k} | {_fmt(v)} |" for k, v in flat[:40]]
    if len(flat) > 40:
        out.append(f"| ... | {len(flat) - 40} more in bench/out/{name}.json |")
    return out


def render(runs: dict[str, dict[str, Any]], plots: dict[str, str], now: dict[str, Any]) -> str:
    ms = [r["meta"]["machine"] for r in runs.values() if r.get("meta", {}).get("machine")]
    m = ms[0] if ms else now
    quick = {bool(r.get("meta", {}).get("quick")) for r in runs.values()}
    lines = [
        "# Benchmarks",
        "",
        "Generated by `bench/run_all.py` (`make bench`; `make bench-quick` for CI-sized runs) "
        "from the JSON in `bench/out/`. Do not edit by hand: rerun it. Every benchmark prints "
        "one JSON object and can be run alone with the command given in its section.",
        "",
        f"Runs: {'quick' if quick == {True} else 'full' if quick == {False} else 'mixed quick/full'}.",
        "",
        "## Machine",
        "",
        f"- {m.get('nproc')} CPUs ({m.get('cpu_model') or 'unknown model'}), "
        f"{m.get('memory_gib')} GiB, kernel {m.get('kernel')}, Python {m.get('python')}, {m.get('nft')}",
        "- Shared with other engineers running their tests while these figures were taken: the "
        "load average is recorded with every figure. Compare ratios within one run; absolute "
        "latencies on an idle machine are lower.",
        "",
        "## Targets",
        "",
        "| what | target | measured | verdict |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in _targets(runs)]
    lines.append("")
    for name in list(MINE) + [n for n in BENCHES if n not in MINE]:
        if name in runs:
            lines += _section(name, runs[name], plots.get(name))
    lines += ["## What would close the gaps", ""] + [f"- {p}" for p in PROPOSALS] + [""]
    missing = [n for n in BENCHES if n not in runs]
    if missing:
        lines += ["## Not run", "", ", ".join(missing), ""]
    return "\n".join(lines)


def load_outputs() -> dict[str, dict[str, Any]]:
    runs = {}
    for name in BENCHES:
        f = OUT / f"{name}.json"
        if f.exists():
            try:
                runs[name] = json.loads(f.read_text())
            except ValueError:
                continue
    return runs


def write_report() -> None:
    runs = load_outputs()
    PLOTS.mkdir(parents=True, exist_ok=True)
    plots: dict[str, str] = {}
    for name, plot in PLOTTERS.items():
        run = runs.get(name)
        if run and run.get("result"):
            target = PLOTS / f"{name}.png"
            try:
                if plot(run["result"], target):
                    plots[name] = f"bench/{target.name}"
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                print(f"plot {name}: {exc}", file=sys.stderr)
    DOC.write_text(render(runs, plots, machine()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CI-sized runs")
    ap.add_argument("--only", default="", help="comma-separated benchmark names")
    ap.add_argument("--report-only", action="store_true", help="regenerate the report from bench/out")
    ap.add_argument("--timeout", type=float, default=0, help="per benchmark (default 600 quick, 3600 full)")
    args = ap.parse_args()
    if not args.report_only:
        names = [n for n in args.only.split(",") if n] or list(BENCHES)
        unknown = [n for n in names if n not in BENCHES]
        if unknown:
            sys.exit(f"unknown benchmark(s): {', '.join(unknown)} (known: {', '.join(BENCHES)})")
        OUT.mkdir(parents=True, exist_ok=True)
        timeout = args.timeout or (600.0 if args.quick else 3600.0)
        for name in names:
            if BENCHES[name][2] and os.geteuid() != 0:
                print(f"{name}: skipped (needs root)", file=sys.stderr)
                continue
            print(f"{name}: running", file=sys.stderr, flush=True)
            run = run_bench(name, args.quick, timeout)
            (OUT / f"{name}.json").write_text(json.dumps(run, indent=2))
            print(f"{name}: exit {run['meta']['exit']} in {run['meta']['seconds']} s",
                  file=sys.stderr, flush=True)  # fmt: skip
    write_report()
    print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
