"""Every kind gingham knows: its resource class, plural and short names.

Data only; :mod:`gingham.model.registry` indexes it.
"""

from __future__ import annotations

from typing import Final

from gingham.model.config import FelixConfiguration
from gingham.model.endpoints import GlobalNetworkSet, HostEndpoint, NetworkSet, WorkloadEndpoint
from gingham.model.k8s import KubernetesNetworkPolicy, Namespace
from gingham.model.meta import Resource
from gingham.model.network import BGPConfiguration, BGPPeer, IPPool, IPReservation, Node
from gingham.model.policy import GlobalNetworkPolicy, NetworkPolicy, Profile, Tier

# (class, plural, short names); any of them names the kind on the command line.
KINDS: Final[tuple[tuple[type[Resource], str, tuple[str, ...]], ...]] = (
    (GlobalNetworkPolicy, "globalnetworkpolicies", ("gnp", "gnps", "globalnetworkpolicy")),
    (NetworkPolicy, "networkpolicies", ("np", "nps", "policy", "policies", "networkpolicy")),
    (Tier, "tiers", ("tier",)),
    (Profile, "profiles", ("pro", "pros", "profile")),
    (GlobalNetworkSet, "globalnetworksets", ("gns", "globalnetworkset")),
    (NetworkSet, "networksets", ("netset", "netsets", "networkset")),
    (HostEndpoint, "hostendpoints", ("hep", "heps", "hostendpoint")),
    (WorkloadEndpoint, "workloadendpoints", ("wep", "weps", "workloadendpoint")),
    (IPPool, "ippools", ("ipp", "ipps", "pool", "pools", "ippool")),
    (IPReservation, "ipreservations", ("ipreservation", "ipr")),
    (BGPConfiguration, "bgpconfigurations", ("bgpconfig", "bgpconfigs", "bgpconfiguration")),
    (BGPPeer, "bgppeers", ("bgpp", "bgpps", "peer", "peers", "bgppeer")),
    (FelixConfiguration, "felixconfigurations",
     ("felixconfig", "felixconfigs", "felixconfiguration")),
    (Node, "nodes", ("no", "node")),
    (KubernetesNetworkPolicy, "networkpolicies.networking.k8s.io",
     ("knp", "netpol", "netpols", "kubernetesnetworkpolicies", "kubernetesnetworkpolicy")),
    (Namespace, "namespaces", ("ns", "namespace")),
)
