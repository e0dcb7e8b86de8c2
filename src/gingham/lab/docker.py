"""A lab's Docker daemons: one ``dockerd`` per lab host, each with that host's gingham plugin.

``gingham lab up --docker`` starts, for every host, in the host's network
namespace:

- ``gingham docker serve`` (the network and IPAM driver) under the lab's
  supervisor, like the agent, with the lab's datastore;
- ``dockerd`` with flags that leave the machine alone (no iptables, no
  forwarding or masquerading sysctls, no ``docker0`` bridge, vfs storage), in
  a mount namespace of its own (``mountns.py``) where per-host directories
  stand in for the machine-wide paths Docker insists on:
  ``/run/docker/plugins`` (plugin discovery: each daemon must find its own
  host's ``gingham.sock``), ``/etc/docker`` (``key.json``) and
  ``/run/containerd`` (the shims' sockets);

then imports a busybox image as ``busybox:gingham`` into each daemon, since no
registry is reachable.

Everything lives under ``<lab run dir>/<host>/docker/``::

    docker.sock  dockerd.pid  dockerd.log   the daemon
    data/  exec/                            its --data-root and --exec-root
    plugins/                                /run/docker/plugins for it; gingham.sock
    etc/  containerd/                       /etc/docker and /run/containerd for it
    plugin.log  plugin.status.json          the plugin and its supervisor

Every process of a host's daemon (dockerd, its containerd, the shims) carries
``GINGHAM_LAB_DOCKER=<lab>/<host>`` in its environment and the plugin's
carry ``GINGHAM_LAB_PLUGIN=<lab>/<host>``: pids in the state may be stale, and
``down`` must find them again with no state at all. Containers are found by
their cgroup, ``/gingham-docker-<lab>-<host>`` in every hierarchy.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gingham.errors import LabError
from gingham.lab import state as labstate
from gingham.lab.busybox import build_image
from gingham.lab.netns import spawn_in_netns
from gingham.lab.state import HostState, LabState
from gingham.lab.supervisor import STOP_TIMEOUT, read_status

IMAGE = "busybox:gingham"
DOCKER_MARKER = "GINGHAM_LAB_DOCKER"
PLUGIN_MARKER = "GINGHAM_LAB_PLUGIN"
PLUGIN_NAME = "gingham"
# Docker looks here whatever its flags say; each daemon gets its own copy (mountns.py).
PLUGINS_PATH, ETC_PATH, CONTAINERD_PATH = "/run/docker/plugins", "/etc/docker", "/run/containerd"
SAFE_FLAGS = (
    "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
    "--bridge=none", "--storage-driver=vfs",
    # The cgroup parent must be a path (see _cgroup_parent) on every machine, systemd or not.
    "--exec-opt", "native.cgroupdriver=cgroupfs",
)  # fmt: skip
READY_TIMEOUT = 30.0
PLUGIN_TIMEOUT = 15.0
STOP_GRACE = 6.0  # a daemon with no running container stops in ≈ 1-2.5 s
Progress = Callable[[str], None]


# -- where things are -----------------------------------------------------------------


def host_dir(lab: LabState, host: str) -> Path:
    return Path(lab.run_dir) / host / "docker"


def daemon_socket(lab: LabState, host: str) -> Path:
    return host_dir(lab, host) / "docker.sock"


def plugins_dir(lab: LabState, host: str) -> Path:
    """Seen by the host's daemon as ``/run/docker/plugins``."""
    return host_dir(lab, host) / "plugins"


def plugin_socket(lab: LabState, host: str) -> Path:
    return plugins_dir(lab, host) / f"{PLUGIN_NAME}.sock"


def plugin_log(lab: LabState, host: str) -> Path:
    return host_dir(lab, host) / "plugin.log"


def plugin_status_path(lab: LabState, host: str) -> Path:
    return host_dir(lab, host) / "plugin.status.json"


def _cgroup_parent(lab_name: str, host: str) -> str:
    return f"gingham-docker-{lab_name}-{host}"  # lab names have no '-': one lab's prefix is its own


def _binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if path is None:
        raise LabError(f"lab up --docker needs {name} (Debian package docker.io)")
    return path


def _gingham_binary() -> str:
    return str(Path(sys.executable).with_name("gingham"))


# -- processes ------------------------------------------------------------------------


