"""A lab's OpenStack control plane: a private PostgreSQL and a Neutron server.

``gingham lab up --openstack`` runs both in the root network namespace on
127.0.0.1 (free ports): the API is for the tests and the benchmarks on this
machine, and Neutron binds ports to lab hosts by name, not by reaching them.
Neutron runs without Keystone or a message bus (``noauth``, the in-process
``fake:/`` transport, no workers besides its own two) with ML2 and, once the
package has it, the gingham mechanism driver wired to the lab's datastore.
Neutron's Python and the migrated template cluster come from
``lab/openstack_cache.py``; every lab gets its own copy of the cluster.

Under the lab's run directory (``<run dir>/openstack/``)::

    pgdata  pgsock/  postgres.log        the cluster (owned by user postgres; a link to
                                         /dev/shm/gingham-lab-pg-<hash>), its socket
    neutron.conf  neutron.log  neutron.pid  state/  lock/

Both processes carry ``GINGHAM_LAB=<lab>`` in their environment, but both also
write process titles over it: ``stop`` checks a pid from a file against the
process's command line (the data directory, the configuration file: paths
under the lab's run directory) before it signals anything, and finds them
again the same way with no pid at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gingham.errors import LabError
from gingham.lab import openstack_cache as cache
from gingham.lab.neutron_api import NeutronAPI
from gingham.lab.state import LabState

SHM = "/dev/shm"
RESYNC_INTERVAL = 30
READY_TIMEOUT = 60.0
STOP_GRACE = 5.0
SERVER_CODE = "import sys; from neutron.cmd.eventlet.server import main; sys.exit(main())"
# Nova names a VM's tap "tap" + the port ID's first 11 characters; the agents program
# only interfaces under the configured prefixes, so an OpenStack lab adds Nova's.
FELIX_CONFIGURATION = {
    "apiVersion": "projectcalico.org/v3",
    "kind": "FelixConfiguration",
    "metadata": {"name": "default"},
    "spec": {"interfacePrefix": "gh,tap"},
}
# Neutron's subnets must overlap no other pool (the driver refuses them: gingham would
# hand their addresses out): an OpenStack lab's own pool keeps the lower half of
# 198.18.0.0/16 and leaves this half to Neutron.
CNI_POOL = "198.18.0.0/17"
NEUTRON_RANGE = "198.18.128.0/17"
Progress = Callable[[str], None]


def default_pool(pool: dict[str, Any]) -> dict[str, Any]:
    """The lab's default IPPool, narrowed to ``CNI_POOL``."""
    return {**pool, "spec": {**pool["spec"], "cidr": CNI_POOL}}


# -- where things are -----------------------------------------------------------------


def run_dir(lab: LabState) -> Path:
    return Path(lab.run_dir) / "openstack"


def pgdata(lab: LabState) -> Path:
    return run_dir(lab) / "pgdata"


def pgdata_memory(lab_run_dir: str | Path) -> Path | None:
    """Where a lab's cluster really lives: in memory (``pgdata`` links to it). Copying
    the template onto a disk shared with the agents' sqlite commits took 1-3 s of ``lab
    up``, into tmpfs 0.1 s; the data is thrown away at ``down`` anyway. None without a
    writable tmpfs at /dev/shm."""
    if not os.access(SHM, os.W_OK):
        return None
    key = hashlib.sha256(str(Path(lab_run_dir).resolve()).encode()).hexdigest()[:16]
    return Path(SHM) / f"gingham-lab-pg-{key}"


def neutron_log(lab: LabState) -> Path:
    return run_dir(lab) / "neutron.log"


def neutron_conf(lab: LabState) -> Path:
    return run_dir(lab) / "neutron.conf"


# -- processes ------------------------------------------------------------------------


def _owned(pid: int, needle: str) -> bool:
    """Whether ``pid`` is alive (not a zombie) and its command line holds ``needle``, a
    path inside the lab's run directory. (Not the environment: Neutron and PostgreSQL
    set process titles over it.)"""
    if pid <= 0:
        return False
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # our own child (up and down in one process)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False  # gone; a zombie's is empty
    return needle.encode() in cmdline


