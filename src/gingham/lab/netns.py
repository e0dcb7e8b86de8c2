"""Network-namespace primitives for the lab and the integration tests.

Everything runs the ``ip`` and ``nsenter`` programs with argument lists (never
a shell). Named namespaces live under /run/netns (``ip netns add``). Commands
inside a namespace are started with ``nsenter --net=/run/netns/NAME`` which,
unlike ``ip netns exec``, leaves /sys (and so the cgroup mounts podman and
runc need) untouched.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from gingham.errors import LabError

NETNS_DIR = Path("/run/netns")
# ip netns names become file names under /run/netns; keep them to a safe alphabet
_NETNS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# kernel interface names: at most 15 bytes, no '/', no whitespace, not '.'/'..'
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,14}$")


def check_netns_name(name: str) -> str:
    if not _NETNS_RE.match(name):
        raise LabError(f"invalid network namespace name {name!r}")
    return name


def check_ifname(name: str) -> str:
    if not _IFNAME_RE.match(name) or name in (".", ".."):
        raise LabError(f"invalid interface name {name!r} (1-15 of A-Z a-z 0-9 _ . : -)")
    return name


def netns_path(netns: str) -> str:
    """Path of a namespace given by name (under /run/netns) or by absolute path."""
    if netns.startswith("/"):
        return netns
    return str(NETNS_DIR / check_netns_name(netns))


def in_netns(netns: str | None, argv: Sequence[str]) -> list[str]:
    """``argv`` prefixed to run inside ``netns`` (None: the current namespace)."""
    if netns is None:
        return list(argv)
    return ["nsenter", f"--net={netns_path(netns)}", "--", *argv]


def run(
    argv: Sequence[str],
    *,
    input: str | None = None,
    check: bool = True,
    timeout: float | None = 30.0,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a program (args as a list), capture output; errors -> LabError with stderr."""
    try:
        proc = subprocess.run(
            list(argv), input=input, capture_output=True, text=True, timeout=timeout,
            check=False, env=dict(env) if env is not None else None,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{' '.join(argv)}: {exc}") from exc
    if check and proc.returncode != 0:
        raise LabError(
            f"{' '.join(argv)} failed (exit {proc.returncode}): {proc.stderr.strip()}"
        )
    return proc


def run_in_netns(
    netns: str | None,
    argv: Sequence[str],
    *,
    input: str | None = None,
    check: bool = True,
    timeout: float | None = 30.0,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside ``netns`` and wait for it."""
    return run(in_netns(netns, argv), input=input, check=check, timeout=timeout, env=env)


def spawn_in_netns(
    netns: str | None,
    argv: Sequence[str],
    *,
    stdout: int | object = subprocess.DEVNULL,
    stderr: int | object = subprocess.DEVNULL,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start a daemon inside ``netns`` in its own process group (see :func:`stop_process`)."""
    try:
        return subprocess.Popen(
            in_netns(netns, argv),
            stdin=subprocess.DEVNULL,
            stdout=stdout,  # type: ignore[arg-type]
            stderr=stderr,  # type: ignore[arg-type]
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        raise LabError(f"cannot start {' '.join(argv)}: {exc}") from exc


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> int | None:
    """Stop a process started by :func:`spawn_in_netns` and everything in its group."""
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)
    # children that outlived the leader still hold the group id
    _signal_group(proc.pid, signal.SIGKILL)
    return proc.returncode


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def list_netns() -> list[str]:
    """Names of the namespaces under /run/netns."""
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / check_netns_name(name)).exists()


def add_netns(name: str, *, loopback: bool = True) -> str:
    """Create a named namespace (loopback up); LabError if it exists."""
    check_netns_name(name)
    run(["ip", "netns", "add", name])
    if loopback:
        run(["ip", "-n", name, "link", "set", "lo", "up"])
    return name


def pids_in_netns(name: str) -> list[int]:
    proc = run(["ip", "netns", "pids", check_netns_name(name)], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def delete_netns(name: str, *, kill: bool = True) -> bool:
    """Delete a namespace (killing what still runs in it); False if it was absent."""
    if not netns_exists(name):
        return False
    if kill:
        for pid in pids_in_netns(name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    # The namespace (and its veths) go away once the last process leaves it.
    run(["ip", "netns", "delete", name], check=False)
    return True


def delete_netns_prefix(prefix: str) -> list[str]:
    """Delete every namespace whose name starts with ``prefix`` (crash recovery)."""
    if not prefix:
        raise LabError("refusing to delete namespaces with an empty prefix")
    gone = [n for n in list_netns() if n.startswith(prefix)]
    for name in gone:
        delete_netns(name)
    return gone


def add_veth(
    name: str, peer: str, *, netns: str | None = None, peer_netns: str | None = None,
    mtu: int | None = None,
) -> None:
    """A veth pair: ``name`` in ``netns`` (None: current), ``peer`` in ``peer_netns`` (None: beside ``name``)."""
    check_ifname(name)
    check_ifname(peer)
    argv = ["ip"]
    if netns is not None:
        argv += ["-n", check_netns_name(netns)]
    argv += ["link", "add", name]
    if mtu is not None:
        argv += ["mtu", str(mtu)]
    argv += ["type", "veth", "peer", "name", peer]
    if mtu is not None:
        argv += ["mtu", str(mtu)]
    if peer_netns is not None:
        argv += ["netns", check_netns_name(peer_netns)]
    run(argv)


def ip_batch(netns: str | None, commands: Sequence[str]) -> None:
    """Run several ``ip`` commands in one process (``ip -batch -``).

    Each command is one line of arguments; the caller builds them from
    validated names only (``ip -batch`` splits on whitespace, no shell).
    """
    argv = ["ip"]
    if netns is not None:
        argv += ["-n", check_netns_name(netns)]
    run([*argv, "-batch", "-"], input="".join(c + "\n" for c in commands))


def write_sysctl(netns: str | None, key: str, value: str | int) -> None:
    """Set a sysctl inside ``netns`` (dotted key like ``net.ipv4.ip_forward``)."""
    if not re.match(r"^[a-z0-9_.:-]+$", key, re.IGNORECASE):
        raise LabError(f"invalid sysctl key {key!r}")
    run_in_netns(netns, ["sysctl", "-q", "-w", f"{key}={value}"])


def write_sysctls(netns: str | None, values: Mapping[str, str | int]) -> None:
    """Set several sysctls inside ``netns`` with one process."""
    for key in values:
        if not re.match(r"^[a-z0-9_.:-]+$", key, re.IGNORECASE):
            raise LabError(f"invalid sysctl key {key!r}")
    if values:
        run_in_netns(netns, ["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in values.items())])


def wait_for(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.05) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
