"""The agent's loop against bad data (issue 12): no input ends it, nothing is lost.

A real calculation graph (policy and routing) over an in-memory datastore; the
planes record what they were asked to apply (the kernel side has its own
tests in tests/integration).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from gingham.agent.cluster_guard import ClusterGuard
from gingham.agent.daemon import Agent, AgentState
from gingham.agent.decode import KeyedMemory, decode, decode_key, decode_value
from gingham.agent.last_valid import FileMemory
from gingham.agent.node import HostAddresses, register_node
from gingham.agent.status import write_status
from gingham.calc import CalcGraph
from gingham.calc import messages as m
from gingham.calc.routing import RoutingView
from gingham.datastore import keys, open_datastore
from gingham.datastore.base import Datastore, Undecodable
from gingham.datastore.cluster import ensure_cluster_id
from gingham.ipam.block import Block

HOST = "h1"
API = "projectcalico.org/v3"


class RecordingPlane:
    def __init__(self) -> None:
        self.batches: list[list[Any]] = []

    def apply(self, messages: Sequence[Any]) -> None:
        self.batches.append(list(messages))

    def endpoints(self) -> dict[Any, Any]:
        state: dict[Any, Any] = {}
        for batch in self.batches:
            for msg in batch:
                if isinstance(msg, m.WorkloadEndpointUpdate):
                    state[msg.endpoint_id] = msg
                elif isinstance(msg, m.WorkloadEndpointRemove):
                    state.pop(msg.endpoint_id, None)
        return state


@pytest.fixture
def ds() -> Iterator[Datastore]:
    store = open_datastore(f"memory://bad-data-{uuid.uuid4()}", create=True)
    yield store
    store.close()


def make_agent(ds: Datastore, tmp_path: Path | None = None) -> tuple[Agent, RecordingPlane]:
    plane = RecordingPlane()
    statuses: list[AgentState] = []
    agent = Agent(
        hostname=HOST,
        datastore=ds,
        addresses=HostAddresses("192.0.2.11/24"),
        calc=CalcGraph(HOST, decode=decode_value),
        decode=decode,
        planes=[plane],
        guard=ClusterGuard(tmp_path / "cluster-id" if tmp_path else None),
        on_status=statuses.append,
        poll_timeout=0.01,
        sleep=lambda _s: None,
    )
    return agent, plane


def steps(agent: Agent, n: int = 4) -> None:
    for _ in range(n):
        agent.step()


def wep_doc(name: str, ns: str = "web") -> dict[str, Any]:
    return {"apiVersion": API, "kind": "WorkloadEndpoint",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
            "spec": {"node": HOST, "orchestrator": "cni", "interfaceName": "gh0123456789a",
                     "ipNetworks": ["198.18.0.5/32"]}}


GARBAGE: list[bytes] = [
    b"\xff\xfe not utf-8",
    b"{not json",
    b"[1, 2, 3]",
    b'"a string"',
    b"{" * 50_000 + b"}" * 50_000,  # deeper than any decoder's recursion limit
    b'{"apiVersion": "projectcalico.org/v3", "kind": "Node", "metadata": {"name": "h1"},'
    b' "spec": "oops"}',
    b'{"cidr": "198.18.0.0/26", "affinity": 5, "allocations": {"a": 1}}',
    b'{"kind": "NetworkPolicy", "metadata": 7, "spec": {"selector": 3}}',
]
KEYS = [
    keys.resource_key("Node", HOST),
    keys.resource_key("Node", "h2"),
    keys.resource_key("IPPool", "default-ipv4"),
    keys.resource_key("BGPConfiguration", "default"),
    keys.resource_key("BGPPeer", "tor"),
    keys.IPAM + "blocks/198.18.0.0-26",
    keys.resource_key("NetworkPolicy", "p", "web"),
    keys.resource_key("GlobalNetworkPolicy", "g"),
    keys.resource_key("KubernetesNetworkPolicy", "k", "web"),
    keys.resource_key("WorkloadEndpoint", "w", "web"),
    keys.resource_key("Tier", "t"),
    keys.resource_key("FelixConfiguration", "default"),
    keys.resource_key("Namespace", "web"),
]


@pytest.mark.parametrize("data", GARBAGE, ids=range(len(GARBAGE)))
def test_no_stored_value_ends_the_loop(ds: Datastore, data: bytes) -> None:
    agent, plane = make_agent(ds)
    ds.create(keys.resource_key("WorkloadEndpoint", "keep", "web"), wep_doc("keep"))
    for key in KEYS:
        ds.put_raw(key, data)
    steps(agent)  # in the snapshot
    assert agent.state.ready
    for key in KEYS:
        ds.put_raw(key, data + b" ")  # and in the watch
    steps(agent)
    assert agent.state.ready
    assert m.WorkloadEndpointID("web", "keep") in plane.endpoints()
    reported = {r.key for r in agent.state.invalid}
    # Every key the agent reads is reported, never silently dropped (its own Node
    # it repairs: register_node rewrote it).
    assert reported >= set(KEYS) - {keys.resource_key("Node", HOST)}


def test_invalid_policy_is_counted_and_reported(ds: Datastore, tmp_path: Path) -> None:
    agent, _ = make_agent(ds, tmp_path)
    key = keys.resource_key("GlobalNetworkPolicy", "from-the-future")
    ds.create(key, {"apiVersion": API, "kind": "GlobalNetworkPolicy",
                    "metadata": {"name": "from-the-future"},
                    "spec": {"selector": "all()", "hyperdrive": True}})
    steps(agent)
    (report,) = agent.state.invalid
    assert (report.key, report.outcome) == (key, "quarantined")
    assert "hyperdrive" in report.reason
    assert any("from-the-future" in line and "quarantined" in line
               for line in agent.state.reasons())
    text = agent.metrics.registry.get_sample_value(
        "gingham_invalid_resources", {"kind": "GlobalNetworkPolicy"})
    assert text == 1
    write_status(tmp_path / "status.json", HOST, agent.state)
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["invalidResources"][0]["key"] == key
    ds.delete(key)
    steps(agent)
    assert agent.state.invalid == ()
    assert agent.metrics.registry.get_sample_value(
        "gingham_invalid_resources", {"kind": "GlobalNetworkPolicy"}) == 0


def test_a_decoder_that_raises_costs_one_key(ds: Datastore) -> None:
    agent, plane = make_agent(ds)

    def explode(key: str, value: Any) -> Any:
        if key.endswith("/boom"):
            raise RuntimeError("decoder bug")
        return decode(key, value)

    agent.decode = explode
    ds.create(keys.resource_key("WorkloadEndpoint", "boom", "web"), wep_doc("boom"))
    ds.create(keys.resource_key("WorkloadEndpoint", "fine", "web"), wep_doc("fine"))
    steps(agent)
    assert agent.state.ready
    assert m.WorkloadEndpointID("web", "fine") in plane.endpoints()
    assert agent.metrics.registry.get_sample_value("gingham_errors_total", {"where": "update"})


def test_no_cluster_id_leaves_the_dataplane_alone(tmp_path: Path) -> None:
    ds = open_datastore(f"memory://no-cluster-{uuid.uuid4()}", create=True)
    ds.delete(keys.CLUSTER)  # a store someone made by hand, or an older gingham
    try:
        ds.create(keys.resource_key("WorkloadEndpoint", "w", "web"), wep_doc("w"))
        agent, plane = make_agent(ds, tmp_path)
        steps(agent)
        assert plane.batches == [] and not agent.state.ready
        assert "no cluster ID" in agent.state.blocked and "datastore init" in agent.state.blocked
        assert ds.get(keys.resource_key("Node", HOST)) is None  # nothing written either
        cid = ensure_cluster_id(ds)
        steps(agent)
        assert agent.state.ready and agent.state.blocked == ""
        assert m.WorkloadEndpointID("web", "w") in plane.endpoints()
        assert (tmp_path / "cluster-id").read_text().strip() == cid
        assert ds.get(keys.resource_key("Node", HOST)) is not None
    finally:
        ds.close()


def test_another_cluster_leaves_the_dataplane_alone(ds: Datastore, tmp_path: Path) -> None:
    (tmp_path / "cluster-id").write_text("11111111-1111-1111-1111-111111111111\n")
    agent, plane = make_agent(ds, tmp_path)
    steps(agent)
    assert plane.batches == [] and not agent.state.ready
    assert "11111111" in agent.state.blocked and "delete that file" in agent.state.blocked


def test_a_wiped_datastore_stops_programming(ds: Datastore, tmp_path: Path) -> None:
    ds.create(keys.resource_key("WorkloadEndpoint", "w", "web"), wep_doc("w"))
    agent, plane = make_agent(ds, tmp_path)
    steps(agent)
    assert m.WorkloadEndpointID("web", "w") in plane.endpoints()
    applied = len(plane.batches)
    # Someone empties the datastore: every key goes, the cluster ID with them.
    for kv in ds.list(keys.ROOT)[0]:
        ds.delete(kv.key)
    steps(agent)
    assert len(plane.batches) == applied  # the endpoint was not removed from the kernel
    assert not agent.state.ready and agent.state.blocked


def test_register_node_repairs_a_malformed_node(ds: Datastore) -> None:
    key = keys.resource_key("Node", HOST)
    ds.put_raw(key, b'{"apiVersion": "projectcalico.org/v3", "kind": "Node",'
                    b' "metadata": {"name": "h1", "labels": {"rack": "r1"}}, "spec": "oops"}')
    register_node(ds, HOST, HostAddresses("192.0.2.11/24"))
    kv = ds.get(key)
    assert kv is not None
    assert kv.value["spec"]["bgp"]["ipv4Address"] == "192.0.2.11/24"
    assert kv.value["metadata"]["labels"] == {"rack": "r1"}  # readable operator fields kept
    ds.put_raw(key, b"\x00garbage")
    register_node(ds, HOST, HostAddresses("192.0.2.11/24"))
    kv = ds.get(key)
    assert kv is not None and kv.value["metadata"]["name"] == HOST


class Routing:
    """The graph's routing, fed datastore keys and documents as the agent feeds it."""

    def __init__(self, memory: Any = None) -> None:
        self.graph = CalcGraph(HOST, memory=memory, decode=decode_value)

    def on_update(self, key: str, value: Any) -> None:
        typed = decode(key, value)
        assert typed is not None, key
        self.graph.on_update(*typed)

    def view(self) -> RoutingView:
        return self.graph.routing_view()

    def report(self, key: str) -> Any:
        typed = decode_key(key)
        assert typed is not None
        return self.graph.invalid_resources().get(typed)


