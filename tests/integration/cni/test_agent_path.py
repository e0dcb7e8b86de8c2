"""gingham-cni through the node agent, against a real agent in a throwaway host namespace:
the socket is root's alone; 50 ADDs at once get 50 addresses, none twice, and the agent
runs no program for them; an agent killed with SIGKILL in the middle of ADDs leaks
nothing once the plugin's fallback and the runtime's retries are done; a request for
another datastore is declined and done by the plugin itself."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gingham.datastore import open_datastore
from gingham.datastore.resources import ResourceStore
from gingham.ipam import IPAM
from gingham.lab.netns import add_netns, delete_netns, run_in_netns
from gingham.model import parse_resource
from tests.integration.cni.node_agent import NodeAgent, eventually, node_agent

pytestmark = pytest.mark.integration

CNI = str(Path(sys.executable).with_name("gingham-cni"))
NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"
POOL = {"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "v4"},
        "spec": {"cidr": "198.18.0.0/16", "blockSize": 26, "nodeSelector": "all()"}}
EP_PREFIX = "/gingham/v1/resources/WorkloadEndpoint/"

Make = Callable[[str], str]


@dataclass
class Node:
    url: str
    host: str
    run_dir: Path
    tmp: Path

    def conf(self, **extra: Any) -> dict[str, Any]:
        return {"cniVersion": "1.0.0", "name": "blue", "type": "gingham", "datastore": self.url,
                "nodename": "h1", "runDir": str(self.run_dir), "ipam": {"type": "gingham-ipam"},
                **extra}

    def cni(self, command: str, cid: str, netns: str | None, *, search: str | None = None,
            conf: dict[str, Any] | None = None) -> tuple[int, dict[str, Any], str]:
        env = {"PATH": search or os.environ["PATH"], "CNI_COMMAND": command,
               "CNI_CONTAINERID": cid, "CNI_NETNS": f"/run/netns/{netns}" if netns else "",
               "CNI_IFNAME": "eth0", "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAME={cid}"}
        proc = subprocess.run([NSENTER, f"--net=/run/netns/{self.host}", "--", CNI],
                              input=json.dumps(conf or self.conf()), capture_output=True,
                              text=True, env=env, timeout=120, check=False)  # fmt: skip
        assert "Traceback" not in proc.stderr, proc.stderr
        out = json.loads(proc.stdout) if proc.stdout.strip() else {}
        return proc.returncode, out, proc.stderr

    def veths(self) -> set[str]:
        out = run_in_netns(self.host, ["ip", "-j", "link", "show", "type", "veth"]).stdout
        return {link["ifname"] for link in json.loads(out or "[]")}

    def state(self) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
        """Endpoints by container ID, and the addresses each handle holds."""
        ds = open_datastore(self.url)
        try:
            eps = {kv.value["spec"]["containerID"]: kv.value for kv in ds.list(EP_PREFIX)[0]}
            ipam = IPAM(ds, host="h1")
            handles = {kv.key.rsplit("/", 1)[1]: sorted(str(ip) for ip in ipam.held_by(
                kv.key.rsplit("/", 1)[1])) for kv in ds.list("/gingham/v1/ipam/handles/")[0]}
        finally:
            ds.close()
        return eps, handles


@pytest.fixture
def node(netns: Make) -> Iterator[Node]:
    tmp = Path(tempfile.mkdtemp(prefix="gingham-cni-agent-"))
    try:
        url = f"sqlite://{tmp / 'gingham.db'}"
        ds = open_datastore(url, create=True)
        try:
            ResourceStore(ds).apply(parse_resource(POOL))
        finally:
            ds.close()
        yield Node(url, netns("host"), tmp / "run", tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def sandboxes() -> Iterator[Callable[[int], list[str]]]:
    made: list[str] = []

    def make(n: int) -> list[str]:
        names = [f"ght{os.getpid()}-sb{len(made) + i}" for i in range(n)]
        for name in names:
            add_netns(name)
            made.append(name)
        return names

    yield make
    for name in made:
        delete_netns(name)


def _consistent(node: Node, cids: list[str]) -> None:
    """Each container: one endpoint, whose addresses are exactly what its handle holds;
    no handle holds an address no endpoint has; every veth is an endpoint's."""
    eps, handles = node.state()
    assert sorted(eps) == sorted(cids)
    for cid in cids:
        nets = [n.split("/")[0] for n in eps[cid]["spec"]["ipNetworks"]]
        assert handles.get(f"blue.{cid}") == sorted(nets), cid
    assert set(handles) == {f"blue.{cid}" for cid in cids}
    addresses = [ip for held in handles.values() for ip in held]
    assert len(addresses) == len(set(addresses)), "an address handed out twice"
    assert node.veths() == {eps[cid]["spec"]["interfaceName"] for cid in cids}


