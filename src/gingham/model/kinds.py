"""The registry of kinds: every resource class with its plural and short names."""

from __future__ import annotations

from gingham.model.endpoints import GlobalNetworkSet, HostEndpoint, NetworkSet, WorkloadEndpoint
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
