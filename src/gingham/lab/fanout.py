"""A lab's fan-out server: one ``gingham fanout serve`` for all of the lab's agents.

Above ``AUTO_HOSTS`` hosts ``lab up`` starts one (``--fanout``/``--no-fanout``
force it either way) and every agent reads the datastore through it
(``node run --fanout PATH``), as a cluster with Calico's Typha does. It runs
under the same supervisor as the agents (``supervisor.py``: restarted with
backoff, its story in a status file), in the machine's own network
namespace: its socket, ``<lab dir>/fanout.sock``, is a file, which every lab
host reaches through the filesystem whatever its namespace.

Pids in the lab's state may be stale (ended, reused): a process counts as
the lab's server or supervisor only while its environment carries the
lab's ``GINGHAM_LAB`` marker and its command line is the right one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from gingham.errors import LabError
from gingham.lab import state as labstate
from gingham.lab.state import LabState
from gingham.lab.supervisor import RUNNING, Status, read_status
from gingham.timestamps import rfc3339

# Labs with more hosts than this read through a fan-out server unless told otherwise.
AUTO_HOSTS = 20
_SUPERVISOR = "gingham.lab.supervisor"
_SERVER = "fanout serve"


def wanted(hosts: int, fanout: bool | None) -> bool:
    """Whether a lab of ``hosts`` hosts gets a fan-out server (None: automatic)."""
    return hosts > AUTO_HOSTS if fanout is None else fanout


def socket_path(lab_name: str) -> Path:
    return labstate.lab_dir(lab_name) / "fanout.sock"


def status_path(lab_name: str) -> Path:
    return labstate.lab_dir(lab_name) / "fanout.status.json"


def log_path(lab_name: str) -> Path:
    return labstate.lab_dir(lab_name) / "fanout.log"


def is_lab_process(pid: int, lab_name: str, command: str) -> bool:
    """Whether ``pid`` is a live process of lab ``lab_name`` whose command line holds ``command``."""
    if pid <= 0:
        return False
    proc = Path(f"/proc/{pid}")
    try:
        environ = (proc / "environ").read_bytes().split(b"\0")
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        zombie = "zombie" in (proc / "status").read_text()
    except OSError:
        return False
    return not zombie and f"GINGHAM_LAB={lab_name}".encode() in environ and command in cmdline


def start(lab: LabState, binary: str) -> int:
    """Start the lab's fan-out supervisor (which starts the server); its pid."""
    path = str(socket_path(lab.name))
    status_path(lab.name).unlink(missing_ok=True)
    env = dict(os.environ, GINGHAM_DATASTORE=lab.datastore, GINGHAM_LAB=lab.name)
    argv = [sys.executable, "-m", _SUPERVISOR, "--status", str(status_path(lab.name)),
            "--log", str(log_path(lab.name)), "--what", "fan-out server",
            "--", binary, "fanout", "serve", "--socket", path]  # fmt: skip
    try:
        with open(log_path(lab.name), "ab") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    env=env, start_new_session=True)  # fmt: skip
    except OSError as exc:
        raise LabError(f"cannot start the lab's fan-out server: {exc}") from exc
    return proc.pid


def server_status(lab: LabState) -> Status | None:
    status = read_status(status_path(lab.name))
    if status is None or status.supervisor_pid != lab.fanout_supervisor_pid:
        return None
    return status


def server_pid(lab: LabState) -> int:
    """The running server's pid, 0 if none runs."""
    status = server_status(lab)
    pid = status.agent_pid if status is not None else 0
    return pid if is_lab_process(pid, lab.name, _SERVER) else 0


def supervised(lab: LabState) -> bool:
    return is_lab_process(lab.fanout_supervisor_pid, lab.name, _SUPERVISOR)


def stop(lab: LabState, kill_group: Any, wait_gone: Any) -> None:
    """Stop the supervisor (it stops the server), then whatever is left of the server.

    ``kill_group(pids)`` and ``wait_gone(pid)`` are the lab's own helpers.
    """
    server = server_pid(lab)
    if supervised(lab):
        with contextlib.suppress(ProcessLookupError):
            os.kill(lab.fanout_supervisor_pid, signal.SIGTERM)
        if not wait_gone(lab.fanout_supervisor_pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(lab.fanout_supervisor_pid, signal.SIGKILL)
            wait_gone(lab.fanout_supervisor_pid)
    if is_lab_process(server, lab.name, _SERVER):
        kill_group([server])
    lab.fanout_supervisor_pid = 0


def kill_server(lab: LabState, sig: int = signal.SIGKILL) -> int:
    """Send ``sig`` to the server alone, as a crash would (its supervisor restarts it)."""
    status = server_status(lab)
    pid = server_pid(lab)
    if status is None or status.state != RUNNING or not pid:
        raise LabError(f"lab {lab.name} has no fan-out server running under its supervisor")
    os.kill(pid, sig)
    return pid


def report(lab: LabState) -> dict[str, Any] | None:
    """The fan-out server for ``lab status``; None when the lab has none."""
    if not lab.fanout:
        return None
    status = server_status(lab)
    up = supervised(lab)
    return {
        "socket": lab.fanout,
        "pid": server_pid(lab),
        "supervisor_pid": lab.fanout_supervisor_pid if up else 0,
        "state": (status.state if status is not None else "starting") if up else "stopped",
        "restarts": status.restarts if status is not None else 0,
        "last_exit": status.last_exit if status is not None else "",
        "last_exit_at": rfc3339(status.last_exit_at)
        if status is not None and status.last_exit_at else None,
    }


def leftovers(lab_name: str) -> list[int]:
    """Pids of lab ``lab_name``'s fan-out supervisor and server, found in the process
    table by their marker (for ``lab down`` when the state is lost or stale)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and is_lab_process(int(entry.name), lab_name, _SERVER):
            found.append(int(entry.name))
    # Supervisors first, so that none starts a server again in the meantime.
    return sorted(found, key=lambda pid: not is_lab_process(pid, lab_name, _SUPERVISOR))
