"""FelixConfiguration in the graph, and what the agent tells the graph about its host.

Two FelixConfigurations apply to a host: ``default`` and ``node.<hostname>``.
They merge field by field: a field the node's resource sets wins over the
same field in ``default``, which wins over the model's default (an unset
field never overrides). The merged values become typed settings:

- :func:`config_message`: the policy dataplane's and the agent process's
  (``ConfigUpdate``: failsafe ports, endpoint-to-host action, workload
  interfaces, VXLAN/IPIP from workloads, log level, health and metrics servers);
- :func:`routing_settings`: routing's (VNI, port and MTU of the VXLAN device,
  the source address of NAT outgoing, what becomes of traffic looping to a
  service CIDR), which reach the routing messages.

:class:`HostSupport` is what the host can do (the agent probes it): routing
plans nothing the host lacks the means for, and the agent reports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from typing import Any, Final

from gingham.calc.inputs import IPAddress
from gingham.calc.messages import ConfigUpdate, FailsafePort, Listener, ServiceLoopAction
from gingham.calc.routing_types import VXLAN_PORT, VXLAN_VNI
from gingham.model.config import FelixConfigurationSpec, ProtoPort
from gingham.model.endpoints import parse_interface_prefixes

DEFAULT_NAME: Final = "default"


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    """What routing reads of FelixConfiguration. ``vxlan_mtu`` None: from the underlay;
    ``nat_address`` None: masquerade to the outgoing interface's address."""

    vxlan_vni: int = VXLAN_VNI
    vxlan_port: int = VXLAN_PORT
    vxlan_mtu: int | None = None
    nat_address: IPAddress | None = None
    service_loop: ServiceLoopAction = "Drop"


@dataclass(frozen=True, slots=True)
class HostSupport:
    """Which host capabilities routing may rely on (all of them unless the agent says
    otherwise): the VXLAN kernel module, nftables NAT, BIRD."""

    vxlan: bool = True
    nat: bool = True
    bird: bool = True


class FelixSettings:
    """The FelixConfigurations of one host, merged (see the module docstring)."""

    def __init__(self, hostname: str) -> None:
        self.node_name = f"node.{hostname}"
        self._set: dict[str, Mapping[str, Any]] = {}

    def applies(self, name: str) -> bool:
        return name in (DEFAULT_NAME, self.node_name)

    def update(self, name: str, spec: FelixConfigurationSpec | None) -> None:
        """The resource ``name`` (which :meth:`applies`) now has ``spec`` (None: absent)."""
        if spec is None:
            self._set.pop(name, None)
        else:
            self._set[name] = {f: getattr(spec, f) for f in spec.model_fields_set}

    def merged(self) -> dict[str, Any]:
        """Every field of the spec (snake_case) with the value in force for this host."""
        values: dict[str, Any] = {f: getattr(_DEFAULTS, f) for f in _FIELDS}
        values.update(self._set.get(DEFAULT_NAME, {}))
        values.update(self._set.get(self.node_name, {}))
        return values


def failsafe_port(port: ProtoPort) -> FailsafePort:
    net = str(ip_network(str(port.net), strict=False)) if port.net is not None else None
    return FailsafePort(port.protocol.lower(), int(port.port), net)  # type: ignore[arg-type]


def config_message(values: Mapping[str, Any]) -> ConfigUpdate:
    """The ``ConfigUpdate`` for merged values (as :meth:`FelixSettings.merged` gives them)."""
    health = (Listener(str(values["health_host"]), int(values["health_port"]))
              if values["health_enabled"] else None)
    metrics = None
    if values["prometheus_metrics_enabled"]:
        host = values["prometheus_metrics_host"]
        # Unset: where health listens (local by default); "" is every address, as in Calico.
        metrics = Listener(str(values["health_host"]) if host is None else str(host),
                           int(values["prometheus_metrics_port"]))
    return ConfigUpdate(
        endpoint_to_host_action=values["default_endpoint_to_host_action"],
        failsafe_inbound=tuple(failsafe_port(p) for p in values["failsafe_inbound_host_ports"]),
        failsafe_outbound=tuple(failsafe_port(p) for p in values["failsafe_outbound_host_ports"]),
        interface_prefixes=parse_interface_prefixes(values["interface_prefix"]),
        vxlan_port=int(values["vxlan_port"]),
        allow_vxlan_from_workloads=bool(values["allow_vxlan_packets_from_workloads"]),
        allow_ipip_from_workloads=bool(values["allow_ipip_packets_from_workloads"]),
        log_severity=values["log_severity_screen"],
        health=health,
        metrics=metrics,
    )


def routing_settings(values: Mapping[str, Any]) -> RoutingSettings:
    mtu = values["vxlan_mtu"]
    address = values["nat_outgoing_address"]
    return RoutingSettings(
        vxlan_vni=int(values["vxlan_vni"]),
        vxlan_port=int(values["vxlan_port"]),
        vxlan_mtu=int(mtu) if mtu else None,  # 0 is Calico's "from the underlay"
        nat_address=ip_address(str(address)) if address is not None else None,
        service_loop=values["service_loop_prevention"],
    )


_DEFAULTS: Final = FelixConfigurationSpec()
_FIELDS: Final = tuple(FelixConfigurationSpec.model_fields)

__all__ = [
    "FelixSettings",
    "HostSupport",
    "RoutingSettings",
    "config_message",
    "failsafe_port",
    "routing_settings",
]
