"""What gingham does with every field of the addressing, routing and agent kinds.

See :mod:`gingham.model.support` for what the statuses mean. The ``planned``
fields are the ones issue 13 wires end to end once routing joins the
calculation graph; until then a value other than what gingham does anyway is
refused as "not supported yet". Flip an entry to ``effect`` (with its test)
when its setting is wired, and regenerate docs/CONFIGURATION.md.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Final

from gingham.model.support_types import (
    Support,
    effect,
    part_of,
    planned,
    recorded,
    refused,
    reported,
)

ALLOC: Final = "tests/unit/ipam/test_allocator.py::"
ROUTES: Final = "tests/unit/routing/test_routes.py::"
STATIC: Final = "tests/integration/routing/test_static_routes.py::"
BIRD: Final = "tests/unit/routing/test_bird_config.py::"
BGP: Final = "tests/integration/routing/test_bgp.py::"
TOR: Final = "tests/integration/routing/test_frr_tor.py::test_frr_tor_learns_every_block_into_its_kernel"
KERNEL: Final = "tests/integration/dataplane/test_policy_kernel.py::"
ISOLATION: Final = "tests/integration/security/test_isolation.py::"

_VXLAN_MODULE: Final = "the `vxlan` kernel module"
_BIRD: Final = "BIRD 2 (`bird`, `birdc`) installed on the host"
_WIRE_LATER: Final = "leave it unset until gingham reads it"


def _peer_ip_limit(value: Any) -> str | None:
    # Routing reads the address of peerIP, not its port; no test shows a session
    # to an IPv6 peer yet.
    if not isinstance(value, str):
        return None
    if value.startswith("[") or value.count(":") > 1:
        return "an IPv6 BGP peer is not supported yet; peer over IPv4"
    host, _, port = value.partition(":")
    if port and port != "179":
        return (f"a BGP peer port other than 179 is not supported yet (got {port}: the port "
                f"is not read); use {host}")
    ipaddress.ip_address(host)  # validated already; a bad one is not ours to report
    return None


NETWORK: Final[dict[str, dict[str, Support]]] = {
    "IPPoolSpec": {
        "cidr": effect("the addresses IPAM hands out from the pool, and what routing and NAT "
                       "treat as workload addresses",
                       ALLOC + "test_allocates_from_own_block_with_attributes"),
        "blockSize": effect("the size of the blocks hosts claim from the pool",
                            ALLOC + "test_changing_block_size_never_overlaps_old_blocks"),
        "ipipMode": refused("IPIP is not supported by gingham",
                            "use vxlanMode: Always or CrossSubnet instead"),
        "vxlanMode": reported("VXLAN between hosts: Always, only across subnets (CrossSubnet) "
                              "or never",
                              _VXLAN_MODULE,
                              STATIC + "test_cross_subnet_encapsulates_only_across_the_router",
                              ROUTES + "test_always_encapsulates_everything_remote",
                              "tests/integration/agent/test_agent_routing.py::"
                              "test_cross_subnet_uses_vxlan_only_across_the_router"),
        "natOutgoing": reported("traffic from the pool's workloads to anywhere outside every "
                                "pool is masqueraded to the host's address",
                                "nftables NAT (`nf_nat`, masquerade)",
                                "tests/integration/routing/test_nat.py::test_nat_outgoing"),
        "disabled": effect("no new addresses from the pool; its blocks keep being routed",
                           ALLOC + "test_node_selector_and_disabled_pools",
                           ROUTES + "test_block_outside_pools_is_never_and_disabled_pool_still_routes"),
        "disableBGPExport": refused("keeping a pool's blocks out of BGP is not supported by "
                                    "gingham: BIRD exports every block of the host",
                                    "remove the field"),
        "nodeSelector": effect("the hosts that may claim blocks from the pool",
                               ALLOC + "test_node_selector_and_disabled_pools"),
        "allowedUses": effect("Workload and/or Tunnel addresses come from the pool; a "
                              "LoadBalancer pool is never used (gingham assigns no load "
                              "balancer addresses)",
                              ALLOC + "test_allowed_uses_and_manual_pools"),
        "assignmentMode": effect("Manual: addresses only when asked for by address",
                                 ALLOC + "test_allowed_uses_and_manual_pools"),
    },
    "IPReservationSpec": {
        "reservedCIDRs": effect("addresses IPAM never hands out",
                                ALLOC + "test_reserved_addresses_are_never_handed_out"),
    },
    "BGPConfigurationSpec": {
        "logSeverityScreen": refused("BIRD's log level is not supported by gingham: it is "
                                     "fixed", accepts=("Info",)),
        "nodeToNodeMeshEnabled": reported("a BGP session between every two hosts (off: only "
                                          "route reflectors and BGPPeers)",
                                          _BIRD, TOR,
                                          BIRD + "test_as_override_makes_ebgp_and_mesh_can_be_switched_off",
                                          "tests/integration/agent/test_agent_routing.py::"
                                          "test_bgp_mesh_comes_up_and_traffic_still_flows"),
        "asNumber": reported("the AS number of every host without its own", _BIRD, TOR,
                             BIRD + "test_mesh_off_with_route_reflectors_and_sessions_deduplicated"),
        "listenPort": planned("a BGP port other than 179 is not supported yet", _WIRE_LATER),
        "bindMode": refused("binding BIRD to the node's address is not supported by gingham "
                            "(it listens on every address)", accepts=("None",)),
        "serviceClusterIPs": planned("advertising service cluster IPs is not supported yet",
                                     "announce them from a router, or leave the field empty"),
        "serviceExternalIPs": planned("advertising service external IPs is not supported yet",
                                      "announce them from a router, or leave the field empty"),
        "serviceLoadBalancerIPs": refused("advertising load balancer IPs is not supported by "
                                          "gingham (it assigns none)",
                                          "announce them from the load balancer"),
        "communities": planned("BGP communities are not supported yet", _WIRE_LATER),
        "prefixAdvertisements": planned("BGP communities on advertised prefixes are not "
                                        "supported yet", _WIRE_LATER),
        "nodeMeshPassword": refused("a password on the node-to-node mesh is not supported by "
                                    "gingham (there is no Kubernetes secret store)",
                                    "protect the underlay instead"),
        "nodeMeshMaxRestartTime": refused("setting the mesh's graceful restart time is not "
                                          "supported by gingham (BIRD's default applies)",
                                          "remove the field"),
        "ignoredInterfaces": refused("ignoring interfaces is not supported by gingham: BIRD "
                                     "imports no interface routes anyway", "remove the field"),
    },
    "ServiceCIDR": {"cidr": part_of("planned")},
    "Community": {
        "name": part_of("planned"),
        "value": part_of("planned"),
    },
    "PrefixAdvertisement": {
        "cidr": part_of("planned"),
        "communities": part_of("planned"),
    },
    "BGPPassword": {"secretKeyRef": part_of("planned")},
    "SecretKeyRef": {
        "name": part_of("planned"),
        "key": part_of("planned"),
    },
    "BGPPeerSpec": {
        "node": reported("only this host peers", _BIRD, TOR),
        "nodeSelector": reported("only hosts whose labels match peer (absent with no node: "
                                 "every host)", _BIRD,
                                 BIRD + "test_render_is_independent_of_input_order"),
        "peerIP": Support("reported", "the peer's address (IPv4, port 179)",
                          (TOR,), needs=_BIRD, limit=_peer_ip_limit),
        "peerSelector": reported("peer with the hosts whose labels match (route reflectors)",
                                 _BIRD, BIRD + "test_listen_port_applies_to_gingham_hosts_only",
                                 BIRD + "test_render_is_independent_of_input_order"),
        "asNumber": reported("the peer's AS number", _BIRD, TOR),
        "password": planned("BGP session passwords are not supported yet (a secretKeyRef "
                            "cannot be read: there is no Kubernetes secret store)",
                            "leave it unset until gingham reads passwords from a file"),
        "keepOriginalNextHop": reported("BIRD keeps the next hop of the routes it sends the "
                                        "peer", _BIRD),
        "sourceAddress": refused("choosing the session's source address is not supported by "
                                 "gingham (BIRD picks it)", accepts=("UseNodeIP",)),
        "maxRestartTime": refused("setting a peer's graceful restart time is not supported by "
                                  "gingham (BIRD's default applies)", "remove the field"),
        "numAllowedLocalAsNumbers": refused("allowing the local AS in received paths is not "
                                            "supported by gingham", "remove the field"),
        "ttlSecurity": refused("BGP TTL security is not supported by gingham",
                               "remove the field"),
        "reachableBy": refused("reachableBy is not supported by gingham: BIRD reaches the "
                               "peer through the host's routes", "remove the field"),
        "filters": refused("BGP filters (BGPFilter) are not supported by gingham",
                           "remove the field"),
    },
    "NodeSpec": {
        "bgp": reported("the host's BGP identity: see below", _BIRD, TOR),
        "ipv4VXLANTunnelAddr": reported("the host's VXLAN tunnel address (the agent claims and "
                                        "writes it)", _VXLAN_MODULE,
                                        ROUTES + "test_cross_subnet_encapsulates_only_across_subnets",
                                        STATIC + "test_cross_subnet_encapsulates_only_across_the_router"),
        "ipv6VXLANTunnelAddr": reported("the host's IPv6 VXLAN tunnel address", _VXLAN_MODULE,
                                        STATIC + "test_ipv6_pool_across_subnets_rides_vxlan"),
        "vxlanTunnelMACAddr": reported("the MAC of the host's VXLAN device (default: derived "
                                       "from the host name)", _VXLAN_MODULE,
                                       "tests/integration/routing/test_drivers.py::"
                                       "test_vxlan_device_addresses_and_peers"),
        "vxlanTunnelMACAddrV6": refused("a second VXLAN MAC for IPv6 is not supported by "
                                        "gingham: one VXLAN device carries both families",
                                        "set vxlanTunnelMACAddr only"),
        "addresses": recorded("written by the agent: the addresses it detected"),
        "orchRefs": recorded("kept and shown as written"),
    },
    "NodeBGPSpec": {
        "ipv4Address": effect("the host's IPv4 underlay address and subnet: direct routes, "
                              "VXLAN underlay, BGP sessions",
                              STATIC + "test_one_subnet_direct_routes_no_encapsulation"),
        "ipv6Address": effect("the host's IPv6 underlay address and subnet",
                              BGP + "test_ipv6_underlay_direct_routes_then_bgp"),
        "asNumber": reported("this host's AS number (overrides BGPConfiguration's)", _BIRD,
                             BIRD + "test_as_override_makes_ebgp_and_mesh_can_be_switched_off"),
        "routeReflectorClusterID": reported("makes the host a route reflector of this cluster",
                                            _BIRD, BGP + "test_route_reflector"),
        "ipv4IPIPTunnelAddr": refused("IPIP is not supported by gingham",
                                      "remove the field (VXLAN uses ipv4VXLANTunnelAddr)"),
    },
    "NodeAddress": {
        "address": recorded("written by the agent"),
        "type": recorded("written by the agent"),
    },
    "OrchRef": {
        "nodeName": recorded("kept and shown as written"),
        "orchestrator": recorded("kept and shown as written"),
    },
    "FelixConfigurationSpec": {
        "defaultEndpointToHostAction": effect(
            "what happens to traffic from a workload to its own host after the failsafe "
            "ports: Drop, Return (host endpoint policy decides) or Accept",
            KERNEL + "test_endpoint_to_host_action",
            ISOLATION + "test_workload_cannot_reach_its_host_unless_configured"),
        "failsafeInboundHostPorts": effect(
            "ports on the host that stay open whatever host endpoint policy says",
            ISOLATION + "test_failsafe_ports_survive_a_deny_all_host_endpoint",
            KERNEL + "test_host_endpoint_policy_and_failsafe_ports"),
        "failsafeOutboundHostPorts": effect(
            "ports the host may always send to whatever host endpoint policy says",
            KERNEL + "test_host_endpoint_policy_and_failsafe_ports"),
        "logSeverityScreen": planned("setting the agent's log level here is not supported yet",
                                     "use `gingham node run --log-level`",
                                     accepts=("Info",)),
        "logSeverityFile": refused("logging to a file is not supported by gingham: the agent "
                                   "logs to stderr (the journal under systemd)",
                                   "remove the field"),
        "logFilePath": refused("logging to a file is not supported by gingham: the agent logs "
                               "to stderr (the journal under systemd)",
                               "remove the field or set it to none", accepts=(None, "none")),
        "logPrefix": refused("a fixed packet-log prefix is not supported by gingham: each "
                             "logged packet's prefix names its rule (what `gingham flows` "
                             "reads)", "remove the field"),
        "ipv6Support": refused("switching IPv6 off is not supported by gingham",
                               "remove the field"),
        "vxlanEnabled": refused("switching VXLAN off is not supported by gingham: it runs "
                                "wherever a pool's vxlanMode asks for it",
                                "set the pools' vxlanMode to Never", accepts=(None, True)),
        "vxlanVNI": planned("a VXLAN VNI other than 4096 is not supported yet", _WIRE_LATER),
        "vxlanPort": planned("a VXLAN port other than 4789 is not supported yet", _WIRE_LATER),
        "vxlanMTU": planned("setting the VXLAN MTU is not supported yet (gingham takes it from "
                            "the underlay interface)", _WIRE_LATER),
        "vxlanMTUV6": refused("setting the IPv6 VXLAN MTU is not supported by gingham (it takes "
                              "it from the underlay interface)", "remove the field"),
        "ipipEnabled": refused("IPIP is not supported by gingham",
                               "use an IPPool's vxlanMode instead", accepts=(None, False)),
        "ipipMTU": refused("IPIP is not supported by gingham",
                           "use an IPPool's vxlanMode instead"),
        "mtuIfacePattern": refused("choosing MTU interfaces is not supported by gingham: it "
                                   "takes the MTU of the interface holding the host address",
                                   "remove the field"),
        "natOutgoingAddress": planned("a fixed source address for natOutgoing is not supported "
                                      "yet (traffic is masqueraded)", _WIRE_LATER),
        "natPortRange": refused("a NAT port range is not supported by gingham",
                                "remove the field"),
        "interfacePrefix": effect(
            "workload interfaces start with one of these prefixes (comma-separated; default "
            "gh); an endpoint naming any other interface is not programmed",
            "tests/unit/dataplane/test_workload_interfaces.py::"
            "test_prefix_change_judges_every_endpoint_again",
            "tests/unit/datastore/test_cli_resources.py::"
            "test_an_endpoint_naming_a_non_workload_interface_is_refused"),
        "chainInsertMode": refused("chainInsertMode is not supported by gingham: it programs "
                                   "its own nftables table, whose hook priorities are fixed",
                                   "remove the field"),
        "nftablesMode": refused("gingham programs nftables only: switching nftables off is "
                                "not supported", "remove the field",
                                accepts=(None, "Enabled", "Auto")),
        "bpfEnabled": refused("the eBPF dataplane is not supported by gingham",
                              "remove the field: gingham programs nftables"),
        "wireguardEnabled": refused("WireGuard encryption is not supported by gingham",
                                    "carry traffic between hosts over an encrypted underlay"),
        "serviceLoopPrevention": refused("service loop prevention is not supported by gingham "
                                         "(it advertises no service IPs)", "remove the field"),
        "allowVXLANPacketsFromWorkloads": refused(
            "dropping VXLAN packets that workloads send is not supported by gingham yet (such "
            "packets meet policy like any other)", "remove the field"),
        "allowIPIPPacketsFromWorkloads": refused(
            "dropping IPIP packets that workloads send is not supported by gingham yet (such "
            "packets meet policy like any other)", "remove the field"),
        "floatingIPs": refused("floating IPs (ipNATs) are not supported by gingham",
                               "remove the field"),
        "removeExternalRoutes": refused("removing routes other programs made is not supported "
                                        "by gingham: it removes only its own (protocol 201)",
                                        "remove the field"),
        "deviceRouteProtocol": refused("choosing the route protocol is not supported by "
                                       "gingham: its routes carry protocol 201",
                                       "remove the field"),
        "routeTableRange": refused("routing tables other than main are not supported by "
                                   "gingham", "remove the field"),
        "routeRefreshInterval": refused("setting the route refresh interval is not supported "
                                        "by gingham", "remove the field"),
        "interfaceRefreshInterval": refused("setting the interface refresh interval is not "
                                            "supported by gingham", "remove the field"),
        "reportingInterval": refused("endpoint status reporting is not supported by gingham",
                                     "remove the field or set it to 0s",
                                     accepts=("0", "0s")),
        "healthEnabled": planned("switching the agent's health server off is not supported "
                                 "yet (`gingham node run` always serves /livez, /readyz and "
                                 "/metrics)", "remove the field"),
        "healthHost": planned("setting the health address here is not supported yet",
                              "use `gingham node run --health-host`",
                              accepts=("localhost", "127.0.0.1")),
        "healthPort": planned("setting the health port here is not supported yet",
                              "use `gingham node run --health-port`"),
        "prometheusMetricsEnabled": planned("a separate Prometheus metrics server is not "
                                            "supported yet", "scrape /metrics on the agent's "
                                            "health port"),
        "prometheusMetricsHost": refused("a separate Prometheus metrics server is not "
                                         "supported by gingham", "scrape /metrics on the "
                                         "agent's health port"),
        "prometheusMetricsPort": planned("a separate Prometheus metrics port is not supported "
                                         "yet", "scrape /metrics on the agent's health port"),
        "endpointReportingEnabled": refused("endpoint status reporting is not supported by "
                                            "gingham", "remove the field"),
        "externalNodesCIDRList": refused("accepting tunnelled traffic from external nodes is "
                                         "not supported by gingham", "remove the field"),
    },
    "ProtoPort": {
        "protocol": effect("TCP, UDP or SCTP (any case)",
                           ISOLATION + "test_failsafe_ports_survive_a_deny_all_host_endpoint"),
        "port": effect("the port", ISOLATION + "test_failsafe_ports_survive_a_deny_all_host_endpoint"),
        "net": planned("restricting a failsafe port to one network is not supported yet (the "
                       "port would be open to every source)",
                       "leave the port out of the failsafe list and open it to that network "
                       "with host endpoint policy"),
    },
    "RouteTableRange": {
        "min": part_of("refused"),
        "max": part_of("refused"),
    },
}
