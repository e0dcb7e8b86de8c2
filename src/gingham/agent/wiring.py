"""Build a running agent from concrete parts: the one place that knows them all."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gingham.agent.cluster_guard import ClusterGuard
from gingham.agent.daemon import Agent
from gingham.agent.decode import KeyedMemory, decode, decode_value
from gingham.agent.detect import detect_addresses, underlay_mtu_probe
from gingham.agent.health import HealthServer
from gingham.agent.last_valid import FileMemory
from gingham.agent.metrics import AgentMetrics
from gingham.agent.policy_plane import PolicyPlane
from gingham.agent.status import STATUS_FILE, write_status
from gingham.calc.graph import CalcGraph
from gingham.dataplane import nft
from gingham.dataplane.mtu_file import MtuFile
from gingham.dataplane.nat import NAT_TABLE, NatOutgoing
from gingham.dataplane.netlink import Netlink
from gingham.dataplane.routes import KernelRoutes
from gingham.dataplane.routing import RoutingDataplane
from gingham.dataplane.vxlan import Vxlan, VxlanDriver
from gingham.datastore import open_datastore
from gingham.datastore.base import Datastore
from gingham.hostfiles import mtu_path, run_dir
from gingham.routing.bgp import BgpManager
from gingham.routing.bird import BirdProcess

log = logging.getLogger(__name__)

__all__ = ["STATUS_FILE", "RunningAgent", "build_agent"]


@dataclass
class RunningAgent:
    agent: Agent
    datastore: Datastore
    health: HealthServer
    netlink: Netlink

    def close(self) -> None:
        self.health.stop()
        self.netlink.close()
        self.datastore.close()


def build_agent(
    hostname: str,
    datastore_url: str,
    health_host: str = "127.0.0.1",
    health_port: int = 9099,
    interface: str | None = None,
) -> RunningAgent:
    base = run_dir()
    host_dir = base / hostname
    ds = open_datastore(datastore_url)
    addresses, _dev = detect_addresses(interface)
    memory = FileMemory(host_dir / "last-valid")
    metrics = AgentMetrics()
    policy = PolicyPlane(metrics)
    netlink = Netlink()
    routing = RoutingDataplane(
        routes=KernelRoutes(netlink),
        vxlan=Vxlan(VxlanDriver()),
        nat=NatOutgoing(nft.NFT(table=NAT_TABLE)),
        mtu=MtuFile(mtu_path(hostname, base)),
    )
    bgp = BgpManager(BirdProcess(hostname, run_dir=base))
    agent = Agent(
        hostname=hostname,
        datastore=ds,
        addresses=addresses,
        calc=CalcGraph(hostname, memory=KeyedMemory(memory), decode=decode_value),
        decode=decode,
        planes=[policy, routing, bgp],
        notice_sources=[policy.notices],
        guard=ClusterGuard(host_dir / "cluster-id", getattr(ds, "url", "the datastore")),
        last_valid=memory,
        underlay_mtu=underlay_mtu_probe(addresses),
        on_status=lambda state: write_status(host_dir / STATUS_FILE, hostname, state),
        metrics=metrics,
    )
    health = HealthServer(
        health_host,
        health_port,
        live=lambda: agent.state.live,
        ready=lambda: agent.state.ready,
        registry=agent.metrics.registry,
        detail=lambda: "\n".join(agent.state.reasons()),
    )
    health.start()
    log.info(
        "agent %s: datastore %s, addresses %s, health on %s:%d",
        hostname,
        getattr(ds, "url", "?"),
        addresses,
        health_host,
        health.port,
    )
    return RunningAgent(agent, ds, health, netlink)
