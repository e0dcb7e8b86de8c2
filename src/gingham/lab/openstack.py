"""A lab's OpenStack control plane: a private PostgreSQL and a Neutron server.

``gingham lab up --openstack`` runs both in the root network namespace on
127.0.0.1 (free ports): the API is for the tests and the benchmarks on this
machine, and Neutron binds ports to lab hosts by name, not by reaching them.
Neutron runs without Keystone or a message bus (``noauth``, the in-process
``fake:/`` transport, no workers besides its own two) with ML2 and, once the
package has it, the gingham mechanism driver wired to the lab's datastore.

Neutron needs Debian's Python (``/usr/bin/python3`` sees python3-neutron) and
the driver needs gingham installed beside it with its entry point registered:
a virtualenv made from that Python with ``--system-site-packages`` and an
editable install of this source tree. It is built once and kept under
``CACHE_ROOT`` (keyed by the tree's path and ``pyproject.toml``), rebuilt when
missing. So is a *template* database cluster: ``initdb`` plus Neutron's 127
migrations cost ≈ 4 s, a copy of the migrated, cleanly stopped cluster a
fraction of that. Every lab gets its own copy.

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
import fcntl
import glob
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gingham.errors import LabError
from gingham.lab.neutron_api import NeutronAPI
from gingham.lab.state import LabState
from gingham.names import DATASTORE_ENV

SHM = "/dev/shm"
NEUTRON_PYTHON = os.environ.get("GINGHAM_NEUTRON_PYTHON", "/usr/bin/python3")
CACHE_ROOT = Path(os.environ.get("GINGHAM_OPENSTACK_CACHE", "/var/cache/gingham/openstack"))
PG_USER = "postgres"
# Neutron's tables go into the cluster's own database: one database fewer (7 MB) for
# every lab to copy.
DATABASE = "postgres"
RESYNC_INTERVAL = 30
TEMPLATE_FORMAT = "4"  # changes with the way the template is made
READY_TIMEOUT = 60.0
STOP_GRACE = 5.0
STALE_AFTER = 3 * 86400.0  # cached venvs and templates unused this long are removed
# Throwaway data: durability buys nothing and costs time on every commit. Dynamic
# shared memory in the data directory, not /dev/shm/PostgreSQL.*, which an immediate
# shutdown or a SIGKILL leaves behind.
PG_FAST = ("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
           "-c", "dynamic_shared_memory_type=mmap")
SERVER_CODE = "import sys; from neutron.cmd.eventlet.server import main; sys.exit(main())"
MIGRATE_CODE = "import sys; from neutron.db.migration.cli import main; sys.exit(main())"
# What this interpreter sees of Neutron, in one process start.
PROBE_CODE = """
import importlib.metadata, importlib.util, json, os, sys
spec = importlib.util.find_spec("neutron")
if spec is None or not spec.submodule_search_locations:
    sys.exit(3)
print(json.dumps({"dir": list(spec.submodule_search_locations)[0],
                  "version": importlib.metadata.version("neutron")}))
"""
DRIVER_CODE = """
import importlib.metadata
eps = importlib.metadata.entry_points(group="neutron.ml2.mechanism_drivers", name="gingham")
print(next(iter(eps)).value if eps else "")
"""
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


@dataclass(frozen=True)
class Neutron:
    """What the lab learnt of the machine's Neutron."""

    python: str
    package_dir: str
    version: str

    @property
    def api_paste(self) -> str:
        return str(Path(self.package_dir) / "tests" / "etc" / "api-paste.ini")


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


