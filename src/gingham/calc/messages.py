"""The typed, frozen messages the calculation graph hands to the dataplane.

These are the whole contract between ``gingham.calc`` and ``gingham.dataplane``:
the dataplane never sees a model resource or a selector, only these.

Ordering (guaranteed by :meth:`gingham.calc.CalcGraph.flush`, spelled out in
``calc/sequencer.py``): within one flush, additions and updates go IP sets ->
policies -> profiles -> endpoints, so that everything a message refers to
already exists when it arrives; removals come after all of them and in the
reverse order (endpoints -> profiles -> policies -> IP sets), so nothing is
removed while still referenced. Routing follows: the VXLAN device and its
peers before the routes that use them, route removals before the peers they
used go. ``ConfigUpdate`` comes first, ``InSync`` last.

Identifiers:
- IP set ids are short opaque strings (``s:…`` selector sets, ``n:…`` named-port
  sets), stable for the same meaning across restarts; made of ``[A-Za-z0-9:_-]``.
  A dataplane that needs other names maps them.
- ``PolicyID`` names a policy; ``profile_id`` is the Profile's name (``kns.<ns>``
  for Kubernetes namespaces).
- ``rule_id`` is stable for (owner, direction, index): use it for counters and logs.

Address formats: policy and endpoint nets are canonical CIDR strings
(``198.18.0.5/32``, ``2001:db8::5/128``); routing messages carry
``ipaddress`` objects. IP-set members of kind ``net`` are such CIDRs and may mix
IPv4 and IPv6 (the dataplane splits by family); members of kind ``net-port`` are
``"<ip>,<proto>:<port>"`` with a bare address, e.g. ``198.18.0.5,tcp:8080``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from gingham.calc.inputs import IPAddress, IPNetwork
from gingham.calc.routing_types import (
    VXLAN_DEVICE,
    VXLAN_PORT,
    VXLAN_VNI,
    BGPSettings,
    HostInfo,
    PoolInfo,
)
from gingham.names import WORKLOAD_INTERFACE_PREFIX

IPSetKind = Literal["net", "net-port"]
Action = Literal["allow", "deny", "pass", "log"]
PortRange = tuple[int, int]


# --- IP sets ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IPSetUpdate:
    """Create (or fully replace) an IP set with exactly these members."""

    set_id: str
    kind: IPSetKind
    members: frozenset[str]


@dataclass(frozen=True, slots=True)
class IPSetDeltaUpdate:
    """Change the members of an IP set already sent with :class:`IPSetUpdate`.

    ``added`` and ``removed`` are disjoint. Applying them to the previous
    members gives the new members.
    """

    set_id: str
    added: frozenset[str]
    removed: frozenset[str]


@dataclass(frozen=True, slots=True)
class IPSetRemove:
    set_id: str


# --- policies and profiles ------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class PolicyID:
    """A policy's identity. ``namespace`` is None for GlobalNetworkPolicy.

    Kubernetes NetworkPolicies appear here after conversion, as namespaced
    policies named ``knp.default.<name>`` in tier ``default``.
    """

    tier: str
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        scope = f"{self.namespace}/" if self.namespace else ""
        return f"{self.tier}/{scope}{self.name}"


@dataclass(frozen=True, slots=True)
class ParsedRule:
    """One rule, ready to render: selectors are already replaced by IP-set ids.

    Every match field that is empty/None means "no constraint". All constraints
    of a rule are ANDed; inside one tuple of nets, ports or named-port sets the
    entries are ORed (any of them matches); the ``not_*`` variants match when
    none of their entries matches. Set-id tuples (``src_set_ids`` …) are ANDed:
    the address must be in every listed set (an entity rule with a selector and
    ``namespaceSelector`` gives one set; ``serviceAccounts`` gives another).
    """

    rule_id: str
    """Stable id: ``<owner>:<i|e><index>`` where owner is ``policy:<PolicyID>`` or
    ``profile:<name>``; the index is the rule's position in its direction."""
    action: Action
    ip_version: int | None = None
    """4 or 6: the rule only applies to that family. None: both."""
    protocol: int | None = None
    """IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6, 132 sctp, 136 udplite)."""
    not_protocol: int | None = None
    src_nets: tuple[str, ...] = ()
    not_src_nets: tuple[str, ...] = ()
    dst_nets: tuple[str, ...] = ()
    not_dst_nets: tuple[str, ...] = ()
    src_ports: tuple[PortRange, ...] = ()
    """Numeric source ports as inclusive (lo, hi) ranges; a single port is (p, p)."""
    not_src_ports: tuple[PortRange, ...] = ()
    dst_ports: tuple[PortRange, ...] = ()
    not_dst_ports: tuple[PortRange, ...] = ()
    src_named_port_set_ids: tuple[str, ...] = ()
    """Named source ports: ``net-port`` sets whose ``ip,proto:port`` members come
    from endpoints matching the rule's source selector. ORed with ``src_ports``:
    the packet matches the ports constraint if it matches either."""
    not_src_named_port_set_ids: tuple[str, ...] = ()
    dst_named_port_set_ids: tuple[str, ...] = ()
    """Named destination ports (ORed with ``dst_ports``), from endpoints matching
    the rule's destination selector."""
    not_dst_named_port_set_ids: tuple[str, ...] = ()
    src_set_ids: tuple[str, ...] = ()
    """Source address must be in ALL of these ``net`` sets (selector,
    serviceAccounts, network-set members)."""
    not_src_set_ids: tuple[str, ...] = ()
    """Source address must be in NONE of these sets (``notSelector``)."""
    dst_set_ids: tuple[str, ...] = ()
    not_dst_set_ids: tuple[str, ...] = ()
    icmp_type: int | None = None
    icmp_code: int | None = None
    not_icmp_type: int | None = None
    not_icmp_code: int | None = None

    @property
    def set_ids(self) -> frozenset[str]:
        """Every IP set this rule refers to."""
        return frozenset(
            self.src_set_ids
            + self.not_src_set_ids
            + self.dst_set_ids
            + self.not_dst_set_ids
            + self.src_named_port_set_ids
            + self.not_src_named_port_set_ids
            + self.dst_named_port_set_ids
            + self.not_dst_named_port_set_ids
        )


