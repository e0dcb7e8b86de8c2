"""Routing between hosts: BIRD configuration and control, BGP status, NAT outgoing, MTU.

Route calculation for the agent lives in :mod:`gingham.dataplane.routes`, the
VXLAN driver in :mod:`gingham.dataplane.vxlan`; their input types are in
:mod:`gingham.routing.types`.
"""

from gingham.routing.status import PeerStatus, bgp_status, parse_protocols

__all__ = ["PeerStatus", "bgp_status", "parse_protocols"]
