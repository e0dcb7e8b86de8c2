"""CNI plugin latency: gingham-cni (IPAM on sqlite) beside Debian's bridge + host-local.

    .venv/bin/python bench/cni.py [--quick] [--n 100]

Needs root. Each plugin runs in a throwaway "host" network namespace of its
own (removed at the end, also on error), exactly as a runtime runs it: the
configuration on stdin, ``CNI_*`` in the environment, one fresh container
namespace per ADD. The plugin process is started directly inside the host
namespace (``setns`` in the child before ``exec``) so no ``nsenter`` cost is
counted for either plugin. Timed: the wall time of the plugin process, from
spawn to exit (what a runtime waits for). ADDs and DELs interleave the two
plugins so that machine load hits both alike.

gingham's ADD includes IPAM on the datastore (block affinity, a compare-and-
swap claim), the veth plumbing and the WorkloadEndpoint write. Target (issue
5): ADD p50 <= 60 ms. Prints one JSON object.
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

from gingham.lab.netns import add_netns, delete_netns, delete_netns_prefix, netns_path

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


def setup_gingham(prefix: str, work: Path) -> Plugin:
    from gingham.datastore import open_datastore
    from gingham.datastore.resources import ResourceStore
    from gingham.model import parse_resource

    host = add_netns(f"{prefix}-gh")
    url = f"sqlite://{work / 'gingham.db'}"
    with open_datastore(url, create=True) as ds:
        ResourceStore(ds).apply(parse_resource({
            "apiVersion": "projectcalico.org/v3", "kind": "IPPool",
            "metadata": {"name": "bench-pool"},
            "spec": {"cidr": GINGHAM_POOL, "blockSize": 26, "nodeSelector": "all()"},
        }))  # fmt: skip
    conf = {
        "cniVersion": "1.0.0", "name": "benchgh", "type": "gingham", "datastore": url,
        "nodename": "benchhost", "mtu": 1500, "ipam": {"type": "gingham-ipam"},
    }  # fmt: skip
    cni = str(Path(sys.executable).with_name("gingham-cni"))
    return Plugin("gingham", cni, conf, str(Path(sys.executable).parent), host,
                  {"GINGHAM_RUN_DIR": str(work / "run")})


def setup_bridge(prefix: str, work: Path) -> Plugin:
    host = add_netns(f"{prefix}-br")
    conf = {
        "cniVersion": "1.0.0", "name": "benchbr", "type": "bridge", "bridge": "benchbr0",
        "isGateway": True, "ipMasq": False,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": BRIDGE_SUBNET}]],
                 "dataDir": str(work / "host-local")},
    }  # fmt: skip
    return Plugin("bridge+host-local", str(DEBIAN_CNI / "bridge"), conf, str(DEBIAN_CNI), host)


def startup_breakdown(reps: int) -> dict[str, Any]:
    """Where a gingham-cni run's time goes before it does any work, same moment, same load."""
    py = sys.executable
    cases = {
        "interpreter_start": [py, "-c", "pass"],
        "start_and_plugin_imports": [py, "-c", "import gingham.cni.plugin, gingham.cni.plumbing, "
                                     "gingham.ipam, gingham.datastore.sqlite"],
        "cni_version_command": [str(Path(py).with_name("gingham-cni"))],
    }  # fmt: skip
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(reps):
        for name, argv in cases.items():
            t0 = time.perf_counter()
            subprocess.run(argv, env={**os.environ, "CNI_COMMAND": "VERSION"},
                           capture_output=True, check=False)  # fmt: skip
            times[name].append(time.perf_counter() - t0)
    return {k: round(statistics.median(v) * 1e3, 2) for k, v in times.items()} | {"reps": reps}


def run(n: int, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gingham-bench-cni-") as tmp:
        work = Path(tmp)
        plugins: list[Plugin] = []
        containers: list[tuple[Plugin, str, str]] = []
        try:
            plugins.append(setup_gingham(prefix, work))
            if (DEBIAN_CNI / "bridge").exists():
                plugins.append(setup_bridge(prefix, work))
            for i in range(n):
                for p in plugins:
                    ns = add_netns(f"{prefix}-c{len(containers)}")
                    cid = f"bench{os.getpid()}-{p.name[:6]}-{i}"
                    containers.append((p, ns, cid))
                    p.add.append(p.run("ADD", ns, cid))
            for p, ns, cid in containers:
                p.delete.append(p.run("DEL", ns, cid))
            # DEL is idempotent: a second one after the first must succeed too.
            p, ns, cid = containers[0]
            repeat = p.run("DEL", ns, cid)
        finally:
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
        out["gingham"]["repeated_del_ms"] = round(repeat * 1e3, 2)
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
        "target": {"gingham_add_p50_ms": 60.0},
    }  # fmt: skip
    result["results"] = run(n, f"ghbcni{os.getpid()}")
    result["gingham_startup_p50_ms"] = startup_breakdown(max(5, n // 10))
    g = result["results"]["gingham"]["add"]["p50_ms"]
    result["target"]["met"] = g <= 60.0
    result["machine"]["loadavg_after"] = list(os.getloadavg())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
