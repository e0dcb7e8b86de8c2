"""Helpers for fault and security tests: labs, processes in namespaces, etcd members, leaks.

Fault injection lives here rather than in gingham.lab (owned elsewhere):
stopping and resuming the lab's etcd members, hiding the lab's sqlite file,
running the CNI plugin in throwaway namespaces, and counting what a host
holds (veths, routes, endpoints, IPAM handles) to prove nothing leaked.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from gingham.datastore import open_datastore
from gingham.errors import LabError
from gingham.lab import lab as labmod
from gingham.lab import state as labstate
from gingham.lab.netns import add_netns, delete_netns, netns_path
from gingham.lab.state import LabState
from gingham.lab.workloads import cni_binary, network_config

PY = [sys.executable, "-I", "-S"]


def lab_name(tag: int) -> str:
    """A lab name the netns fixture's orphan sweep recognises (``t<pid>x<n>``)."""
    return f"t{os.getpid()}x{tag}"


@contextlib.contextmanager
def running_lab(tag: int, hosts: int = 3, datastore: str = "sqlite") -> Iterator[str]:
    name = lab_name(tag)
    labmod.down(name)
    try:
        try:
            labmod.up(name, hosts=hosts, datastore=datastore)
        except LabError as exc:
            # Seen once with a load average of 15 on 2 cores: an agent not ready in 60 s.
            # up() has torn everything down; one more try, then the error stands.
            if "not ready" not in str(exc):
                raise
            labmod.up(name, hosts=hosts, datastore=datastore)
        yield name
    finally:
        labmod.down(name)


def nsenter(netns: str, *argv: str) -> list[str]:
    return ["nsenter", f"--net={netns_path(netns)}", "--", *argv]


def run_py(
    netns: str, code: str, *args: str, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(nsenter(netns, *PY, "-c", code, *args), capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip


def wait_until(predicate: Callable[[], object], timeout: float, what: str,
               interval: float = 0.1) -> float:  # fmt: skip
    """Seconds it took for ``predicate`` to hold; AssertionError after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(interval)
    return time.monotonic() - start


# --- readiness ------------------------------------------------------------------------

READYZ = """
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen('http://127.0.0.1:9099/readyz', timeout=2).status)
except urllib.error.HTTPError as exc:
    print(exc.code)
except OSError:
    print(0)
"""


def readyz(lab: LabState, host: str) -> int:
    """HTTP status of the agent's /readyz inside the host's namespace (0: no answer)."""
    out = run_py(lab.host(host).netns, READYZ).stdout.strip()
    return int(out or 0)


# --- listeners --------------------------------------------------------------------------

LISTEN = """
import socket, sys, selectors
sel = selectors.DefaultSelector()
for spec in sys.argv[1:]:
    proto, port = spec.split(':')
    kind = socket.SOCK_STREAM if proto == 'tcp' else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('0.0.0.0', int(port)))
    if kind == socket.SOCK_STREAM:
        s.listen(64)
    sel.register(s, selectors.EVENT_READ, spec)
print('ready', flush=True)
while True:
    for key, _ in sel.select():
        if key.data.startswith('tcp'):
            c, peer = key.fileobj.accept()
            c.close()
        else:
            data, peer = key.fileobj.recvfrom(65535)
        print(key.data, peer[0], flush=True)
"""


@contextlib.contextmanager
def listener(netns: str, *specs: str) -> Iterator[subprocess.Popen[str]]:
    """Listen on ``tcp:PORT``/``udp:PORT`` (all addresses); every arrival is a stdout line."""
    proc = subprocess.Popen(nsenter(netns, *PY, "-u", "-c", LISTEN, *specs),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def arrivals(proc: subprocess.Popen[str], settle: float = 0.3) -> list[str]:
    """Lines the listener printed so far (kills it: call once, at the end)."""
    time.sleep(settle)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=5)
    return [line for line in out.splitlines() if line.strip()]


TCP_CONNECT = """
import socket, sys
src = sys.argv[3] if len(sys.argv) > 3 else ''
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(float(sys.argv[4]) if len(sys.argv) > 4 else 1.5)
if src:
    s.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND: the address need not be local
    s.bind((src, 0))
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print('open')
except OSError as exc:
    print('closed', exc)
