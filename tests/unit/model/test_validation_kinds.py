"""Validation of the non-policy kinds, multi-document errors and kind dispatch."""

from __future__ import annotations

from typing import Any

import pytest

from gingham.model import (
    DEFAULT_FAILSAFE_INBOUND,
    DEFAULT_FAILSAFE_OUTBOUND,
    BGPConfiguration,
    BGPPeer,
    FelixConfiguration,
    HostEndpoint,
    IPPool,
    ManifestError,
    Namespace,
    Node,
    WorkloadEndpoint,
    kind_info,
    load_manifests,
    parse_resource,
    to_dict,
)
from gingham.model.network import check_peer_ip

from .helpers import doc, ok, problems

K8S = "networking.k8s.io/v1"


def pool(**spec: Any) -> dict[str, Any]:
    return doc("IPPool", {"cidr": "198.18.0.0/16", **spec})


def peer(**spec: Any) -> dict[str, Any]:
    return doc("BGPPeer", spec)


def knp(**spec: Any) -> dict[str, Any]:
    return doc("NetworkPolicy", spec, namespace="shop", api=K8S)


def ingress_peer(**peer_fields: Any) -> dict[str, Any]:
    return knp(ingress=[{"from": [peer_fields]}])


CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("pool cidr", pool(cidr="198.18.0.0/40"), "spec.cidr", "invalid CIDR"),
    ("pool missing cidr", doc("IPPool", {}), "spec.cidr", "required"),
    ("pool missing spec", doc("IPPool"), "spec", "required"),
    ("pool block small", pool(blockSize=19), "spec.blockSize", "20-32"),
    ("pool block v6", pool(cidr="2001:db8::/48", blockSize=26), "spec.blockSize", "116-128"),
    ("pool too small", pool(cidr="198.18.0.0/28"), "spec.cidr", "smaller than one block"),
    ("pool link local", pool(cidr="169.254.0.0/16"), "spec.cidr", "overlaps"),
    ("pool ipip", pool(ipipMode="Always", vxlanMode="CrossSubnet"), "spec.ipipMode",
     "IPIP is not supported by gingham"),
    ("pool ipip cross subnet", pool(ipipMode="CrossSubnet"), "spec.ipipMode",
     "use vxlanMode: Always or CrossSubnet"),
    ("pool mode case", pool(vxlanMode="always"), "spec.vxlanMode", "'CrossSubnet'"),
    ("pool nat yes", pool(natOutgoing="yes"), "spec.natOutgoing", "valid boolean"),
    ("pool uses", pool(allowedUses=["LoadBalancer", "Workload"]), "spec.allowedUses",
     "cannot be combined"),
    ("pool uses twice", pool(allowedUses=["Workload", "Workload"]), "spec.allowedUses",
     "more than once"),
    ("pool node selector", pool(nodeSelector="zone =="), "spec.nodeSelector",
     "invalid selector"),
    ("peer needs as", peer(peerIP="192.0.2.1"), "spec.asNumber", "required with peerIP"),
    ("peer both", peer(peerIP="192.0.2.1", asNumber=1, peerSelector="all()"),
     "spec.peerSelector", "cannot both"),
    ("peer neither", peer(node="a"), "spec", "needs peerIP or peerSelector"),
    ("peer node both", peer(node="a", nodeSelector="all()", peerSelector="all()"),
     "spec.nodeSelector", "cannot both"),
    ("peer ip", peer(peerIP="192.0.2.300", asNumber=1), "spec.peerIP", "invalid IP"),
    ("peer port", peer(peerIP="192.0.2.1:0", asNumber=1), "spec.peerIP", "invalid port"),
    ("peer asn range", peer(peerIP="192.0.2.1", asNumber=4294967296), "spec.asNumber",
     "out of range"),
    ("peer asn dotted", peer(peerIP="192.0.2.1", asNumber="70000.1"), "spec.asNumber",
     "0-65535"),
    ("peer ttl", peer(peerSelector="all()", ttlSecurity=256), "spec.ttlSecurity", "0-255"),
    ("bgp listen port", doc("BGPConfiguration", {"listenPort": 0}), "spec.listenPort",
     "out of range"),
    ("bgp severity", doc("BGPConfiguration", {"logSeverityScreen": "Loud"}),
     "spec.logSeverityScreen", "'Info'"),
    ("bgp service cidr", doc("BGPConfiguration", {"serviceClusterIPs": [{"cidr": "x"}]}),
     "spec.serviceClusterIPs[0].cidr", "invalid CIDR"),
    ("node address", doc("Node", {"bgp": {"ipv4Address": "192.0.2.1/99"}}),
     "spec.bgp.ipv4Address", "invalid address"),
    ("node cluster id", doc("Node", {"bgp": {"routeReflectorClusterID": "2001:db8::1"}}),
     "spec.bgp.routeReflectorClusterID", "IPv4"),
    ("node mac", doc("Node", {"vxlanTunnelMACAddr": "zz:00:00:00:00:00"}),
     "spec.vxlanTunnelMACAddr", "invalid MAC"),
    ("felix vni", doc("FelixConfiguration", {"vxlanVNI": 16777216}), "spec.vxlanVNI",
     "out of range"),
    ("felix vxlan port", doc("FelixConfiguration", {"vxlanPort": 0}), "spec.vxlanPort",
     "out of range"),
    ("felix health port", doc("FelixConfiguration", {"healthPort": 70000}), "spec.healthPort",
     "out of range"),
    ("felix mtu", doc("FelixConfiguration", {"vxlanMTUV6": -1}), "spec.vxlanMTUV6",
     "MTU -1"),
    ("felix route protocol", doc("FelixConfiguration", {"deviceRouteProtocol": 300}),
     "spec.deviceRouteProtocol", "0-255"),
    ("felix route tables", doc("FelixConfiguration", {"routeTableRange": {"min": 9, "max": 2}}),
     "spec.routeTableRange", "invalid range"),
    ("felix action", doc("FelixConfiguration", {"defaultEndpointToHostAction": "drop"}),
     "spec.defaultEndpointToHostAction", "'Drop'"),
    ("felix failsafe proto", doc("FelixConfiguration",
                                 {"failsafeInboundHostPorts": [{"protocol": "icmp", "port": 1}]}),
     "spec.failsafeInboundHostPorts[0].protocol", "TCP, UDP or SCTP"),
    ("felix failsafe port", doc("FelixConfiguration",
                                {"failsafeOutboundHostPorts": [{"port": 65536}]}),
     "spec.failsafeOutboundHostPorts[0].port", "out of range"),
    ("felix duration", doc("FelixConfiguration", {"routeRefreshInterval": "90"}),
     "spec.routeRefreshInterval", "invalid duration"),
    ("hep where", doc("HostEndpoint", {"node": "a"}), "spec", "interfaceName or expectedIPs"),
    ("hep iface", doc("HostEndpoint", {"interfaceName": "a/b"}), "spec.interfaceName",
     "invalid interface"),
    ("hep ip", doc("HostEndpoint", {"expectedIPs": ["192.0.2.0/24"]}), "spec.expectedIPs[0]",
     "invalid IP"),
    ("hep port proto", doc("HostEndpoint", {"interfaceName": "eth0", "ports": [
        {"name": "p", "protocol": "ICMP", "port": 1}]}), "spec.ports[0].protocol",
     "TCP, UDP or SCTP"),
    ("hep port zero", doc("HostEndpoint", {"interfaceName": "eth0", "ports": [
        {"name": "p", "protocol": "TCP", "port": 0}]}), "spec.ports[0].port", "1-65535"),
    ("wep network", doc("WorkloadEndpoint", {"ipNetworks": ["198.18.0.0/24"]}, namespace="a"),
     "spec.ipNetworks[0]", "single address"),
    ("wep mac", doc("WorkloadEndpoint", {"mac": "00:11"}, namespace="a"), "spec.mac",
     "invalid MAC"),
    ("wep iface", doc("WorkloadEndpoint", {"interfaceName": "a-very-long-interface"},
                      namespace="a"), "spec.interfaceName", "1-15"),
    ("set nets", doc("GlobalNetworkSet", {"nets": ["198.18.0.0/15", "nope"]}), "spec.nets[1]",
     "invalid CIDR"),
    ("reservation", doc("IPReservation", {"reservedCIDRs": ["1.2.3.4/-1"]}),
     "spec.reservedCIDRs[0]", "invalid CIDR"),
    ("knp ipblock except outside", ingress_peer(ipBlock={"cidr": "192.0.2.0/24",
                                                          "except": ["198.51.100.0/25"]}),
     "spec.ingress[0].from[0].ipBlock.except[0]", "not inside"),
    ("knp ipblock except all", ingress_peer(ipBlock={"cidr": "192.0.2.0/24",
                                                     "except": ["192.0.2.0/24"]}),
     "spec.ingress[0].from[0].ipBlock.except[0]", "whole block"),
    ("knp ipblock and selector", ingress_peer(ipBlock={"cidr": "192.0.2.0/24"},
                                              podSelector={}),
     "spec.ingress[0].from[0].ipBlock", "cannot be combined"),
    ("knp empty peer", ingress_peer(), "spec.ingress[0].from[0]", "needs podSelector"),
    ("knp operator", ingress_peer(podSelector={"matchExpressions": [
        {"key": "a", "operator": "Equals", "values": ["b"]}]}),
     "spec.ingress[0].from[0].podSelector.matchExpressions[0].operator", "'In'"),
    ("knp In without values", knp(podSelector={"matchExpressions": [
        {"key": "a", "operator": "In"}]}), "spec.podSelector.matchExpressions[0].values",
     "at least one value"),
    ("knp Exists with values", knp(podSelector={"matchExpressions": [
        {"key": "a", "operator": "Exists", "values": ["x"]}]}),
     "spec.podSelector.matchExpressions[0].values", "no values"),
    ("knp endPort named", knp(egress=[{"ports": [{"port": "http", "endPort": 90}]}]),
     "spec.egress[0].ports[0].endPort", "numeric port"),
    ("knp endPort below", knp(egress=[{"ports": [{"port": 100, "endPort": 90}]}]),
     "spec.egress[0].ports[0].endPort", "between"),
    ("knp port zero", knp(egress=[{"ports": [{"port": 0}]}]), "spec.egress[0].ports[0].port",
     "1-65535"),
    ("knp port name", knp(egress=[{"ports": [{"port": "HTTP"}]}]),
     "spec.egress[0].ports[0].port", "named port"),
    ("knp protocol case", knp(egress=[{"ports": [{"protocol": "tcp", "port": 1}]}]),
     "spec.egress[0].ports[0].protocol", "'TCP'"),
    ("knp types", knp(policyTypes=["Ingress", "Ingress"]), "spec.policyTypes",
     "more than once"),
    ("namespace of resource", doc("NetworkSet", {}, namespace="Shop"), "metadata.namespace",
     "invalid namespace"),
    ("label prefix", {**doc("Tier", {}), "metadata": {"name": "a", "labels": {"Bad_/x": "y"}}},
     "metadata.labels['Bad_/x']", "prefix must be a DNS subdomain"),
    ("namespace dotted", doc("Namespace", name="a.b", api="v1"), "metadata.name",
     "DNS label"),
    ("namespace label", {**doc("Namespace", name="a", api="v1"), "metadata": {
        "name": "a", "labels": {"kubernetes.io/metadata.name": "b"}}},
     "metadata.labels['kubernetes.io/metadata.name']", "must equal"),
]


