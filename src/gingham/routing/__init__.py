"""Routing between hosts over BGP: BIRD configuration, BIRD process control, BGP status.

Route, VXLAN, NAT and MTU calculation live in the calculation graph
(:mod:`gingham.calc.routing`, with the route plan in :mod:`gingham.calc.routes`
and the shared types in :mod:`gingham.calc.routing_types`); the kernel side in
:mod:`gingham.dataplane.routing`. Here: :mod:`bird_config` renders what
:class:`~gingham.calc.messages.BgpUpdate` carries, :mod:`bgp` applies it through
:mod:`bird` (the process), :mod:`status` reads the sessions back.
"""

from gingham.routing.status import PeerStatus, bgp_status, parse_protocols

__all__ = ["PeerStatus", "bgp_status", "parse_protocols"]
