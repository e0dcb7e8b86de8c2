"""What gingham does with every field of the policy kinds, endpoints, sets and metadata.

See :mod:`gingham.model.support` for what the statuses mean. Keys are model
class names; a field is looked up on its class, then on its base classes.
"""

from __future__ import annotations

from typing import Final

from gingham.model.support_types import Support, effect, part_of, recorded, refused

CAL: Final = "tests/conformance/test_calico.py::"
K8S: Final = "tests/conformance/test_kubernetes.py::"
GRAPH: Final = "tests/unit/calc/test_graph.py::"
RULES: Final = "tests/unit/calc/test_rules.py::"
KERNEL: Final = "tests/integration/dataplane/test_policy_kernel.py::"
RESOURCES: Final = "tests/unit/datastore/test_resources.py::"
CNI_GC: Final = "tests/integration/cni/test_gc_and_del.py::"
KINDS: Final = "tests/unit/model/test_validation_kinds.py::"

_META_KEPT = "kept and shown as written; gingham acts on nothing in it"

POLICY: Final[dict[str, dict[str, Support]]] = {
    "Resource": {
        "apiVersion": effect("with `kind`, picks the model that reads the document",
                             KINDS + "test_unknown_kind_and_missing_fields",
                             "tests/unit/model/test_corpus.py::test_every_kind_is_in_the_corpus"),
        "kind": effect("with `apiVersion`, picks the model that reads the document",
                       KINDS + "test_unknown_kind_and_missing_fields",
                       "tests/unit/model/test_corpus.py::test_every_kind_is_in_the_corpus"),
        "metadata": effect("name, namespace and labels: see [metadata](#metadata)",
                           RESOURCES + "test_create_get_list_and_keys"),
        "spec": effect("the settings: see the fields below",
                       RESOURCES + "test_create_get_list_and_keys"),
    },
    "ObjectMeta": {
        "name": effect("identifies the resource (its datastore key)",
                       RESOURCES + "test_create_get_list_and_keys"),
        "namespace": effect("scopes a namespaced resource: a NetworkPolicy selects only "
                            "endpoints of its namespace",
                            K8S + "test_allow_from_same_namespace",
                            GRAPH + "test_namespaced_policy_selects_only_its_namespace"),
        "labels": effect("what selectors match (endpoints, network sets, namespaces, nodes)",
                         K8S + "test_pod_label_change_moves_source_in_and_out",
                         K8S + "test_namespace_label_change"),
        "annotations": recorded(_META_KEPT),
        "resourceVersion": effect("on replace: written only if the stored resource is still "
                                  "at this version (compare-and-swap)",
                                  RESOURCES + "test_replace_and_resource_version"),
        "uid": recorded("set by Kubernetes API servers; " + _META_KEPT),
        "creationTimestamp": recorded("set by API servers; " + _META_KEPT),
        "generation": recorded("set by API servers; " + _META_KEPT),
        "generateName": recorded("used by Kubernetes API servers only; " + _META_KEPT),
        "deletionTimestamp": recorded("set by API servers; " + _META_KEPT),
        "deletionGracePeriodSeconds": recorded("set by API servers; " + _META_KEPT),
        "finalizers": recorded("honoured by Kubernetes API servers only; " + _META_KEPT),
        "ownerReferences": recorded("honoured by Kubernetes garbage collection only; "
                                    + _META_KEPT),
        "managedFields": recorded("set by API servers; " + _META_KEPT),
        "selfLink": recorded("set by API servers; " + _META_KEPT),
    },
    # --- Calico policies ---
    "PolicySpec": {
        "tier": effect("the tier the policy belongs to; tiers are evaluated in order",
                       CAL + "test_tier_deny_before_default_tier"),
        "order": effect("evaluation order inside the tier (absent: last)",
                        CAL + "test_deny_and_allow_ordered_by_policy_order"),
        "selector": effect("the endpoints the policy applies to",
                           CAL + "test_global_policy_next_to_namespaced_policy",
                           GRAPH + "test_local_endpoint_gets_policy_and_selector_set"),
        "serviceAccountSelector": effect("narrows `selector` to endpoints whose service "
                                         "account matches (by name: account labels are not "
                                         "ingested)",
                                         CAL + "test_service_account_selectors"),
        "types": effect("the directions the policy applies to (default from its rules, as "
                        "in Calico)",
                        K8S + "test_policy_types_ingress_ignores_egress_rules",
                        "tests/unit/model/test_validation_policy.py::"
                        "test_types_default_as_calico_does"),
        "ingress": effect("rules for traffic to the selected endpoints: see [Rule](#rule)",
                          CAL + "test_rule_order_inside_a_policy"),
        "egress": effect("rules for traffic from the selected endpoints: see [Rule](#rule)",
                         CAL + "test_egress_deny_rule"),
    },
    "GlobalNetworkPolicySpec": {
        "namespaceSelector": effect("narrows `selector` to endpoints in namespaces whose "
                                    "labels match",
                                    CAL + "test_global_policy_namespace_selector"),
        "doNotTrack": effect("host endpoints: rules run before connection tracking, for "
                             "both directions of a flow",
                             KERNEL + "test_host_endpoint_do_not_track",
                             GRAPH + "test_host_endpoint_tiers_by_flags"),
        "preDNAT": effect("host endpoints: ingress rules run before DNAT (node ports)",
                          KERNEL + "test_host_endpoint_pre_dnat"),
        "applyOnForward": effect("host endpoints: the policy also applies to forwarded "
                                 "traffic",
                                 KERNEL + "test_host_endpoint_apply_on_forward"),
    },
    "Rule": {
        "action": effect("Allow, Deny, Pass (to the next tier) or Log (log and go on)",
                         CAL + "test_log_then_deny", CAL + "test_pass_hands_over_to_next_tier"),
        "ipVersion": effect("matches IPv4 or IPv6 only", CAL + "test_ip_version"),
        "protocol": effect("matches the IP protocol", CAL + "test_not_protocol",
                           RULES + "test_every_match_field"),
        "notProtocol": effect("matches every protocol but this one", CAL + "test_not_protocol"),
        "icmp": effect("matches ICMP type and code", CAL + "test_icmp_type_and_code"),
        "notICMP": effect("matches ICMP but not this type and code",
                          RULES + "test_icmp_and_not_protocol"),
        "source": effect("what the packet comes from (the fields below)",
                         CAL + "test_nets_and_not_nets"),
        "destination": effect("what the packet goes to (the fields below)",
                              CAL + "test_nets_and_not_nets"),
        "metadata": recorded("annotations about the rule; kept and shown as written"),
    },
    "ICMPFields": {
        "type": effect("ICMP type (0-254)", CAL + "test_icmp_type_and_code"),
        "code": effect("ICMP code (0-255; needs a type)", CAL + "test_icmp_type_and_code"),
    },
    "EntityRule": {
        "nets": effect("the address is in one of these CIDRs", CAL + "test_nets_and_not_nets"),
        "notNets": effect("the address is in none of these CIDRs",
                          CAL + "test_nets_and_not_nets"),
        "selector": effect("the address belongs to an endpoint or network set this selector "
                           "matches (scoped to the policy's namespace for a NetworkPolicy)",
                           CAL + "test_global_network_set",
                           RULES + "test_selector_scoping_in_namespaced_policy"),
        "notSelector": effect("the address belongs to nothing this selector matches",
                              CAL + "test_not_selector"),
        "namespaceSelector": effect("the address belongs to something in a namespace whose "
                                    "labels match",
                                    CAL + "test_network_set_in_namespace",
                                    RULES + "test_namespace_selector_uses_pcns_labels"),
        "ports": effect("the port is one of these (numbers, ranges, named ports)",
                        CAL + "test_port_range_and_named_port_in_calico_rule"),
        "notPorts": effect("the port is none of these", CAL + "test_not_ports"),
        "serviceAccounts": effect("the address belongs to a workload running as one of "
                                  "these service accounts",
                                  CAL + "test_service_accounts"),
        "services": effect("fails closed: gingham stores no Kubernetes Services, so an Allow, "
                           "Log or Pass rule with a Service match never matches, and a Deny "
                           "rule denies regardless of the Service",
                           CAL + "test_services_fail_closed",
                           GRAPH + "test_service_account_selector_and_services_fail_closed"),
    },
    "ServiceAccountMatch": {
        "names": effect("service account names", CAL + "test_service_accounts"),
        "selector": effect("a selector over the account (sees `projectcalico.org/name`; "
                           "account labels are not ingested)",
                           CAL + "test_service_account_selectors"),
    },
    "ServiceMatch": {
        "name": effect("the Service (see `services`: fails closed)",
                       CAL + "test_services_fail_closed"),
        "namespace": effect("the Service's namespace (see `services`: fails closed)",
                            CAL + "test_services_fail_closed"),
    },
    "RuleMetadata": {
        "annotations": recorded("kept and shown as written"),
    },
    "TierSpec": {
        "order": effect("tiers are evaluated by order (absent: last)", CAL + "test_tier_order"),
        "defaultAction": effect("what happens to traffic no policy of the tier decided: "
                                "Deny or Pass (to the next tier)",
                                CAL + "test_tier_default_action_deny",
                                CAL + "test_tier_default_action_pass"),
    },
    "ProfileSpec": {
        "ingress": effect("rules for endpoints naming the profile, after every tier",
                          KERNEL + "test_tier_with_pass_default_falls_through_to_profile"),
        "egress": effect("rules for endpoints naming the profile, after every tier",
                         KERNEL + "test_tier_with_pass_default_falls_through_to_profile"),
        "labelsToApply": effect("labels every endpoint naming the profile inherits",
                                GRAPH + "test_label_inheritance_precedence"),
    },
    "NetworkSetSpec": {
        "nets": effect("addresses that rule selectors can match by the set's labels",
                       CAL + "test_global_network_set", CAL + "test_network_set_in_namespace"),
    },
    # --- endpoints ---
    "HostEndpointSpec": {
        "node": effect("the host whose agent enforces the endpoint",
                       GRAPH + "test_host_endpoint_tiers_by_flags"),
        "interfaceName": effect("the host interface policed (`*`: all of them)",
                                KERNEL + "test_all_interfaces_host_endpoint",
                                KERNEL + "test_host_endpoint_policy_and_failsafe_ports"),
        "expectedIPs": effect("the host's addresses, as rule selectors see them",
                              GRAPH + "test_global_policy_namespace_selector_and_host_endpoints"),
        "profiles": effect("profiles whose rules and labels apply to the endpoint"),
        "ports": effect("named ports that rules can match by name"),
    },
    "EndpointPort": {
        "name": effect("the name rules use in `ports`", GRAPH + "test_named_ports",
                       CAL + "test_port_range_and_named_port_in_calico_rule"),
        "protocol": effect("TCP, UDP or SCTP", GRAPH + "test_named_ports"),
        "port": effect("the port number", GRAPH + "test_named_ports"),
    },
    "WorkloadEndpointSpec": {
        "orchestrator": effect("becomes the label `projectcalico.org/orchestrator` "
                               "(Kubernetes pod selectors match `k8s`)",
                               GRAPH + "test_label_inheritance_precedence"),
        "workload": recorded("the workload's name, written by the CNI plugin"),
        "node": effect("the host whose agent programs the endpoint",
                       GRAPH + "test_local_endpoint_label_change_moves_policies_not_remote"),
        "containerID": effect("how the CNI plugin finds its endpoint again on DEL and GC",
                              CNI_GC + "test_gc_never_touches_endpoints_it_did_not_make",
                              CNI_GC + "test_del_of_a_gone_container_succeeds"),
        "pod": recorded("the pod's name, written by the CNI plugin"),
        "endpoint": effect("the interface inside the workload; with containerID, how the "
                           "CNI plugin finds its endpoint on DEL and GC",
                           CNI_GC + "test_adding_a_second_interface_never_removes_the_first"),
        "serviceAccountName": effect("becomes the workload's service account for "
                                     "`serviceAccounts` and `serviceAccountSelector`",
                                     CAL + "test_service_accounts"),
        "ipNetworks": effect("the workload's addresses: what selectors stand for, and the "
                             "only sources it may send from",
                             GRAPH + "test_local_endpoint_gets_policy_and_selector_set",
                             KERNEL + "test_anti_spoofing"),
        "ipv4Gateway": recorded("written by the CNI plugin, which sets the workload's routes "
                                "itself; Calico does not act on it either"),
        "ipv6Gateway": recorded("written by the CNI plugin, which sets the workload's routes "
                                "itself; Calico does not act on it either"),
        "ipNATs": refused("1:1 NAT (floating IPs) is not supported by gingham",
                          "give the workload an address from a pool with natOutgoing for "
                          "outbound traffic; inbound needs a router or load balancer in front",
                          accepts=((),)),
        "profiles": effect("profiles whose rules and labels apply to the workload; a missing "
                           "profile fails closed",
                           GRAPH + "test_missing_profile_fails_closed",
                           KERNEL + "test_missing_profile_fails_closed"),
        "interfaceName": effect("the host side of the workload's veth; must start with the "
                                "interface prefix (FelixConfiguration interfacePrefix) or the "
                                "endpoint is not programmed",
                                "tests/integration/security/test_workload_interfaces_lab.py::"
                                "test_endpoint_naming_the_uplink_is_not_programmed"),
        "mac": recorded("the workload's MAC, written by the CNI plugin (which programs the "
                        "neighbour entry itself at ADD); the agent does not read it"),
        "ports": effect("named ports that rules can match by name", GRAPH + "test_named_ports"),
        "allowSpoofedSourcePrefixes": effect("sources other than ipNetworks the workload may "
                                             "send from",
                                             KERNEL + "test_anti_spoofing"),
    },
    "WorkloadEndpointPort": {
        "hostPort": recorded("host port mapping is the portmap CNI plugin's job, not the "
                             "agent's (as in Calico)"),
        "hostIP": recorded("host port mapping is the portmap CNI plugin's job, not the "
                           "agent's (as in Calico)"),
    },
    "IPNAT": {
        "internalIP": part_of("refused"),
        "externalIP": part_of("refused"),
    },
    # --- Kubernetes ---
    "KubernetesNetworkPolicySpec": {
        "podSelector": effect("the pods of the policy's namespace it applies to (empty: all)",
                              K8S + "test_pod_selector_match_labels",
                              K8S + "test_empty_pod_selector_selects_every_pod_of_its_namespace_only"),
        "policyTypes": effect("the directions it applies to (default as Kubernetes does)",
                              K8S + "test_policy_types_ingress_ignores_egress_rules",
                              K8S + "test_policy_types_both_from_rules"),
        "ingress": effect("allowed incoming traffic; pods selected for Ingress get nothing "
                          "else", K8S + "test_default_deny_ingress"),
        "egress": effect("allowed outgoing traffic; pods selected for Egress get nothing else",
                         K8S + "test_default_deny_egress"),
    },
    "LabelSelector": {
        "matchLabels": effect("labels that must all be present with these values",
                              K8S + "test_pod_selector_match_labels"),
        "matchExpressions": effect("In, NotIn, Exists, DoesNotExist",
                                   K8S + "test_pod_selector_match_expressions",
                                   K8S + "test_namespace_selector_match_expressions"),
    },
    "LabelSelectorRequirement": {
        "key": effect("the label key", K8S + "test_pod_selector_match_expressions"),
        "operator": effect("In, NotIn, Exists or DoesNotExist",
                           K8S + "test_pod_selector_match_expressions"),
        "values": effect("the values for In and NotIn", K8S + "test_pod_selector_match_expressions"),
    },
    "NetworkPolicyIngressRule": {
        "from": effect("peers allowed in (empty: everyone)", K8S + "test_allow_from_same_namespace"),
        "ports": effect("ports allowed in (empty: all)", K8S + "test_numeric_port"),
    },
    "NetworkPolicyEgressRule": {
        "to": effect("peers allowed out to (empty: everyone)", K8S + "test_egress_to_specific_pods"),
        "ports": effect("ports allowed out (empty: all)", K8S + "test_named_port_egress"),
    },
    "NetworkPolicyPeer": {
        "podSelector": effect("pods (of the policy's namespace, or of the namespaces "
                              "selected alongside)",
                              K8S + "test_egress_to_specific_pods",
                              K8S + "test_namespace_and_pod_selector_in_one_peer"),
        "namespaceSelector": effect("every pod of the namespaces whose labels match",
                                    K8S + "test_namespace_selector",
                                    K8S + "test_namespace_selector_by_metadata_name"),
        "ipBlock": effect("a CIDR with exceptions", K8S + "test_ip_block_with_except",
                          K8S + "test_egress_ip_block"),
    },
    "IPBlock": {
        "cidr": effect("the block", K8S + "test_ip_block_with_except"),
        "except": effect("parts of the block left out", K8S + "test_ip_block_with_except"),
    },
    "NetworkPolicyPort": {
        "protocol": effect("TCP, UDP or SCTP (default TCP)", K8S + "test_udp"),
        "port": effect("a number or a named port", K8S + "test_numeric_port", K8S + "test_named_port"),
        "endPort": effect("the end of a port range", K8S + "test_end_port_range"),
    },
    "Namespace": {
        "status": recorded("set by Kubernetes API servers; kept and shown as written"),
    },
    "NamespaceSpec": {
        "finalizers": recorded("honoured by Kubernetes API servers only; kept and shown as "
                               "written"),
    },
}
