"""The network half of the Docker driver, its labels and its start-up reconcile, on a real
sqlite store. The veth itself is tested against a real daemon in
tests/integration/docker."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from gingham.datastore import keys
from gingham.datastore.base import Datastore
from gingham.docker import reconcile
from gingham.docker.engine import Attached
from gingham.docker.ipam_driver import LOCAL_SPACE, IpamDriver
from gingham.docker.labels import SKIPPED_ANNOTATION, LabelFollower, labelled
from gingham.docker.network_driver import NetworkDriver, endpoint_key
from gingham.docker.server import PluginServer
from gingham.errors import DockerError
from gingham.ipam import who_holds
from tests.unit.ipam.helpers import put_pool

NET = "a" * 64
EP = "b" * 64
CID = "c" * 64


class Daemon:
    """What the driver asks of a Docker daemon, answered from memory."""

    def __init__(self) -> None:
        self.names = {NET: "web"}
        self.containers: dict[str, dict[str, Any]] = {}  # network id -> Containers
        self.labels: dict[str, dict[str, str]] = {}

    def network_name(self, network_id: str) -> str | None:
        return self.names.get(network_id)

    def network(self, network_id: str) -> dict[str, Any] | None:
        if network_id not in self.names:
            return None
        return {"Name": self.names[network_id], "Containers": self.containers.get(network_id, {})}

    def container_labels(self, container_id: str) -> dict[str, str] | None:
        return self.labels.get(container_id)


@pytest.fixture
def world(sqlite_store: Datastore, tmp_path: Path) -> tuple[IpamDriver, NetworkDriver, Daemon]:
    put_pool(sqlite_store, "p4", "198.18.0.0/16", 26)
    daemon = Daemon()
    ipam = IpamDriver(sqlite_store, "h1")
    net = NetworkDriver(sqlite_store, "h1", daemon, tmp_path)  # type: ignore[arg-type]
    return ipam, net, daemon


def endpoint(ipam: IpamDriver, net: NetworkDriver, **iface: str) -> str:
    pid = ipam.request_pool({"AddressSpace": LOCAL_SPACE})["PoolID"]
    addr = ipam.request_address({"PoolID": pid})["Address"]
    net.create_endpoint({"NetworkID": NET, "EndpointID": EP,
                         "Interface": {"Address": addr, **iface}})
    return str(addr)


def test_create_endpoint_writes_the_workload_endpoint_and_a_mac_only_if_docker_sent_none(
        world: tuple[IpamDriver, NetworkDriver, Daemon], sqlite_store: Datastore) -> None:
    ipam, net, _ = world
    pid = ipam.request_pool({"AddressSpace": LOCAL_SPACE})["PoolID"]
    addr = ipam.request_address({"PoolID": pid})["Address"]
    reply = net.create_endpoint({"NetworkID": NET, "EndpointID": EP,
                                 "Interface": {"Address": addr}})
    mac = reply["Interface"]["MacAddress"]
    assert set(reply["Interface"]) == {"MacAddress"}  # never the Address Docker set
    # fail closed: no WorkloadEndpoint (agents drop the veth's traffic) until the labels
    assert sqlite_store.get(endpoint_key("h1", "web", EP)) is None
    kv = sqlite_store.get(keys.docker_pending_key("h1", EP))
    assert kv is not None
    spec = kv.value["spec"]
    assert (spec["orchestrator"], spec["node"], spec["endpoint"], spec["mac"]) == \
        ("libnetwork", "h1", EP, mac)
    assert spec["ipNetworks"] == [addr] and spec["interfaceName"].startswith("gh")
    assert spec["profiles"] == ["kns.web"]
    assert sqlite_store.get(keys.resource_key("Namespace", "web")) is not None
    again = net.create_endpoint({"NetworkID": NET, "EndpointID": EP,
                                 "Interface": {"Address": addr, "MacAddress": mac}})
    assert again == {"Interface": {}}
    assert net.oper_info({"NetworkID": NET, "EndpointID": EP})["Value"]["addresses"] == [addr]
    net.delete_endpoint({"NetworkID": NET, "EndpointID": EP})
    assert sqlite_store.get(keys.docker_pending_key("h1", EP)) is None
    net.delete_endpoint({"NetworkID": NET, "EndpointID": EP})  # idempotent


@pytest.mark.parametrize(("body", "message"), [
    ({"NetworkID": NET, "EndpointID": EP, "Interface": {}}, "has no address"),
    ({"NetworkID": NET, "EndpointID": EP, "Interface": {"Address": "198.18.200.1/32"}},
     "was not handed out by gingham IPAM"),
    ({"NetworkID": "../x", "EndpointID": EP}, "NetworkID '../x' is not a Docker ID"),
])
def test_create_endpoint_refuses_by_name(world: tuple[IpamDriver, NetworkDriver, Daemon],
                                         body: dict[str, Any], message: str) -> None:
    with pytest.raises(DockerError, match=message):
        world[1].create_endpoint(body)


def test_a_network_name_that_cannot_be_a_namespace_is_refused(
        world: tuple[IpamDriver, NetworkDriver, Daemon], sqlite_store: Datastore) -> None:
    ipam, net, daemon = world
    daemon.names[NET] = "My_Net"
    with pytest.raises(DockerError, match="'My_Net' cannot be a gingham namespace"):
        endpoint(ipam, net)
    items, _ = sqlite_store.list(keys.resource_prefix("WorkloadEndpoint"))
    assert items == []


@pytest.mark.parametrize(("body", "message"), [
    ({"IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": "172.18.0.0/16"}]},
     "--ipam-driver gingham"),
    ({"IPv4Data": [{"AddressSpace": LOCAL_SPACE, "AuxAddresses": {"a": "198.18.0.9"}}]},
     "--aux-address"),
    ({"Options": {"com.docker.network.generic": {"mtu": "9000"}}}, r"options \(-o\): mtu"),
])
def test_create_network_refuses_what_it_would_ignore(
        world: tuple[IpamDriver, NetworkDriver, Daemon], body: dict[str, Any],
        message: str) -> None:
    with pytest.raises(DockerError, match=message):
        world[1].create_network({"NetworkID": NET, **body})


def test_published_ports_are_refused(world: tuple[IpamDriver, NetworkDriver, Daemon]) -> None:
    with pytest.raises(DockerError, match="-p"):
        world[1].program_external({"NetworkID": NET, "EndpointID": EP, "Options": {
            "com.docker.network.portmap": [{"Proto": 6, "Port": 80, "HostPort": 8080}]}})
    assert world[1].program_external({"NetworkID": NET, "EndpointID": EP}) == {}


def test_labels_land_once_the_container_holds_the_endpoint(
        world: tuple[IpamDriver, NetworkDriver, Daemon], sqlite_store: Datastore) -> None:
    ipam, net, daemon = world
    endpoint(ipam, net)
    key = endpoint_key("h1", "web", EP)
    polls: list[int] = []

    def sleep(_s: float) -> None:
        polls.append(1)
        if len(polls) == 2:  # Docker's placeholder first, then the container
            daemon.containers[NET] = {CID: {"EndpointID": EP}}
        else:
            daemon.containers[NET] = {f"ep-{EP}": {"EndpointID": EP}}

    daemon.labels[CID] = {"app": "web", "note": "hello world"}
    follower = LabelFollower(sqlite_store, "h1", daemon, threading.Lock(),  # type: ignore[arg-type]
                             sleep=sleep)
    follower.run(NET, EP)
    assert sqlite_store.get(keys.docker_pending_key("h1", EP)) is None
    doc = sqlite_store.get(key).value  # type: ignore[union-attr]
    assert doc["metadata"]["labels"] == {"app": "web"}
    assert "hello world" in doc["metadata"]["annotations"][SKIPPED_ANNOTATION]
    assert doc["spec"]["containerID"] == CID
    assert len(polls) == 2


def test_labels_never_bring_back_a_deleted_endpoint(
        world: tuple[IpamDriver, NetworkDriver, Daemon], sqlite_store: Datastore) -> None:
    ipam, net, daemon = world
    endpoint(ipam, net)
    net.delete_endpoint({"NetworkID": NET, "EndpointID": EP})
    daemon.containers[NET] = {CID: {"EndpointID": EP}}
    daemon.labels[CID] = {"app": "web"}
    LabelFollower(sqlite_store, "h1", daemon, threading.Lock()).run(  # type: ignore[arg-type]
        NET, EP)
    assert sqlite_store.get(endpoint_key("h1", "web", EP)) is None
    assert labelled({"metadata": {}}, CID, {"x": "1"})["metadata"]["labels"] == {"x": "1"}


def test_reconcile_removes_only_what_the_daemon_let_go_before_the_start(
        world: tuple[IpamDriver, NetworkDriver, Daemon], sqlite_store: Datastore) -> None:
    ipam, net, daemon = world
    gone_addr = endpoint(ipam, net).split("/")[0]  # endpoint EP: docker rm -f while away
    daemon.containers[NET] = {CID: {"EndpointID": EP}}
    daemon.labels[CID] = {}
    LabelFollower(sqlite_store, "h1", daemon, threading.Lock()).run(  # type: ignore[arg-type]
        NET, EP)
    pid = ipam.request_pool({"AddressSpace": LOCAL_SPACE})["PoolID"]
    orphan = ipam.request_address({"PoolID": pid})["Address"].split("/")[0]  # never used
    kept = ipam.request_address({"PoolID": pid})["Address"].split("/")[0]
    net.create_endpoint({"NetworkID": NET, "EndpointID": "d" * 64,  # labels not read yet
                         "Interface": {"Address": kept + "/32"}})
    gone_pending = ipam.request_address({"PoolID": pid})["Address"].split("/")[0]
    net.create_endpoint({"NetworkID": NET, "EndpointID": "f" * 64,
                         "Interface": {"Address": gone_pending + "/32"}})
    held = reconcile.snapshot(sqlite_store, "h1")
    # made after the snapshot: a call Docker is making now, never touched
    fresh = ipam.request_address({"PoolID": pid})["Address"].split("/")[0]
    live = [Attached(NET, "d" * 64, "9" * 64, (kept,))]
    done = reconcile.reconcile(sqlite_store, ipam.ipam, held, live)
    assert done.endpoints == [EP, "f" * 64] and len(done.handles) == 3
    assert done.follow == [(NET, "d" * 64)]  # still attached, labels still to read
    assert sqlite_store.get(endpoint_key("h1", "web", EP)) is None
    assert sqlite_store.get(keys.docker_pending_key("h1", "f" * 64)) is None
    assert sqlite_store.get(keys.docker_pending_key("h1", "d" * 64)) is not None
    for ip in (gone_addr, orphan, gone_pending):
        assert who_holds(sqlite_store, ip) is None
    assert who_holds(sqlite_store, kept) is not None and who_holds(sqlite_store, fresh) is not None


def test_server_replies_json_and_errors_as_err(tmp_path: Path) -> None:
    def refuse(_body: dict[str, Any]) -> dict[str, Any]:
        raise DockerError("no such thing")

    server = PluginServer(tmp_path / "p.sock", {"A.Ok": lambda b: {"echo": b},
                                                "A.No": refuse})
    server.start()
    try:
        def post(path: str, body: bytes) -> tuple[int, Any]:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(tmp_path / "p.sock"))
                s.sendall(f"POST /{path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
                          "Connection: close\r\n\r\n".encode() + body)
                raw = b""
                while chunk := s.recv(65536):
                    raw += chunk
            head, _, data = raw.partition(b"\r\n\r\n")
            return int(head.split()[1]), json.loads(data)

        assert post("A.Ok", b'{"x": 1}') == (200, {"echo": {"x": 1}})
        assert post("A.No", b"{}") == (500, {"Err": "no such thing"})
        assert post("A.Ok", b"[1]") == (500, {"Err": "request body is not a JSON object"})
        assert post("B.Missing", b"") == (404, {"Err": "gingham does not implement B.Missing"})
    finally:
        server.close()
    assert not (tmp_path / "p.sock").exists()