# -- the socket ---------------------------------------------------------------------------


def _connect_as_nobody(path: Path) -> str:
    """What connecting to ``path`` as uid 65534 gives: "refused by the kernel", or what the
    server said first ("" if it closed without a word)."""
    code = ("import os, socket, sys\n"
            "os.setuid(65534)\n"
            "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
            "s.settimeout(5)\n"
            "try:\n"
            f"    s.connect({str(path)!r})\n"
            "except PermissionError:\n"
            "    print('refused by the kernel'); sys.exit()\n"
            "try:\n"
            "    s.sendall(b'GCNI1' + (0).to_bytes(4, 'big') + (2).to_bytes(4, 'big') + b'{}')\n"
            "    print(s.recv(1).decode())\n"
            "except OSError:\n"
            "    print('')  # closed on us\n")  # fmt: skip
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, check=True).stdout.strip()


def test_the_socket_is_roots_alone(node: Node) -> None:
    with node_agent(node.host, node.url, node.run_dir) as agent:
        st = os.stat(agent.socket)
        assert stat.S_ISSOCK(st.st_mode) and st.st_uid == 0
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert _connect_as_nobody(agent.socket) == "refused by the kernel"
        # a second wall: with the file opened to all, the agent still turns them away
        for directory in (node.tmp, node.run_dir, agent.socket.parent):
            os.chmod(directory, 0o755)
        os.chmod(agent.socket, 0o666)
        assert _connect_as_nobody(agent.socket) == ""
        assert "refused a peer with uid 65534" in agent.log()


# -- many at once ------------------------------------------------------------------------


def test_fifty_parallel_adds_through_the_agent_give_no_duplicate_address(
    node: Node, sandboxes: Callable[[int], list[str]]
) -> None:
    names = sandboxes(50)
    cids = [f"par{i}" for i in range(50)]
    with node_agent(node.host, node.url, node.run_dir) as agent, \
            ThreadPoolExecutor(50) as pool:
        # no program on the plugin's PATH: a fallback to the direct path would fail
        adds = list(pool.map(lambda i: node.cni("ADD", cids[i], names[i], search="/nonexistent"),
                             range(50)))
        for code, out, err in adds:
            assert code == 0, (out, err)
        ips = [out["ips"][0]["address"] for _, out, _ in adds]
        assert len(set(ips)) == 50
        assert agent.handled("ADD") == 50
        _consistent(node, cids)
        dels = list(pool.map(lambda i: node.cni("DEL", cids[i], names[i], search="/nonexistent"),
                             range(50)))
        assert all(code == 0 for code, _, _ in dels), dels
        assert eventually(lambda: node.veths() == set())
        assert node.state() == ({}, {})


def test_the_agent_runs_no_program_for_a_workload(node: Node,
                                                  sandboxes: Callable[[int], list[str]]) -> None:
    """`ip` and `nsenter` on the agent's own PATH record their calls: ADD and DEL make none
    (the agent itself runs `ip -j` now and then to measure its host: not for workloads)."""
    record = node.tmp / "calls.log"
    wrappers = node.tmp / "bin"
    wrappers.mkdir()
    for tool in ("ip", "nsenter"):
        real = shutil.which(tool)
        assert real
        (wrappers / tool).write_text(f'#!/bin/sh\necho "$0 $*" >> {record}\nexec {real} "$@"\n')
        (wrappers / tool).chmod(0o755)
    [wl] = sandboxes(1)
    agent = NodeAgent(node.host, node.url, node.run_dir)
    path = os.environ["PATH"]
    os.environ["PATH"] = f"{wrappers}:{path}"  # the agent's environment, not the plugin's
    try:
        agent.start()
    finally:
        os.environ["PATH"] = path
    record.unlink(missing_ok=True)  # what started the agent, and what it ran to start
    try:
        assert node.cni("ADD", "np1", wl, search="/nonexistent")[0] == 0
        assert node.cni("DEL", "np1", wl, search="/nonexistent")[0] == 0
        assert agent.handled("ADD") == 1 and agent.handled("DEL") == 1
    finally:
        agent.stop()
    calls = record.read_text() if record.exists() else ""
    assert not [line for line in calls.splitlines() if "nsenter" in line or " link " in line
                or " route " in line or " addr add" in line or "netns" in line], calls


