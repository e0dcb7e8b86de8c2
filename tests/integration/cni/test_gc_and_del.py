"""CNI GC and DEL, run as a runtime runs them, in a throwaway host namespace with real
veths: GC removes only its own network's attachments on its own node, refuses to guess
when the runtime's list of valid attachments is missing, and neither GC nor DEL is
stopped by a malformed endpoint; the plugin's children never see its environment.

Every test runs through both paths: handed to a real node agent in the host namespace,
and run by the plugin itself."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gingham.cni.plugin import NETWORK_ANNOTATION
from gingham.datastore import open_datastore
from gingham.datastore.resources import ResourceStore
from gingham.lab.netns import run_in_netns
from gingham.model import parse_resource
from tests.integration.cni.node_agent import PATHS, eventually, node_agent, path_conf

pytestmark = pytest.mark.integration

CNI = str(Path(sys.executable).with_name("gingham-cni"))
NSENTER = shutil.which("nsenter") or "nsenter"  # by path: tests put wrappers first on PATH
EP_PREFIX = "/gingham/v1/resources/WorkloadEndpoint/"
POOLS = [{"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": name},
          "spec": {"cidr": cidr, "blockSize": size, "nodeSelector": "all()"}}
         for name, cidr, size in (("v4", "198.18.0.0/16", 26), ("v6", "2001:db8::/48", 122))]  # fmt: skip
V6_ONLY = {"type": "gingham-ipam", "assign_ipv4": False, "assign_ipv6": True}

Make = Callable[[str], str]


@dataclass
class Node:
    url: str
    host: str  # the host's network namespace: the plugin runs in it
    make_netns: Make
    path: str  # "agent" or "direct"
    extra: dict[str, Any]  # what the network configuration says for the path

    def cni(self, command: str, network: str, cid: str = "", workload: str = "",
            ifname: str = "eth0", netns: str | None = None, env: dict[str, str] | None = None,
            conf: dict[str, Any] | None = None) -> tuple[int, dict[str, Any], str]:  # fmt: skip
        doc = {"cniVersion": "1.1.0", "name": network, "type": "gingham", "datastore": self.url,
               "nodename": "h1", "mtu": 1400, "ipam": {"type": "gingham-ipam"},
               "args": {"org.gingham": {"namespace": "ns1", "name": workload or cid}}
               } | self.extra | (conf or {})
        full = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
                "CNI_NETNS": f"/run/netns/{netns}" if netns else "", "CNI_IFNAME": ifname,
                **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}, **(env or {})}
        proc = subprocess.run([NSENTER, f"--net=/run/netns/{self.host}", "--", CNI],
                              input=json.dumps(doc), capture_output=True, text=True, env=full,
                              timeout=60, check=False)  # fmt: skip
        assert "Traceback" not in proc.stderr, proc.stderr
        out = json.loads(proc.stdout) if proc.stdout.strip() else {}
        return proc.returncode, out, proc.stderr

    def add(self, network: str, cid: str, workload: str = "", ifname: str = "eth0",
            netns: str | None = None) -> str:  # fmt: skip
        """ADD a container in a fresh namespace (or ``netns``); returns its host veth."""
        code, out, err = self.cni("ADD", network, cid, workload, ifname,
                                  netns or self.make_netns(cid[-6:]))  # fmt: skip
        assert code == 0, (out, err)
        return str(out["interfaces"][0]["name"])

    def gc(self, network: str, valid: object) -> tuple[int, dict[str, Any], str]:
        return self.cni("GC", network, conf={"cni.dev/valid-attachments": valid})

    def links(self) -> set[str]:
        out = run_in_netns(self.host, ["ip", "-j", "link", "show"]).stdout
        return {link["ifname"] for link in json.loads(out)} - {"lo"}

    def store(self) -> tuple[dict[str, Any], set[str]]:
        """Endpoint documents by key (raw text for undecodable ones) and IPAM handles."""
        ds = open_datastore(self.url)
        try:
            eps = {kv.key: getattr(kv.value, "raw", None) or kv.value
                   for kv in ds.list(EP_PREFIX)[0]}  # fmt: skip
            handles = {kv.key.rsplit("/", 1)[1] for kv in ds.list("/gingham/v1/ipam/handles/")[0]}
        finally:
            ds.close()
        return eps, handles

    def state(self) -> tuple[set[str], dict[str, Any], set[str]]:
        return (self.links(), *self.store())

    def put(self, key: str, value: dict[str, Any] | bytes) -> None:
        ds = open_datastore(self.url)
        try:
            if isinstance(value, bytes):
                ds.put_raw(key, value)
            elif (kv := ds.get(key)) is None:
                ds.create(key, value)
            else:
                ds.update(key, value, revision=kv.mod_revision)
        finally:
            ds.close()

    def endpoint_key(self, cid: str, ifname: str = "eth0") -> str:
        eps, _ = self.store()
        [key] = [k for k, v in eps.items() if isinstance(v, dict)
                 and v["spec"]["containerID"] == cid and v["spec"]["endpoint"] == ifname]  # fmt: skip
        return key


@pytest.fixture(params=PATHS)
def node(netns: Make, request: pytest.FixtureRequest) -> Iterator[Node]:
    tmp = tempfile.mkdtemp(prefix="gingham-cni-gc-")
    try:
        url = f"sqlite://{tmp}/gingham.db"
        ds = open_datastore(url, create=True)
        try:
            for pool in POOLS:
                ResourceStore(ds).apply(parse_resource(pool))
        finally:
            ds.close()
        host = netns("host")
        # the host's "uplink": what a GC that trusts any endpoint record would delete
        run_in_netns(host, ["ip", "link", "add", "up0", "type", "veth", "peer", "name", "up0p"])
        run_dir = Path(tmp) / "run"
        if request.param == "direct":
            yield Node(url, host, netns, "direct", path_conf("direct", run_dir))
            return
        with node_agent(host, url, run_dir) as agent:
            yield Node(url, host, netns, "agent", path_conf("agent", run_dir))
            assert agent.handled("ADD") + agent.handled("DEL") > 0  # it did take them
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _foreign_endpoint(name: str, interface: str, annotations: dict[str, str]) -> dict[str, Any]:
    """An endpoint as `gingham apply` or another orchestrator would write it."""
    return {"apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
            "metadata": {"name": name, "namespace": "ns1", "annotations": annotations},
            "spec": {"orchestrator": "openstack", "workload": name, "node": "h1",
                     "containerID": name, "endpoint": "eth0", "interfaceName": interface,
                     "ipNetworks": ["198.18.200.1/32"]}}  # fmt: skip


# -- GC ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "valid",
    ["missing", None, "ctr1", {"containerID": "ctr1", "ifname": "eth0"}, ["ctr1"],
     [{"containerID": "ctr1"}]],
    ids=["missing", "null", "string", "object", "list-of-strings", "no-ifname"],
)  # fmt: skip
def test_gc_without_a_list_of_valid_attachments_touches_nothing(node: Node, valid: object) -> None:
    node.add("blue", "ctr1")
    node.add("blue", "ctr2")
    before = node.state()
    if valid == "missing":
        code, out, _ = node.cni("GC", "blue")
    else:
        code, out, _ = node.gc("blue", valid)
    assert code == 1 and out["code"] == 7, out
    assert "cni.dev/valid-attachments" in out["msg"]
    assert node.state() == before


def test_gc_of_one_network_leaves_other_networks_alone(node: Node) -> None:
    blue1 = node.add("blue", "ctr1", "wa")
    red2 = node.add("red", "ctr2", "wb")
    blue3 = node.add("blue", "ctr3", "wc")
    assert {blue1, red2, blue3} <= node.links()

    code, out, err = node.gc("blue", [{"containerID": "ctr1", "ifname": "eth0"}])
    assert code == 0, (out, err)
    links, eps, handles = node.state()
    assert blue1 in links and red2 in links and blue3 not in links
    assert {v["spec"]["containerID"] for v in eps.values()} == {"ctr1", "ctr2"}
    assert handles == {"blue.ctr1", "red.ctr2"}

    # red's own GC, with nothing valid, removes red's attachment and releases its addresses
    code, out, err = node.gc("red", [])
    assert code == 0, (out, err)
    links, eps, handles = node.state()
    assert blue1 in links and red2 not in links
    assert {v["spec"]["containerID"] for v in eps.values()} == {"ctr1"}
    assert handles == {"blue.ctr1"}


def test_gc_never_touches_endpoints_it_did_not_make(node: Node) -> None:
    mine = node.add("blue", "ctr1")
    # written by another orchestrator (no record of a CNI network), naming the uplink
    node.put(EP_PREFIX + "ns1/h1-openstack-vm1-eth0", _foreign_endpoint("vm1", "up0", {}))
    # claims to be blue's, but names an interface this plugin never makes for it
    node.put(EP_PREFIX + "ns1/h1-openstack-vm2-eth0",
             _foreign_endpoint("vm2", "up0p", {NETWORK_ANNOTATION: "blue"}))  # fmt: skip
    eps_before, _ = node.store()

    code, out, err = node.gc("blue", [])
    assert code == 0, (out, err)
    links, eps, handles = node.state()
    assert {"up0", "up0p"} <= links and mine not in links
    assert set(eps) == set(eps_before) - {k for k, v in eps_before.items()
                                          if v["spec"]["containerID"] == "ctr1"}  # fmt: skip
    assert handles == set()
    assert "h1-openstack-vm2-eth0" in err and "up0p" in err


def test_gc_on_one_node_leaves_another_nodes_attachments(node: Node) -> None:
    mine = node.add("blue", "ctr1")
    code, out, err = node.cni("GC", "blue", conf={"nodename": "h2", "cni.dev/valid-attachments": []})
    assert code == 0, (out, err)
    links, eps, handles = node.state()
    assert mine in links and len(eps) == 1 and handles == {"blue.ctr1"}


def test_malformed_endpoints_do_not_stop_gc(node: Node) -> None:
    keep = node.add("blue", "ctr1")
    stale = node.add("blue", "ctr2")
    bad_shape = EP_PREFIX + "ns1/h1-cni-odd-eth0"
    not_json = EP_PREFIX + "ns1/h1-cni-garbled-eth0"
    node.put(bad_shape, {"kind": "WorkloadEndpoint", "metadata": {"name": "odd"}, "spec": "oops"})
    node.put(not_json, b"\xff{ not json")

    code, out, err = node.gc("blue", [{"containerID": "ctr1", "ifname": "eth0"}])
    assert code == 0, (out, err)
    links, eps, handles = node.state()
    assert keep in links and stale not in links
    assert handles == {"blue.ctr1"}
    assert {bad_shape, not_json} < set(eps)  # never trusted, never deleted
    assert bad_shape in err and not_json in err


def _second_interface(node: Node, network: str, wl: str) -> str:
    """ADD net1 for ctr1 beside its eth0, as Multus would (IPv6 only: eth0 owns the v4 routes)."""
    code, out, err = node.cni("ADD", network, "ctr1", wl, "net1", wl, conf={"ipam": V6_ONLY})
    assert code == 0, (out, err)
    return str(out["interfaces"][0]["name"])


def test_adding_a_second_interface_never_removes_the_first(node: Node) -> None:
    wl = node.make_netns("two")
    eth0 = node.add("blue", "ctr1", wl, "eth0", wl)
    net1 = _second_interface(node, "green", wl)
    assert eth0 != net1 and {eth0, net1} <= node.links()
    assert node.store()[1] == {"blue.ctr1", "green.ctr1"}


def test_gc_keeps_the_addresses_of_a_containers_other_valid_interface(node: Node) -> None:
    wl = node.make_netns("multi")
    eth0 = node.add("blue", "ctr1", wl, "eth0", wl)
    net1 = _second_interface(node, "blue", wl)  # same network, so the same handle
    code, out, err = node.gc("blue", [{"containerID": "ctr1", "ifname": "eth0"}])
    assert code == 0, (out, err)
    links, eps, handles = node.state()
    assert eth0 in links and net1 not in links
    assert [v["spec"]["endpoint"] for v in eps.values()] == ["eth0"]
    assert handles == {"blue.ctr1"}  # eth0's address stays held


# -- DEL ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [b"\xff{ not json", {"kind": "WorkloadEndpoint", "metadata": {"name": "x"}, "spec": "oops"},
     {"kind": "WorkloadEndpoint", "metadata": {"name": "x", "namespace": "ns1"},
      "spec": {"containerID": ["ctr1"]}}],
    ids=["undecodable", "spec-not-an-object", "containerID-not-a-string"],
)  # fmt: skip
def test_del_with_its_endpoint_malformed_still_removes_interface_and_addresses(
    node: Node, bad: dict[str, Any] | bytes
) -> None:
    other = node.add("blue", "ctr0")
    wl = node.make_netns("victim")
    veth = node.add("blue", "ctr1", netns=wl)
    key = node.endpoint_key("ctr1")
    node.put(key, bad)

    code, out, err = node.cni("DEL", "blue", "ctr1", netns=wl)
    assert code == 0, (out, err)
    assert eventually(lambda: veth not in node.links())
    links, eps, handles = node.state()
    assert veth not in links and other in links
    assert handles == {"blue.ctr0"}
    assert key in eps  # left for an operator to look at
    assert key in err and "malformed" in err
    assert node.cni("DEL", "blue", "ctr1", netns=wl)[0] == 0  # still idempotent
    assert node.cni("DEL", "blue", "ctr1")[0] == 0


def test_del_of_a_gone_container_succeeds(node: Node) -> None:
    assert node.cni("DEL", "blue", "never-added")[0] == 0


# -- secrets --------------------------------------------------------------------------


def test_the_plugins_children_never_see_its_environment(node: Node, tmp_path: Path) -> None:
    """Runtimes may hand the plugin GINGHAM_DATASTORE with a password in it; `ip` and
    `nsenter`, visible to `ps e`, get a minimal environment. Through the agent, the
    plugin starts no process at all."""
    secret = "TOPSECRET-hunter2"
    record = tmp_path / "children.log"
    wrappers = tmp_path / "bin"
    wrappers.mkdir()
    for tool in ("ip", "nsenter"):
        real = shutil.which(tool)
        assert real
        script = wrappers / tool
        script.write_text(f'#!/bin/sh\n{{ echo "ARGV $0 $*"; env; }} >> {record}\n'
                          f'exec {real} "$@"\n')  # fmt: skip
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    env = {"PATH": f"{wrappers}:{os.environ['PATH']}",
           "GINGHAM_DATASTORE": f"etcd://gingham:{secret}@127.0.0.1:2379"}  # fmt: skip
    wl = node.make_netns("env")
    code, out, err = node.cni("ADD", "blue", "ctr1", netns=wl, env=env)
    assert code == 0, (out, err)
    code, out, err = node.cni("DEL", "blue", "ctr1", netns=wl, env=env)
    assert code == 0, (out, err)
    log = record.read_text() if record.exists() else ""
    if node.path == "agent":
        assert log == ""
        return
    assert "ARGV" in log and "link del" in log  # both the setup and the teardown ran through
    assert secret not in log
