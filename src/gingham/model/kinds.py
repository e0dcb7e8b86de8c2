"""The registry of kinds: every resource class with its plural and short names."""

from __future__ import annotations

from gingham.model.config import FelixConfiguration
from gingham.model.endpoints import GlobalNetworkSet, HostEndpoint, NetworkSet, WorkloadEndpoint
from gingham.model.k8s import KubernetesNetworkPolicy, Namespace
from gingham.model.network import BGPConfiguration, BGPPeer, IPPool, IPReservation, Node
from gingham.model.policy import GlobalNetworkPolicy, NetworkPolicy, Profile, Tier
from gingham.model.registry import register

register(GlobalNetworkPolicy, "globalnetworkpolicies", "gnp", "gnps", "globalnetworkpolicy")
register(NetworkPolicy, "networkpolicies", "np", "nps", "policy", "policies", "networkpolicy")
register(Tier, "tiers", "tier")
register(Profile, "profiles", "pro", "pros", "profile")
register(GlobalNetworkSet, "globalnetworksets", "gns", "globalnetworkset")
register(NetworkSet, "networksets", "netset", "netsets", "networkset")
register(HostEndpoint, "hostendpoints", "hep", "heps", "hostendpoint")
register(WorkloadEndpoint, "workloadendpoints", "wep", "weps", "workloadendpoint")
register(IPPool, "ippools", "ipp", "ipps", "pool", "pools", "ippool")
register(IPReservation, "ipreservations", "ipreservation", "ipr")
register(BGPConfiguration, "bgpconfigurations", "bgpconfig", "bgpconfigs", "bgpconfiguration")
register(BGPPeer, "bgppeers", "bgpp", "bgpps", "peer", "peers", "bgppeer")
register(FelixConfiguration, "felixconfigurations", "felixconfig", "felixconfigs",
         "felixconfiguration")
register(Node, "nodes", "no", "node")
register(KubernetesNetworkPolicy, "networkpolicies.networking.k8s.io", "knp", "netpol",
         "netpols", "kubernetesnetworkpolicies", "kubernetesnetworkpolicy")
register(Namespace, "namespaces", "ns", "namespace")
