"""CNI plugin latency: gingham-cni (IPAM on sqlite) through its node agent and on its own,
beside Debian's bridge + host-local.

    .venv/bin/python bench/cni.py [--quick] [--n 100]

Needs root. Each plugin runs in a throwaway "host" network namespace of its
own (removed at the end, also on error), exactly as a runtime runs it: the
configuration on stdin, ``CNI_*`` in the environment, one fresh container
namespace per ADD. The plugin process is started directly inside the host
namespace (``setns`` in the child before ``exec``) so no ``nsenter`` cost is
counted for any plugin. Timed: the wall time of the plugin process, from
spawn to exit (what a runtime waits for). ADDs and DELs interleave the
plugins so that machine load hits them alike.

Rows:
- ``gingham (agent)``: the program ``gingham cni install`` writes, with the
  configuration it writes (``runDir``): the plugin hands the command to the
  node agent (``gingham node run``, running in the host namespace on its own
  sqlite datastore), which does IPAM, the veth over netlink and the endpoint
  write, and then programs the new endpoint as it would any;
- ``gingham (direct)``: the same program told not to ask an agent (``agent:
  false``): it does all of it itself (``ip``/``nsenter`` processes);
- ``bridge+host-local``: Debian's Go plugins.

Targets (issue 14): ADD p50 <= 25 ms and <= 2.5x bridge+host-local in the same
run, DEL p50 <= 20 ms, through the agent. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gingham.lab.netns import (
    add_netns,
    delete_netns,
    delete_netns_prefix,
    netns_path,
    run_in_netns,
    spawn_in_netns,
    stop_process,
)

CLONE_NEWNET = 0x40000000
DEBIAN_CNI = Path("/usr/lib/cni")
GINGHAM_POOL = "198.18.0.0/16"
BRIDGE_SUBNET = "198.19.0.0/16"
_libc = ctypes.CDLL(None, use_errno=True)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values) * 1e3, 2),
        "p90_ms": round(pct(values, 0.90) * 1e3, 2),
        "p99_ms": round(pct(values, 0.99) * 1e3, 2),
        "mean_ms": round(statistics.fmean(values) * 1e3, 2),
        "min_ms": round(min(values) * 1e3, 2),
        "max_ms": round(max(values) * 1e3, 2),
    }


def _enter(netns: str) -> Callable[[], None]:
    path = netns_path(netns)

    def enter() -> None:  # runs in the forked child, before exec
        fd = os.open(path, os.O_RDONLY)
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            os._exit(121)
        os.close(fd)

    return enter


def invoke(
    binary: str, command: str, host_netns: str, container_netns: str, container_id: str,
    conf: dict[str, Any], cni_path: str, extra_env: dict[str, str] | None = None,
) -> tuple[float, dict[str, Any] | None]:
    """Run one plugin command as a runtime would; (seconds, parsed stdout)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns_path(container_netns),
        "CNI_IFNAME": "eth0",
        "CNI_PATH": cni_path,
        **(extra_env or {}),
    }
    data = json.dumps(conf)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [binary], input=data, capture_output=True, text=True, env=env,
        preexec_fn=_enter(host_netns), timeout=60, check=False,
    )  # fmt: skip
    dt = time.perf_counter() - t0
    out = json.loads(proc.stdout) if proc.stdout.strip() else None
    if proc.returncode != 0:
        raise RuntimeError(f"{binary} {command} failed ({proc.returncode}): {proc.stdout} {proc.stderr}")
    return dt, out


class Plugin:
    def __init__(self, name: str, binary: str, conf: dict[str, Any], cni_path: str,
                 host_netns: str, env: dict[str, str] | None = None) -> None:
        self.name, self.binary, self.conf, self.cni_path = name, binary, conf, cni_path
        self.host_netns, self.env = host_netns, env or {}
        self.add: list[float] = []
        self.delete: list[float] = []

    def run(self, command: str, container_netns: str, cid: str) -> float:
        dt, _ = invoke(self.binary, command, self.host_netns, container_netns, cid,
                       self.conf, self.cni_path, self.env)
        return dt