@dataclass(frozen=True, slots=True)
class PolicyUpdate:
    """An active policy (it selects at least one local endpoint), its rules rendered.

    ``inbound``/``outbound`` are empty for a direction the policy's ``types``
    do not include. Flags come from GlobalNetworkPolicy (``doNotTrack`` ->
    ``untracked``, ``preDNAT``, ``applyOnForward``) and only matter for host
    endpoints.
    """

    policy_id: PolicyID
    inbound: tuple[ParsedRule, ...]
    outbound: tuple[ParsedRule, ...]
    untracked: bool = False
    pre_dnat: bool = False
    apply_on_forward: bool = False


@dataclass(frozen=True, slots=True)
class PolicyRemove:
    policy_id: PolicyID


@dataclass(frozen=True, slots=True)
class ProfileUpdate:
    """An active profile (some local endpoint lists it)."""

    profile_id: str
    inbound: tuple[ParsedRule, ...]
    outbound: tuple[ParsedRule, ...]


@dataclass(frozen=True, slots=True)
class ProfileRemove:
    profile_id: str


# --- endpoints -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TierInfo:
    """One tier as it applies to one endpoint, in evaluation order.

    A tier appears only if at least one of its policies applies to the
    endpoint. ``ingress_policies``/``egress_policies`` are in evaluation order;
    a policy appears in a direction only if its ``types`` include it. When a
    direction's list is empty the tier does not apply to that direction at all
    (no default action for it). ``default_action`` ("deny" or "pass") is what
    happens at the end of a tier whose policies matched no rule.
    """

    name: str
    default_action: Literal["deny", "pass"]
    ingress_policies: tuple[PolicyID, ...]
    egress_policies: tuple[PolicyID, ...]


@dataclass(frozen=True, slots=True, order=True)
class WorkloadEndpointID:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class WorkloadEndpointUpdate:
    """A local workload endpoint and the policy that applies to it.

    Fail closed: ``profile_ids`` lists only profiles that exist; when any of the
    endpoint's profiles is missing, ``profile_ids`` is empty and
    ``missing_profiles`` names them, and the dataplane must deny everything that
    falls through the tiers (no profile allows).
    """

    endpoint_id: WorkloadEndpointID
    interface_name: str
    ipv4_nets: tuple[str, ...]
    ipv6_nets: tuple[str, ...]
    mac: str | None
    tiers: tuple[TierInfo, ...]
    profile_ids: tuple[str, ...]
    allow_spoofed_prefixes: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """The endpoint's effective labels (for logs only; matching is done)."""
    missing_profiles: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WorkloadEndpointRemove:
    endpoint_id: WorkloadEndpointID


@dataclass(frozen=True, slots=True)
class HostEndpointUpdate:
    """A local host endpoint (HostEndpoint resource whose node is this host).

    ``interface_name`` is None or "*" for an all-interfaces endpoint.
    ``tiers`` are normal policies; ``untracked_tiers`` (doNotTrack),
    ``pre_dnat_tiers`` (preDNAT) and ``forward_tiers`` (applyOnForward) hold
    the policies with those flags, each ordered like ``tiers``.
    """

    endpoint_id: str
    interface_name: str | None
    expected_ipv4_addrs: tuple[str, ...]
    expected_ipv6_addrs: tuple[str, ...]
    tiers: tuple[TierInfo, ...]
    untracked_tiers: tuple[TierInfo, ...]
    pre_dnat_tiers: tuple[TierInfo, ...]
    forward_tiers: tuple[TierInfo, ...]
    profile_ids: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    missing_profiles: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HostEndpointRemove:
    endpoint_id: str


