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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gingham.errors import LabError
from gingham.lab import docker as labdocker
from gingham.lab import fanout as labfanout
from gingham.lab import openstack as labopenstack
from gingham.lab import state as labstate
from gingham.lab.fabric import build_fabric, check_lab_name, destroy_fabric
from gingham.lab.netns import delete_netns_prefix, netns_path, spawn_in_netns
from gingham.lab.state import HostState, LabState
from gingham.lab.supervisor import RUNNING, STOP_TIMEOUT, Status, read_status
from gingham.timestamps import rfc3339

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


def _init_datastore(url: str, openstack: bool = False) -> None:
    """Make the lab's datastore (and its cluster ID) and give it the default pool
    (with ``openstack``, also the FelixConfiguration VMs' tap interfaces need).

    The only place in the lab that may create a datastore: everything after
    this, agents included, opens it without ``create`` and so fails loudly if
    it vanished instead of starting an empty one.
    """
    from gingham.datastore import open_datastore
    from gingham.datastore.resources import ResourceStore
    from gingham.model import parse_resource

    ds = open_datastore(url, create=True)
    try:
        pool = labopenstack.default_pool(DEFAULT_POOL) if openstack else DEFAULT_POOL
        ResourceStore(ds).apply(parse_resource(pool))
        if openstack:
            ResourceStore(ds).apply(parse_resource(labopenstack.FELIX_CONFIGURATION))
    finally:
        ds.close()


def _start_supervisor(lab: LabState, host: HostState) -> int:
    """Start the host's supervisor (which starts the agent); its pid."""
    log_path = labstate.agent_log_path(lab.name, host.name)
    status_path = labstate.agent_status_path(lab.name, host.name)
    status_path.unlink(missing_ok=True)  # a new supervisor, a new count
    # The URL may carry credentials: hand it over in the environment, not on a
    # command line every local user can read with ps. GINGHAM_LAB marks every
    # process of the lab, so a test can look for survivors in the process table.
    env = dict(os.environ, GINGHAM_RUN_DIR=lab.run_dir, GINGHAM_DATASTORE=lab.datastore,
               GINGHAM_LAB=lab.name)  # fmt: skip
    agent = [
        gingham_binary(),
        "node",
        "run",
        "--name",
        host.name,
    ]  # no --health-port: FelixConfiguration healthPort may move it (default HEALTH_PORT)
    if lab.fanout:
        agent += ["--fanout", lab.fanout]
    argv = [sys.executable, "-m", "gingham.lab.supervisor", "--status", str(status_path),
            "--log", str(log_path), "--", *agent]  # fmt: skip
    with open(log_path, "ab") as log:
        proc = spawn_in_netns(host.netns, argv, stdout=log, stderr=log, env=env)
    return proc.pid


def agent_status(lab_name: str, host: HostState) -> Status | None:
    """What the host's supervisor last recorded; None if no supervisor ever wrote one."""
    status = read_status(labstate.agent_status_path(lab_name, host.name))
    if status is None or status.supervisor_pid != host.supervisor_pid:
        return None
    return status


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