def _datastore(path: Path) -> str:
    from gingham.datastore import open_datastore
    from gingham.datastore.resources import ResourceStore
    from gingham.model import parse_resource

    url = f"sqlite://{path}"
    with open_datastore(url, create=True) as ds:
        ResourceStore(ds).apply(parse_resource({
            "apiVersion": "projectcalico.org/v3", "kind": "IPPool",
            "metadata": {"name": "bench-pool"},
            "spec": {"cidr": GINGHAM_POOL, "blockSize": 26, "nodeSelector": "all()"},
        }))  # fmt: skip
    return url


def _installed(work: Path) -> str:
    """The plugin program as `gingham cni install` writes it."""
    from gingham.cni.launcher import write_launcher

    (work / "bin").mkdir(exist_ok=True)
    write_launcher(work / "bin" / "gingham", "main")
    return str(work / "bin" / "gingham")


def setup_gingham(prefix: str, work: Path) -> Plugin:
    host = add_netns(f"{prefix}-gh")
    url = _datastore(work / "direct.db")
    conf = {
        "cniVersion": "1.0.0", "name": "benchgh", "type": "gingham", "datastore": url,
        "nodename": "benchhost", "mtu": 1500, "ipam": {"type": "gingham-ipam"},
        "runDir": str(work / "run"), "agent": False,
    }  # fmt: skip
    return Plugin("gingham (direct)", _installed(work), conf, str(Path(sys.executable).parent),
                  host)


class AgentPlugin(Plugin):
    """gingham-cni with a node agent in its host namespace."""

    agent: subprocess.Popen[bytes] | None = None
    log: Path = Path("/nonexistent")

    def close(self) -> None:
        if self.agent is not None:
            stop_process(self.agent, timeout=10)
            self.agent = None

    def agent_side_ms(self, command: str) -> list[float]:
        """How long the agent took per command, from its log ("CNI ADD c: exit 0 in 2.9 ms")."""
        out = []
        for line in (self.log.read_text(errors="replace") if self.log.exists() else "").splitlines():
            if f" CNI {command} " in line and " ms" in line:
                out.append(float(line.rsplit(" in ", 1)[1].split()[0]) / 1e3)
        return out


def setup_gingham_agent(prefix: str, work: Path) -> AgentPlugin:
    host = add_netns(f"{prefix}-ga")
    run_in_netns(host, ["ip", "link", "set", "lo", "up"])
    url = _datastore(work / "agent.db")
    run_dir = work / "run-agent"
    conf = {
        "cniVersion": "1.0.0", "name": "benchga", "type": "gingham", "datastore": url,
        "nodename": "benchagent", "mtu": 1500, "ipam": {"type": "gingham-ipam"},
        "runDir": str(run_dir),
    }  # fmt: skip
    plugin = AgentPlugin("gingham (agent)", _installed(work), conf,
                         str(Path(sys.executable).parent), host)
    plugin.log = work / "agent.log"
    env = dict(os.environ, GINGHAM_RUN_DIR=str(run_dir), GINGHAM_DATASTORE=url)
    with open(plugin.log, "ab") as log:
        plugin.agent = spawn_in_netns(
            host, [str(Path(sys.executable).with_name("gingham")), "node", "run", "--name",
                   "benchagent"], stdout=log, stderr=log, env=env)  # fmt: skip
    sock = run_dir / "benchagent" / "cni.sock"
    deadline = time.monotonic() + 30
    while not sock.exists():
        if plugin.agent.poll() is not None or time.monotonic() > deadline:
            plugin.close()
            raise RuntimeError(f"the agent did not start: {plugin.log.read_text()[-2000:]}")
        time.sleep(0.05)
    time.sleep(1.0)  # its first snapshot and dataplane sync, before the clock starts
    return plugin


def setup_bridge(prefix: str, work: Path) -> Plugin:
    host = add_netns(f"{prefix}-br")
    conf = {
        "cniVersion": "1.0.0", "name": "benchbr", "type": "bridge", "bridge": "benchbr0",
        "isGateway": True, "ipMasq": False,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": BRIDGE_SUBNET}]],
                 "dataDir": str(work / "host-local")},
    }  # fmt: skip
    return Plugin("bridge+host-local", str(DEBIAN_CNI / "bridge"), conf, str(DEBIAN_CNI), host)