# -- kill -9 -------------------------------------------------------------------------------


def test_an_agent_killed_in_the_middle_of_adds_leaks_nothing(
    node: Node, sandboxes: Callable[[int], list[str]]
) -> None:
    n = 30
    names = sandboxes(n)
    cids = [f"k9c{i}" for i in range(n)]
    agent = NodeAgent(node.host, node.url, node.run_dir)
    agent.start()
    # Line the ADDs up inside the agent: sqlite writers queue on this lock, so while the
    # test holds it every ADD the agent took (after GO) waits at its first write.
    lock = os.open(node.url.removeprefix("sqlite://") + "-lock", os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with ThreadPoolExecutor(n) as pool:
            futures = [pool.submit(node.cni, "ADD", cids[i], names[i]) for i in range(n)]
            time.sleep(2.0)  # every client has had its ACCEPT and sent GO
            fcntl.flock(lock, fcntl.LOCK_UN)
            deadline = time.monotonic() + 60
            while agent.handled("ADD") < 3 and time.monotonic() < deadline:
                time.sleep(0.002)
            agent.kill()  # some answered, some half done, most waiting in its queue
            results = [f.result() for f in futures]
    finally:
        os.close(lock)
        agent.stop()
    assert not agent.serving()
    handled = agent.handled("ADD")
    fallbacks = sum("ended without an answer" in err for _, _, err in results)
    assert 0 < handled < n and fallbacks > 0, (handled, fallbacks)
    # the runtime's part: an ADD that failed is retried (a DEL-less retry, as kubelet does)
    for i, (code, out, err) in enumerate(results):
        if code != 0:
            retry = node.cni("ADD", cids[i], names[i])
            assert retry[0] == 0, (out, err, retry)
    _consistent(node, cids)
    for _ in range(2):  # a leak is reported only when two checks saw it
        check = subprocess.run([str(Path(sys.executable).with_name("gingham")), "--datastore",
                                node.url, "ipam", "check", "--grace", "0", "-o", "json"],
                               capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    report = json.loads(check.stdout)
    assert report.get("leaks", []) == [], report
    for i in range(n):
        assert node.cni("DEL", cids[i], names[i])[0] == 0
    assert eventually(lambda: node.veths() == set())
    assert node.state() == ({}, {})


# -- not the agent's to do ------------------------------------------------------------------


def test_a_request_for_another_datastore_is_declined_and_done_here(
    node: Node, sandboxes: Callable[[int], list[str]]
) -> None:
    other = f"sqlite://{node.tmp / 'other.db'}"
    ds = open_datastore(other, create=True)
    try:
        ResourceStore(ds).apply(parse_resource(POOL))
    finally:
        ds.close()
    [wl] = sandboxes(1)
    with node_agent(node.host, node.url, node.run_dir) as agent:
        code, out, err = node.cni("ADD", "elsewhere", wl, conf=node.conf(datastore=other))
        assert code == 0, (out, err)
        assert "declined (the network configuration names another datastore)" in err
        assert agent.handled("ADD") == 0
        ds = open_datastore(other)
        try:
            assert [kv.key for kv in ds.list(EP_PREFIX)[0]] == \
                [f"{EP_PREFIX}default/h1-cni-elsewhere-eth0"]
        finally:
            ds.close()
        assert node.state() == ({}, {})  # nothing in the agent's datastore
        assert node.cni("DEL", "elsewhere", wl, conf=node.conf(datastore=other))[0] == 0


def test_a_stopped_agent_leaves_no_socket_and_the_plugin_works_alone(
    node: Node, sandboxes: Callable[[int], list[str]]
) -> None:
    [wl] = sandboxes(1)
    with node_agent(node.host, node.url, node.run_dir) as agent:
        path = agent.socket
    assert not path.exists()
    code, out, err = node.cni("ADD", "alone", wl)
    assert code == 0 and err == "", (out, err)
    _consistent(node, ["alone"])
    # a socket left by a killed agent: nobody listens, the plugin goes on alone
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(path))
    leftover.close()
    assert node.cni("DEL", "alone", wl)[0] == 0
