"""Endpoints and network sets: the things policies select and the nets they name."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gingham.model.meta import Model, ProblemList, Resource, Str
from gingham.model.policy import CALICO_API
from gingham.model.values import (
    CIDR,
    IP,
    MAC,
    InterfaceName,
    PortNumber,
    Protocol,
    SingleAddress,
    protocol_number,
)
from gingham.model.values import PORT_PROTOCOLS as _PORT_PROTOCOLS


class EndpointPort(Model):
    """A named port an endpoint offers; rules match it by name."""

    name: Str
    protocol: Protocol
    port: PortNumber

    @model_validator(mode="after")
    def _port_protocol(self) -> EndpointPort:
        if protocol_number(self.protocol) not in _PORT_PROTOCOLS:
            problems = ProblemList()
            problems.add("protocol", "named ports need protocol TCP, UDP or SCTP")
            problems.raise_if_any()
        return self


class WorkloadEndpointPort(EndpointPort):
    host_port: PortNumber | None = None
    host_ip: IP | None = None


class IPNAT(Model):
    internal_ip: IP
    external_ip: IP


class WorkloadEndpointSpec(Model):
    orchestrator: Str | None = None
    workload: Str | None = None
    node: Str | None = None
    container_id: Str | None = None
    pod: Str | None = None
    endpoint: Str | None = None
    service_account_name: Str | None = None
    ip_networks: tuple[SingleAddress, ...] = ()
    ipv4_gateway: IP | None = None
    ipv6_gateway: IP | None = None
    ip_nats: tuple[IPNAT, ...] = ()
    profiles: tuple[Str, ...] = ()
    interface_name: InterfaceName | None = None
    mac: MAC | None = None
    ports: tuple[WorkloadEndpointPort, ...] = ()
    allow_spoofed_source_prefixes: tuple[CIDR, ...] = ()


class WorkloadEndpoint(Resource):
    """A container, pod or VM interface attached to a host."""

    NAMESPACED = True
    api_version: Literal["projectcalico.org/v3"] = CALICO_API
    kind: Literal["WorkloadEndpoint"] = "WorkloadEndpoint"
    spec: WorkloadEndpointSpec = Field(default_factory=WorkloadEndpointSpec)


class HostEndpointSpec(Model):
    node: Str | None = None
    interface_name: Str | None = None  # "*" means every interface of the host
    expected_ips: tuple[IP, ...] = ()
    profiles: tuple[Str, ...] = ()
    ports: tuple[EndpointPort, ...] = ()

    @model_validator(mode="after")
    def _where(self) -> HostEndpointSpec:
        problems = ProblemList()
        if not self.interface_name and not self.expected_ips:
            problems.add("", "needs interfaceName or expectedIPs (or both)")
        if self.interface_name not in (None, "*"):
            from gingham.model.values import check_interface_name

            try:
                check_interface_name(self.interface_name)
            except ValueError as exc:
                problems.add("interfaceName", str(exc))
        problems.raise_if_any()
        return self


class HostEndpoint(Resource):
    """An interface of a host itself (or all of them, ``interfaceName: "*"``)."""

    api_version: Literal["projectcalico.org/v3"] = CALICO_API
    kind: Literal["HostEndpoint"] = "HostEndpoint"
    spec: HostEndpointSpec = Field(default_factory=HostEndpointSpec)


class NetworkSetSpec(Model):
    nets: tuple[CIDR, ...] = ()


class NetworkSet(Resource):
    """Nets with labels, visible to the selectors of its namespace's policies."""

    NAMESPACED = True
    api_version: Literal["projectcalico.org/v3"] = CALICO_API
    kind: Literal["NetworkSet"] = "NetworkSet"
    spec: NetworkSetSpec = Field(default_factory=NetworkSetSpec)


class GlobalNetworkSet(Resource):
    """Nets with labels, visible to every policy's selectors."""

    api_version: Literal["projectcalico.org/v3"] = CALICO_API
    kind: Literal["GlobalNetworkSet"] = "GlobalNetworkSet"
    spec: NetworkSetSpec = Field(default_factory=NetworkSetSpec)
