"""What an OpenStack lab needs once per machine: Neutron's Python and a migrated database.

Neutron needs Debian's Python (``/usr/bin/python3`` sees python3-neutron) and
the gingham mechanism driver needs gingham installed beside it with its entry
point registered: a virtualenv made from that Python with
``--system-site-packages`` and an editable install of this source tree
(gingham's dependencies from the configured package index). It is built once
and kept under ``CACHE_ROOT``, keyed by the tree's path and ``pyproject.toml``,
and rebuilt when missing. So is a *template* database cluster: ``initdb`` plus
Neutron's 127 migrations cost 3-4 s, a copy of the migrated, cleanly stopped
cluster 0.1 s (``lab/openstack.py`` copies it for every lab). Also here: the
PostgreSQL process helpers both use.
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

from gingham.errors import LabError
from gingham.names import DATASTORE_ENV

NEUTRON_PYTHON = os.environ.get("GINGHAM_NEUTRON_PYTHON", "/usr/bin/python3")
CACHE_ROOT = Path(os.environ.get("GINGHAM_OPENSTACK_CACHE", "/var/cache/gingham/openstack"))
PG_USER = "postgres"
# Neutron's tables go into the cluster's own database: one database fewer (7 MB) for
# every lab to copy.
DATABASE = "postgres"
TEMPLATE_FORMAT = "4"  # changes with the way the template is made
STALE_AFTER = 3 * 86400.0  # cached venvs and templates unused this long are removed
# Throwaway data: durability buys nothing and costs time on every commit. Dynamic
# shared memory in the data directory, not /dev/shm/PostgreSQL.*, which an immediate
# shutdown or a SIGKILL leaves behind.
PG_FAST = ("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
           "-c", "dynamic_shared_memory_type=mmap")
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


def pg_bin(name: str) -> str:
    """The newest installed PostgreSQL's ``name`` (Debian keeps them out of PATH)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0)
    if not found:
        raise LabError(f"lab up --openstack needs PostgreSQL's {name} (Debian package postgresql)")
    return found[-1]


def free_port() -> int:
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
        pg_bin("initdb")
        pg_bin("postgres")
        pwd.getpwnam(PG_USER)
        probe_neutron()
    except KeyError:
        return f"no user {PG_USER} (Debian package postgresql makes it)"
    except LabError as exc:
        return str(exc)
    return None


def lab_env(lab_name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", DATASTORE_ENV)}
    env["GINGHAM_LAB"] = lab_name
    return env


def log_tail(path: Path, lines: int = 8) -> str:
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


def run_tool(argv: list[str], what: str, timeout: float = 300.0, **kw: object) -> None:
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
        python = entry / "bin" / "python"
        if not (entry / "ready").is_file() or not python.exists():
            say("building Neutron's virtualenv (once per source tree)")
            shutil.rmtree(entry, ignore_errors=True)
            run_tool([neutron.python, "-m", "venv", "--system-site-packages", str(entry)],
                 "making Neutron's virtualenv")
            # The 'openstack' extra, if the tree declares one; gingham's own dependencies
            # come from the configured package index.
            run_tool([str(python), "-m", "pip", "install", "-q",
                  "--disable-pip-version-check", "-e", f"{tree}[openstack]"],
                 f"installing {tree} into Neutron's virtualenv")
            found = subprocess.run([str(python), "-c", DRIVER_CODE],
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
    return python, bool(module) and (
        path.with_suffix(".py").is_file() or (path / "__init__.py").is_file())


def start_postgres(data: Path, sockdir: Path, port: int, log: Path,
                    env: dict[str, str], *options: str) -> subprocess.Popen[bytes]:
    """The postmaster itself as user postgres, in its own session (its pid is the one
    to stop; no pg_ctl or runuser process in between)."""
    argv = [pg_bin("postgres"), "-D", str(data), "-c", "listen_addresses=127.0.0.1",
            "-p", str(port), "-k", str(sockdir), *PG_FAST, *options]  # fmt: skip
    with open(log, "ab") as out:
        try:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    env=env, user=PG_USER, group=PG_USER, extra_groups=[],
                                    start_new_session=True, cwd=str(data))  # fmt: skip
        except OSError as exc:
            raise LabError(f"cannot start PostgreSQL: {exc}") from None


def wait_postgres(proc: subprocess.Popen[bytes], data: Path, log: Path,
                   timeout: float = 30.0) -> None:
    """Until the postmaster says "ready" in postmaster.pid (what ``pg_ctl -w`` waits for)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise LabError(f"PostgreSQL ended (exit {proc.returncode}) before it was ready: "
                           f"{log_tail(log)}")  # fmt: skip
        with contextlib.suppress(OSError):
            lines = (data / "postmaster.pid").read_text().splitlines()
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return
        if time.monotonic() > deadline:
            raise LabError(f"PostgreSQL not ready after {timeout:.0f}s: {log_tail(log)}")
        time.sleep(0.02)


def stop_postmaster(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
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
    key = _key(TEMPLATE_FORMAT, neutron.version, neutron.package_dir, pg_bin("postgres"))
    entry = CACHE_ROOT / f"pg-{key}"
    with _cache_lock():
        if (entry / "ready").is_file():
            os.utime(entry / "ready")
            return entry / "data"
        say("migrating a template Neutron database (once per Neutron version)")
        shutil.rmtree(entry, ignore_errors=True)
        work = CACHE_ROOT / f"build-{key}"
        shutil.rmtree(work, ignore_errors=True)
        try:
            data = _build_template(neutron, work)
            entry.mkdir()
            data.rename(entry / "data")
            (entry / "ready").write_text(neutron.version + "\n")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        _prune("pg-", entry)
        return entry / "data"


def _build_template(neutron: Neutron, work: Path) -> Path:
    """initdb, then Neutron's migrations, in ``work``; the cluster's data directory,
    stopped cleanly."""
    data, sockdir = work / "data", work / "sock"
    for d in (work, data, sockdir):
        d.mkdir(parents=True)
    pg = pwd.getpwnam(PG_USER)
    for d in (data, sockdir):
        os.chown(d, pg.pw_uid, pg.pw_gid)
    data.chmod(0o700)
    run_tool([pg_bin("initdb"), "-D", str(data), "--auth=trust", "-U", PG_USER, "-E", "UTF8",
          # 1 MB WAL segments, not 16: every lab copies the template
          "--locale=C", "--no-sync", "--no-instructions", "--wal-segsize=1"], "initdb",
         user=PG_USER, group=PG_USER, extra_groups=[], cwd=str(work))  # fmt: skip
    port = free_port()
    log = work / "postgres.log"
    # The shutdown checkpoint then removes the WAL it no longer needs instead of
    # keeping up to 80 MB of it for reuse.
    proc = start_postgres(data, sockdir, port, log, lab_env(""), "-c", "min_wal_size=2MB",
                           "-c", "wal_recycle=off")
    try:
        wait_postgres(proc, data, log)
        conf = work / "migrate.conf"
        conf.write_text(f"[database]\nconnection = {db_url(port)}\n")
        run_tool([neutron.python, "-c", MIGRATE_CODE, "--config-file", str(conf), "upgrade",
              "heads"], "Neutron's database migrations", env=lab_env(""), cwd=str(work))
    finally:
        stop_postmaster(proc)
    return data


def db_url(port: int) -> str:
    return f"postgresql+psycopg2://{PG_USER}@127.0.0.1:{port}/{DATABASE}"
