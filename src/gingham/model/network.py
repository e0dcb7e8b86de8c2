"""Addressing and routing resources: IP pools, reservations, BGP, nodes."""

from __future__ import annotations

import ipaddress
from typing import Final, Literal

from pydantic import Field, field_validator, model_validator

from gingham.model.meta import Bool, Int, Model, ProblemList, Resource, Str, camel
from gingham.model.policy import CALICO_API, COMPUTED
from gingham.model.support import refuse_unsupported
from gingham.model.values import (
    CIDR,
    IP,
    MAC,
    ASNumber,
    Duration,
    IPInterface,
    Selector,
    check_ip,
)

EncapMode = Literal["Never", "Always", "CrossSubnet"]
PoolUse = Literal["Workload", "Tunnel", "LoadBalancer"]
LogSeverity = Literal["Trace", "Debug", "Info", "Warning", "Error", "Fatal"]

DEFAULT_BLOCK_SIZE: dict[int, int] = {4: 26, 6: 122}
BLOCK_SIZE_RANGE: dict[int, tuple[int, int]] = {4: (20, 32), 6: (116, 128)}
DEFAULT_AS_NUMBER = 64512

# Ranges a pool must not overlap: Calico refuses link-local; loopback and multicast
# cannot be routed to a workload either.
_FORBIDDEN_POOL_NETS = [
    ipaddress.ip_network(n)
    for n in ("169.254.0.0/16", "127.0.0.0/8", "224.0.0.0/4", "fe80::/10", "::1/128", "ff00::/8")
]


class IPPoolSpec(Model):
    cidr: CIDR
    # Computed from the CIDR's family when absent (26 for IPv4, 122 for IPv6).
    block_size: Int = Field(default=COMPUTED)
    ipip_mode: EncapMode = "Never"
    vxlan_mode: EncapMode = "Never"
    nat_outgoing: Bool = False
    disabled: Bool = False
    disable_bgp_export: Bool = False
    node_selector: Selector = "all()"
    allowed_uses: tuple[PoolUse, ...] = ("Workload", "Tunnel")
    assignment_mode: Literal["Automatic", "Manual"] = "Automatic"

    @model_validator(mode="after")
    def _consistent(self) -> IPPoolSpec:
        problems = ProblemList()
        refuse_unsupported(self, problems)  # ipipMode other than Never, ...
        net = ipaddress.ip_network(self.cidr)
        version = net.version
        with problems.part():
            if self.block_size is None:
                object.__setattr__(self, "block_size", DEFAULT_BLOCK_SIZE[version])
            lo, hi = BLOCK_SIZE_RANGE[version]
            if not lo <= self.block_size <= hi:
                problems.add("blockSize", f"{self.block_size} out of range {lo}-{hi} for an "
                                          f"IPv{version} pool")
            elif net.prefixlen > self.block_size:
                problems.add("cidr", f"/{net.prefixlen} is smaller than one block "
                                     f"(blockSize {self.block_size})")
        for bad in _FORBIDDEN_POOL_NETS:
            if bad.version == version and net.overlaps(bad):
                problems.add("cidr", f"{self.cidr} overlaps reserved range {bad}")
        with problems.part():
            if "LoadBalancer" in self.allowed_uses and len(set(self.allowed_uses)) > 1:
                problems.add("allowedUses", "LoadBalancer cannot be combined with other uses")
            if len(set(self.allowed_uses)) != len(self.allowed_uses):
                problems.add("allowedUses", "a use is listed more than once")
        problems.raise_if_any()
        return self

    @property
    def ip_version(self) -> int:
        return ipaddress.ip_network(self.cidr).version


class IPPool(Resource):
    """A range workload addresses come from, with its encapsulation and NAT."""

    api_version: Literal["projectcalico.org/v3"] = CALICO_API
    kind: Literal["IPPool"] = "IPPool"
    spec: IPPoolSpec


class IPReservationSpec(Model):
    reserved_cidrs: tuple[CIDR, ...] = ()


class IPReservation(Resource):
    """Addresses inside pools that IPAM must never hand out."""

    api_version: Literal["projectcalico.org/v3"] = CALICO_API
    kind: Literal["IPReservation"] = "IPReservation"
    spec: IPReservationSpec = Field(default_factory=IPReservationSpec)


class ServiceCIDR(Model):
    cidr: CIDR


def community_problem(value: str) -> str | None:
    """Why ``value`` is not a BGP community (``aa:nn``, 16 bits each, or a large
    community ``aa:nn:mm``, 32 bits each), or None."""
    parts = value.split(":")
    bits = {2: 16, 3: 32}.get(len(parts))
    if bits is None or not all(p.isdecimal() and p.isascii() for p in parts):
        return f"invalid community {value!r}: aa:nn or aa:nn:mm (decimal numbers)"
    if any(int(p) >= 1 << bits for p in parts):
        shape = "aa:nn" if bits == 16 else "aa:nn:mm"
        return f"invalid community {value!r}: each part of {shape} is at most {(1 << bits) - 1}"
    return None