def startup_breakdown(reps: int, installed: str) -> dict[str, Any]:
    """Where a gingham-cni run's time goes before it does any work, same moment, same load."""
    py = sys.executable
    src = str(Path(__file__).resolve().parent.parent / "src")
    cases = {
        "interpreter_start": [py, "-c", "pass"],
        "interpreter_start_without_site": [py, "-I", "-S", "-c", "pass"],
        "thin_client_imports": [py, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {src!r}); "
                                "import gingham.cni.entry, gingham.cni.client"],
        "direct_path_imports": [py, "-c", "import gingham.cni.plugin, gingham.cni.plumbing, "
                                "gingham.ipam, gingham.datastore.sqlite"],
        "cni_version_command": [installed],
    }  # fmt: skip
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(reps):
        for name, argv in cases.items():
            t0 = time.perf_counter()
            subprocess.run(argv, env={**os.environ, "CNI_COMMAND": "VERSION"},
                           capture_output=True, check=False)  # fmt: skip
            times[name].append(time.perf_counter() - t0)
    return {k: round(statistics.median(v) * 1e3, 2) for k, v in times.items()} | {"reps": reps}


STAGES = {  # what the agent does for an ADD, in order, and where it is timed
    "netconf.parse": ("gingham.cni.netconf", "parse"),
    "namespace check": ("gingham.cni.plugin", "_ensure_namespace"),
    "IPAM (earlier attempt, allocation)": ("gingham.cni.plugin", "_addresses"),
    "veth over netlink": ("gingham.cni.veth_netlink", "NetlinkPlumbing.setup"),
    "endpoint write": ("gingham.cni.plugin", "_write_endpoint"),
    "whole command": ("gingham.agent.cni_server", "execute"),
}