# --- configuration and sync -----------------------------------------------


FailsafeProtocol = Literal["tcp", "udp", "sctp"]
LogSeverity = Literal["Trace", "Debug", "Info", "Warning", "Error", "Fatal"]
EndpointToHostAction = Literal["Drop", "Return", "Accept"]


@dataclass(frozen=True, slots=True, order=True)
class FailsafePort:
    """A host port kept open whatever host endpoint policy says.

    ``net`` (a canonical CIDR; None: any address) narrows it: an inbound port
    is open to sources in ``net`` only, an outbound one to destinations in it.
    """

    protocol: FailsafeProtocol
    port: int
    net: str | None = None


def _failsafe(*ports: tuple[FailsafeProtocol, int]) -> tuple[FailsafePort, ...]:
    return tuple(FailsafePort(proto, port) for proto, port in ports)


# Calico's defaults (the model's, converted; a unit test keeps them equal).
DEFAULT_FAILSAFE_INBOUND: tuple[FailsafePort, ...] = _failsafe(
    ("tcp", 22), ("udp", 68), ("tcp", 179), ("tcp", 2379), ("tcp", 2380),
    ("tcp", 5473), ("tcp", 6443), ("tcp", 6666), ("tcp", 6667),
)
DEFAULT_FAILSAFE_OUTBOUND: tuple[FailsafePort, ...] = _failsafe(
    ("udp", 53), ("udp", 67), ("tcp", 179), ("tcp", 2379), ("tcp", 2380),
    ("tcp", 5473), ("tcp", 6443), ("tcp", 6666), ("tcp", 6667),
)


@dataclass(frozen=True, slots=True)
class Listener:
    """Where a server of the agent listens: ``host`` "" means every address."""

    host: str
    port: int

    def __str__(self) -> str:
        host = self.host or "*"
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ConfigUpdate:
    """FelixConfiguration as it applies to this host, for the policy dataplane and the
    agent process: every field is the model's default, overridden by what
    FelixConfiguration ``default`` sets, overridden by what ``node.<hostname>`` sets
    (field by field). Plain values only. Routing's settings (vxlanVNI, vxlanPort,
    vxlanMTU, natOutgoingAddress) reach the routing messages instead
    (``VxlanDeviceUpdate``, ``MtuUpdate``, ``NatOutgoingUpdate``).

    ``health``: where the health server listens (None: healthEnabled false).
    ``metrics``: the Prometheus server of its own (prometheusMetricsEnabled); None:
    ``/metrics`` is served by the health server.
    """

    endpoint_to_host_action: EndpointToHostAction = "Drop"
    failsafe_inbound: tuple[FailsafePort, ...] = DEFAULT_FAILSAFE_INBOUND
    failsafe_outbound: tuple[FailsafePort, ...] = DEFAULT_FAILSAFE_OUTBOUND
    interface_prefixes: tuple[str, ...] = (WORKLOAD_INTERFACE_PREFIX,)
    """Workload interfaces start with one of these (interfacePrefix)."""
    vxlan_port: int = VXLAN_PORT
    """The UDP port of VXLAN, which workloads may not send to unless allowed."""
    allow_vxlan_from_workloads: bool = False
    allow_ipip_from_workloads: bool = False
    log_severity: LogSeverity = "Info"
    health: Listener | None = Listener("localhost", 9099)
    metrics: Listener | None = None


# --- routing ----------------------------------------------------------------

RouteKind = Literal["unicast", "blackhole"]


@dataclass(frozen=True, slots=True)
class RouteUpdate:
    """A route this host wants in its main table (the agent's protocol), one per ``dst``.

    ``workload``: a local workload's route over its veth (the CNI plugin makes the
    same one); it is only programmable while that interface exists.
    """

    dst: IPNetwork
    via: IPAddress | None = None
    dev: str | None = None
    onlink: bool = False
    kind: RouteKind = "unicast"
    workload: bool = False

    @property
    def is_vxlan(self) -> bool:
        return self.dev == VXLAN_DEVICE

    def sort_key(self) -> tuple[int, int, int, str, str]:
        return (
            self.dst.version,
            int(self.dst.network_address),
            self.dst.prefixlen,
            str(self.via or ""),
            self.dev or "",
        )


