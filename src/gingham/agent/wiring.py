"""Build a running agent from concrete parts: the one place that knows them all."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gingham.agent.capabilities import probe_capabilities
from gingham.agent.cluster_guard import ClusterGuard
from gingham.agent.cni_handover import Handover
from gingham.agent.cni_server import CniServer
from gingham.agent.daemon import Agent, AgentState
from gingham.agent.decode import KeyedMemory, decode, decode_value
from gingham.agent.detect import detect_addresses, underlay_mtu_probe
from gingham.agent.health import HealthServer, metrics_server
from gingham.agent.last_valid import FileMemory
from gingham.agent.metrics import AgentMetrics, serving_process
from gingham.agent.policy_plane import PolicyPlane
from gingham.agent.readiness import checks
from gingham.agent.settings import AgentSettings, LocalOverrides, Server
from gingham.agent.status import STATUS_FILE, write_status
from gingham.calc.graph import CalcGraph
from gingham.calc.messages import Listener
from gingham.dataplane import nft
from gingham.dataplane.mtu_file import MtuFile
from gingham.dataplane.nat import NAT_TABLE, NatOutgoing
from gingham.dataplane.netlink import Netlink
from gingham.dataplane.routes import KernelRoutes
from gingham.dataplane.routing import RoutingDataplane
from gingham.dataplane.service_loop import SERVICE_TABLE, ServiceLoop
from gingham.dataplane.vxlan import Vxlan, VxlanDriver
from gingham.datastore import open_datastore
from gingham.datastore.base import Datastore
from gingham.fanout.client import FanoutClient
from gingham.hostfiles import mtu_path, run_dir
from gingham.routing.bgp import BgpManager
from gingham.routing.bird import BirdProcess
from gingham.sdnotify import Notifier

log = logging.getLogger(__name__)

__all__ = ["STATUS_FILE", "LocalOverrides", "RunningAgent", "build_agent"]


@dataclass
class RunningAgent:
    agent: Agent
    datastore: Datastore
    settings: AgentSettings  # the health and metrics servers
    netlink: Netlink
    cni: CniServer | None = None  # None: it could not start (the plugin runs commands itself)
    notifier: Notifier | None = None  # systemd's (Type=notify): READY=1 as /readyz turns ready

    def close(self) -> None:
        if self.notifier is not None:
            self.notifier.stopping()
        if self.cni is not None:
            self.cni.close()  # first: commands in flight finish on a live datastore
        self.settings.close()
        self.netlink.close()
        self.datastore.close()


def build_agent(
    hostname: str,
    datastore_url: str,
    overrides: LocalOverrides | None = None,
    interface: str | None = None,
    fanout: str | None = None,
) -> RunningAgent:
    """The agent of ``hostname``; ``overrides``: what its command line gives, which wins
    over FelixConfiguration (``agent/settings.py``); ``fanout``: the unix socket of a
    fan-out server to read the datastore through (it still writes to ``datastore_url``)."""
    base = run_dir()
    host_dir = base / hostname
    ds = open_datastore(datastore_url)
    addresses, _dev = detect_addresses(interface)
    memory = FileMemory(host_dir / "last-valid")
    serving_process()
    metrics = AgentMetrics()
    policy = PolicyPlane(metrics)
    netlink = Netlink()
    routing = RoutingDataplane(
        routes=KernelRoutes(netlink),
        vxlan=Vxlan(VxlanDriver()),
        nat=NatOutgoing(nft.NFT(table=NAT_TABLE)),
        mtu=MtuFile(mtu_path(hostname, base)),
        service_loop=ServiceLoop(nft.NFT(table=SERVICE_TABLE)),
    )
    bgp = BgpManager(BirdProcess(hostname, run_dir=base))

    def make_server(at: Listener, probes: bool) -> Server:
        if not probes:
            return metrics_server(at.host, at.port, metrics.registry)
        return HealthServer(
            at.host,
            at.port,
            live=lambda: agent.state.live,
            ready=lambda: agent.state.ready,
            registry=metrics.registry,
            detail=lambda: "\n".join(agent.state.reasons()),
            readiness=lambda: checks(agent.state, agent.syncer.status, agent.clock(),
                                     source.path if source is not None else None),
        )

    settings = AgentSettings(make_server, overrides or LocalOverrides())
    notifier = Notifier()

    def on_status(state: AgentState) -> None:
        # systemd first: a status file that cannot be written must not hold back READY=1.
        notifier.update(state.ready, service_status(state))
        write_status(host_dir / STATUS_FILE, hostname, state)
    handover = Handover()
    source = FanoutClient(fanout) if fanout else None
    agent = Agent(
        hostname=hostname,
        datastore=ds,
        addresses=addresses,
        calc=CalcGraph(hostname, memory=KeyedMemory(memory), decode=decode_value),
        decode=decode,
        planes=[settings, policy, routing, bgp],
        notice_sources=[settings.notices, policy.notices, bgp.notices,
                        *([source.notices] if source else [])],
        guard=ClusterGuard(host_dir / "cluster-id", getattr(ds, "url", "the datastore")),
        last_valid=memory,
        underlay_mtu=underlay_mtu_probe(addresses),
        capabilities=probe_capabilities,
        tickers=[settings.tick],
        on_status=on_status,
        metrics=metrics,
        handover=handover,
        source=source,
    )
    settings.start()
    cni: CniServer | None = _start_cni(
        CniServer(hostname, datastore_url, base, handover, blocked=lambda: agent.state.blocked))
    log.info(
        "agent %s: datastore %s%s, addresses %s, health on %s",
        hostname,
        getattr(ds, "url", "?"),
        f" (read through fan-out server {fanout})" if fanout else "",
        addresses,
        settings.health_at,
    )
    return RunningAgent(agent, ds, settings, netlink, cni, notifier)


def service_status(state: AgentState) -> str:
    """The one line ``systemctl status`` shows for the agent."""
    if state.ready:
        return "ready: the dataplane is programmed from the datastore"
    if state.blocked:
        return f"not ready: {state.blocked}"
    if not state.programmed_once:
        return "starting: waiting for the first full sync from the datastore"
    return "not ready: datastore lost or a dataplane failure (see /readyz and the log)"


def _start_cni(server: CniServer) -> CniServer | None:
    try:
        server.start()
    except OSError as exc:
        log.error("no CNI socket (the CNI plugin will do the work itself): %s", exc)
        server.close()
        return None
    return server
