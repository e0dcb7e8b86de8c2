"""A lab's state on disk: ``/run/gingham/lab/<lab>/state.json``, and the current lab.

Every change is a read-modify-write under an exclusive ``flock`` on the lab's
lock file, so parallel ``gingham workload add`` calls do not lose each other's
entries.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gingham.errors import LabError
from gingham.hostfiles import lab_run_dir
from gingham.lab.supervisor import read_status

RUN_DIR = lab_run_dir()


def labs_dir(run_dir: Path = RUN_DIR) -> Path:
    return run_dir / "lab"


def lab_dir(name: str, run_dir: Path = RUN_DIR) -> Path:
    return labs_dir(run_dir) / name


def current_file(run_dir: Path = RUN_DIR) -> Path:
    return run_dir / "current-lab"


def agent_log_path(lab: str, host: str, run_dir: Path = RUN_DIR) -> Path:
    """The agent's output and its supervisor's notes, appended across restarts."""
    return lab_dir(lab, run_dir) / f"agent-{host}.log"


def agent_status_path(lab: str, host: str, run_dir: Path = RUN_DIR) -> Path:
    """Written by the host's supervisor only (see ``supervisor.py``)."""
    return lab_dir(lab, run_dir) / f"agent-{host}.status.json"


@dataclass
class HostState:
    name: str
    netns: str
    address: str
    subnet: str
    # The current agent as its supervisor last recorded it (``load`` refreshes it).
    agent_pid: int = 0
    supervisor_pid: int = 0
    # With ``lab up --docker`` (lab/docker.py): the host's Docker daemon and its socket,
    # the supervisor of its gingham plugin and the plugin's socket.
    docker_pid: int = 0
    docker_socket: str = ""
    plugin_supervisor_pid: int = 0
    plugin_socket: str = ""


@dataclass
class WorkloadState:
    namespace: str
    name: str
    host: str
    netns: str
    container_id: str
    ips: list[str] = field(default_factory=list)
    interface: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    serve: list[str] = field(default_factory=list)
    listener_pid: int = 0
    # A VM of ``lab vm add`` (lab/vms.py): the Neutron port it is plugged into.
    port_id: str = ""

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class LabState:
    name: str
    datastore: str
    datastore_kind: str
    fabric: dict[str, Any]
    hosts: list[HostState] = field(default_factory=list)
    workloads: dict[str, WorkloadState] = field(default_factory=dict)
    etcd_pids: list[int] = field(default_factory=list)
    run_dir: str = ""
    # The lab's fan-out server (lab/fanout.py): its socket ("" when agents read the
    # datastore themselves) and its supervisor.
    fanout: str = ""
    fanout_supervisor_pid: int = 0
    # Docker daemons on every host (lab/docker.py), and the mount points ``up`` had to
    # create on the machine for them (removed again by ``down``).
    docker: bool = False
    docker_mountpoints: list[str] = field(default_factory=list)
    # ``lab up --openstack`` (lab/openstack.py): the Neutron API's URL, the Neutron server
    # and the PostgreSQL postmaster (their pid files under the run directory are the truth).
    openstack: bool = False
    openstack_url: str = ""
    neutron_pid: int = 0
    postgres_pid: int = 0
    # When ``up`` began (Unix time; 0: a lab from before this field): the kernel log
    # outlives labs, and ``gingham flows`` shows none of the lines written before.
    started_at: float = 0.0

    def host(self, name: str) -> HostState:
        for h in self.hosts:
            if h.name == name:
                return h
        raise LabError(
            f"lab {self.name} has no host {name!r} (hosts: {', '.join(h.name for h in self.hosts)})"
        )

    def workload(self, ref: str) -> WorkloadState:
        wl = self.workloads.get(ref)
        if wl is None:
            raise LabError(f"lab {self.name} has no workload {ref!r}")
        return wl

    def to_json(self) -> str:
        d = asdict(self)
        return json.dumps(d, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LabState:
        d = json.loads(text)
        d["hosts"] = [HostState(**h) for h in d.get("hosts", [])]
        d["workloads"] = {k: WorkloadState(**w) for k, w in d.get("workloads", {}).items()}
        return cls(**d)


def load(name: str, run_dir: Path = RUN_DIR) -> LabState:
    path = lab_dir(name, run_dir) / "state.json"
    try:
        state = LabState.from_json(path.read_text())
    except FileNotFoundError:
        raise LabError(f"no lab named {name!r} is up (gingham lab up --name {name})") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise LabError(f"lab state {path} is unreadable: {exc}") from None
    # A supervisor restarts agents without touching state.json (it would need the
    # lab's lock); its own status file has the agent of the moment.
    for host in state.hosts:
        status = read_status(agent_status_path(name, host.name, run_dir))
        if status is not None and status.supervisor_pid == host.supervisor_pid:
            host.agent_pid = status.agent_pid
    return state


def save(state: LabState, run_dir: Path = RUN_DIR) -> None:
    directory = lab_dir(state.name, run_dir)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / "state.json.new"
    tmp.write_text(state.to_json())
    tmp.replace(directory / "state.json")


@contextlib.contextmanager
def locked(name: str, run_dir: Path = RUN_DIR) -> Iterator[None]:
    directory = lab_dir(name, run_dir)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def modify(name: str, run_dir: Path = RUN_DIR) -> Iterator[LabState]:
    """Load, let the caller change, save: all under the lab's lock."""
    with locked(name, run_dir):
        state = load(name, run_dir)
        yield state
        save(state, run_dir)


def current_name(run_dir: Path = RUN_DIR) -> str | None:
    try:
        name = current_file(run_dir).read_text().strip()
    except OSError:
        return None
    return name or None


def resolve(name: str | None, run_dir: Path = RUN_DIR) -> str:
    """The lab a command means: the one named, else the current one."""
    if name:
        return name
    current = current_name(run_dir)
    if current is None:
        raise LabError("no lab is up: start one with `gingham lab up`")
    return current


def set_current(name: str | None, run_dir: Path = RUN_DIR) -> None:
    path = current_file(run_dir)
    if name is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(name + "\n")
