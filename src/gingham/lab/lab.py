"""Bring a lab up and down: fabric, datastore, one agent per host.

Everything a lab starts is recorded in its state file before the next step,
so ``down`` can undo a half-finished ``up`` as well as a healthy lab, and
anything left by a crash is found again by its name prefix.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from gingham.errors import LabError
from gingham.lab import state as labstate
from gingham.lab.fabric import build_fabric, check_lab_name, destroy_fabric
from gingham.lab.netns import delete_netns_prefix, netns_path, spawn_in_netns
from gingham.lab.state import HostState, LabState

DEFAULT_POOL = {
    "apiVersion": "projectcalico.org/v3",
    "kind": "IPPool",
    "metadata": {"name": "default-ipv4-ippool"},
    "spec": {
        "cidr": "198.18.0.0/16",
        "blockSize": 26,
        "vxlanMode": "CrossSubnet",
        "natOutgoing": False,
        "nodeSelector": "all()",
    },
}
HEALTH_PORT = 9099
Progress = Callable[[str], None]


def gingham_binary() -> str:
    return str(Path(sys.executable).with_name("gingham"))


def _start_datastore(lab: str, kind: str, directory: Path) -> tuple[str, list[int]]:
    if kind == "sqlite":
        return f"sqlite://{directory / 'gingham.db'}", []
    if kind != "etcd":
        raise LabError(f"--datastore must be sqlite or etcd, not {kind!r}")
    from gingham.datastore.etcd_process import cluster_url, start_etcd_cluster

    members = start_etcd_cluster(directory / "etcd", 3, unix_socket=True)
    # A short client timeout, so that agents notice a hung cluster within seconds.
    url = cluster_url(members, unix=True) + "?timeout=2"
    return url, [m.proc.pid for m in members if m.proc]


def _apply_default_pool(url: str) -> None:
    from gingham.datastore import open_datastore
    from gingham.datastore.resources import ResourceStore
    from gingham.model import parse_resource

    ds = open_datastore(url)
    try:
        ResourceStore(ds).apply(parse_resource(DEFAULT_POOL))
    finally:
        ds.close()


def _start_agent(lab: LabState, host: HostState) -> int:
    log = open(labstate.lab_dir(lab.name) / f"agent-{host.name}.log", "ab")  # noqa: SIM115
    # The URL may carry credentials: hand it over in the environment, not on a
    # command line every local user can read with ps.
    env = dict(os.environ, GINGHAM_RUN_DIR=lab.run_dir, GINGHAM_DATASTORE=lab.datastore)
    proc = spawn_in_netns(
        host.netns,
        [gingham_binary(), "node", "run", "--name", host.name, "--health-port", str(HEALTH_PORT)],
        stdout=log,
        stderr=log,
        env=env,
    )  # fmt: skip
    log.close()
    return proc.pid


def host_ready(host: HostState) -> bool:
    """The agent's /readyz, asked from inside the host's network namespace."""
    code = (
        "import sys, urllib.request\n"
        "try:\n"
        f"    urllib.request.urlopen('http://127.0.0.1:{HEALTH_PORT}/readyz', timeout=1)\n"
        "except Exception:\n"
        "    sys.exit(1)\n"
    )
    proc = subprocess.run(
        [
            "nsenter",
            f"--net={netns_path(host.netns)}",
            "--",
            sys.executable,
            "-I",
            "-S",
            "-c",
            code,
        ],
        capture_output=True,
        timeout=5,
        check=False,
    )
    return proc.returncode == 0


def wait_ready(lab: LabState, timeout: float = 60.0, progress: Progress | None = None) -> None:
    deadline = time.monotonic() + timeout
    pending = list(lab.hosts)
    while pending:
        pending = [h for h in pending if not host_ready(h)]
        if progress:
            progress(f"{len(lab.hosts) - len(pending)}/{len(lab.hosts)} agents ready")
        if not pending:
            return
        if time.monotonic() > deadline:
            names = ", ".join(h.name for h in pending)
            raise LabError(
                f"agents not ready after {timeout:.0f}s: {names} (see logs in {labstate.lab_dir(lab.name)})"
            )
        time.sleep(0.2)


def up(
    name: str = "default",
    hosts: int = 3,
    datastore: str = "sqlite",
    subnets: int = 1,
    progress: Progress | None = None,
    make_current: bool = True,
) -> LabState:
    """Bring lab ``name`` up; with ``make_current`` plain gingham commands then act on it."""
    check_lab_name(name)
    if os.geteuid() != 0:
        raise LabError("a lab needs root (network namespaces)")
    directory = labstate.lab_dir(name)
    if (directory / "state.json").exists():
        raise LabError(f"lab {name} is already up (gingham lab down --name {name})")
    say = progress or (lambda _msg: None)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        say(f"building fabric: {hosts} hosts on {subnets} subnet(s)")
        fabric = build_fabric(name, hosts=hosts, subnets=subnets)
        lab = LabState(
            name=name,
            datastore="",
            datastore_kind=datastore,
            fabric=fabric.to_dict(),
            hosts=[HostState(h.name, h.netns, h.address, h.subnet) for h in fabric.hosts],
            run_dir=str(directory / "run"),
        )
        labstate.save(lab)
        say(f"starting datastore ({datastore})")
        lab.datastore, lab.etcd_pids = _start_datastore(name, datastore, directory)
        labstate.save(lab)
        _apply_default_pool(lab.datastore)
        for host in lab.hosts:
            say(f"starting agent on {host.name}")
            host.agent_pid = _start_agent(lab, host)
            labstate.save(lab)
        wait_ready(lab, progress=say)
        if make_current:
            labstate.set_current(name)
        return lab
    except BaseException:
        down(name)
        raise


def _wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Reap it if it is our own child (lab up followed by down in one process).
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


def _kill_group(pid: int) -> None:
    if pid <= 0:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        if _wait_gone(pid, 1.0):
            return


def down(name: str) -> list[str]:
    """Remove everything lab ``name`` made; safe to call on a broken or absent lab."""
    check_lab_name(name)
    removed: list[str] = []
    directory = labstate.lab_dir(name)
    try:
        lab: LabState | None = labstate.load(name)
    except LabError:
        lab = None
    if lab is not None:
        for wl in lab.workloads.values():
            _kill_group(wl.listener_pid)
        for host in lab.hosts:
            _kill_group(host.agent_pid)
        for pid in lab.etcd_pids:
            _kill_group(pid)
    removed += delete_netns_prefix(f"gw-{name}-")
    removed += destroy_fabric(name)
    shutil.rmtree(directory, ignore_errors=True)
    if labstate.current_name() == name:
        labstate.set_current(None)
    return removed


def all_labs() -> list[str]:
    root = labstate.labs_dir()
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []


def stop_agent(lab_name: str, host_name: str, sig: int = signal.SIGKILL) -> None:
    """Stop one host's agent abruptly (fault injection); its dataplane stays as it is."""
    with labstate.modify(lab_name) as lab:
        host = lab.host(host_name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(host.agent_pid, sig)
        _wait_gone(host.agent_pid)
        host.agent_pid = 0


def start_agent(lab_name: str, host_name: str, wait: bool = True) -> None:
    """(Re)start one host's agent; with ``wait``, until it reports ready."""
    with labstate.modify(lab_name) as lab:
        host = lab.host(host_name)
        if host.agent_pid:
            raise LabError(f"the agent of {host_name} is running (pid {host.agent_pid})")
        host.agent_pid = _start_agent(lab, host)
    if wait:
        lab = labstate.load(lab_name)
        wait_ready(LabState(**{**lab.__dict__, "hosts": [lab.host(host_name)]}))