"""


def tcp_open(netns: str, address: str, port: int, source: str = "", timeout: float = 1.5) -> bool:
    out = run_py(netns, TCP_CONNECT, address, str(port), source, str(timeout)).stdout
    return out.startswith("open")


# --- the lab's datastore ----------------------------------------------------------------


def datastore(lab: LabState) -> Any:
    return open_datastore(lab.datastore)


def etcd_argv(pid: int) -> list[str]:
    deadline = time.monotonic() + 5
    while True:  # a process just spawned shows its parent's command line until exec
        args = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
        if "--name" in args or time.monotonic() > deadline:
            return args
        time.sleep(0.01)


def etcd_members(lab: LabState) -> list[dict[str, Any]]:
    """The lab's etcd members: pid, name, client URL (from their command lines)."""
    out = []
    for pid in lab.etcd_pids:
        args = etcd_argv(pid)
        name = args[args.index("--name") + 1]
        client = args[args.index("--advertise-client-urls") + 1]
        out.append({"pid": pid, "name": name, "url": client})
    return out


def etcd_post(url: str, path: str, body: dict[str, Any], timeout: float = 3) -> dict[str, Any]:
    r = httpx.post(url + path, json=body, timeout=timeout)
    r.raise_for_status()
    doc: dict[str, Any] = r.json()
    return doc


def etcd_leader(lab: LabState) -> dict[str, Any]:
    for m in etcd_members(lab):
        with contextlib.suppress(httpx.HTTPError):
            st = etcd_post(m["url"], "/v3/maintenance/status", {})
            if st.get("leader") and st["leader"] == st["header"]["member_id"]:
                return m
    raise AssertionError("no etcd leader found")


def signal_pid(pid: int, sig: int) -> None:
    os.kill(pid, sig)


# --- CNI in throwaway namespaces -----------------------------------------------------------


def cni(command: str, lab: LabState, host: str, netns: str, container_id: str,
        namespace: str, name: str, timeout: float = 60) -> tuple[int, dict[str, Any] | None]:  # fmt: skip
    """Run the plugin as a runtime would; (exit status, parsed stdout or None)."""
    conf = network_config(lab.datastore, host, {"namespace": namespace, "name": name})
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns_path(netns) if command != "DEL" else "",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(Path(sys.executable).parent),
        "GINGHAM_RUN_DIR": lab.run_dir,
    }
    proc = subprocess.run(nsenter(lab.host(host).netns, cni_binary()), input=json.dumps(conf),
                          capture_output=True, text=True, env=env, timeout=timeout,
                          check=False)  # fmt: skip
    out = proc.stdout.strip()
    try:
        doc = json.loads(out) if out else None
    except ValueError:
        doc = {"unparsed": out, "stderr": proc.stderr}
    return proc.returncode, doc


@contextlib.contextmanager
def throwaway_netns(names: list[str]) -> Iterator[list[str]]:
    made: list[str] = []
    try:
        for n in names:
            add_netns(n)
            made.append(n)
        yield made
    finally:
        for n in made:
            delete_netns(n)


# --- what a host holds ----------------------------------------------------------------------


def host_veths(lab: LabState, host: str) -> set[str]:
    out = subprocess.run(nsenter(lab.host(host).netns, "ip", "-j", "link", "show"),
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return {link["ifname"] for link in json.loads(out) if link["ifname"].startswith("gh")}


def host_routes(lab: LabState, host: str) -> list[dict[str, Any]]:
    out = subprocess.run(nsenter(lab.host(host).netns, "ip", "-j", "route", "show"),
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    routes: list[dict[str, Any]] = json.loads(out)
    return routes


def ipam_handles(lab: LabState) -> set[str]:
    ds = datastore(lab)
    try:
        items, _ = ds.list("/gingham/v1/ipam/handles/")
        return {kv.key.rsplit("/", 1)[-1] for kv in items}
    finally:
        ds.close()


def ipam_allocations(lab: LabState) -> list[tuple[str, str, str]]:
    """(address, handle, block affinity) of every allocated address, read from the blocks."""
    from gingham.ipam.block import Block

    ds = datastore(lab)
    try:
        items, _ = ds.list("/gingham/v1/ipam/blocks/")
    finally:
        ds.close()
    out = []
    for kv in items:
        block = Block.from_json(kv.value)
        for ordinal, attrs in block.allocated():
            out.append((str(block.ip_of(ordinal)), attrs.handle, block.affinity or ""))
    return out


def ipam_blocks(lab: LabState) -> dict[str, str]:
    """Block CIDR -> affinity (``host:<name>`` or "")."""
    ds = datastore(lab)
    try:
        items, _ = ds.list("/gingham/v1/ipam/blocks/")
    finally:
        ds.close()
    return {kv.value["cidr"]: kv.value.get("affinity") or "" for kv in items}


def endpoints(lab: LabState) -> list[dict[str, Any]]:
    from gingham.lab.workloads import list_endpoints

    ds = datastore(lab)
    try:
        return list_endpoints(ds)
    finally:
        ds.close()


def gingham_cli(lab: LabState, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([labmod.gingham_binary(), "--datastore", lab.datastore, *args],
                          capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip


def reload(lab: str) -> LabState:
    return labstate.load(lab)
