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

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gingham.calc import messages as m
from gingham.calc.messages import PolicyID
from gingham.dataplane import layout
from gingham.dataplane.managers.endpoints import EndpointManager, HostEndpointManager
from gingham.dataplane.managers.ipsets import IPSetManager
from gingham.dataplane.managers.policies import PolicyManager
from gingham.dataplane.managers.state import Key, TableState
from gingham.errors import ValidationError
from gingham.model.endpoints import parse_interface_prefixes

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

DEFAULT_FAILSAFE_IN: tuple[tuple[str, int], ...] = (
    ("tcp", 22), ("udp", 68), ("tcp", 179), ("tcp", 2379), ("tcp", 2380),
    ("tcp", 5473), ("tcp", 6443), ("tcp", 6666), ("tcp", 6667),
)
DEFAULT_FAILSAFE_OUT: tuple[tuple[str, int], ...] = (
    ("udp", 53), ("udp", 67), ("tcp", 179), ("tcp", 2379), ("tcp", 2380),
    ("tcp", 5473), ("tcp", 6443), ("tcp", 6666), ("tcp", 6667),
)


# ------------------------------------------------------------------ configuration


def _ports(value: Any, default: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
    if value is None:
        return default
    out = []
    for item in value:
        if isinstance(item, dict):
            proto, port = item.get("protocol", "tcp"), item.get("port")
        else:
            proto, port = getattr(item, "protocol", "tcp"), getattr(item, "port", None)
        if port is None:
            raise ValidationError("failsafe port without a port", "FelixConfiguration")
        out.append((str(proto or "tcp"), int(port)))
    return tuple(out)


@dataclass(frozen=True)
class DataplaneConfig:
    endpoint_to_host: str = "Drop"
    failsafe_in: tuple[tuple[str, int], ...] = DEFAULT_FAILSAFE_IN
    failsafe_out: tuple[tuple[str, int], ...] = DEFAULT_FAILSAFE_OUT
    prefixes: tuple[str, ...] = layout.DEFAULT_PREFIXES
    """Workload interface prefixes (FelixConfiguration interfacePrefix)."""

    @classmethod
    def from_message(cls, msg: m.ConfigUpdate) -> DataplaneConfig:
        action = str(msg.get("default_endpoint_to_host_action") or "Drop").capitalize()
        if action not in ("Drop", "Accept", "Return"):
            log.error("defaultEndpointToHostAction %r unknown: using Drop", action)
            action = "Drop"
        ports = []
        for name, default in (("failsafe_inbound_host_ports", DEFAULT_FAILSAFE_IN),
                              ("failsafe_outbound_host_ports", DEFAULT_FAILSAFE_OUT)):
            try:
                ports.append(_ports(msg.get(name), default))
            except (ValidationError, ValueError, TypeError) as exc:
                # never lock the operator out over a typo: keep the defaults
                log.error("FelixConfiguration %s unusable (%s): using the defaults", name, exc)
                ports.append(default)
        try:
            prefixes = parse_interface_prefixes(msg.get("interface_prefix"))
        except ValueError as exc:
            # The model refuses such a value; only a message built elsewhere gets
            # here. The default is what an invalid FelixConfiguration gives too.
            log.error("FelixConfiguration interfacePrefix unusable (%s): using %s",
                      exc, ",".join(layout.DEFAULT_PREFIXES))
            prefixes = layout.DEFAULT_PREFIXES
        return cls(action, ports[0], ports[1], prefixes)


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
        self.policies = PolicyManager(self.state, self.ipsets, self._presence_changed)
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
                                       self.log_drops, c.prefixes):
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