def test_routing_keeps_the_last_valid_block() -> None:
    routing = Routing()
    key = keys.IPAM + "blocks/198.18.0.0-26"
    routing.on_update(key, block_doc("198.18.0.0/26"))
    good = routing.view().blocks
    assert good
    routing.on_update(key, {"cidr": "198.18.0.0/26", "affinity": 5})
    assert routing.view().blocks == good
    assert routing.report(key).outcome == "last valid kept"
    routing.on_update(key, None)
    assert not routing.view().blocks and not routing.graph.invalid_resources()


def block_doc(cidr: str) -> dict[str, Any]:
    return Block.new(cidr, "host:h2").to_json()


def node_doc(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "Node", "metadata": {"name": name},
            "spec": {"bgp": {"ipv4Address": "192.0.2.12/24"}, **spec}}


def test_routing_reads_a_node_from_a_newer_version() -> None:
    # A newer agent's Node has fields this version does not know: its addresses still
    # count, or every route to that host would go.
    routing = Routing()
    key = keys.resource_key("Node", "h2")
    routing.on_update(key, node_doc("h2", fromTheFuture={"x": 1}))
    assert str(routing.view().hosts["h2"].address_v4) == "192.0.2.12"
    report = routing.report(key)
    assert report.outcome == "unknown fields ignored" and "spec.fromTheFuture" in report.reason
    routing.on_update(key, {**node_doc("h3"), "kind": "IPPool"})  # another resource's document
    assert str(routing.view().hosts["h2"].address_v4) == "192.0.2.12"
    assert routing.report(key).outcome == "last valid kept"


