"""The policy half of the dataplane, as the agent drives it.

Calculation messages -> ``dataplane.managers.PolicyDataplane`` -> ``dataplane.apply.Applier``:
one nft transaction per batch; after a restart or a failure it resyncs against
the kernel's table instead of rewriting it. This plane also keeps the agent's
policy gauges and says, for ``/readyz`` and ``node status``, which endpoints it
did not program and why.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from gingham.agent.metrics import AgentMetrics
from gingham.calc import messages as m
from gingham.dataplane import nft
from gingham.dataplane.apply import Applier, apply_messages
from gingham.dataplane.managers import PolicyDataplane

log = logging.getLogger(__name__)


class PolicyPlane:
    """Calculation messages -> managers -> one nft transaction per batch (one nfnetlink
batch, or ``nft -f -`` for what the encoder does not know: counted in
``gingham_nft_transactions``)."""

    def __init__(self, metrics: AgentMetrics, applier: Applier | None = None) -> None:
        self.applier = applier if applier is not None else Applier(nft.NFT(), PolicyDataplane())
        self.metrics = metrics
        self._endpoints: set[m.WorkloadEndpointID] = set()

    def apply(self, messages: Sequence[m.Message]) -> None:
        for msg in messages:
            if isinstance(msg, m.WorkloadEndpointUpdate):
                self._endpoints.add(msg.endpoint_id)
            elif isinstance(msg, m.WorkloadEndpointRemove):
                self._endpoints.discard(msg.endpoint_id)
        result = apply_messages(self.applier, messages)
        if result is not None and result.commands:
            self.metrics.nft_transactions.labels(
                via=result.via, fallback="yes" if result.fallback else "no").inc()
            state = self.applier.dataplane.state
            self.metrics.rules.set(sum(len(c.rules) for c in state.chains.values()))
            self.metrics.sets.set(len(state.sets))
            refused = self.applier.dataplane.refused_endpoints
            self.metrics.endpoints.set(len(self._endpoints - refused.keys()))
            log.info(
                "nft: %d commands in %.1f ms via %s%s: %s",
                result.commands,
                result.seconds * 1e3,
                result.via,
                " (resync)" if result.resync else "",
                describe(messages),
            )

    def due(self, now: float) -> bool:
        """``daemon.Rechecking``: apply although nothing changed, to set up a workload
        interface that appeared after its endpoint was programmed (the interface sync
        keeps its own schedule: every 0.1 s while one is missing)."""
        return self.applier.waiting()

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


def describe(messages: Sequence[m.Message], limit: int = 8) -> str:
    """What a batch changes, by workload and policy name, for the agent's log."""
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
