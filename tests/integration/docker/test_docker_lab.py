"""Docker on two lab hosts with the gingham driver: a real dockerd per host, real agents,
packets between containers decide.

One network of the same name on both hosts; containers reach each other across hosts;
a GlobalNetworkPolicy on Docker labels blocks, then allows; ``docker rm -f`` and
``docker network rm`` give every address back, also when the plugin was down for the
``rm``; no ``docker_gwbridge`` ever; the machine's firewall outside gingham untouched.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable, Iterator

import pytest

from gingham.datastore import keys, open_datastore
from gingham.datastore.resources import apply_manifests
from gingham.ipam import keys as ipam_keys
from gingham.ipam import who_holds
from gingham.ipam.leaks import check
from gingham.ipam.unreadable import scan_blocks
from gingham.lab import docker as labdocker
from gingham.lab import lab as labmod
from gingham.lab import state as labstate
from tests.integration.faults.tools import wait_until
from tests.integration.lab.test_lab_docker import firewall, links

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("dockerd") is None, reason="dockerd not installed (docker.io)"),
]

NET = "ginnet"
IMAGE = labdocker.IMAGE
# busybox's own nc: each connection is answered "hello" (its static wget crashes on
# this machine's busybox build)
SERVE = ("nc", "-ll", "-p", "80", "-e", "echo", "hello")
POLICY = """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: docker-servers}
spec:
  selector: role == 'server'
  types: [Ingress]
  ingress: %s