def _wait_gone(pid: int, needle: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _owned(pid, needle):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _read_pid(path: Path) -> int:
    try:
        first = path.read_text().split("\n", 1)[0].strip()
    except OSError:
        return 0
    return int(first) if first.isdigit() else 0


# -- a lab's cluster and server --------------------------------------------------------


def render_conf(lab: LabState, neutron: cache.Neutron, api_port: int, db_port: int, driver: bool,
                resync_interval: int = RESYNC_INTERVAL) -> str:
    """neutron.conf: the settings Neutron runs with here (FIELD-NOTES), the gingham driver
    (when the venv has it) on the lab's datastore."""
    d = run_dir(lab)
    return "\n".join([
        "[DEFAULT]",
        "auth_strategy = noauth",
        "core_plugin = ml2",
        "service_plugins =",
        "api_workers = 0",
        "rpc_workers = 0",
        "rpc_state_report_workers = 0",
        "transport_url = fake:/",
        "notify_nova_on_port_status_changes = false",
        "notify_nova_on_port_data_changes = false",
        "bind_host = 127.0.0.1",
        f"bind_port = {api_port}",
        f"api_paste_config = {neutron.api_paste}",
        f"state_path = {d / 'state'}",
        "use_stderr = true",
        "",
        "[database]",
        f"connection = {cache.db_url(db_port)}",
        "",
        "[ml2]",
        "type_drivers = flat,local",
        "tenant_network_types = local",
        f"mechanism_drivers = {'gingham' if driver else ''}",
        "extension_drivers = port_security",
        "",
        "[oslo_concurrency]",
        f"lock_path = {d / 'lock'}",
        "",
        "[gingham]",
        f"datastore = {lab.datastore}",
        f"resync_interval = {resync_interval}",
        "",
    ])  # fmt: skip


def start(lab: LabState, say: Progress | None = None, driver: bool | None = None) -> None:
    """Start the lab's PostgreSQL and Neutron server and wait until the API answers; sets
    ``lab.openstack_url``, ``postgres_pid`` and ``neutron_pid`` (the caller saves the state).
    ``driver``: load the gingham mechanism driver (None: when Neutron's venv has it)."""
    say = say or (lambda _msg: None)
    neutron = cache.probe_neutron()
    python, has_driver = cache.venv(neutron, say)
    if driver and not has_driver:
        raise LabError("the gingham mechanism driver is not installed in Neutron's virtualenv "
                       "(no entry point gingham in neutron.ml2.mechanism_drivers)")
    tmpl = cache.template(neutron, say)
    d = run_dir(lab)
    data = pgdata(lab)
    if data.exists() or data.is_symlink():
        raise LabError(f"{data} exists: lab {lab.name}'s PostgreSQL was not removed")
    for sub in ("pgsock", "state", "lock"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    pg = pwd.getpwnam(cache.PG_USER)
    os.chown(d / "pgsock", pg.pw_uid, pg.pw_gid)
    say("copying the template cluster")
    memory = pgdata_memory(lab.run_dir)
    if memory is not None:
        shutil.rmtree(memory, ignore_errors=True)  # a crashed lab's of the same run directory
        data.symlink_to(memory)
    cache.run_tool(["cp", "-a", str(tmpl), str(memory or data)], "copying the template cluster")
    say("starting PostgreSQL")
    db_port = cache.free_port()
    proc = cache.start_postgres(data, d / "pgsock", db_port, d / "postgres.log",
                           cache.lab_env(lab.name))
    lab.postgres_pid = proc.pid
    cache.wait_postgres(proc, data, d / "postgres.log")
    api_port = cache.free_port()
    conf = neutron_conf(lab)
    conf.write_text(render_conf(lab, neutron, api_port, db_port,
                                has_driver if driver is None else driver))
    conf.chmod(0o600)  # the datastore URL may hold credentials
    lab.openstack_url = f"http://127.0.0.1:{api_port}"
    say("starting the Neutron server")
    lab.neutron_pid = start_server(lab, python)


def start_server(lab: LabState, python: str | Path | None = None) -> int:
    """(Re)start the Neutron server with the lab's neutron.conf; wait until it answers."""
    if python is None:
        python, _ = cache.venv(cache.probe_neutron(), lambda _m: None)
    conf = neutron_conf(lab)
    pidfile = run_dir(lab) / "neutron.pid"
    if _owned(_read_pid(pidfile), str(conf)):
        raise LabError(f"the Neutron server of lab {lab.name} is running")
    with open(neutron_log(lab), "ab") as log:
        try:
            proc = subprocess.Popen(
                [str(python), "-c", SERVER_CODE, "--config-file", str(conf)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=cache.lab_env(lab.name),
                start_new_session=True, cwd=str(run_dir(lab)),
            )
        except OSError as exc:
            raise LabError(f"cannot start the Neutron server: {exc}") from None
    pidfile.write_text(f"{proc.pid}\n")
    api = NeutronAPI(lab.openstack_url, timeout=2.0)
    deadline = time.monotonic() + READY_TIMEOUT
    while not api.ready():
        if proc.poll() is not None:
            raise LabError(f"the Neutron server ended (exit {proc.returncode}) before it "
                           f"answered: {cache.log_tail(neutron_log(lab))}")  # fmt: skip
        if time.monotonic() > deadline:
            raise LabError(f"the Neutron server does not answer on {lab.openstack_url} after "
                           f"{READY_TIMEOUT:.0f}s (see {neutron_log(lab)})")  # fmt: skip
        time.sleep(0.05)
    return proc.pid


def stop_server(lab_run_dir: str | Path, grace: float = STOP_GRACE) -> bool:
    """Stop the lab's Neutron server (SIGTERM, then SIGKILL after ``grace``) with its
    workers; False if none ran. ``lab_run_dir``: the lab's ``run_dir``."""
    d = Path(lab_run_dir) / "openstack"
    pidfile = d / "neutron.pid"
    pid = _read_pid(pidfile)
    needle = str(d / "neutron.conf")
    if not _owned(pid, needle):
        pidfile.unlink(missing_ok=True)
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)  # its rpc and periodic workers share its group
        if _wait_gone(pid, needle, grace):
            break
    # A worker whose parent went first keeps the group id.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    return True


def _stop_postgres(data: Path) -> None:
    """Immediate shutdown (SIGQUIT) of the lab's postmaster: its data is removed next."""
    pid = _read_pid(data / "postmaster.pid")
    if not _owned(pid, str(data)):
        return
    for sig in (signal.SIGQUIT, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
        if _wait_gone(pid, str(data), STOP_GRACE):
            break
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # backends left by a killed postmaster


def leftovers(lab_run_dir: str | Path) -> list[int]:
    """Processes of a lab's control plane still alive: those whose command line names a
    path under its ``openstack`` directory (the postmaster's data, Neutron's and its
    workers' configuration file)."""
    needle = (str(Path(lab_run_dir) / "openstack") + "/").encode()
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            cmdline = (p / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            out.append(int(p.name))
    return out


def stop(lab_run_dir: str | Path) -> None:
    """Stop and remove a lab's Neutron server and PostgreSQL; safe on a broken lab or one
    that never had them."""
    d = Path(lab_run_dir) / "openstack"
    stop_server(lab_run_dir)
    _stop_postgres(d / "pgdata")
    memory = pgdata_memory(lab_run_dir)
    if memory is not None:
        shutil.rmtree(memory, ignore_errors=True)
    # Whatever a crash left, pid files or not.
    for pid in leftovers(lab_run_dir):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(d, ignore_errors=True)


def restart_server(lab_name: str) -> None:
    """Stop the lab's Neutron server and start it again (a Neutron restart: its database
    stays); records the new pid."""
    from gingham.lab import state as labstate

    with labstate.modify(lab_name) as lab:
        if not lab.openstack:
            raise LabError(f"lab {lab_name} has no Neutron server (lab up --openstack)")
        stop_server(lab.run_dir)
        lab.neutron_pid = start_server(lab)


def driver_enabled(lab: LabState) -> bool:
    """Whether the lab's Neutron loads the gingham mechanism driver."""
    try:
        conf = neutron_conf(lab).read_text()
    except OSError:
        return False
    return "\nmechanism_drivers = gingham\n" in conf


def report(lab: LabState) -> dict[str, object] | None:
    """``lab status``'s "openstack": the API's URL, the processes and whether it answers."""
    if not lab.openstack:
        return None
    neutron_pid = _read_pid(run_dir(lab) / "neutron.pid")
    pg_pid = _read_pid(pgdata(lab) / "postmaster.pid")
    neutron_alive = _owned(neutron_pid, str(neutron_conf(lab)))
    return {
        "url": lab.openstack_url,
        "neutron_pid": neutron_pid if neutron_alive else 0,
        "postgres_pid": pg_pid if _owned(pg_pid, str(pgdata(lab))) else 0,
        "driver": driver_enabled(lab),
        "ready": neutron_alive and bool(lab.openstack_url)
        and NeutronAPI(lab.openstack_url, timeout=2.0).ready(),
    }