def test_routing_remembers_last_valid_documents_past_a_restart(tmp_path: Path) -> None:
    memory = FileMemory(tmp_path / "last-valid")
    key = keys.IPAM + "blocks/198.18.0.0-26"
    block = block_doc("198.18.0.0/26")
    first = Routing(KeyedMemory(memory))
    first.on_update(key, block)
    first.on_update(key, Undecodable("{", "not JSON"))
    second = Routing(KeyedMemory(memory))  # the agent restarted
    second.on_update(key, Undecodable("{", "not JSON"))
    assert second.view().blocks == first.view().blocks != {}
    assert second.report(key).outcome == "last valid kept"
    second.on_update(key, block)
    assert memory.recall(key) is None  # readable again: nothing to remember


def test_file_memory_keeps_only_what_it_is_told(tmp_path: Path) -> None:
    memory = FileMemory(tmp_path / "m")
    memory.save("/k/a", {"v": 1})
    memory.save("/k/b", {"v": 2})
    assert memory.recall("/k/a") == {"v": 1} and memory.recall("/k/c") is None
    (tmp_path / "m" / "garbage.json").write_text("{not json")
    memory.retain({"/k/b"})
    assert memory.recall("/k/a") is None and memory.recall("/k/b") == {"v": 2}
    assert len(list((tmp_path / "m").iterdir())) == 1  # the garbage went too
    memory.forget("/k/b")
    assert list((tmp_path / "m").iterdir()) == []