"""
ALLOW_CLIENTS = "[{action: Allow, protocol: TCP, source: {selector: role == 'client'}, " \
                "destination: {ports: [80]}}]"


@pytest.fixture(scope="module")
def lab() -> Iterator[str]:
    name = f"dk{os.getpid() % 100000}"
    labmod.down(name)
    before = firewall()
    try:
        labmod.up(name, hosts=2, make_current=False, docker=True)
        yield name
    finally:
        labmod.down(name)
    assert firewall() == before


def docker(lab: str, host: str, *args: str) -> str:
    got = labdocker.docker_cli(labstate.load(lab), host, *args)
    assert got.returncode == 0, f"docker {' '.join(args)} on {host}: {got.stderr}"
    return got.stdout.strip()


def apply(lab: str, text: str) -> None:
    apply_manifests(labstate.load(lab).datastore, text)


def libnetwork_handles(lab: str) -> dict[str, set[str]]:
    """Addresses held by the Docker driver, by handle."""
    ds = open_datastore(labstate.load(lab).datastore)
    try:
        blocks, _ = scan_blocks(ds.list(ipam_keys.BLOCKS)[0])
    finally:
        ds.close()
    held: dict[str, set[str]] = {}
    for _kv, block in blocks:
        for ordinal, attrs in block.allocated():
            if attrs.handle.startswith("libnetwork."):
                held.setdefault(attrs.handle, set()).add(str(block.ip_of(ordinal)))
    return held


def holder(lab: str, ip: str) -> object:
    ds = open_datastore(labstate.load(lab).datastore)
    try:
        return who_holds(ds, ip)
    finally:
        ds.close()


def endpoints(lab: str) -> list[dict[str, object]]:
    ds = open_datastore(labstate.load(lab).datastore)
    try:
        items, _ = ds.list(keys.resource_prefix("WorkloadEndpoint", NET))
    finally:
        ds.close()
    return [kv.value for kv in items]


def eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    wait_until(check, timeout, what, interval=0.2)


def no_gateway_bridge(lab: str) -> None:
    for netns in [None, *(h.netns for h in labstate.load(lab).hosts)]:
        assert not {"docker_gwbridge", "docker0"} & set(links(netns)), netns


def fetch(lab: str, host: str, client: str, ip: str) -> bool:
    got = labdocker.docker_cli(labstate.load(lab), host, "exec", client, "nc", "-w", "2",
                               ip, "80")
    return got.returncode == 0 and got.stdout.strip() == "hello"


def address(lab: str, host: str, container: str) -> str:
    return docker(lab, host, "inspect", "-f",
                  "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container)


def labelled(lab: str, ip: str, role: str) -> bool:
    return any(ep["spec"]["ipNetworks"] == [f"{ip}/32"]  # type: ignore[index]
               and ep["metadata"].get("labels") == {"role": role}  # type: ignore[union-attr]
               for ep in endpoints(lab))


def test_containers_across_hosts_policy_on_docker_labels_and_nothing_leaks(lab: str) -> None:
    for host in ("h1", "h2"):
        docker(lab, host, "network", "create", "-d", "gingham", "--ipam-driver", "gingham", NET)
    no_gateway_bridge(lab)
    docker(lab, "h2", "run", "-d", "--name", "srv", "--network", NET, "-l", "role=server",
           IMAGE, *SERVE)
    for name, role in (("cli", "client"), ("other", "other")):
        docker(lab, "h1", "run", "-d", "--name", name, "--network", NET, "-l", f"role={role}",
               IMAGE, "sleep", "3600")
    srv = address(lab, "h2", "srv")
    cli, other = address(lab, "h1", "cli"), address(lab, "h1", "other")
    assert len({srv, cli, other}) == 3
    eventually(lambda: labelled(lab, srv, "server") and labelled(lab, cli, "client"),
               "the containers' Docker labels on their endpoints")
    eventually(lambda: fetch(lab, "h1", "cli", srv), "cli (h1) reaches srv (h2)")
    eventually(lambda: fetch(lab, "h1", "other", srv), "other (h1) reaches srv (h2)")
    no_gateway_bridge(lab)

    apply(lab, POLICY % "[]")  # selects the server: nothing may come in
    eventually(lambda: not fetch(lab, "h1", "cli", srv), "the policy blocks cli")
    assert not fetch(lab, "h1", "other", srv)
    apply(lab, POLICY % ALLOW_CLIENTS)
    eventually(lambda: fetch(lab, "h1", "cli", srv), "the policy lets clients in")
    assert not fetch(lab, "h1", "other", srv), "a container without role=client got in"

    docker(lab, "h1", "rm", "-f", "other")
    eventually(lambda: holder(lab, other) is None, "docker rm -f frees the address")
    assert not any(ep["spec"]["ipNetworks"] == [f"{other}/32"]  # type: ignore[index]
                   for ep in endpoints(lab))
    no_gateway_bridge(lab)


def test_a_plugin_restart_loses_nothing_and_rm_while_it_was_down_leaks_nothing(
        lab: str) -> None:
    state = labstate.load(lab)
    h1 = state.host("h1")
    before = libnetwork_handles(lab)
    cli = address(lab, "h1", "cli")
    srv = address(lab, "h2", "srv")
    # the plugin dies; its supervisor brings it back; running containers keep everything
    pid, _ = labdocker.plugin_state(state, h1)
    os.kill(pid, signal.SIGKILL)
    eventually(lambda: labdocker.plugin_state(state, h1)[0] not in (0, pid)
               and labdocker.plugin_state(state, h1)[1] == "running", "the plugin restarted")
    assert libnetwork_handles(lab) == before
    assert fetch(lab, "h1", "cli", srv)
    docker(lab, "h1", "run", "-d", "--name", "late", "--network", NET, IMAGE, "sleep", "3600")
    late = address(lab, "h1", "late")

    # down while Docker removes a container: Docker's calls fail, it removes it anyway
    supervisor = h1.plugin_supervisor_pid
    os.kill(supervisor, signal.SIGSTOP)
    try:
        pid, _ = labdocker.plugin_state(state, h1)
        os.kill(pid, signal.SIGKILL)
        gone = labdocker.docker_cli(state, "h1", "rm", "-f", "late", timeout=180)
        assert "late" in gone.stdout, gone.stderr
        assert holder(lab, late) is not None  # nobody told gingham yet
    finally:
        os.kill(supervisor, signal.SIGCONT)
    eventually(lambda: holder(lab, late) is None, "the restarted plugin frees late's address")
    assert not any(ep["spec"]["ipNetworks"] == [f"{late}/32"]  # type: ignore[index]
                   for ep in endpoints(lab))
    assert holder(lab, cli) is not None and fetch(lab, "h1", "cli", srv)
    assert libnetwork_handles(lab) == before


def test_rm_and_network_rm_give_every_address_back(lab: str) -> None:
    docker(lab, "h1", "rm", "-f", "cli")
    docker(lab, "h2", "rm", "-f", "srv")
    for host in ("h1", "h2"):
        docker(lab, host, "network", "rm", NET)
    assert libnetwork_handles(lab) == {}
    assert endpoints(lab) == []
    ds = open_datastore(labstate.load(lab).datastore)
    try:  # `gingham ipam check`, twice (a finding counts on its second sighting)
        check(ds, grace=0)
        assert check(ds, grace=0).leaks == ()
    finally:
        ds.close()
    for host in ("h1", "h2"):
        assert not [ln for ln in links(labstate.load(lab).host(host).netns)
                    if ln.startswith(("gh", "ghd"))]
    no_gateway_bridge(lab)
