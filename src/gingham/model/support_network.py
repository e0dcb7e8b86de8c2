"""What gingham does with every field of the addressing, routing and agent kinds.

See :mod:`gingham.model.support` for what the statuses mean. The ``planned``
fields are the ones issue 13 wires end to end once routing joins the
calculation graph; until then a value other than what gingham does anyway is
refused as "not supported yet". Flip an entry to ``effect`` (with its test)
when its setting is wired, and regenerate docs/CONFIGURATION.md.
"""

from __future__ import annotations

from typing import Any, Final

from gingham.model.capabilities import BIRD as BIRD_CAPABILITY
from gingham.model.capabilities import NAT, VXLAN, needs
from gingham.model.support_types import (
    Support,
    effect,
    part_of,
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
BGPSET: Final = "tests/integration/routing/test_bgp_settings.py::"
TOR_SETTINGS: Final = BGPSET + "test_agents_apply_bgp_settings_seen_by_an_frr_tor"
SESSIONS: Final = BGPSET + "test_listen_ports_and_passwords_decide_which_sessions_come_up"
LOOP: Final = "tests/integration/routing/test_service_loop.py::"
KERNEL: Final = "tests/integration/dataplane/test_policy_kernel.py::"
ISOLATION: Final = "tests/integration/security/test_isolation.py::"
FELIX: Final = "tests/unit/calc/test_felix.py::"
FELIX_LAB: Final = "tests/integration/agent/test_agent_settings.py::"
FELIX_KERNEL: Final = "tests/integration/dataplane/test_felix_kernel.py::"
AGENT_SETTINGS: Final = "tests/unit/agent/test_settings.py::"

_VXLAN_MODULE: Final = needs(VXLAN)
_BIRD: Final = needs(BIRD_CAPABILITY)
_NAT: Final = needs(NAT)
_WIRE_LATER: Final = "leave it unset until gingham reads it"
_BIRD_NFT: Final = _BIRD + "; nftables (the loop-prevention drop)"
_SERVICES: Final = ("every host advertises these CIDRs over BGP; routes to them learnt from "
                    "peers never reach the kernel, and forwarded traffic to them that no DNAT "
                    "rewrote is dropped (FelixConfiguration serviceLoopPrevention), so an "
                    "address no service uses does not loop. gingham has no Kubernetes "
                    "Services: the per-service /32s Calico announces are not")


def _vxlan_mtu_limit(value: Any) -> str | None:
    # IPv6 needs 1280 on every link, and the workloads' veths take this MTU.
    if isinstance(value, int) and value != 0 and not 1280 <= value <= 65485:
        return (f"a VXLAN MTU below 1280 or above 65485 is not supported (got {value}: IPv6 "
                f"needs 1280, VXLAN adds 50 to at most 65535); use 0 for the underlay's MTU "
                f"less 50")
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
                                _NAT,
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
        "logSeverityScreen": reported("BIRD's log (per node too): Debug and Trace add "
                                      "protocol debugging (`debug protocols all`), Info logs "
                                      "every other message, Warning, Error and Fatal only "
                                      "messages of that class or worse",
                                      _BIRD, BIRD + "test_log_severity_chooses_birds_log",
                                      TOR_SETTINGS),
        "nodeToNodeMeshEnabled": reported("a BGP session between every two hosts (off: only "
                                          "route reflectors and BGPPeers)",
                                          _BIRD, TOR,
                                          BIRD + "test_as_override_makes_ebgp_and_mesh_can_be_switched_off",
                                          "tests/integration/agent/test_agent_routing.py::"
                                          "test_bgp_mesh_comes_up_and_traffic_still_flows"),
        "asNumber": reported("the AS number of every host without its own", _BIRD, TOR,
                             BIRD + "test_mesh_off_with_route_reflectors_and_sessions_deduplicated"),
        "listenPort": reported("the port BIRD listens on (per node too); gingham hosts "
                               "connect to each other's, external peers are reached on "
                               "179 or the port of their peerIP",
                               _BIRD, BIRD + "test_listen_ports_follow_each_host",
                               SESSIONS, TOR_SETTINGS),
        "bindMode": refused("binding BIRD to the node's address is not supported by gingham "
                            "(it listens on every address)", accepts=("None",)),
        "serviceClusterIPs": reported(_SERVICES, _BIRD_NFT, BIRD + "test_service_cidrs",
                                      TOR_SETTINGS, LOOP + "test_unused_service_ip_does_not_loop"),
        "serviceExternalIPs": reported(_SERVICES, _BIRD_NFT, BIRD + "test_service_cidrs",
                                       TOR_SETTINGS),
        "serviceLoadBalancerIPs": refused("advertising load balancer IPs is not supported by "
                                          "gingham (it assigns none)",
                                          "announce them from the load balancer"),
        "communities": reported("names for community values, used by prefixAdvertisements "
                                "of the same BGPConfiguration",
                                _BIRD, BIRD + "test_communities_on_advertised_prefixes",
                                TOR_SETTINGS),
        "prefixAdvertisements": reported("BIRD adds these communities to every route it "
                                         "advertises inside the CIDR (this host's blocks, "
                                         "service CIDRs, reflected routes); a per-node list "
                                         "replaces the cluster's",
                                         _BIRD, BIRD + "test_communities_on_advertised_prefixes",
                                         TOR_SETTINGS),
        "nodeMeshPassword": reported("the password of every node-to-node mesh session (each "
                                     "host reads the same file)", _BIRD,
                                     BIRD + "test_passwords_come_from_files", SESSIONS),
        "nodeMeshMaxRestartTime": refused("setting the mesh's graceful restart time is not "
                                          "supported by gingham (BIRD's default applies)",
                                          "remove the field"),
        "ignoredInterfaces": refused("ignoring interfaces is not supported by gingham: BIRD "
                                     "imports no interface routes anyway", "remove the field"),
    },
    "ServiceCIDR": {"cidr": reported("the CIDR advertised", _BIRD_NFT, BIRD + "test_service_cidrs",
                                     TOR_SETTINGS)},
    "Community": {
        "name": reported("the name prefixAdvertisements use", _BIRD,
                         BIRD + "test_communities_on_advertised_prefixes", TOR_SETTINGS),
        "value": reported("a standard (aa:nn) or large (aa:nn:mm) community", _BIRD,
                          BIRD + "test_communities_on_advertised_prefixes", TOR_SETTINGS),
    },
    "PrefixAdvertisement": {
        "cidr": reported("the routes inside it get the communities", _BIRD,
                         BIRD + "test_communities_on_advertised_prefixes", TOR_SETTINGS),
        "communities": reported("community values or names under communities", _BIRD,
                                BIRD + "test_communities_on_advertised_prefixes", TOR_SETTINGS),
    },
    "BGPPassword": {
        "file": reported("a file on every host that peers, holding the password on one line "
                         "(a regular file owned by root or the agent's user, mode 0600 or "
                         "stricter, at most 80 bytes of printable ASCII without quotes or "
                         "backslashes). Read whenever BIRD's configuration is rendered and "
                         "checked again every 10 s; a session whose file is missing or unsafe "
                         "is left out and reported (node status, /readyz), never brought up "
                         "without its password. BIRD authenticates it with TCP MD5; its "
                         "configuration file is 0600",
                         _BIRD, BIRD + "test_passwords_come_from_files", SESSIONS,
                         TOR_SETTINGS),
        "secretKeyRef": refused("reading a BGP password from a Kubernetes secret is not "
                                "supported by gingham (there is no secret store)",
                                "use file: /path/to/a/0600/file"),
    },
    "SecretKeyRef": {
        "name": part_of("refused"),
        "key": part_of("refused"),
    },
    "BGPPeerSpec": {
        "node": reported("only this host peers", _BIRD, TOR),
        "nodeSelector": reported("only hosts whose labels match peer (absent with no node: "
                                 "every host)", _BIRD,
                                 BIRD + "test_render_is_independent_of_input_order"),
        "peerIP": reported("the peer's address, IPv4 or IPv6 (a session of a family needs a "
                           "host address of that family), and its port (default 179)",
                           _BIRD, TOR, BIRD + "test_peer_ip_port_and_ipv6_peers",
                           BGPSET + "test_ipv6_peer_on_its_own_port"),
        "peerSelector": reported("peer with the hosts whose labels match (route reflectors)",
                                 _BIRD, BIRD + "test_listen_port_applies_to_gingham_hosts_only",
                                 BIRD + "test_render_is_independent_of_input_order"),
        "asNumber": reported("the peer's AS number", _BIRD, TOR),
        "password": reported("the session's password (see BGPPassword.file)", _BIRD,
                             BIRD + "test_passwords_come_from_files", SESSIONS, TOR_SETTINGS),
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
                              BGP + "test_ipv6_underlay_direct_routes_then_bgp",
                              BGPSET + "test_ipv6_peer_on_its_own_port"),
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
            KERNEL + "test_host_endpoint_policy_and_failsafe_ports",
            FELIX + "test_node_settings_override_default_field_by_field"),
        "failsafeOutboundHostPorts": effect(
            "ports the host may always send to whatever host endpoint policy says",
            KERNEL + "test_host_endpoint_policy_and_failsafe_ports",
            FELIX_KERNEL + "test_failsafe_port_with_a_net_admits_that_net_only"),
        "logSeverityScreen": effect("the agent's log level, changed while it runs (Trace is "
                                    "Debug; Fatal is critical); `gingham node run "
                                    "--log-level`, when given, wins",
                                    AGENT_SETTINGS + "test_log_level_follows_the_configuration",
                                    FELIX_LAB + "test_log_level_follows_the_configuration"),
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
        "vxlanVNI": reported("the VNI of the host's VXLAN device (default 4096): a change "
                             "re-creates the device and puts its peers and routes back. Hosts "
                             "reach each other only with the same VNI and port, so a per-node "
                             "value that differs cuts that host off (as in Calico)",
                             _VXLAN_MODULE,
                             FELIX + "test_vxlan_settings_reach_the_device_and_the_mtu",
                             FELIX_LAB + "test_vni_and_port_change_recreate_the_tunnel"),
        "vxlanPort": reported("the UDP port of the host's VXLAN device (default 4789; a change "
                              "re-creates it), and the port whose packets from workloads are "
                              "dropped (allowVXLANPacketsFromWorkloads)", _VXLAN_MODULE,
                              FELIX + "test_vxlan_settings_reach_the_device_and_the_mtu",
                              FELIX_LAB + "test_vni_and_port_change_recreate_the_tunnel"),
        "vxlanMTU": Support("reported", "the MTU of the VXLAN device and, while some pool "
                            "encapsulates, of new workload interfaces (the MTU file the CNI "
                            "plugin reads); 0 or unset: the underlay interface's MTU less 50",
                            (FELIX + "test_vxlan_settings_reach_the_device_and_the_mtu",
                             FELIX_LAB + "test_vxlan_mtu_sets_the_device_and_new_workloads"),
                            needs=_VXLAN_MODULE, limit=_vxlan_mtu_limit),
        "vxlanMTUV6": refused("setting the IPv6 VXLAN MTU is not supported by gingham (it takes "
                              "it from the underlay interface)", "remove the field"),
        "ipipEnabled": refused("IPIP is not supported by gingham",
                               "use an IPPool's vxlanMode instead", accepts=(None, False)),
        "ipipMTU": refused("IPIP is not supported by gingham",
                           "use an IPPool's vxlanMode instead"),
        "mtuIfacePattern": refused("choosing MTU interfaces is not supported by gingham: it "
                                   "takes the MTU of the interface holding the host address",
                                   "remove the field"),
        "natOutgoingAddress": reported("natOutgoing traffic leaves with this source address "
                                       "(SNAT) instead of the outgoing interface's (masquerade), "
                                       "in the address's family", _NAT,
                                       FELIX + "test_nat_outgoing_address_replaces_masquerade",
                                       FELIX_LAB + "test_nat_outgoing_address_is_the_source_outside"),
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
        "serviceLoopPrevention": effect(
            "Drop (the default, as in Calico) or Reject: forwarded traffic to a service CIDR "
            "this host advertises (BGPConfiguration serviceClusterIPs, serviceExternalIPs) "
            "that no DNAT rewrote is dropped, or rejected with an ICMP unreachable, in table "
            "inet gingham-svc; Disabled: no such rule",
            FELIX + "test_service_loop_prevention_reaches_the_service_loop_message",
            LOOP + "test_unused_service_ip_does_not_loop", TOR_SETTINGS),
        "allowVXLANPacketsFromWorkloads": effect(
            "false (the default, as in Calico): UDP packets a workload sends to the VXLAN port "
            "(vxlanPort) are dropped before policy and conntrack, whatever their destination; "
            "true: they meet policy like any other",
            FELIX_KERNEL + "test_tunnel_packets_from_workloads_are_dropped_unless_allowed"),
        "allowIPIPPacketsFromWorkloads": effect(
            "false (the default, as in Calico): IPIP packets (IP protocol 4) a workload sends "
            "are dropped before policy and conntrack; true: they meet policy like any other",
            FELIX_KERNEL + "test_tunnel_packets_from_workloads_are_dropped_unless_allowed"),
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
        "healthEnabled": effect("the agent's health server (/healthz, /readyz; and /metrics "
                                "while prometheusMetricsEnabled is false): true by default in "
                                "gingham; false stops it while the agent runs",
                                AGENT_SETTINGS + "test_listeners_follow_the_configuration",
                                FELIX_LAB + "test_health_and_metrics_listeners_move"),
        "healthHost": effect("the address the health server listens on (default localhost); "
                             "`gingham node run --health-host`, when given, wins",
                             AGENT_SETTINGS + "test_listeners_follow_the_configuration",
                             AGENT_SETTINGS + "test_command_line_wins_over_the_datastore"),
        "healthPort": effect("the health server's port (default 9099), moved while the agent "
                             "runs; `gingham node run --health-port`, when given, wins",
                             AGENT_SETTINGS + "test_listeners_follow_the_configuration",
                             FELIX_LAB + "test_health_and_metrics_listeners_move"),
        "prometheusMetricsEnabled": effect("true: /metrics moves to a server of its own "
                                           "(prometheusMetricsHost, prometheusMetricsPort), as in "
                                           "Calico; false (default): /metrics is served on the "
                                           "health port",
                                           AGENT_SETTINGS + "test_listeners_follow_the_configuration",
                                           FELIX_LAB + "test_health_and_metrics_listeners_move"),
        "prometheusMetricsHost": effect("the metrics server's address; unset: healthHost's (local "
                                        "by default, where Calico listens on every address); "
                                        "\"\": every address",
                                        FELIX + "test_health_and_metrics_listeners"),
        "prometheusMetricsPort": effect("the metrics server's port (default 9091), moved while "
                                        "the agent runs",
                                        AGENT_SETTINGS + "test_listeners_follow_the_configuration",
                                        FELIX_LAB + "test_health_and_metrics_listeners_move"),
        "endpointReportingEnabled": refused("endpoint status reporting is not supported by "
                                            "gingham", "remove the field"),
        "externalNodesCIDRList": refused("accepting tunnelled traffic from external nodes is "
                                         "not supported by gingham", "remove the field"),
    },
    "ProtoPort": {
        "protocol": effect("TCP, UDP or SCTP (any case)",
                           ISOLATION + "test_failsafe_ports_survive_a_deny_all_host_endpoint"),
        "port": effect("the port", ISOLATION + "test_failsafe_ports_survive_a_deny_all_host_endpoint"),
        "net": effect("the only network the port is open to: sources of an inbound port, "
                      "destinations of an outbound one",
                      FELIX + "test_failsafe_ports_keep_their_net",
                      FELIX_KERNEL + "test_failsafe_port_with_a_net_admits_that_net_only",
                      FELIX_LAB + "test_failsafe_net_is_honoured"),
    },
    "RouteTableRange": {
        "min": part_of("refused"),
        "max": part_of("refused"),
    },
}
