"""An agent that reads through a fan-out server: Agent.step on the faithful fakes (FakeNFT,
FakeRouteTable, FakeVxlanDriver), a real sqlite datastore and a real server on a thread.

What it must do when the server goes away or loses the datastore: keep its dataplane
exactly as it is, say it is not ready and why, and be in sync again (with what changed
meanwhile) once the server is back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gingham.agent.daemon import Agent, _not_for_agents
from gingham.agent.decode import decode, decode_value
from gingham.agent.metrics import AgentMetrics
from gingham.agent.node import HostAddresses
from gingham.agent.policy_plane import PolicyPlane
from gingham.calc import CalcGraph
from gingham.dataplane.apply import Applier
from gingham.dataplane.managers import PolicyDataplane
from gingham.dataplane.mtu_file import MtuFile
from gingham.dataplane.nat import NAT_TABLE, NatOutgoing
from gingham.dataplane.netlink_fake import FakeRouteTable
from gingham.dataplane.nft_fake import FakeNFT
from gingham.dataplane.routes import KernelRoutes
from gingham.dataplane.routing import RoutingDataplane
from gingham.dataplane.vxlan import Vxlan
from gingham.dataplane.vxlan_fake import FakeVxlanDriver
from gingham.datastore import keys, open_datastore
from gingham.datastore.base import Datastore
from gingham.datastore.resources import ResourceStore
from gingham.fanout import FanoutClient, FanoutServer
from gingham.model import parse_resource
from tests.unit.fanout.test_hardening import Outage
from tests.unit.ipam.helpers import put_pool

HOST = "h1"
API = "projectcalico.org/v3"
WL_IF = "gh0123456789a"


def policy(port: int) -> Any:
    return parse_resource({
        "apiVersion": API, "kind": "GlobalNetworkPolicy", "metadata": {"name": "web"},
        "spec": {"selector": "app == 'web'", "ingress": [
            {"action": "Allow", "protocol": "TCP", "destination": {"ports": [port]}}]}})  # fmt: skip


@pytest.fixture
def ds(tmp_path: Path) -> Iterator[Datastore]:
    store = open_datastore(f"sqlite://{tmp_path / 'g.db'}", create=True)
    put_pool(store, "default", "198.18.0.0/16", vxlanMode="Never")
    store.create(keys.resource_key("WorkloadEndpoint", "w1", "web"), {
        "apiVersion": API, "kind": "WorkloadEndpoint",
        "metadata": {"name": "w1", "namespace": "web", "labels": {"app": "web"}},
        "spec": {"node": HOST, "orchestrator": "cni", "interfaceName": WL_IF,
                 "ipNetworks": ["198.18.1.5/32"]}})  # fmt: skip
    ResourceStore(store).apply(policy(80))
    yield store
    store.close()


class Server:
    """A fan-out server on a thread, that the test can stop and start again on one path."""

    def __init__(self, store: Any, path: str) -> None:
        self.store, self.path = store, path
        self.thread: threading.Thread | None = None
        self.stop = threading.Event()

    def start(self) -> None:
        server = FanoutServer(self.store, keys.ROOT, self.path, ignore=_not_for_agents,
                              probe_interval=0.05)  # fmt: skip
        self.stop = threading.Event()
        self.thread = threading.Thread(target=server.serve, args=(self.stop.is_set, 0.05),
                                       daemon=True)  # fmt: skip
        self.thread.start()

    def kill(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(10)
            self.thread = None


def make_agent(ds: Datastore, tmp_path: Path, source: FanoutClient, nft: FakeNFT) -> Agent:
    routes = FakeRouteTable()
    routes.add_link("eth0", "192.0.2.11/24")
    routes.add_link(WL_IF)
    metrics = AgentMetrics()
    plane = PolicyPlane(metrics, Applier(nft, PolicyDataplane(), rp_filter=None))
    return Agent(
        hostname=HOST,
        datastore=ds,
        addresses=HostAddresses("192.0.2.11/24"),
        calc=CalcGraph(HOST, decode=decode_value),
        decode=decode,
        planes=[plane, RoutingDataplane(KernelRoutes(routes), Vxlan(FakeVxlanDriver(links=routes)),
                                        NatOutgoing(FakeNFT(table=NAT_TABLE)),
                                        MtuFile(tmp_path / HOST / "mtu"))],
        notice_sources=[plane.notices, source.notices],
        underlay_mtu=lambda: 1500,
        metrics=metrics,
        poll_timeout=0.02,
        sleep=lambda _s: None,
        source=source,
    )


def run_until(agent: Agent, condition: Callable[[], bool], seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        agent.step()
        if condition():
            return True
    return False


@pytest.mark.parametrize("fault", ["server killed", "datastore lost behind the server"])
def test_the_agent_stays_static_and_unready_until_the_server_is_back(
    ds: Datastore, tmp_path: Path, fault: str
) -> None:
    outage = Outage(ds)
    server = Server(outage, str(tmp_path / "f.sock"))
    server.start()
    client = FanoutClient(server.path, retry_interval=0.05)
    nft = FakeNFT()
    agent = make_agent(ds, tmp_path, client, nft)
    try:
        assert run_until(agent, lambda: agent.state.ready and "dport 80" in nft.dump())
        assert agent.syncer is client
        programmed = nft.dump()
        assert "dport 80 " in programmed

        if fault == "server killed":
            server.kill()
        else:
            outage.down.set()
        assert run_until(agent, lambda: not agent.state.ready)
        ResourceStore(ds).apply(policy(8080))  # a change the agent cannot hear of now
        for _ in range(20):
            agent.step()
        assert not agent.state.ready
        assert nft.dump() == programmed  # fail static: not a rule touched
        reasons = "\n".join(agent.state.reasons())
        assert "(read through a fan-out server)" in reasons
        assert ("closed the connection" in reasons or "cannot reach" in reasons
                if fault == "server killed" else "lost the datastore" in reasons), reasons

        if fault == "server killed":
            server.start()
        else:
            outage.down.clear()
        assert run_until(agent, lambda: agent.state.ready and "dport 8080" in nft.dump())
        assert "dport 80 " not in nft.dump()
        assert not any("fan-out" in r for r in agent.state.reasons())
        assert client.status.snapshots == 2
    finally:
        agent.syncer.close()
        server.kill()