def _why_not_ready(lab_name: str, host: HostState) -> str:
    status = agent_status(lab_name, host)
    if status is None:
        return f"{host.name} (its supervisor wrote no status)"
    if status.restarts:
        return (f"{host.name} ({status.state}, {status.restarts} restart(s),"
                f" last ended with {status.last_exit})")  # fmt: skip
    return f"{host.name} ({status.state})"


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
            names = ", ".join(_why_not_ready(lab.name, h) for h in pending)
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
    fanout: bool | None = None,
    docker: bool = False,
    docker_plugin: bool = True,
    openstack: bool = False,
    openstack_driver: bool | None = None,
) -> LabState:
    """Bring lab ``name`` up; with ``make_current`` plain gingham commands then act on it;
    ``fanout``: agents read through a fan-out server (None: above ``AUTO_HOSTS`` hosts);
    ``docker``: a Docker daemon on every host (lab/docker.py), with the gingham plugin
    unless ``docker_plugin`` is False (the daemons alone); ``openstack``: PostgreSQL and a
    Neutron server (lab/openstack.py), with the gingham mechanism driver unless
    ``openstack_driver`` is False (None: when installed)."""
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
            started_at=time.time(),
        )
        labstate.save(lab)
        say(f"starting datastore ({datastore})")
        lab.datastore, lab.etcd_pids = _start_datastore(name, datastore, directory)
        lab.openstack = openstack
        labstate.save(lab)
        _init_datastore(lab.datastore, openstack)
        # Neutron (seconds) starts while the agents do; an exception in this block waits
        # for it before ``down`` runs (leaving the pool's block joins its thread).
        with ThreadPoolExecutor(max_workers=1) as pool:
            neutron = pool.submit(labopenstack.start, lab, lambda m: say(f"openstack: {m}"),
                                  openstack_driver) if openstack else None  # fmt: skip
            if labfanout.wanted(hosts, fanout):
                say("starting the fan-out server")
                lab.fanout = str(labfanout.socket_path(name))
                lab.fanout_supervisor_pid = labfanout.start(lab, gingham_binary())
                labstate.save(lab)
            for host in lab.hosts:
                say(f"starting agent on {host.name}")
                host.supervisor_pid = _start_supervisor(lab, host)
                labstate.save(lab)
            if docker:  # while the agents start
                labdocker.start(lab, say, plugin=docker_plugin)
            wait_ready(lab, progress=say)
            if neutron is not None:
                neutron.result()
                labstate.save(lab)
        if make_current:
            labstate.set_current(name)
        return labstate.load(name)  # with the agents' pids, as their supervisors recorded them
    except BaseException:
        down(name)
        raise


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our own child (lab up and down in one process) and ended."""
    if pid <= 0:
        return  # waitpid(0) would collect any child of ours
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


def _kill_group(pid: int) -> None:
    _kill_groups([pid])


def _kill_groups(pids: list[int], grace: float = 1.0) -> None:
    """SIGTERM the process groups, SIGKILL what is left after ``grace``: all at once,
    so a lab with many processes takes one grace period to stop, not one each."""
    pending = [p for p in pids if p > 0]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pending:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)
        deadline = time.monotonic() + grace
        pending = [p for p in pending if not _wait_gone(p, max(deadline - time.monotonic(), 0.05))]
        if not pending:
            return


def _in_netns(pid: int, netns: str) -> bool:
    """Whether ``pid`` is a live process in the host's namespace.

    Pids come from files that may be old: the agent that had this pid may have
    ended long ago and the number gone to someone else. Only a process in the
    lab host's own namespace can be ours. (A zombie has no namespace: False.)
    """
    if pid <= 0:
        return False
    try:
        proc_ns = os.stat(f"/proc/{pid}/ns/net")
        host_ns = os.stat(netns_path(netns))
    except OSError:
        return False
    return (proc_ns.st_dev, proc_ns.st_ino) == (host_ns.st_dev, host_ns.st_ino)


def _stop_supervisors(hosts: list[HostState], sig: int = signal.SIGTERM) -> None:
    """Stop the hosts' supervisors and wait until they are gone.

    On SIGTERM a supervisor stops its agent (SIGTERM, then SIGKILL after
    STOP_TIMEOUT) before it exits; one that does not exit in time, or gets
    ``sig`` = SIGKILL, leaves its agent for the caller to kill.
    """
    pids: list[int] = []
    for host in hosts:
        _reap(host.supervisor_pid)  # killed earlier, still a zombie child of ours
        if _in_netns(host.supervisor_pid, host.netns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(host.supervisor_pid, sig)
            pids.append(host.supervisor_pid)
    deadline = time.monotonic() + STOP_TIMEOUT + 2.0
    for pid in pids:
        if not _wait_gone(pid, max(deadline - time.monotonic(), 0.1)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 2.0)


def down(name: str) -> list[str]:
    """Remove everything lab ``name`` made; safe to call on a broken or absent lab."""
    check_lab_name(name)
    removed: list[str] = []
    directory = labstate.lab_dir(name)
    try:
        lab: LabState | None = labstate.load(name)
    except LabError:
        lab = None
    # Docker daemons while the agents stop (each takes a second or two): a daemon's
    # plugin may still write to the datastore, which stops after both.
    run_dir = lab.run_dir if lab is not None and lab.run_dir else str(directory / "run")
    with ThreadPoolExecutor(max_workers=2) as pool:
        docker_stopped = pool.submit(labdocker.stop, name, lab)
        # Neutron too: its driver writes to the datastore, which stops after it.
        openstack_stopped = pool.submit(labopenstack.stop, run_dir)
        if lab is not None:
            _kill_groups([wl.listener_pid for wl in lab.workloads.values()])
            # Supervisors before agents: a supervisor outliving its agent would start another.
            _stop_supervisors(lab.hosts)
            # An agent whose supervisor was killed (-9) runs on, unsupervised.
            _kill_groups([h.agent_pid for h in lab.hosts if _in_netns(h.agent_pid, h.netns)])
        docker_stopped.result()
        openstack_stopped.result()
    if lab is not None:
        labfanout.stop(lab, _kill_groups, _wait_gone)
        _kill_groups(lab.etcd_pids)
    # The fan-out server lives in no lab namespace: found by its marker, state or not.
    _kill_groups(labfanout.leftovers(name))
    # Whatever is still in a lab namespace (an agent started in the instant its
    # supervisor was killed, before it could record the pid) dies with it.
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
    """Stop one host's agent for good, abruptly (fault injection: the host's agent is gone
    until :func:`start_agent`); its dataplane stays as it is.

    The supervisor goes first (SIGKILL, so it cannot stop the agent gracefully
    or start another), then the agent gets ``sig``.
    """
    with labstate.modify(lab_name) as lab:
        host = lab.host(host_name)
        _stop_supervisors([host], signal.SIGKILL)
        if _in_netns(host.agent_pid, host.netns):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(host.agent_pid, sig)
            _wait_gone(host.agent_pid)
        host.agent_pid = host.supervisor_pid = 0


def start_agent(lab_name: str, host_name: str, wait: bool = True) -> None:
    """(Re)start one host's supervisor, which starts its agent; with ``wait``, until ready."""
    with labstate.modify(lab_name) as lab:
        host = lab.host(host_name)
        if _in_netns(host.supervisor_pid, host.netns):
            raise LabError(
                f"the agent of {host_name} is running under its supervisor (pid {host.supervisor_pid})"
            )
        # Left behind by a supervisor that was killed: two agents on one host
        # would fight over the health port and the dataplane.
        if _in_netns(host.agent_pid, host.netns):
            _kill_group(host.agent_pid)
        host.supervisor_pid = _start_supervisor(lab, host)
        host.agent_pid = 0
    if wait:
        lab = labstate.load(lab_name)
        wait_ready(LabState(**{**lab.__dict__, "hosts": [lab.host(host_name)]}))


