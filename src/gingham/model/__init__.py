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

from gingham.model.config import (
    DEFAULT_FAILSAFE_INBOUND,
    DEFAULT_FAILSAFE_OUTBOUND,
    FelixConfiguration,
    FelixConfigurationSpec,
    ProtoPort,
)
from gingham.model.convert import (
    k8s_policy_to_calico,
    label_selector_to_calico,
    namespace_to_profile,
    selector_for_namespace_labels,
)
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
from gingham.model.k8s import (
    NAMESPACE_NAME_LABEL,
    IPBlock,
    KubernetesNetworkPolicy,
    KubernetesNetworkPolicySpec,
    LabelSelector,
    LabelSelectorRequirement,
    Namespace,
    NetworkPolicyEgressRule,
    NetworkPolicyIngressRule,
    NetworkPolicyPeer,
    NetworkPolicyPort,
)
from gingham.model.meta import ManifestError, ObjectMeta, Problem, Resource
from gingham.model.network import (
    DEFAULT_AS_NUMBER,
    DEFAULT_BLOCK_SIZE,
    BGPConfiguration,
    BGPConfigurationSpec,
    BGPPeer,
    BGPPeerSpec,
    IPPool,
    IPPoolSpec,
    IPReservation,
    IPReservationSpec,
    Node,
    NodeAddress,
    NodeBGPSpec,
    NodeSpec,
)
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
    order_key,
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
    "DEFAULT_AS_NUMBER",
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_FAILSAFE_INBOUND",
    "DEFAULT_FAILSAFE_OUTBOUND",
    "DEFAULT_TIER",
    "IPNAT",
    "MAX_RULES",
    "NAMESPACE_NAME_LABEL",
    "PROTOCOL_NUMBERS",
    "Action",
    "BGPConfiguration",
    "BGPConfigurationSpec",
    "BGPPeer",
    "BGPPeerSpec",
    "EndpointPort",
    "EntityRule",
    "FelixConfiguration",
    "FelixConfigurationSpec",
    "GlobalNetworkPolicy",
    "GlobalNetworkPolicySpec",
    "GlobalNetworkSet",
    "HostEndpoint",
    "HostEndpointSpec",
    "ICMPFields",
    "IPBlock",
    "IPPool",
    "IPPoolSpec",
    "IPReservation",
    "IPReservationSpec",
    "KindInfo",
    "KubernetesNetworkPolicy",
    "KubernetesNetworkPolicySpec",
    "LabelSelector",
    "LabelSelectorRequirement",
    "ManifestError",
    "Namespace",
    "NetworkPolicy",
    "NetworkPolicyEgressRule",
    "NetworkPolicyIngressRule",
    "NetworkPolicyPeer",
    "NetworkPolicyPort",
    "NetworkPolicySpec",
    "NetworkSet",
    "NetworkSetSpec",
    "Node",
    "NodeAddress",
    "NodeBGPSpec",
    "NodeSpec",
    "ObjectMeta",
    "PolicySpec",
    "PolicyType",
    "Problem",
    "Profile",
    "ProfileSpec",
    "ProtoPort",
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
    "k8s_policy_to_calico",
    "kind_info",
    "label_selector_to_calico",
    "load_manifests",
    "load_yaml_documents",
    "namespace_to_profile",
    "order_key",
    "parse_resource",
    "port_range",
    "protocol_number",
    "selector_for_namespace_labels",
    "to_dict",
]
