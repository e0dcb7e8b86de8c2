"""The routing half of the dataplane: calc's routing messages in, the kernel changed.

    MtuUpdate            -> MtuFile       (the CNI plugin's MTU file)
    VxlanDevice*/Peer*   -> Vxlan         (ip/bridge: device, neighbours, FDB)
    RouteUpdate/Remove   -> KernelRoutes  (netlink, protocol 201)
    NatOutgoingUpdate    -> NatOutgoing   (nft, table inet gingham-nat)
    ServiceLoopUpdate    -> ServiceLoop   (nft, table inet gingham-svc)

:meth:`RoutingDataplane.apply` takes a batch in the sequencer's order and
applies it in the order that keeps packets flowing: the MTU file, the VXLAN
device and peers, routes, stale peers and the device, NAT. Managers keep
their desired state; one that fails compares with the kernel again on the
next apply (fail static: the agent calls again with no new messages), and
the managers after it wait for that. Nothing is applied before ``InSync``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from gingham.calc.messages import (
    InSync,
    MtuUpdate,
    NatOutgoingUpdate,
    RouteRemove,
    RouteUpdate,
    ServiceLoopUpdate,
    VxlanDeviceRemove,
    VxlanDeviceUpdate,
    VxlanPeerRemove,
    VxlanPeerUpdate,
)
from gingham.dataplane.mtu_file import MtuFile
from gingham.dataplane.nat import NatOutgoing
from gingham.dataplane.routes import KernelRoutes
from gingham.dataplane.service_loop import ServiceLoop
from gingham.dataplane.vxlan import Vxlan

log = logging.getLogger(__name__)

_VXLAN = (VxlanDeviceUpdate, VxlanDeviceRemove, VxlanPeerUpdate, VxlanPeerRemove)
LOOK_AGAIN_AFTER = 0.1  # seconds between looks for a missing workload interface (the loop
# wakes every 0.1 s): a tap plugged after its endpoint routes within about that


class RoutingDataplane:
    def __init__(self, routes: KernelRoutes, vxlan: Vxlan, nat: NatOutgoing,
                 mtu: MtuFile, service_loop: ServiceLoop | None = None) -> None:
        self.routes = routes
        self.vxlan = vxlan
        self.nat = nat
        self.mtu = mtu
        self.service_loop = service_loop
        self.in_sync = False
        self._next_look = 0.0

    def on_messages(self, messages: Iterable[object]) -> None:
        for msg in messages:
            if isinstance(msg, RouteUpdate):
                self.routes.on_update(msg)
            elif isinstance(msg, RouteRemove):
                self.routes.on_remove(msg)
            elif isinstance(msg, _VXLAN):
                self.vxlan.on_message(msg)
            elif isinstance(msg, NatOutgoingUpdate):
                self.nat.on_update(msg)
            elif isinstance(msg, ServiceLoopUpdate):
                if self.service_loop is not None:
                    self.service_loop.on_update(msg)
            elif isinstance(msg, MtuUpdate):
                self.mtu.on_update(msg)
            elif isinstance(msg, InSync):
                self.in_sync = True

    def due(self, now: float) -> bool:
        """``daemon.Rechecking``: look again, every 0.1 s, for the interfaces that
        workload routes wait for."""
        if not self.routes.waiting or now < self._next_look:
            return False
        self._next_look = now + LOOK_AGAIN_AFTER
        return True

    def apply(self, messages: Iterable[object] = ()) -> None:
        """Take ``messages`` and bring the kernel to everything wanted so far."""
        self.on_messages(messages)
        if not self.in_sync:
            return
        self.mtu.apply()
        if self.vxlan.apply_additions():
            self.routes.resync()  # the routes through the old device went with it
        self.routes.apply()
        self.vxlan.apply_removals()
        if self.nat.apply():
            log.info("NAT outgoing rules programmed")
        if self.service_loop is not None and self.service_loop.apply():
            log.info("service loop prevention programmed")