@dataclass(frozen=True, slots=True)
class RouteRemove:
    dst: IPNetwork


@dataclass(frozen=True, slots=True)
class VxlanDeviceUpdate:
    """The VXLAN device: its underlay address, MAC, MTU and tunnel addresses."""

    local: IPAddress
    mac: str
    mtu: int
    tunnel_addrs: tuple[IPAddress, ...]
    vni: int = VXLAN_VNI
    port: int = VXLAN_PORT
    device: str = VXLAN_DEVICE


@dataclass(frozen=True, slots=True)
class VxlanDeviceRemove:
    """No VXLAN device is wanted any more (sent only after one was)."""


@dataclass(frozen=True, slots=True)
class VxlanPeerUpdate:
    """A remote tunnel endpoint: neighbour ``tunnel_addr -> mac`` and FDB ``mac -> underlay``."""

    host: str
    tunnel_addr: IPAddress
    mac: str
    underlay: IPAddress

    def sort_key(self) -> tuple[str, int, int]:
        return (self.host, self.tunnel_addr.version, int(self.tunnel_addr))


@dataclass(frozen=True, slots=True)
class VxlanPeerRemove:
    tunnel_addr: IPAddress


@dataclass(frozen=True, slots=True)
class NatOutgoingUpdate:
    """Masquerade traffic from ``masquerade`` pools to destinations outside ``pools``
    (every pool, disabled ones too: their workloads still talk). ``snat_v4``/``snat_v6``
    give a fixed source address instead of the outgoing interface's."""

    masquerade: tuple[IPNetwork, ...]
    pools: tuple[IPNetwork, ...]
    snat_v4: IPAddress | None = None
    snat_v6: IPAddress | None = None


ServiceLoopAction = Literal["Drop", "Reject", "Disabled"]


@dataclass(frozen=True, slots=True)
class ServiceLoopUpdate:
    """The service CIDRs this host advertises (BGPConfiguration serviceClusterIPs and
    serviceExternalIPs): forwarded traffic to them that no DNAT rewrote meets ``action``
    (FelixConfiguration serviceLoopPrevention), so that an address no service uses
    does not bounce between the hosts and their router. No CIDRs: no rules."""

    cidrs: tuple[IPNetwork, ...]
    action: ServiceLoopAction = "Drop"


@dataclass(frozen=True, slots=True)
class BgpConfig:
    """Everything the BIRD renderer reads, for this host (``me``)."""

    settings: BGPSettings
    me: HostInfo
    hosts: tuple[HostInfo, ...]
    exported: tuple[IPNetwork, ...]
    """This host's blocks and borrowed addresses (``routing_types.exported_prefixes``)."""
    pools: tuple[PoolInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class BgpUpdate:
    """BGP for this host: ``config`` to run BIRD with, or None (BGP off: no BIRD)."""

    config: BgpConfig | None


@dataclass(frozen=True, slots=True)
class MtuUpdate:
    """The MTU workload interfaces get (the CNI plugin reads it from the host's MTU file)."""

    mtu: int


@dataclass(frozen=True, slots=True)
class TunnelAddressWanted:
    """Whether this host needs a VXLAN tunnel address of ``version`` it has not published
    yet (for the agent's housekeeping, which claims one from IPAM and publishes it)."""

    version: int
    wanted: bool


@dataclass(frozen=True, slots=True)
class InSync:
    """The datastore snapshot has been fully processed; the dataplane may now
    program the kernel and remove stale objects."""


Message = (
    IPSetUpdate
    | IPSetDeltaUpdate
    | IPSetRemove
    | PolicyUpdate
    | PolicyRemove
    | ProfileUpdate
    | ProfileRemove
    | WorkloadEndpointUpdate
    | WorkloadEndpointRemove
    | HostEndpointUpdate
    | HostEndpointRemove
    | ConfigUpdate
    | RouteUpdate
    | RouteRemove
    | VxlanDeviceUpdate
    | VxlanDeviceRemove
    | VxlanPeerUpdate
    | VxlanPeerRemove
    | NatOutgoingUpdate
    | ServiceLoopUpdate
    | BgpUpdate
    | MtuUpdate
    | TunnelAddressWanted
    | InSync
)

ROUTING_MESSAGES: tuple[type, ...] = (
    RouteUpdate,
    RouteRemove,
    VxlanDeviceUpdate,
    VxlanDeviceRemove,
    VxlanPeerUpdate,
    VxlanPeerRemove,
    NatOutgoingUpdate,
    ServiceLoopUpdate,
    BgpUpdate,
    MtuUpdate,
    TunnelAddressWanted,
)
"""Messages for routing (and the agent's housekeeping), which the policy dataplane skips."""