@pytest.mark.parametrize(("document", "path", "fragment"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rejected_with_path(document: dict[str, Any], path: str, fragment: str) -> None:
    found = problems(document)
    assert path in found, found
    assert fragment in found[path]


def test_pool_defaults() -> None:
    p4 = ok(pool())
    p6 = ok(pool(cidr="2001:db8:0:1::5/64"))
    assert isinstance(p4, IPPool) and isinstance(p6, IPPool)
    assert (p4.spec.block_size, p6.spec.block_size) == (26, 122)
    assert p6.spec.cidr == "2001:db8:0:1::/64"
    s = p4.spec
    assert (s.ipip_mode, s.vxlan_mode, s.nat_outgoing, s.disabled) == (
        "Never", "Never", False, False)
    assert s.node_selector == "all()" and s.allowed_uses == ("Workload", "Tunnel")
    assert to_dict(p4)["spec"] == {"cidr": "198.18.0.0/16"}


def test_bgp_defaults_and_peer_forms() -> None:
    conf = ok(doc("BGPConfiguration", {}, name="default"))
    assert isinstance(conf, BGPConfiguration)
    assert conf.spec.as_number == 64512 and conf.spec.node_to_node_mesh_enabled
    assert conf.spec.log_severity_screen == "Info"
    assert check_peer_ip("[2001:DB8::1]:1179") == "[2001:db8::1]:1179"
    assert check_peer_ip("2001:DB8::1") == "2001:db8::1"
    six = ok(peer(peerIP="[2001:DB8::1]:1179", asNumber=1))
    assert isinstance(six, BGPPeer)
    assert (six.spec.peer_address, six.spec.peer_port) == ("2001:db8::1", 1179)
    p = ok(peer(peerIP="192.0.2.1:179", asNumber="1.10"))
    assert isinstance(p, BGPPeer)
    assert p.spec.peer_ip == "192.0.2.1:179" and p.spec.as_number == 65546
    assert (p.spec.peer_address, p.spec.peer_port) == ("192.0.2.1", 179)
    plain = ok(peer(peerIP="192.0.2.1", asNumber=64513))
    assert isinstance(plain, BGPPeer)
    assert (plain.spec.peer_address, plain.spec.peer_port) == ("192.0.2.1", 179)


def test_felix_defaults() -> None:
    felix = ok(doc("FelixConfiguration", {}, name="default"))
    assert isinstance(felix, FelixConfiguration)
    s = felix.spec
    assert s.default_endpoint_to_host_action == "Drop"
    assert (s.vxlan_vni, s.vxlan_port) == (4096, 4789)
    assert s.failsafe_inbound_host_ports == DEFAULT_FAILSAFE_INBOUND
    assert s.failsafe_outbound_host_ports == DEFAULT_FAILSAFE_OUTBOUND
    assert [(p.protocol, p.port) for p in s.failsafe_inbound_host_ports][:3] == [
        ("TCP", 22), ("UDP", 68), ("TCP", 179)]
    assert [(p.protocol, p.port) for p in s.failsafe_outbound_host_ports][:2] == [
        ("UDP", 53), ("UDP", 67)]
    assert to_dict(felix) == {"apiVersion": "projectcalico.org/v3",
                              "kind": "FelixConfiguration", "metadata": {"name": "default"},
                              "spec": {}}


def test_endpoints_normalise() -> None:
    wep = ok(doc("WorkloadEndpoint", {"ipNetworks": ["198.18.0.5", "2001:DB8::5"],
                                      "mac": "0A-58-00-00-00-01"}, namespace="a"))
    assert isinstance(wep, WorkloadEndpoint)
    assert wep.spec.ip_networks == ("198.18.0.5/32", "2001:db8::5/128")
    assert wep.spec.mac == "0a:58:00:00:00:01"
    hep = ok(doc("HostEndpoint", {"interfaceName": "*"}))
    assert isinstance(hep, HostEndpoint) and hep.spec.interface_name == "*"


def test_node_keeps_host_bits() -> None:
    node = ok(doc("Node", {"bgp": {"ipv4Address": "192.0.2.10/24"}}))
    assert isinstance(node, Node) and node.spec.bgp is not None
    assert node.spec.bgp.ipv4_address == "192.0.2.10/24"


def test_namespace_gets_its_name_label() -> None:
    ns = ok(doc("Namespace", name="shop", api="v1"))
    assert isinstance(ns, Namespace)
    assert ns.metadata.labels == {"kubernetes.io/metadata.name": "shop"}
    assert parse_resource(to_dict(ns)) == ns


def test_namespaced_kind_keeps_namespace_and_global_kind_refuses_it() -> None:
    np = ok(doc("NetworkPolicy", {}, namespace="shop"))
    assert np.namespace == "shop"
    assert ok(doc("NetworkPolicy", {})).namespace is None  # the CLI picks the default


def test_unknown_kind_and_missing_fields() -> None:
    assert "kind" in problems(doc("Pod", {}, api="v1"))
    assert "unknown kind 'Pod'" in problems(doc("Pod", {}, api="v1"))["kind"]
    assert "use 'networking.k8s.io/v1' or 'projectcalico.org/v3'" in problems(
        doc("NetworkPolicy", {}, api="v1"))["kind"]
    assert problems({"kind": "Tier", "metadata": {"name": "a"}}) == {
        "apiVersion": "required field is missing"}
    assert "metadata" in problems({"apiVersion": "projectcalico.org/v3", "kind": "Tier"})
    assert "metadata.name" in problems({"apiVersion": "projectcalico.org/v3", "kind": "Tier",
                                        "metadata": {}})


def test_not_a_mapping() -> None:
    with pytest.raises(ManifestError, match="must be a mapping"):
        parse_resource(["a"], index=0)  # type: ignore[arg-type]


MULTI = """\
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: good}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: allow-dns}
spec:
  egress:
  - action: Allow
    protocol: UDP
    destination: {ports: [53, 70000]}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: p}
spec: {cidr: nope}
"""


def test_one_bad_document_fails_the_whole_file_and_every_problem_is_listed() -> None:
    with pytest.raises(ManifestError) as info:
        load_manifests(MULTI)
    found = [(p.location, p.path) for p in info.value.problems]
    assert found == [
        ("doc 2 (GlobalNetworkPolicy allow-dns)", "spec.egress[0].destination.ports[1]"),
        ("doc 3 (IPPool p)", "spec.cidr"),
    ]
    assert "doc 2 (GlobalNetworkPolicy allow-dns): spec.egress[0].destination.ports[1]: " \
           "port 70000 out of range" in str(info.value)


def test_list_items_are_located() -> None:
    text = """\
apiVersion: projectcalico.org/v3
kind: List
items:
- {apiVersion: projectcalico.org/v3, kind: Tier, metadata: {name: a}}
- {apiVersion: projectcalico.org/v3, kind: Tier, metadata: {name: b}, spec: {order: x}}
"""
    with pytest.raises(ManifestError) as info:
        load_manifests(text)
    [problem] = info.value.problems
    assert (problem.location, problem.path) == ("doc 1 item 2 (Tier b)", "spec.order")


def test_kind_info() -> None:
    gnp = kind_info("GlobalNetworkPolicy", "projectcalico.org/v3")
    assert (gnp.namespaced, gnp.plural) == (False, "globalnetworkpolicies")
    assert kind_info("gnp") is gnp and kind_info("GLOBALNETWORKPOLICIES") is gnp
    assert kind_info("NetworkPolicy").api_version == "projectcalico.org/v3"
    k8s = kind_info("NetworkPolicy", K8S)
    assert (k8s.name, k8s.kind, k8s.namespaced) == ("KubernetesNetworkPolicy",
                                                    "NetworkPolicy", True)
    assert kind_info("knp") is k8s
    assert kind_info("ns").name == "Namespace" and not kind_info("ns").namespaced
    namespaced = {i.name for i in (kind_info(k) for k in (
        "NetworkPolicy", "NetworkSet", "WorkloadEndpoint", "KubernetesNetworkPolicy"))}
    assert all(kind_info(n).namespaced for n in namespaced)
    for cluster in ("GlobalNetworkPolicy", "GlobalNetworkSet", "HostEndpoint", "Profile",
                    "Tier", "IPPool", "IPReservation", "BGPConfiguration", "BGPPeer",
                    "FelixConfiguration", "Node", "Namespace"):
        assert not kind_info(cluster).namespaced, cluster
    with pytest.raises(ManifestError, match="unknown resource type"):
        kind_info("pods")