def stop_fanout(lab_name: str, sig: int = signal.SIGKILL) -> None:
    """Stop the lab's fan-out server for good, abruptly (fault injection), until
    :func:`start_fanout`: its supervisor first (SIGKILL), then the server gets ``sig``."""
    with labstate.modify(lab_name) as lab:
        if not lab.fanout:
            raise LabError(f"lab {lab_name} has no fan-out server")
        pid = labfanout.server_pid(lab)
        if labfanout.supervised(lab):
            os.kill(lab.fanout_supervisor_pid, signal.SIGKILL)
            _wait_gone(lab.fanout_supervisor_pid)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)
            _wait_gone(pid)
        lab.fanout_supervisor_pid = 0


def start_fanout(lab_name: str) -> None:
    """(Re)start the lab's fan-out supervisor, which starts the server."""
    with labstate.modify(lab_name) as lab:
        if not lab.fanout:
            raise LabError(f"lab {lab_name} has no fan-out server")
        if labfanout.supervised(lab):
            raise LabError(f"the fan-out server of lab {lab_name} is running under its supervisor")
        _kill_groups(labfanout.leftovers(lab_name))  # a server whose supervisor was killed
        lab.fanout_supervisor_pid = labfanout.start(lab, gingham_binary())


def kill_fanout(lab_name: str, sig: int = signal.SIGKILL) -> int:
    """Send ``sig`` to the fan-out server alone, as a crash would; its pid."""
    return labfanout.kill_server(labstate.load(lab_name), sig)


def kill_agent(lab_name: str, host_name: str, sig: int = signal.SIGKILL) -> int:
    """Send ``sig`` to the agent alone, as a crash would (its supervisor restarts it); its pid."""
    lab = labstate.load(lab_name)
    host = lab.host(host_name)
    status = agent_status(lab_name, host)
    if status is None or status.state != RUNNING or not _in_netns(host.agent_pid, host.netns):
        raise LabError(f"the agent of {host_name} is not running under its supervisor")
    os.kill(host.agent_pid, sig)
    return host.agent_pid


def host_report(lab_name: str, host: HostState, lab: LabState | None = None) -> dict[str, Any]:
    """One host for ``lab status``: agent, supervision, readiness, restarts, last exit;
    given ``lab``, also its Docker daemon and plugin (None if the lab has none)."""
    status = agent_status(lab_name, host)
    supervised = _in_netns(host.supervisor_pid, host.netns)
    agent_alive = _in_netns(host.agent_pid, host.netns)
    if supervised:
        state = status.state if status is not None else "starting"
    else:
        state = "unsupervised" if agent_alive else "stopped"
    return {
        "name": host.name,
        "netns": host.netns,
        "address": host.address,
        "agent_pid": host.agent_pid if agent_alive else 0,
        "supervisor_pid": host.supervisor_pid if supervised else 0,
        "state": state,
        "ready": agent_alive and host_ready(host),
        "restarts": status.restarts if status is not None else 0,
        "last_exit": status.last_exit if status is not None else "",
        "last_exit_at": rfc3339(status.last_exit_at)
        if status is not None and status.last_exit_at else None,
        "docker": labdocker.report(lab, host) if lab is not None else None,
    }
