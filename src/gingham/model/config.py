"""FelixConfiguration: the per-host agent's settings (name ``default`` or ``node.<host>``).

The names are Calico's, so an existing FelixConfiguration loads. What gingham
does with each field is in :mod:`gingham.model.support_network`: a value
gingham would not honour is refused. Defaults are Calico's except where gingham
does something else whatever the setting says: then the default says what
gingham does (``healthEnabled``, ``removeExternalRoutes``, ...) or is unset.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from gingham.model.endpoints import parse_interface_prefixes
from gingham.model.meta import Bool, Int, Model, ProblemList, Resource, Str, dump_hint
from gingham.model.network import LogSeverity
from gingham.model.policy import CALICO_API
from gingham.model.support import refuse_unsupported
from gingham.model.values import CIDR, IP, Duration, check_port_number


class ProtoPort(Model):
    """A failsafe port: protocol, port and optionally the only net it is open to."""

    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    port: Int
    net: CIDR | None = None

    @field_validator("protocol", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        # Calico's own defaults write the protocol in lower case ("tcp").
        if isinstance(value, str) and value.upper() in ("TCP", "UDP", "SCTP"):
            return value.upper()
        if isinstance(value, str):
            raise ValueError(f"invalid protocol {dump_hint(value)}: TCP, UDP or SCTP")
        return value

    @field_validator("port")
    @classmethod
    def _port(cls, value: int) -> int:
        return check_port_number(value)

    @model_validator(mode="after")
    def _supported(self) -> ProtoPort:
        refuse_unsupported(self)
        return self


def _ports(*spec: tuple[str, int]) -> tuple[ProtoPort, ...]:
    return tuple(ProtoPort(protocol=p, port=n) for p, n in spec)  # type: ignore[arg-type]


# Calico's defaults: SSH, DHCP, BGP, etcd, Typha, the Kubernetes API and kube-proxy-ish ports.
DEFAULT_FAILSAFE_INBOUND = _ports(
    ("TCP", 22), ("UDP", 68), ("TCP", 179), ("TCP", 2379), ("TCP", 2380),
    ("TCP", 5473), ("TCP", 6443), ("TCP", 6666), ("TCP", 6667),
)
DEFAULT_FAILSAFE_OUTBOUND = _ports(
    ("UDP", 53), ("UDP", 67), ("TCP", 179), ("TCP", 2379), ("TCP", 2380),
    ("TCP", 5473), ("TCP", 6443), ("TCP", 6666), ("TCP", 6667),
)


class RouteTableRange(Model):
    min: Int
    max: Int


class FelixConfigurationSpec(Model):
    default_endpoint_to_host_action: Literal["Drop", "Return", "Accept"] = "Drop"
    failsafe_inbound_host_ports: tuple[ProtoPort, ...] = DEFAULT_FAILSAFE_INBOUND
    failsafe_outbound_host_ports: tuple[ProtoPort, ...] = DEFAULT_FAILSAFE_OUTBOUND
    log_severity_screen: LogSeverity = "Info"
    # gingham writes no log file, and its packet-log prefixes name the rule:
    # no value describes what it does, so none is the default.
    log_severity_file: LogSeverity | None = None
    log_file_path: Str | None = None
    log_prefix: Str | None = None
    ipv6_support: Bool = True
    # VXLAN: Calico turns it on by itself when a pool uses it; absent = automatic.
    vxlan_enabled: Bool | None = None
    vxlan_vni: Int = 4096
    vxlan_port: Int = 4789
    vxlan_mtu: Int | None = None
    vxlan_mtu_v6: Int | None = None
    ipip_enabled: Bool | None = None
    ipip_mtu: Int | None = None
    mtu_iface_pattern: Str | None = None
    nat_outgoing_address: IP | None = None
    nat_port_range: Str | None = None
    # Workload interfaces start with one of these (comma-separated, as in Calico);
    # unset means "gh". An endpoint naming any other interface is not programmed.
    interface_prefix: Str | None = None
    chain_insert_mode: Literal["Insert", "Append"] | None = None
    nftables_mode: Literal["Enabled", "Disabled", "Auto"] | None = None
    bpf_enabled: Bool = False
    wireguard_enabled: Bool = False
    # What gingham does today (Calico's defaults are Drop, False, False, True).
    service_loop_prevention: Literal["Drop", "Reject", "Disabled"] = "Drop"
    # Calico's defaults: workloads may not send packets into the hosts' tunnels.
    allow_vxlan_packets_from_workloads: Bool = False
    allow_ipip_packets_from_workloads: Bool = False
    floating_ips: Literal["Enabled", "Disabled"] = "Disabled"
    remove_external_routes: Bool = False
    device_route_protocol: Int | None = None
    route_table_range: RouteTableRange | None = None
    route_refresh_interval: Duration | None = None
    interface_refresh_interval: Duration | None = None
    reporting_interval: Duration | None = None
    health_enabled: Bool = True  # gingham serves health unless told not to (Calico: False)
    health_host: Str = "localhost"
    health_port: Int = 9099
    prometheus_metrics_enabled: Bool = False
    prometheus_metrics_host: Str | None = None
    prometheus_metrics_port: Int = 9091
    endpoint_reporting_enabled: Bool = False
    external_nodes_cidr_list: tuple[CIDR, ...] = ()

    @field_validator("interface_prefix")
    @classmethod
    def _interface_prefix(cls, value: str | None) -> str | None:
        parse_interface_prefixes(value)  # ValueError names the bad item
        return value

    @model_validator(mode="after")
    def _ranges(self) -> FelixConfigurationSpec:
        problems = ProblemList()
        refuse_unsupported(self, problems)
        with problems.part():
            if not 0 <= self.vxlan_vni <= 16777215:
                problems.add("vxlanVNI", f"{self.vxlan_vni} out of range 0-16777215")
        for name, alias in (("vxlan_port", "vxlanPort"), ("health_port", "healthPort"),
                            ("prometheus_metrics_port", "prometheusMetricsPort")):
            with problems.part():
                value = getattr(self, name)
                if not 1 <= value <= 65535:
                    problems.add(alias, f"port {value} out of range 1-65535")
        for name, alias in (("vxlan_mtu", "vxlanMTU"), ("vxlan_mtu_v6", "vxlanMTUV6"),
                            ("ipip_mtu", "ipipMTU")):
            with problems.part():
                value = getattr(self, name)
                if value is not None and not 0 <= value <= 65535:
                    problems.add(alias, f"MTU {value} out of range")
        with problems.part():
            protocol = self.device_route_protocol
            if protocol is not None and not 0 <= protocol <= 255:
                problems.add("deviceRouteProtocol", f"{protocol} out of range 0-255")
        with problems.part():
            rng = self.route_table_range
            if rng is not None and not 1 <= rng.min <= rng.max <= 0xFFFFFFFF:
                problems.add("routeTableRange", f"invalid range {rng.min}-{rng.max}")
        problems.raise_if_any()
        return self


class FelixConfiguration(Resource):
    api_version: Literal["projectcalico.org/v3"] = CALICO_API
    kind: Literal["FelixConfiguration"] = "FelixConfiguration"
    spec: FelixConfigurationSpec = Field(default_factory=FelixConfigurationSpec)


__all__ = [
    "DEFAULT_FAILSAFE_INBOUND",
    "DEFAULT_FAILSAFE_OUTBOUND",
    "FelixConfiguration",
    "FelixConfigurationSpec",
    "ProtoPort",
    "RouteTableRange",
]