class Community(Model):
    name: Str
    value: Str

    @field_validator("value")
    @classmethod
    def _value(cls, value: str) -> str:
        problem = community_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class PrefixAdvertisement(Model):
    cidr: CIDR
    communities: tuple[Str, ...] = ()


class SecretKeyRef(Model):
    name: Str
    key: Str


class BGPPassword(Model):
    """A BGP session password: ``file`` names a file on each host that holds it (gingham
    has no Kubernetes secret store, so ``secretKeyRef`` is refused)."""

    secret_key_ref: SecretKeyRef | None = None
    file: Str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> BGPPassword:
        problems = ProblemList()
        refuse_unsupported(self, problems)
        if self.file is None and self.secret_key_ref is None:
            problems.add("", "needs file")
        if self.file is not None and (not self.file.startswith("/") or "\0" in self.file):
            problems.add("file", f"must be an absolute path, not {self.file!r}")
        problems.raise_if_any()
        return self


# What a per-node BGPConfiguration (node.<name>) may set, as in Calico: the rest is the
# cluster's (only ``default`` sets it). ``communities`` names the values its own
# prefixAdvertisements use.
PER_NODE_BGP_FIELDS: Final = frozenset(
    {"listen_port", "log_severity_screen", "prefix_advertisements", "communities"})


class BGPConfigurationSpec(Model):
    """Cluster-wide BGP settings (name ``default``) or per node (``node.<name>``)."""

    log_severity_screen: LogSeverity = "Info"
    node_to_node_mesh_enabled: Bool = True
    as_number: ASNumber = DEFAULT_AS_NUMBER
    listen_port: Int = 179
    bind_mode: Literal["None", "NodeIP"] = "None"
    service_cluster_ips: tuple[ServiceCIDR, ...] = ()
    service_external_ips: tuple[ServiceCIDR, ...] = ()
    service_load_balancer_ips: tuple[ServiceCIDR, ...] = ()
    communities: tuple[Community, ...] = ()
    prefix_advertisements: tuple[PrefixAdvertisement, ...] = ()
    node_mesh_password: BGPPassword | None = None
    node_mesh_max_restart_time: Duration | None = None
    ignored_interfaces: tuple[Str, ...] = ()

    @field_validator("listen_port")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError(f"port {value} out of range 1-65535")
        return value

    @model_validator(mode="after")
    def _supported(self) -> BGPConfigurationSpec:
        problems = ProblemList()
        refuse_unsupported(self, problems)
        names = [c.name for c in self.communities]
        for i, name in enumerate(names):
            if name in names[:i]:
                problems.add(f"communities[{i}].name", f"{name!r} is defined twice")
        for i, ad in enumerate(self.prefix_advertisements):
            for j, community in enumerate(ad.communities):
                if community not in names and community_problem(community) is not None:
                    problems.add(f"prefixAdvertisements[{i}].communities[{j}]",
                                 f"{community!r} is neither a community value (aa:nn or "
                                 f"aa:nn:mm) nor a name under communities")
        problems.raise_if_any()
        return self

    def community_values(self, communities: tuple[str, ...]) -> tuple[str, ...]:
        """Names under ``communities`` replaced by their values (in order, once each)."""
        named = {c.name: c.value for c in self.communities}
        return tuple(dict.fromkeys(named.get(c, c) for c in communities))


class BGPConfiguration(Resource):
    """``default`` turns BGP on and holds the cluster's settings; ``node.<host>`` overrides
    listenPort, logSeverityScreen and prefixAdvertisements for one host."""

    api_version: Literal["projectcalico.org/v3"] = CALICO_API
    kind: Literal["BGPConfiguration"] = "BGPConfiguration"
    spec: BGPConfigurationSpec = Field(default_factory=BGPConfigurationSpec)

    @property
    def node_name(self) -> str | None:
        """The host a per-node configuration is for (None for ``default``)."""
        name = self.metadata.name
        return name[len("node."):] if name.startswith("node.") else None

    @model_validator(mode="after")
    def _name_and_scope(self) -> BGPConfiguration:
        problems = ProblemList()
        name = self.metadata.name
        if name != "default" and not (name.startswith("node.") and len(name) > len("node.")):
            problems.add("metadata.name", f"{name!r}: a BGPConfiguration is named default (the "
                                          "cluster's) or node.<host> (one host's); gingham reads "
                                          "no other")
        elif name != "default":
            spec = self.spec
            for attr in sorted(spec.model_fields_set - PER_NODE_BGP_FIELDS):
                problems.add(f"spec.{camel(attr)}", "a per-node BGPConfiguration sets only "
                                              "listenPort, logSeverityScreen and "
                                              "prefixAdvertisements (with communities); set "
                                              "this in the one named default")
        problems.raise_if_any()
        return self


def check_peer_ip(value: str) -> str:
    """``192.0.2.1``, ``192.0.2.1:1179``, ``2001:db8::1`` or ``[2001:db8::1]:1179``."""
    text = value.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"invalid peerIP {value!r}: expected '[address]:port'")
        address = check_ip(host)
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
        address = check_ip(host)
    else:
        return check_ip(text)
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"invalid port in peerIP {value!r}")
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


