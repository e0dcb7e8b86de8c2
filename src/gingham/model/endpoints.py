"""Endpoints and network sets: the things policies select and the nets they name."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Final, Literal

from pydantic import Field, PlainValidator, model_validator

from gingham.model.meta import Model, ProblemList, Resource, Str, dump_hint
from gingham.model.policy import CALICO_API
from gingham.model.support import refuse_unsupported
from gingham.model.values import (
    CIDR,
    IP,
    MAC,
    PortNumber,
    Protocol,
    SingleAddress,
    protocol_number,
)
from gingham.model.values import PORT_PROTOCOLS as _PORT_PROTOCOLS
from gingham.names import WORKLOAD_INTERFACE_PREFIX

# --- workload interface names and the interface prefix ---
#
# The agent programs a workload's interface into dispatch maps, anti-spoofing
# sets and per-interface sysctls, and writes its name into nft scripts between
# double quotes. So a workload interface name must be one Linux accepts
# (1-15 bytes; no '/', ':' or whitespace; not '.' or '..') and one that needs
# no quoting anywhere: Calico's character set, letters, digits, '_', '.', '-'.
# And it must start with one of the configured prefixes (FelixConfiguration
# interfacePrefix, Calico's idea): otherwise an endpoint could name the host's
# own uplink and have it filtered as a workload.

DEFAULT_INTERFACE_PREFIXES: Final = (WORKLOAD_INTERFACE_PREFIX,)
IFNAMSIZ: Final = 16  # the kernel's buffer, NUL included: names have at most 15 bytes
_IFACE_CHARS: Final = re.compile(r"^[A-Za-z0-9_.-]+$")


def workload_interface_problem(name: str) -> str | None:
    """Why ``name`` cannot be a workload interface name (None when it can)."""
    if not isinstance(name, str):
        return f"must be a string, got {type(name).__name__} {dump_hint(name)}"
    if not name:
        return "must not be empty"
    size = len(name.encode())
    if size >= IFNAMSIZ:
        return (f"{dump_hint(name)} is {size} bytes long: Linux interface names have "
                f"1-{IFNAMSIZ - 1} bytes")
    if name in (".", ".."):
        return f"{name!r} is not a valid Linux interface name"
    for ch, what in (("/", "'/'"), (":", "':'")):
        if ch in name:
            return f"{dump_hint(name)} contains {what}, which Linux refuses in interface names"
    if any(ch.isspace() for ch in name):
        return f"{dump_hint(name)} contains whitespace, which Linux refuses in interface names"
    if not _IFACE_CHARS.match(name):
        return (f"{dump_hint(name)} has characters other than letters, digits, "
                "'_', '.' and '-'")
    return None


def _check_workload_interface_name(value: Any) -> str:
    problem = workload_interface_problem(value)
    if problem is not None:
        raise ValueError(f"invalid interface name: {problem}")
    return str(value)


WorkloadInterfaceName = Annotated[str, PlainValidator(_check_workload_interface_name)]


def parse_interface_prefixes(value: str | None) -> tuple[str, ...]:
    """FelixConfiguration ``interfacePrefix`` as a tuple of prefixes.

    None (unset) gives the default, ``("gh",)``. Calico allows several,
    separated by commas (``"gh,tap"``); spaces around each are ignored,
    duplicates dropped. Raises ValueError naming the bad item for an empty
    list, an empty item or a prefix that no interface name could start with.
    """
    if value is None:
        return DEFAULT_INTERFACE_PREFIXES
    if not isinstance(value, str):
        raise ValueError(f"interfacePrefix must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError("interfacePrefix is empty: name at least one prefix (default 'gh')")
    out: list[str] = []
    for i, raw in enumerate(value.split(",")):
        item = raw.strip()
        if not item:
            raise ValueError(f"interfacePrefix {value!r}: item {i + 1} is empty")
        problem = workload_interface_problem(item)
        if problem is not None:
            raise ValueError(f"interfacePrefix {value!r}: item {i + 1}: {problem}")
        if item not in out:
            out.append(item)
    return tuple(out)


def interface_prefix_problem(interface_name: str, prefixes: Sequence[str]) -> str | None:
    """Why a WorkloadEndpoint naming ``interface_name`` must not be programmed
    under ``prefixes`` (from :func:`parse_interface_prefixes`); None when it may."""
    problem = workload_interface_problem(interface_name)
    if problem is not None:
        return f"interfaceName {problem}"
    if not any(interface_name.startswith(p) for p in prefixes):
        shown = ", ".join(repr(p) for p in prefixes)
        return (f"interfaceName {interface_name!r} is not a workload interface: it does not "
                f"start with the interface prefix ({shown}; FelixConfiguration interfacePrefix)")
    return None


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
    interface_name: WorkloadInterfaceName | None = None
    mac: MAC | None = None
    ports: tuple[WorkloadEndpointPort, ...] = ()
    allow_spoofed_source_prefixes: tuple[CIDR, ...] = ()

    @model_validator(mode="after")
    def _supported(self) -> WorkloadEndpointSpec:
        refuse_unsupported(self)  # ipNATs
        return self


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
        with problems.part():
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
