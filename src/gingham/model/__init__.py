"""gingham's resource model: typed, validated Calico v3 and Kubernetes resources.

    >>> from gingham.model import load_manifests, to_dict
    >>> [pool] = load_manifests('''
    ... apiVersion: projectcalico.org/v3
    ... kind: IPPool
    ... metadata: {name: pool-a}
    ... spec: {cidr: 198.18.0.0/16, vxlanMode: CrossSubnet, natOutgoing: true}
    ... ''')
    >>> pool.spec.block_size, pool.spec.vxlan_mode
    (26, 'CrossSubnet')

Attributes are snake_case, manifests camelCase. Bad input raises
:class:`ManifestError` (a ``gingham.errors.ValidationError``) listing every
problem with its document and field path.
"""

from gingham.model.endpoints import (
    IPNAT,
    EndpointPort,
    GlobalNetworkSet,
    HostEndpoint,
    HostEndpointSpec,
    NetworkSet,
    NetworkSetSpec,
    WorkloadEndpoint,
    WorkloadEndpointPort,
    WorkloadEndpointSpec,
)
from gingham.model.meta import ManifestError, ObjectMeta, Problem, Resource
from gingham.model.policy import (
    CALICO_API,
    DEFAULT_TIER,
    MAX_RULES,
    GlobalNetworkPolicy,
    GlobalNetworkPolicySpec,
    NetworkPolicy,
    NetworkPolicySpec,
    PolicySpec,
    PolicyType,
    Profile,
    ProfileSpec,
    Tier,
    TierSpec,
    default_types,
)
from gingham.model.registry import KindInfo, all_kinds, kind_info, parse_resource
from gingham.model.rules import (
    Action,
    EntityRule,
    ICMPFields,
    Rule,
    RuleMetadata,
    ServiceAccountMatch,
    ServiceMatch,
)
from gingham.model.values import (
    PROTOCOL_NUMBERS,
    check_cidr,
    check_port,
    check_protocol,
    ip_version_of,
    port_range,
    protocol_number,
)
from gingham.model.yamlio import dump_yaml, load_manifests, load_yaml_documents, to_dict

__all__ = [
    "CALICO_API",
    "DEFAULT_TIER",
    "IPNAT",
    "MAX_RULES",
    "PROTOCOL_NUMBERS",
    "Action",
    "EndpointPort",
    "EntityRule",
    "GlobalNetworkPolicy",
    "GlobalNetworkPolicySpec",
    "GlobalNetworkSet",
    "HostEndpoint",
    "HostEndpointSpec",
    "ICMPFields",
    "KindInfo",
    "ManifestError",
    "NetworkPolicy",
    "NetworkPolicySpec",
    "NetworkSet",
    "NetworkSetSpec",
    "ObjectMeta",
    "PolicySpec",
    "PolicyType",
    "Problem",
    "Profile",
    "ProfileSpec",
    "Resource",
    "Rule",
    "RuleMetadata",
    "ServiceAccountMatch",
    "ServiceMatch",
    "Tier",
    "TierSpec",
    "WorkloadEndpoint",
    "WorkloadEndpointPort",
    "WorkloadEndpointSpec",
    "all_kinds",
    "check_cidr",
    "check_port",
    "check_protocol",
    "default_types",
    "dump_yaml",
    "ip_version_of",
    "kind_info",
    "load_manifests",
    "load_yaml_documents",
    "parse_resource",
    "port_range",
    "protocol_number",
    "to_dict",
]