def _marked(pid: int, marker: str, prefix: str) -> bool:
    """Whether live process ``pid`` has ``marker=<value>``, ``value`` starting with ``prefix``."""
    if pid <= 0:
        return False
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False  # gone; a zombie reads as empty and so counts as gone too
    want = f"{marker}={prefix}".encode()
    return any(e.startswith(want) for e in environ)


def _marked_pids(marker: str, prefix: str) -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir()
            if p.name.isdigit() and _marked(int(p.name), marker, prefix)]  # fmt: skip


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # our own child (up and down in one process)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until every pid is gone or ``timeout`` passes; those still alive."""
    pending = [p for p in pids if p > 0]
    deadline = time.monotonic() + timeout
    while pending:
        pending = [p for p in pending if _alive(p)]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return pending


def _kill(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def daemon_pid(lab_name: str, host: HostState) -> int:
    """The host's dockerd if it still runs, else 0."""
    ok = _marked(host.docker_pid, DOCKER_MARKER, f"{lab_name}/{host.name}") and _alive(
        host.docker_pid
    )
    return host.docker_pid if ok else 0


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


# -- the plugin -----------------------------------------------------------------------


def plugin_command(lab: LabState, host: HostState) -> list[str]:
    """The plugin's command line. Its datastore comes from GINGHAM_DATASTORE (see
    :func:`start_plugin`), as the agent's does: a URL may carry credentials."""
    return [_gingham_binary(), "docker", "serve", "--node", host.name,
            "--socket", str(plugin_socket(lab, host.name)),
            "--docker-host", f"unix://{daemon_socket(lab, host.name)}"]  # fmt: skip


def start_plugin(lab: LabState, host: HostState) -> int:
    """Start the host's plugin under a supervisor, in the host's network namespace
    (the veths it makes must be where the daemon is); the supervisor's pid."""
    directory = host_dir(lab, host.name)
    (directory / "plugins").mkdir(parents=True, exist_ok=True)
    status = plugin_status_path(lab, host.name)
    status.unlink(missing_ok=True)
    plugin_socket(lab, host.name).unlink(missing_ok=True)  # a stale one would look ready
    env = dict(os.environ, GINGHAM_DATASTORE=lab.datastore, GINGHAM_RUN_DIR=lab.run_dir,
               GINGHAM_LAB=lab.name, **{PLUGIN_MARKER: f"{lab.name}/{host.name}"})  # fmt: skip
    argv = [sys.executable, "-m", "gingham.lab.supervisor", "--status", str(status),
            "--log", str(plugin_log(lab, host.name)), "--what", "docker plugin",
            "--", *plugin_command(lab, host)]  # fmt: skip
    with open(plugin_log(lab, host.name), "ab") as log:
        proc = spawn_in_netns(host.netns, argv, stdout=log, stderr=log, env=env, cwd=str(directory))
    return proc.pid


def _answers(path: str | Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def plugin_state(lab: LabState, host: HostState) -> tuple[int, str]:
    """(pid, state) of the host's plugin as its supervisor recorded them; (0, 'stopped')."""
    supervised = _marked(host.plugin_supervisor_pid, PLUGIN_MARKER, f"{lab.name}/{host.name}")
    status = read_status(plugin_status_path(lab, host.name))
    if not supervised or status is None or status.supervisor_pid != host.plugin_supervisor_pid:
        return 0, "stopped" if not supervised else "starting"
    alive = _marked(status.agent_pid, PLUGIN_MARKER, f"{lab.name}/{host.name}")
    return (status.agent_pid if alive else 0), status.state


def _wait_plugins(lab: LabState, hosts: Sequence[HostState], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = list(hosts)
    while pending:
        for host in list(pending):
            if _answers(plugin_socket(lab, host.name)):
                pending.remove(host)
                continue
            status = read_status(plugin_status_path(lab, host.name))
            if status is not None and status.last_exit:  # it ended before it listened
                raise LabError(
                    f"the docker plugin of {host.name} ended ({status.last_exit}) before it "
                    f"listened on {plugin_socket(lab, host.name)}: "
                    f"{_log_tail(plugin_log(lab, host.name))}"
                )
        if pending and time.monotonic() > deadline:
            names = ", ".join(h.name for h in pending)
            raise LabError(f"docker plugin not listening after {timeout:.0f}s on {names} "
                           f"(see {plugin_log(lab, pending[0].name)})")  # fmt: skip
        if pending:
            time.sleep(0.05)


# -- the daemon -----------------------------------------------------------------------


def _ensure_mountpoints() -> list[str]:
    """Make the machine-wide directories the daemons' binds need; those it had to make."""
    made: list[str] = []
    for path in (PLUGINS_PATH, ETC_PATH, CONTAINERD_PATH):
        missing = [p for p in [*reversed(Path(path).parents), Path(path)] if not p.exists()]
        for p in missing:
            p.mkdir(mode=0o755)
            made.append(str(p))
    return made


def daemon_binds(lab: LabState, host: str) -> list[tuple[Path, str]]:
    """(the host's directory, the machine-wide path it stands in for) in the daemon's view."""
    d = host_dir(lab, host)
    return [(plugins_dir(lab, host), PLUGINS_PATH), (d / "etc", ETC_PATH),
            (d / "containerd", CONTAINERD_PATH)]  # fmt: skip


def daemon_command(lab: LabState, host: HostState) -> list[str]:
    d = host_dir(lab, host.name)
    argv = [sys.executable, "-m", "gingham.lab.mountns"]
    for src, dst in daemon_binds(lab, host.name):
        argv += ["--bind", f"{src}:{dst}"]
    return [*argv, "--", _binary("dockerd"), *SAFE_FLAGS,
            f"--data-root={d / 'data'}", f"--exec-root={d / 'exec'}",
            f"--pidfile={d / 'dockerd.pid'}", f"--host=unix://{daemon_socket(lab, host.name)}",
            f"--cgroup-parent=/{_cgroup_parent(lab.name, host.name)}"]  # fmt: skip


def start_daemon(lab: LabState, host: HostState) -> subprocess.Popen[bytes]:
    """Start the host's dockerd in its network namespace and a mount namespace of its own."""
    directory = host_dir(lab, host.name)
    for src, _ in daemon_binds(lab, host.name):
        src.mkdir(parents=True, exist_ok=True)
    daemon_socket(lab, host.name).unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(GINGHAM_LAB=lab.name, **{DOCKER_MARKER: f"{lab.name}/{host.name}"})
    with open(directory / "dockerd.log", "ab") as log:
        return spawn_in_netns(host.netns, daemon_command(lab, host), stdout=log, stderr=log,
                              env=env, cwd=str(directory))  # fmt: skip


def ping(path: str | Path, timeout: float = 1.0) -> bool:
    """Whether the daemon on socket ``path`` answers ``GET /_ping`` with OK."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = b""
            while chunk := s.recv(4096):
                reply += chunk
        except OSError:
            return False
    return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0]


def _wait_daemons(lab: LabState, procs: dict[str, subprocess.Popen[bytes]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = dict(procs)
    while pending:
        for name, proc in list(pending.items()):
            if ping(daemon_socket(lab, name)):
                del pending[name]
            elif proc.poll() is not None:
                log = host_dir(lab, name) / "dockerd.log"
                raise LabError(f"dockerd of {name} exited ({proc.returncode}) before it answered: "
                               f"{_log_tail(log)} (see {log})")  # fmt: skip
        if pending and time.monotonic() > deadline:
            raise LabError(f"dockerd not answering after {timeout:.0f}s on {', '.join(pending)}")
        if pending:
            time.sleep(0.05)


# -- the CLI and the image --------------------------------------------------------------


def cli_env() -> dict[str, str]:
    # -H names the daemon; a DOCKER_CONTEXT or DOCKER_HOST of the caller's would fight it.
    return {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}


def cli_argv(lab: LabState, host: str, args: Sequence[str]) -> list[str]:
    """``docker -H unix://<host's socket> ARGS``."""
    h = lab.host(host)
    if not h.docker_socket:
        raise LabError(f"lab {lab.name} has no Docker daemons (gingham lab up --docker)")
    return [_binary("docker"), "-H", f"unix://{h.docker_socket}", *args]


def docker_cli(lab: LabState, host: str, *args: str, input: str | None = None,
               timeout: float = 120.0) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run the Docker CLI against ``host``'s daemon; output captured, exit status not checked."""
    return subprocess.run(cli_argv(lab, host, args), input=input, capture_output=True, text=True,
                          timeout=timeout, check=False, env=cli_env())  # fmt: skip


def _import_image(lab: LabState, host: str, tar: Path) -> None:
    argv = cli_argv(
        lab, host, ["import", "-c", 'CMD ["/bin/sh"]', "-c", "ENV PATH=/bin", "-", IMAGE]
    )
    with open(tar, "rb") as f:
        proc = subprocess.run(argv, stdin=f, capture_output=True, timeout=120, check=False,
                              env=cli_env())  # fmt: skip
    if proc.returncode != 0:
        raise LabError(
            f"docker import on {host} failed: {proc.stderr.decode(errors='replace').strip()}"
        )


# -- up and down ----------------------------------------------------------------------


def start(lab: LabState, progress: Progress | None = None, plugin: bool = True) -> None:
    """Start every host's plugin (with ``plugin``) and daemon, import the image.

    ``lab`` is saved after every process it starts, so ``down`` can undo a
    half-finished start. ``plugin=False`` starts the daemons alone.
    """
    say = progress or (lambda _msg: None)
    _binary("dockerd")
    _binary("docker")
    lab.docker = True
    lab.docker_mountpoints = _ensure_mountpoints()
    labstate.save(lab)
    if plugin:
        for host in lab.hosts:
            say(f"starting the docker plugin on {host.name}")
            host.plugin_socket = str(plugin_socket(lab, host.name))
            host.plugin_supervisor_pid = start_plugin(lab, host)
            labstate.save(lab)
    tar = build_image(labstate.lab_dir(lab.name))  # while the plugins start
    if plugin:
        # Before the daemons: a daemon looks for its plugin when a network is made.
        _wait_plugins(lab, lab.hosts, PLUGIN_TIMEOUT)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for host in lab.hosts:
        say(f"starting dockerd on {host.name}")
        procs[host.name] = start_daemon(lab, host)
        host.docker_pid = procs[host.name].pid
        host.docker_socket = str(daemon_socket(lab, host.name))
        labstate.save(lab)
    _wait_daemons(lab, procs, READY_TIMEOUT)
    say(f"importing {IMAGE}")
    with ThreadPoolExecutor(max_workers=min(len(lab.hosts), 8)) as pool:
        for result in [pool.submit(_import_image, lab, h.name, tar) for h in lab.hosts]:
            result.result()


def _cgroup_dirs(lab_name: str) -> list[Path]:
    """The lab's container cgroups in every cgroup hierarchy of the machine."""
    found: list[Path] = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] in ("cgroup", "cgroup2"):
                found += Path(fields[4]).glob(f"{_cgroup_parent(lab_name, '')}*")
    return found


def _cgroup_pids(top: Path) -> list[int]:
    pids: list[int] = []
    for procs in top.rglob("cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            pids += [int(p) for p in procs.read_text().split()]
    return pids


def _kill_cgroups(tops: Sequence[Path]) -> None:
    """SIGKILL every process in the cgroup trees and wait until they are gone."""
    pids = {pid for top in tops for pid in _cgroup_pids(top)}
    _kill(pids, signal.SIGKILL)
    _wait_gone(pids, 5.0)


def _remove_cgroups(tops: list[Path], timeout: float = 3.0) -> None:
    """rmdir each cgroup tree bottom-up; a cgroup whose last process is still exiting is
    busy for a moment, so try again until ``timeout``."""
    deadline = time.monotonic() + timeout
    for top in tops:
        while top.exists():
            for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()
            if not top.exists() or time.monotonic() > deadline:
                break
            time.sleep(0.05)


def _stop_plugins(lab_name: str, hosts: Sequence[HostState]) -> None:
    supervisors = [
        h.plugin_supervisor_pid
        for h in hosts
        if _marked(h.plugin_supervisor_pid, PLUGIN_MARKER, f"{lab_name}/{h.name}")
    ]
    _kill(supervisors, signal.SIGTERM)  # each stops its plugin: SIGTERM, SIGKILL after STOP_TIMEOUT
    _kill(_wait_gone(supervisors, STOP_TIMEOUT + 2.0), signal.SIGKILL)


def stop(lab_name: str, lab: LabState | None) -> None:
    """Stop lab ``lab_name``'s daemons, their containers and plugins; remove what they made.

    Safe with no state (``lab`` None) or a stale one: processes are found again
    by their markers, containers by their cgroups.
    """
    if lab is not None and not lab.docker:
        return
    hosts = lab.hosts if lab is not None else []
    # The containers first, as `docker kill` would: a daemon stopping gracefully gives
    # each running container 10 s to stop. Their daemon (and plugin) still run and
    # take down what they made for each one as it ends.
    _kill_cgroups(_cgroup_dirs(lab_name))
    daemons = {daemon_pid(lab_name, h) for h in hosts} - {0}
    daemons |= {p for p in _marked_pids(DOCKER_MARKER, f"{lab_name}/")
                if "dockerd" in _cmdline(p)}  # fmt: skip
    # Daemons before plugins, gracefully and all at once.
    _kill(daemons, signal.SIGTERM)
    _kill(_wait_gone(daemons, STOP_GRACE), signal.SIGKILL)
    # What a killed daemon leaves: its containerd, its shims, and containers started
    # meanwhile (in no process tree of ours once their shim is gone: found by cgroup).
    rest = _marked_pids(DOCKER_MARKER, f"{lab_name}/")
    _kill(rest, signal.SIGKILL)
    _wait_gone(rest, 5.0)
    cgroups = _cgroup_dirs(lab_name)
    _kill_cgroups(cgroups)
    _remove_cgroups(cgroups)
    _stop_plugins(lab_name, hosts)
    leftover = _marked_pids(PLUGIN_MARKER, f"{lab_name}/")
    _kill(leftover, signal.SIGKILL)
    _wait_gone(leftover, 5.0)
    if lab is not None:
        _remove_mountpoints(lab_name, lab.docker_mountpoints)
        for h in hosts:
            shutil.rmtree(host_dir(lab, h.name), ignore_errors=True)  # vfs layers may be big
            h.docker_pid = h.plugin_supervisor_pid = 0


def _remove_mountpoints(lab_name: str, made: Sequence[str]) -> None:
    """Remove the mount points this lab made, unless another Docker may use them (another
    lab's, or one of the machine's, which would look for plugins there); only empty
    ones (rmdir): what someone else put there stays."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or _marked(int(entry.name), DOCKER_MARKER, f"{lab_name}/"):
            continue
        with contextlib.suppress(OSError):
            # A zombie (ours, killed, not yet reaped by init) reads unmarked: not a Docker.
            if (entry / "comm").read_text().strip() in ("dockerd", "containerd") \
                    and _alive(int(entry.name)):
                return
    for path in reversed(made):
        with contextlib.suppress(OSError):
            os.rmdir(path)


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


# -- status and faults ------------------------------------------------------------------


def report(lab: LabState, host: HostState) -> dict[str, Any] | None:
    """The host's daemon and plugin for ``lab status``; None when the lab has no Docker."""
    if not lab.docker:
        return None
    pid = daemon_pid(lab.name, host)
    plugin_pid, state = plugin_state(lab, host)
    return {
        "pid": pid,
        "socket": host.docker_socket,
        "ready": bool(pid) and ping(host.docker_socket),
        "plugin_pid": plugin_pid,
        "plugin_supervisor_pid": host.plugin_supervisor_pid if state != "stopped" else 0,
        "plugin_state": state,
        "plugin_socket": host.plugin_socket,
    }


def stop_plugin(lab_name: str, host_name: str, sig: int = signal.SIGKILL) -> None:
    """Stop one host's plugin for good, abruptly (fault injection), until :func:`restart_plugin`:
    its supervisor first (SIGKILL, so it starts no other), then the plugin gets ``sig``."""
    with labstate.modify(lab_name) as lab:
        host = lab.host(host_name)
        pid, _ = plugin_state(lab, host)
        if _marked(host.plugin_supervisor_pid, PLUGIN_MARKER, f"{lab_name}/{host_name}"):
            _kill([host.plugin_supervisor_pid], signal.SIGKILL)
            _wait_gone([host.plugin_supervisor_pid], 5.0)
        if pid:
            _kill([pid], sig)
            _kill(_wait_gone([pid], STOP_TIMEOUT + 2.0), signal.SIGKILL)
        host.plugin_supervisor_pid = 0


def restart_plugin(lab_name: str, host_name: str, timeout: float = PLUGIN_TIMEOUT) -> None:
    """Start one host's plugin (after :func:`stop_plugin`) and wait until it listens."""
    with labstate.modify(lab_name) as lab:
        host = lab.host(host_name)
        if _marked(host.plugin_supervisor_pid, PLUGIN_MARKER, f"{lab_name}/{host_name}"):
            raise LabError(f"the docker plugin of {host_name} is running under its supervisor")
        host.plugin_socket = str(plugin_socket(lab, host_name))
        host.plugin_supervisor_pid = start_plugin(lab, host)
    _wait_plugins(lab, [host], timeout)


def plugin_available() -> str | None:
    """None if ``gingham docker serve`` exists; else why not (for tests that need it)."""
    try:
        proc = subprocess.run([_gingham_binary(), "docker", "serve", "--help"],
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"gingham docker serve: {exc}"
    if proc.returncode != 0:
        return f"gingham docker serve --help failed: {(proc.stderr or proc.stdout).strip()[:200]}"
    return None