class BGPPeerSpec(Model):
    node: Str | None = None
    node_selector: Selector | None = None
    peer_ip: Str | None = None
    peer_selector: Selector | None = None
    as_number: ASNumber | None = None
    password: BGPPassword | None = None
    keep_original_next_hop: Bool = False
    source_address: Literal["UseNodeIP", "None"] = "UseNodeIP"
    max_restart_time: Duration | None = None
    num_allowed_local_as_numbers: Int | None = None
    ttl_security: Int | None = None
    reachable_by: IP | None = None
    filters: tuple[Str, ...] = ()

    @field_validator("peer_ip")
    @classmethod
    def _peer_ip(cls, value: str | None) -> str | None:
        return None if value is None else check_peer_ip(value)

    @model_validator(mode="after")
    def _consistent(self) -> BGPPeerSpec:
        problems = ProblemList()
        refuse_unsupported(self, problems)
        with problems.part():
            if self.node and self.node_selector:
                problems.add("nodeSelector", "node and nodeSelector cannot both be set")
        with problems.part():
            if self.peer_ip and self.peer_selector:
                problems.add("peerSelector", "peerIP and peerSelector cannot both be set")
        with problems.part():
            if not self.peer_ip and not self.peer_selector:
                problems.add("", "needs peerIP or peerSelector")
        with problems.part():
            if self.peer_ip and self.as_number is None:
                problems.add("asNumber", "required with peerIP")
        with problems.part():
            if self.ttl_security is not None and not 0 <= self.ttl_security <= 255:
                problems.add("ttlSecurity", f"{self.ttl_security} out of range 0-255")
        problems.raise_if_any()
        return self

    @property
    def peer_address(self) -> str | None:
        """peerIP without its port."""
        if self.peer_ip is None:
            return None
        if self.peer_ip.startswith("["):
            return self.peer_ip[1:].partition("]")[0]
        return self.peer_ip.partition(":")[0] if self.peer_ip.count(":") == 1 else self.peer_ip

    @property
    def peer_port(self) -> int:
        if self.peer_ip is None or self.peer_address == self.peer_ip:
            return 179
        return int(self.peer_ip.rpartition(":")[2])


class BGPPeer(Resource):
    """A BGP session: from which nodes (node/nodeSelector) to which peers (peerIP/peerSelector)."""

    api_version: Literal["projectcalico.org/v3"] = CALICO_API
    kind: Literal["BGPPeer"] = "BGPPeer"
    spec: BGPPeerSpec


class NodeBGPSpec(Model):
    ipv4_address: IPInterface | None = None
    ipv6_address: IPInterface | None = None
    as_number: ASNumber | None = None
    route_reflector_cluster_id: IP | None = None
    ipv4_ipip_tunnel_addr: IP | None = None

    @field_validator("route_reflector_cluster_id")
    @classmethod
    def _cluster_id(cls, value: str | None) -> str | None:
        if value is not None and ipaddress.ip_address(value).version != 4:
            raise ValueError(f"routeReflectorClusterID {value!r} must be written as IPv4")
        return value

    @model_validator(mode="after")
    def _supported(self) -> NodeBGPSpec:
        refuse_unsupported(self)
        return self


class NodeAddress(Model):
    address: Str
    type: Literal["CalicoNodeIP", "InternalIP", "ExternalIP"] | None = None


class OrchRef(Model):
    node_name: Str | None = None
    orchestrator: Str


class NodeSpec(Model):
    bgp: NodeBGPSpec | None = None
    ipv4_vxlan_tunnel_addr: IP | None = None
    ipv6_vxlan_tunnel_addr: IP | None = None
    vxlan_tunnel_mac_addr: MAC | None = None
    vxlan_tunnel_mac_addr_v6: MAC | None = None
    addresses: tuple[NodeAddress, ...] = ()
    orch_refs: tuple[OrchRef, ...] = ()

    @model_validator(mode="after")
    def _supported(self) -> NodeSpec:
        refuse_unsupported(self)
        return self


class Node(Resource):
    """A host running the agent: its addresses, AS number and tunnel addresses."""

    api_version: Literal["projectcalico.org/v3"] = CALICO_API
    kind: Literal["Node"] = "Node"
    spec: NodeSpec = Field(default_factory=NodeSpec)


__all__ = [
    "BLOCK_SIZE_RANGE",
    "DEFAULT_AS_NUMBER",
    "DEFAULT_BLOCK_SIZE",
    "PER_NODE_BGP_FIELDS",
    "BGPConfiguration",
    "BGPConfigurationSpec",
    "BGPPassword",
    "BGPPeer",
    "BGPPeerSpec",
    "Community",
    "EncapMode",
    "IPPool",
    "IPPoolSpec",
    "IPReservation",
    "IPReservationSpec",
    "Node",
    "NodeAddress",
    "NodeBGPSpec",
    "NodeSpec",
    "OrchRef",
    "PrefixAdvertisement",
    "SecretKeyRef",
    "ServiceCIDR",
    "community_problem",
]
