"""Managers: calc messages in, desired nft state (and what changed) out. No I/O.

:class:`TableState` is the table as gingham wants it, plus a record of what
changed since the last apply (dirty chains, sets and map entries, and exact
element deltas). The managers write into it:

- :class:`IPSetManager` — ``IPSet*`` messages -> sets ``s4-``/``s6-`` (nets)
  and ``p4-``/``p6-`` (named ports), reference-counted by the policy manager
  so a set is never deleted while a programmed rule uses it (an IPSetRemove
  of a set still referenced empties it instead; it goes when the last
  reference does).
- :class:`PolicyManager` — policies and profiles -> one chain per direction.
- :class:`EndpointManager` — workload endpoints -> ``to-wl``/``from-wl``
  dispatch entries, anti-spoofing elements (``wl-src4``/``wl-src6``,
  ``wl-rpf6``), the rp_filter mode of each interface, and ``tw-``/``fw-``
  chains shared by content between endpoints with the same policies
  (reference-counted). Endpoints whose interface is not a workload interface
  (FelixConfiguration interfacePrefix) are refused, with a reason.
- :class:`HostEndpointManager` — host endpoints -> ``th-``/``fh-`` chains and
  ``to-hep``/``from-hep`` entries (normal policy only).
- :class:`PolicyDataplane` wires them and takes :class:`ConfigUpdate`.

``gingham.dataplane.apply`` turns a :class:`TableState` into one transaction.
Modules: ``state`` (TableState), ``ipsets``, ``policies``, ``endpoints``; this
one holds the configuration and :class:`PolicyDataplane`.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gingham.calc import messages as m
from gingham.calc.messages import PolicyID
from gingham.calc.routing_types import VXLAN_PORT
from gingham.dataplane import layout
from gingham.dataplane.managers.endpoints import EndpointManager, HostEndpointManager
from gingham.dataplane.managers.ipsets import IPSetManager
from gingham.dataplane.managers.policies import PolicyManager
from gingham.dataplane.managers.state import Key, TableState

__all__ = [
    "DataplaneConfig",
    "EndpointManager",
    "HostEndpointManager",
    "IPSetManager",
    "Key",
    "PolicyDataplane",
    "PolicyManager",
    "TableState",
]

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class DataplaneConfig:
    """What the policy dataplane reads of :class:`~gingham.calc.messages.ConfigUpdate`."""

    endpoint_to_host: str = "Drop"
    failsafe_in: tuple[m.FailsafePort, ...] = m.DEFAULT_FAILSAFE_INBOUND
    failsafe_out: tuple[m.FailsafePort, ...] = m.DEFAULT_FAILSAFE_OUTBOUND
    prefixes: tuple[str, ...] = layout.DEFAULT_PREFIXES
    """Workload interface prefixes (FelixConfiguration interfacePrefix)."""
    workload_vxlan_port: int | None = VXLAN_PORT
    """VXLAN packets workloads send to this port are dropped (None: allowed)."""
    workload_ipip: bool = True
    """IPIP packets workloads send are dropped."""

    @classmethod
    def from_message(cls, msg: m.ConfigUpdate) -> DataplaneConfig:
        """The message comes from the graph, which only reads validated resources; what
        could still reach an nft script unchecked (a message built elsewhere) falls
        back to the defaults, never to something more open."""
        action = msg.endpoint_to_host_action
        if action not in ("Drop", "Accept", "Return"):
            log.error("defaultEndpointToHostAction %r unknown: using Drop", action)
            action = "Drop"
        ports = []
        for name, given, default in (
            ("failsafeInboundHostPorts", msg.failsafe_inbound, m.DEFAULT_FAILSAFE_INBOUND),
            ("failsafeOutboundHostPorts", msg.failsafe_outbound, m.DEFAULT_FAILSAFE_OUTBOUND),
        ):
            problem = next((p for p in map(_failsafe_problem, given) if p), None)
            if problem is not None:
                # never lock the operator out over a typo: keep the defaults
                log.error("FelixConfiguration %s unusable (%s): using the defaults", name, problem)
                given = default
            ports.append(given)
        prefixes = msg.interface_prefixes
        try:
            layout.workload_match(prefixes)
        except ValueError as exc:
            log.error("FelixConfiguration interfacePrefix unusable (%s): using %s",
                      exc, ",".join(layout.DEFAULT_PREFIXES))
            prefixes = layout.DEFAULT_PREFIXES
        vxlan_port: int | None = int(msg.vxlan_port)
        if not 1 <= int(msg.vxlan_port) <= 65535:
            log.error("vxlanPort %r unusable: dropping VXLAN from workloads on %d",
                      msg.vxlan_port, VXLAN_PORT)
            vxlan_port = VXLAN_PORT
        return cls(action, ports[0], ports[1], prefixes,
                   None if msg.allow_vxlan_from_workloads else vxlan_port,
                   not msg.allow_ipip_from_workloads)


def _failsafe_problem(port: m.FailsafePort) -> str | None:
    if port.protocol not in ("tcp", "udp", "sctp"):
        return f"protocol {port.protocol!r}"
    if not isinstance(port.port, int) or not 0 <= port.port <= 65535:
        return f"port {port.port!r}"
    if port.net is not None:
        try:
            ipaddress.ip_network(port.net)
        except ValueError:
            return f"net {port.net!r}"
    return None


class PolicyDataplane:
    """All managers over one :class:`TableState`; feed it messages with :meth:`on_message`."""

    def __init__(self, config: DataplaneConfig | None = None, log_drops: bool = True) -> None:
        """``log_drops``: gingham's own drops (tier end, no profile, anti-spoofing,
        unknown workload, endpoint-to-host) also log, rate-limited, for ``gingham flows``."""
        self.state = TableState()
        self.log_drops = log_drops
        self.ipsets = IPSetManager(self.state)
        self.endpoints = EndpointManager(self.state)
        self.host_endpoints = HostEndpointManager(self.state)
        self.endpoints.log_drops = self.host_endpoints.log_drops = log_drops
        self.policies = PolicyManager(self.state, self.ipsets, self._presence_changed,
                                      self.endpoints.rules_changed)
        self.endpoints.policies = self.policies
        self.host_endpoints.policies = self.policies
        self.in_sync = False
        self.config = config or DataplaneConfig()
        self.endpoints.prefixes = self.config.prefixes
        self._set_base_chains()

    @property
    def refused_endpoints(self) -> Mapping[m.WorkloadEndpointID, str]:
        """Workload endpoints not programmed, each with the reason (read-only view):
        their interface is not a workload interface (interfacePrefix) or not a
        valid name. Updated with every message."""
        return self.endpoints.refused

    @property
    def rp_filter(self) -> Mapping[str, str]:
        """Interface -> reverse-path filter mode (``strict``/``off``) the host side of
        every programmed workload interface should have (written by the applier)."""
        return self.endpoints.rp_filter

    def _presence_changed(self, pols: set[PolicyID], profs: set[str]) -> None:
        # A policy or profile appearing/going changes how endpoints referring
        # to it render (jump vs fail-closed drop). Called before a removal
        # deletes the chain, so presence is read after the change: defer.
        self._pending_presence[0].update(pols)
        self._pending_presence[1].update(profs)

    _pending_presence: tuple[set[PolicyID], set[str]]

    def _set_base_chains(self) -> None:
        c = self.config
        for spec in layout.base_chains(c.endpoint_to_host, c.failsafe_in, c.failsafe_out,
                                       self.log_drops, c.prefixes, c.workload_vxlan_port,
                                       c.workload_ipip):
            self.state.set_chain(spec)

    def on_message(self, msg: m.Message) -> None:
        self._pending_presence = (set(), set())
        match msg:
            case m.IPSetUpdate():
                self.ipsets.update(msg)
            case m.IPSetDeltaUpdate():
                self.ipsets.delta(msg)
            case m.IPSetRemove():
                self.ipsets.remove(msg)
            case m.PolicyUpdate():
                self.policies.update_policy(msg)
            case m.PolicyRemove():
                self.policies.remove_policy(msg)
            case m.ProfileUpdate():
                self.policies.update_profile(msg)
            case m.ProfileRemove():
                self.policies.remove_profile(msg)
            case m.WorkloadEndpointUpdate():
                self.endpoints.update(msg)
            case m.WorkloadEndpointRemove():
                self.endpoints.remove(msg)
            case m.HostEndpointUpdate():
                self.host_endpoints.update(msg)
            case m.HostEndpointRemove():
                self.host_endpoints.remove(msg)
            case m.ConfigUpdate():
                self.config = DataplaneConfig.from_message(msg)
                self._set_base_chains()
                self.endpoints.set_prefixes(self.config.prefixes)
            case m.InSync():
                self.in_sync = True
            case _ if isinstance(msg, m.ROUTING_MESSAGES):
                return  # the routing dataplane's
            case _:
                raise TypeError(f"not a dataplane message: {msg!r}")
        pols, profs = self._pending_presence
        if pols or profs:
            self.endpoints.refresh(pols, profs)
            self.host_endpoints.refresh(pols, profs)

    def on_messages(self, msgs: Iterable[m.Message]) -> None:
        for msg in msgs:
            self.on_message(msg)