def _pg_bin(name: str) -> str:
    """The newest installed PostgreSQL's ``name`` (Debian keeps them out of PATH)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0)
    if not found:
        raise LabError(f"lab up --openstack needs PostgreSQL's {name} (Debian package postgresql)")
    return found[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def source_tree() -> Path:
    """The source checkout this gingham runs from (what Neutron's venv installs)."""
    import gingham

    root = Path(gingham.__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / "src" / "gingham").is_dir():
        raise LabError(f"lab up --openstack installs gingham into Neutron's Python from a source "
                       f"checkout; this gingham is not one ({root})")  # fmt: skip
    return root


def probe_neutron(python: str = NEUTRON_PYTHON) -> Neutron:
    """Neutron as ``python`` sees it; LabError naming what is missing."""
    if not os.access(python, os.X_OK):
        raise LabError(f"lab up --openstack needs {python} (Debian's Python, which sees "
                       "python3-neutron)")  # fmt: skip
    proc = subprocess.run([python, "-I", "-c", PROBE_CODE], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    if proc.returncode != 0:
        raise LabError(f"{python} cannot import neutron (Debian package python3-neutron): "
                       f"{proc.stderr.strip()[-300:]}")  # fmt: skip
    doc = json.loads(proc.stdout)
    return Neutron(python, doc["dir"], doc["version"])


def missing() -> str | None:
    """Why ``lab up --openstack`` cannot run on this machine (None when it can)."""
    try:
        _pg_bin("initdb")
        _pg_bin("postgres")
        pwd.getpwnam(PG_USER)
        probe_neutron()
    except KeyError:
        return f"no user {PG_USER} (Debian package postgresql makes it)"
    except LabError as exc:
        return str(exc)
    return None


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


def _env(lab_name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", DATASTORE_ENV)}
    env["GINGHAM_LAB"] = lab_name
    return env


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


# -- the cache: Neutron's virtualenv and a migrated template cluster -------------------


@contextlib.contextmanager
def _cache_lock() -> Iterator[None]:
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with open(CACHE_ROOT / "lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _prune(prefix: str, keep: Path) -> None:
    """Remove cache entries of ``prefix`` nobody used for ``STALE_AFTER`` (old trees, old
    pyproject files): each is tens of MB."""
    now = time.time()
    for entry in CACHE_ROOT.glob(f"{prefix}*"):
        ready = entry / "ready"
        if entry == keep or not entry.is_dir():
            continue
        try:
            age = now - ready.stat().st_mtime
        except OSError:
            age = now - entry.stat().st_mtime  # a build that never finished
        if age > STALE_AFTER:
            shutil.rmtree(entry, ignore_errors=True)


def _run(argv: list[str], what: str, timeout: float = 300.0, **kw: object) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                              **kw)  # type: ignore[call-overload]
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{what}: {exc}") from None
    if proc.returncode != 0:
        out = (proc.stderr.strip() or proc.stdout.strip())[-600:]
        raise LabError(f"{what} failed (exit {proc.returncode}): {out}")


def venv(neutron: Neutron, say: Progress) -> tuple[Path, bool]:
    """Neutron's virtualenv with this tree installed: (its python, whether the gingham
    mechanism driver's entry point is registered). Built when missing."""
    tree = source_tree()
    pyproject = (tree / "pyproject.toml").read_bytes()
    key = _key(str(tree), hashlib.sha256(pyproject).hexdigest(), neutron.python,
               os.path.realpath(neutron.python))
    entry = CACHE_ROOT / f"venv-{key}"
    with _cache_lock():
        if not (entry / "ready").is_file():
            say("building Neutron's virtualenv (once per source tree)")
            shutil.rmtree(entry, ignore_errors=True)
            _run([neutron.python, "-m", "venv", "--system-site-packages", str(entry)],
                 "making Neutron's virtualenv")
            # The 'openstack' extra, if the tree declares one; gingham's own dependencies
            # come from the configured package index.
            _run([str(entry / "bin" / "python"), "-m", "pip", "install", "-q",
                  "--disable-pip-version-check", "-e", f"{tree}[openstack]"],
                 f"installing {tree} into Neutron's virtualenv")
            found = subprocess.run([str(entry / "bin" / "python"), "-c", DRIVER_CODE],
                                   capture_output=True, text=True, timeout=60, check=False)
            (entry / "ready").write_text(json.dumps({"tree": str(tree),
                                                     "driver": found.stdout.strip()}))
            _prune("venv-", entry)
        else:
            os.utime(entry / "ready")
        driver = str(json.loads((entry / "ready").read_text()).get("driver") or "")
    # The entry point's module is this tree's (an editable install): the driver is there
    # once its file is, whenever that came after the venv was made.
    module = driver.partition(":")[0]
    path = tree / "src" / Path(*module.split("."))
    return entry / "bin" / "python", bool(module) and (
        path.with_suffix(".py").is_file() or (path / "__init__.py").is_file())


def _start_postgres(data: Path, sockdir: Path, port: int, log: Path,
                    env: dict[str, str], *options: str) -> subprocess.Popen[bytes]:
    """The postmaster itself as user postgres, in its own session (its pid is the one
    to stop; no pg_ctl or runuser process in between)."""
    argv = [_pg_bin("postgres"), "-D", str(data), "-c", "listen_addresses=127.0.0.1",
            "-p", str(port), "-k", str(sockdir), *PG_FAST, *options]  # fmt: skip
    with open(log, "ab") as out:
        try:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    env=env, user=PG_USER, group=PG_USER, extra_groups=[],
                                    start_new_session=True, cwd=str(data))  # fmt: skip
        except OSError as exc:
            raise LabError(f"cannot start PostgreSQL: {exc}") from None


def _wait_postgres(proc: subprocess.Popen[bytes], data: Path, log: Path,
                   timeout: float = 30.0) -> None:
    """Until the postmaster says "ready" in postmaster.pid (what ``pg_ctl -w`` waits for)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise LabError(f"PostgreSQL ended (exit {proc.returncode}) before it was ready: "
                           f"{_tail(log)}")  # fmt: skip
        with contextlib.suppress(OSError):
            lines = (data / "postmaster.pid").read_text().splitlines()
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return
        if time.monotonic() > deadline:
            raise LabError(f"PostgreSQL not ready after {timeout:.0f}s: {_tail(log)}")
        time.sleep(0.02)


def _stop_postmaster(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
    """SIGINT: PostgreSQL's fast shutdown, which leaves a clean cluster."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def template(neutron: Neutron, say: Progress) -> Path:
    """A cluster with Neutron's database migrated to its heads, stopped cleanly; made once
    per Neutron and PostgreSQL version."""
    key = _key(TEMPLATE_FORMAT, neutron.version, neutron.package_dir, _pg_bin("postgres"))
    entry = CACHE_ROOT / f"pg-{key}"
    with _cache_lock():
        if (entry / "ready").is_file():
            os.utime(entry / "ready")
            return entry / "data"
        say("migrating a template Neutron database (once per Neutron version)")
        shutil.rmtree(entry, ignore_errors=True)
        work = CACHE_ROOT / f"build-{key}"
        shutil.rmtree(work, ignore_errors=True)
        data, sockdir = work / "data", work / "sock"
        for d in (work, data, sockdir):
            d.mkdir(parents=True)
        pg = pwd.getpwnam(PG_USER)
        for d in (data, sockdir):
            os.chown(d, pg.pw_uid, pg.pw_gid)
        data.chmod(0o700)
        _run([_pg_bin("initdb"), "-D", str(data), "--auth=trust", "-U", PG_USER, "-E", "UTF8",
              # 1 MB WAL segments, not 16: every lab copies the template
              "--locale=C", "--no-sync", "--no-instructions", "--wal-segsize=1"], "initdb",
             user=PG_USER,
             group=PG_USER, extra_groups=[], cwd=str(work))  # fmt: skip
        port = _free_port()
        log = work / "postgres.log"
        # The shutdown checkpoint then removes the WAL it no longer needs instead of
        # keeping up to 80 MB of it for reuse.
        proc = _start_postgres(data, sockdir, port, log, _env(""), "-c", "min_wal_size=2MB",
                               "-c", "wal_recycle=off")
        try:
            _wait_postgres(proc, data, log)
            conf = work / "migrate.conf"
            conf.write_text(f"[database]\nconnection = {_db_url(port)}\n")
            _run([neutron.python, "-c", MIGRATE_CODE, "--config-file", str(conf), "upgrade",
                  "heads"], "Neutron's database migrations", env=_env(""),
                 cwd=str(work))  # fmt: skip
        finally:
            _stop_postmaster(proc)
        entry.mkdir()
        data.rename(entry / "data")
        shutil.rmtree(work, ignore_errors=True)
        (entry / "ready").write_text(neutron.version + "\n")
        _prune("pg-", entry)
        return entry / "data"


def _db_url(port: int) -> str:
    return f"postgresql+psycopg2://{PG_USER}@127.0.0.1:{port}/{DATABASE}"


# -- a lab's cluster and server --------------------------------------------------------


def render_conf(lab: LabState, neutron: Neutron, api_port: int, db_port: int, driver: bool,
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
        f"connection = {_db_url(db_port)}",
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
    neutron = probe_neutron()
    python, has_driver = venv(neutron, say)
    if driver and not has_driver:
        raise LabError("the gingham mechanism driver is not installed in Neutron's virtualenv "
                       "(no entry point gingham in neutron.ml2.mechanism_drivers)")
    tmpl = template(neutron, say)
    d = run_dir(lab)
    data = pgdata(lab)
    if data.exists() or data.is_symlink():
        raise LabError(f"{data} exists: lab {lab.name}'s PostgreSQL was not removed")
    for sub in ("pgsock", "state", "lock"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    pg = pwd.getpwnam(PG_USER)
    os.chown(d / "pgsock", pg.pw_uid, pg.pw_gid)
    say("copying the template cluster")
    memory = pgdata_memory(lab.run_dir)
    if memory is not None:
        shutil.rmtree(memory, ignore_errors=True)  # a crashed lab's of the same run directory
        data.symlink_to(memory)
    _run(["cp", "-a", str(tmpl), str(memory or data)], "copying the template cluster")
    say("starting PostgreSQL")
    db_port = _free_port()
    proc = _start_postgres(data, d / "pgsock", db_port, d / "postgres.log",
                           _env(lab.name))
    lab.postgres_pid = proc.pid
    _wait_postgres(proc, data, d / "postgres.log")
    api_port = _free_port()
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
        python, _ = venv(probe_neutron(), lambda _m: None)
    conf = neutron_conf(lab)
    pidfile = run_dir(lab) / "neutron.pid"
    if _owned(_read_pid(pidfile), str(conf)):
        raise LabError(f"the Neutron server of lab {lab.name} is running")
    with open(neutron_log(lab), "ab") as log:
        try:
            proc = subprocess.Popen(
                [str(python), "-c", SERVER_CODE, "--config-file", str(conf)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=_env(lab.name),
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
                           f"answered: {_tail(neutron_log(lab))}")  # fmt: skip
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