def agent_stages(n: int, prefix: str, work: Path) -> dict[str, Any]:
    """The agent's share of an ADD, stage by stage (the same code its CNI socket runs, in
    this process, timed around each stage: a profile without the client and the socket,
    and without the agent's loop reacting to the writes)."""
    import importlib
    import threading

    from gingham.agent.cni_handover import Handover
    from gingham.agent.cni_server import CniServer

    host = add_netns(f"{prefix}-st")
    url = _datastore(work / "stages.db")
    netns = [add_netns(f"{prefix}-cs{i}") for i in range(n)]
    times: dict[str, list[float]] = {k: [] for k in STAGES}
    undo: list[tuple[Any, str, Any]] = []  # (owner, attribute, original)
    for label, (module, name) in STAGES.items():
        owner: Any = importlib.import_module(module)
        attr = name
        if "." in name:
            cls, attr = name.split(".")
            owner = getattr(owner, cls)
        original = getattr(owner, attr)

        def timed(*a: Any, _f: Any = original, _label: str = label, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return _f(*a, **k)
            finally:
                times[_label].append(time.perf_counter() - t0)

        setattr(owner, attr, timed)
        undo.append((owner, attr, original))
    failure: list[BaseException] = []

    def work_in_host() -> None:  # a thread of its own: it enters the host namespace for good
        try:
            _enter(host)()
            server = CniServer("benchstages", url, work / "run-stages", Handover())
            try:
                conf = json.dumps({"cniVersion": "1.0.0", "name": "benchst", "type": "gingham",
                                   "datastore": url, "nodename": "benchstages", "mtu": 1500,
                                   "ipam": {"type": "gingham-ipam"}}).encode()
                for i, ns in enumerate(netns):
                    header = {"command": "ADD", "ipam": "0", "env:CNI_CONTAINERID": f"st{i}",
                              "env:CNI_NETNS": netns_path(ns), "env:CNI_IFNAME": "eth0"}
                    code, out, _ = server.run_here(header, conf)
                    if code != 0:
                        raise RuntimeError(out.decode())
            finally:
                server.close()
        except BaseException as exc:
            failure.append(exc)

    try:
        thread = threading.Thread(target=work_in_host)
        thread.start()
        thread.join()
    finally:
        for owner, attr, original in undo:
            setattr(owner, attr, original)
        delete_netns_prefix(f"{prefix}-cs")
        delete_netns(host)
    if failure:
        raise failure[0]
    return {k: summary_ms(v[1:]) for k, v in times.items() if len(v) > 1}  # the first warms up


def run(n: int, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gingham-bench-cni-") as tmp:
        work = Path(tmp)
        plugins: list[Plugin] = []
        containers: list[tuple[Plugin, str, str]] = []
        try:
            plugins.append(setup_gingham_agent(prefix, work))
            plugins.append(setup_gingham(prefix, work))
            if (DEBIAN_CNI / "bridge").exists():
                plugins.append(setup_bridge(prefix, work))
            for i in range(n):
                for p in plugins:
                    ns = add_netns(f"{prefix}-c{len(containers)}")
                    # gingham names the workload after the first 12 characters of the ID
                    # (no K8S_POD_NAME): each container its own name, so its own veth
                    cid = f"c{i:05d}-{p.name[:6]}-{os.getpid()}"
                    containers.append((p, ns, cid))
                    p.add.append(p.run("ADD", ns, cid))
            for p, ns, cid in containers:
                p.delete.append(p.run("DEL", ns, cid))
            # DEL is idempotent: a second one after the first must succeed too.
            p, ns, cid = containers[0]
            repeat = p.run("DEL", ns, cid)
        finally:
            for p in plugins:
                if isinstance(p, AgentPlugin):
                    agent_side = {c: p.agent_side_ms(c) for c in ("ADD", "DEL")}
                    p.close()
            delete_netns_prefix(f"{prefix}-c")
            for p in plugins:
                delete_netns(p.host_netns)
        for p in plugins:
            size = max(1, -(-len(p.add) // 5))
            out[p.name] = {"add": summary_ms(p.add), "del": summary_ms(p.delete),
                           # does ADD slow down as the host fills with veths?
                           "add_p50_ms_by_order": [
                               round(statistics.median(p.add[i:i + size]) * 1e3, 2)
                               for i in range(0, len(p.add), size)]}  # fmt: skip
            if isinstance(p, AgentPlugin):
                # the agent's own share: request taken (GO) to answer sent
                out[p.name]["agent_side"] = {c.lower(): summary_ms(v)
                                             for c, v in agent_side.items() if v}  # fmt: skip
        out["gingham (agent)"]["repeated_del_ms"] = round(repeat * 1e3, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="30 containers per plugin")
    ap.add_argument("--n", type=int, default=0, help="containers per plugin (default 200)")
    args = ap.parse_args()
    n = args.n or (30 if args.quick else 200)
    result: dict[str, Any] = {
        "bench": "cni",
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "loadavg_before": list(os.getloadavg())},
        "target": {"gingham_add_p50_ms": 25.0, "ratio_to_bridge": 2.5,
                   "gingham_del_p50_ms": 20.0},
    }  # fmt: skip
    result["results"] = run(n, f"ghbcni{os.getpid()}")
    with tempfile.TemporaryDirectory(prefix="gingham-bench-cni-") as tmp:
        result["gingham_startup_p50_ms"] = startup_breakdown(max(5, n // 10),
                                                             _installed(Path(tmp)))
    with tempfile.TemporaryDirectory(prefix="gingham-bench-cni-") as tmp:
        result["agent_add_stages"] = agent_stages(max(10, n // 4), f"ghbst{os.getpid()}",
                                                  Path(tmp))
    rows = result["results"]
    g = rows["gingham (agent)"]
    bridge = rows.get("bridge+host-local")
    ratio = round(g["add"]["p50_ms"] / bridge["add"]["p50_ms"], 2) if bridge else None
    result["target"].update({
        "add_p50_ms": g["add"]["p50_ms"], "del_p50_ms": g["del"]["p50_ms"],
        "add_ratio_to_bridge": ratio,
        "met": (g["add"]["p50_ms"] <= 25.0 and (ratio is None or ratio <= 2.5)
                and g["del"]["p50_ms"] <= 20.0),
    })  # fmt: skip
    result["machine"]["loadavg_after"] = list(os.getloadavg())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
