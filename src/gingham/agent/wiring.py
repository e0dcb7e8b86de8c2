"""Build a running agent from concrete parts: the one place that knows them all."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gingham.agent.cluster_guard import ClusterGuard
from gingham.agent.daemon import Agent, AgentState
from gingham.agent.decode import KeyedMemory, decode, decode_value
from gingham.agent.health import HealthServer
from gingham.agent.last_valid import FileMemory
from gingham.agent.metrics import AgentMetrics
from gingham.agent.node import HostAddresses
from gingham.agent.routing_inputs import RoutingInputs
from gingham.agent.routing_plane import RoutingPlane
from gingham.datastore import keys, open_datastore
from gingham.datastore.base import Datastore

log = logging.getLogger(__name__)


class PolicyPlane:
    """Calculation messages -> managers -> one nft transaction per batch."""

    def __init__(self, metrics: AgentMetrics) -> None:
        from gingham.dataplane import nft
        from gingham.dataplane.apply import Applier
        from gingham.dataplane.managers import PolicyDataplane

        self.applier = Applier(nft.NFT(), PolicyDataplane())
        self.metrics = metrics
        self._endpoints: set[Any] = set()

    def apply(self, messages: Sequence[Any]) -> None:
        from gingham.calc import messages as m
        from gingham.dataplane.apply import apply_messages

        for msg in messages:
            if isinstance(msg, m.WorkloadEndpointUpdate):
                self._endpoints.add(msg.endpoint_id)
            elif isinstance(msg, m.WorkloadEndpointRemove):
                self._endpoints.discard(msg.endpoint_id)
        result = apply_messages(self.applier, messages)
        if result is not None and result.commands:
            state = self.applier.dataplane.state
            self.metrics.rules.set(sum(len(c.rules) for c in state.chains.values()))
            self.metrics.sets.set(len(state.sets))
            refused = self.applier.dataplane.refused_endpoints
            self.metrics.endpoints.set(len(self._endpoints - refused.keys()))
            log.info(
                "nft: %d commands in %.1f ms%s: %s",
                result.commands,
                result.seconds * 1e3,
                " (resync)" if result.resync else "",
                describe(messages),
            )


    def notices(self) -> list[str]:
        """Endpoints not programmed and interfaces not as wanted, for status and /readyz."""
        lines = [
            f"endpoint {ep.namespace}/{ep.name} not programmed: {why}"
            for ep, why in sorted(self.applier.dataplane.refused_endpoints.items())
        ]
        lines += [
            f"interface {name}: {why}"
            for name, why in sorted(self.applier.interface_problems.items())
        ]
        return lines


def describe(messages: Sequence[Any], limit: int = 8) -> str:
    """What a batch changes, by workload and policy name, for the agent's log."""
    from gingham.calc import messages as m

    names: list[str] = []
    for msg in messages:
        if isinstance(msg, m.WorkloadEndpointUpdate | m.WorkloadEndpointRemove):
            ep = msg.endpoint_id
            verb = "endpoint" if isinstance(msg, m.WorkloadEndpointUpdate) else "endpoint gone"
            names.append(f"{verb} {ep.namespace}/{ep.name}")
        elif isinstance(msg, m.PolicyUpdate | m.PolicyRemove):
            pid = msg.policy_id
            verb = "policy" if isinstance(msg, m.PolicyUpdate) else "policy gone"
            where = f"{pid.namespace}/" if pid.namespace else ""
            names.append(f"{verb} {pid.tier}/{where}{pid.name}")
        elif isinstance(msg, m.IPSetUpdate | m.IPSetDeltaUpdate):
            names.append(f"set {msg.set_id}")
    if not names:
        return f"{len(messages)} messages"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


STATUS_FILE = "status.json"


def write_status(path: Path, hostname: str, state: AgentState) -> None:
    """What ``gingham node status`` shows of the agent, written whole (never half-read)."""
    from datetime import UTC, datetime

    doc = {
        "host": hostname,
        "ready": state.ready,
        "blocked": state.blocked,
        "invalidResources": [
            {
                "key": r.key,
                "kind": r.kind,
                "namespace": r.namespace,
                "name": r.name,
                "outcome": r.outcome,
                "reason": r.reason,
            }
            for r in state.invalid
        ],
        "notices": list(state.notices),
        "updated": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)


def detect_addresses(interface: str | None) -> tuple[HostAddresses, str | None]:
    """The host's underlay addresses: of ``interface``, else of the default route's device."""
    out = subprocess.run(
        ["ip", "-j", "route", "show", "default"], capture_output=True, text=True, check=False
    ).stdout
    dev = interface
    if dev is None:
        routes = json.loads(out or "[]")
        dev = routes[0].get("dev") if routes else None
    if dev is None:
        return HostAddresses(None), None
    addrs = json.loads(
        subprocess.run(
            ["ip", "-j", "addr", "show", "dev", dev], capture_output=True, text=True, check=False
        ).stdout
        or "[]"
    )
    v4 = v6 = None
    for link in addrs:
        for info in link.get("addr_info", []):
            if info.get("scope") != "global":
                continue
            cidr = f"{info['local']}/{info['prefixlen']}"
            if info.get("family") == "inet" and v4 is None:
                v4 = cidr
            elif info.get("family") == "inet6" and v6 is None:
                v6 = cidr
    return HostAddresses(v4, v6), dev


@dataclass
class RunningAgent:
    agent: Agent
    datastore: Datastore
    health: HealthServer
    routing: RoutingPlane

    def close(self) -> None:
        self.health.stop()
        self.routing.close()
        self.datastore.close()


def build_agent(
    hostname: str,
    datastore_url: str,
    health_host: str = "127.0.0.1",
    health_port: int = 9099,
    interface: str | None = None,
) -> RunningAgent:
    from gingham.calc.graph import CalcGraph
    from gingham.dataplane.netlink import Netlink
    from gingham.dataplane.vxlan import VxlanDriver
    from gingham.routing.bird import BirdProcess

    run_dir = Path(os.environ.get("GINGHAM_RUN_DIR", "/run/gingham"))
    ds = open_datastore(datastore_url)
    addresses, _dev = detect_addresses(interface)
    memory = FileMemory(run_dir / hostname / "last-valid")
    routing = RoutingPlane(
        hostname=hostname,
        inputs=RoutingInputs(memory=memory),
        datastore=ds,
        netlink=Netlink(),
        vxlan=VxlanDriver(),
        bird=BirdProcess(hostname, run_dir=run_dir),
        run_dir=run_dir,
    )
    metrics = AgentMetrics()
    policy = PolicyPlane(metrics)
    host_dir = run_dir / hostname
    agent = Agent(
        hostname=hostname,
        datastore=ds,
        addresses=addresses,
        calc=CalcGraph(hostname, memory=KeyedMemory(memory), decode=decode_value),
        decode=decode,
        planes=[policy, routing],
        observers=[routing.observe],
        invalid_sources=[routing.inputs.invalid_resources],
        notice_sources=[policy.notices],
        guard=ClusterGuard(host_dir / "cluster-id", getattr(ds, "url", "the datastore")),
        last_valid=memory,
        known_node=lambda: routing.inputs.known(keys.resource_key("Node", hostname)),
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
    return RunningAgent(agent, ds, health, routing)