def test_register_node_keeps_what_it_knew_when_the_stored_node_is_unreadable(
    ds: Datastore,
) -> None:
    key = keys.resource_key("Node", HOST)
    known = node_doc(HOST, ipv4VXLANTunnelAddr="198.18.0.1")
    known["metadata"]["labels"] = {"rack": "r1"}
    ds.put_raw(key, b'{"apiVersion": "projectcalico.org/v3", "kind": "No')
    register_node(ds, HOST, HostAddresses("192.0.2.11/24"), known)
    kv = ds.get(key)
    assert kv is not None
    assert kv.value["spec"]["ipv4VXLANTunnelAddr"] == "198.18.0.1"
    assert kv.value["metadata"]["labels"] == {"rack": "r1"}
    assert kv.value["spec"]["bgp"]["ipv4Address"] == "192.0.2.11/24"


@pytest.mark.parametrize("key,bad", [
    (keys.resource_key("Node", "h2"), node_doc("h2", bgp={"ipv4Address": 7})),
    (keys.resource_key("Node", "h2"), node_doc("h2", ipv4VXLANTunnelAddr=7)),
    (keys.resource_key("IPPool", "p"), {"apiVersion": API, "kind": "IPPool",
                                        "metadata": {"name": "p"},
                                        "spec": {"cidr": "198.18.0.0/16", "natOutgoing": "false"}}),
    (keys.IPAM + "blocks/198.18.0.0-26", {"cidr": 7, "allocations": []}),
    (keys.IPAM + "blocks/198.18.0.0-26", block_doc("198.18.0.64/26")),
], ids=["address-number", "tunnel-number", "flag-string", "cidr-number", "another-block"])
def test_routing_refuses_a_wrong_type_rather_than_read_it_otherwise(
    key: str, bad: dict[str, Any]
) -> None:
    # bool("false") is True; 7 is 0.0.0.7: a wrong type must never mean something else.
    routing = Routing()
    routing.on_update(key, bad)
    view = routing.view()
    assert not (view.hosts or view.pools or view.blocks), view
    assert routing.report(key).outcome == "ignored"
