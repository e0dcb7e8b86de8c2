"""Kernel routing for one host: workload routes, block routes, VXLAN, BIRD, NAT, MTU.

The pure parts (``RoutingInputs``, ``plan_routes``, ``render_bird_config``,
``nat_outgoing_script``) decide; this plane applies, in the order that keeps
packets flowing: VXLAN device and peers first, then routes that use them,
then stale peers removed; BIRD after the kernel routes it exports.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

from gingham.agent.routing_inputs import RoutingInputs
from gingham.calc.messages import WorkloadEndpointRemove, WorkloadEndpointUpdate
from gingham.cni.plumbing import interface_exists
from gingham.dataplane.netlink import Netlink, Route, not_workload_route
from gingham.dataplane.routes import RoutePlan, plan_routes
from gingham.dataplane.vxlan import VxlanDriver
from gingham.datastore import keys
from gingham.datastore.base import Datastore
from gingham.errors import (
    AlreadyExists,
    DataplaneError,
    GinghamError,
    NotFound,
    RevisionConflict,
    RoutingError,
)
from gingham.routing.bird import BirdProcess
from gingham.routing.bird_config import render_bird_config
from gingham.routing.mtu import detect_underlay_mtu, workload_mtu
from gingham.routing.nat import nat_outgoing_script
from gingham.routing.types import HostInfo, tunnel_handle, vxlan_mac

log = logging.getLogger(__name__)
RUN_DIR = Path("/run/gingham")
NAT_TABLE = "gingham-nat"
# Below this many free addresses in its blocks, a host claims its next block early.
SPARE_ADDRESSES = 16


@dataclass
class RoutingPlane:
    hostname: str
    inputs: RoutingInputs
    datastore: Datastore
    netlink: Netlink
    vxlan: VxlanDriver
    bird: BirdProcess
    run_dir: Path = RUN_DIR
    _local: dict[Any, tuple[Route, ...]] = field(default_factory=dict)
    _full_sync_pending: bool = True
    _nat_script: str | None = None
    _mtu: int | None = None

    def observe(self, key: str, value: Any) -> None:
        self.inputs.on_update(key, value)

    def apply(self, messages: Sequence[Any]) -> None:
        changed: list[tuple[tuple[Route, ...], tuple[Route, ...]]] = []
        for msg in messages:
            if isinstance(msg, WorkloadEndpointUpdate):
                routes = tuple(
                    Route(ip_network(net), dev=msg.interface_name)
                    for net in (*msg.ipv4_nets, *msg.ipv6_nets)
                )
                old = self._local.get(msg.endpoint_id, ())
                if old != routes:
                    self._local[msg.endpoint_id] = routes
                    changed.append((old, routes))
            elif isinstance(msg, WorkloadEndpointRemove):
                old = self._local.pop(msg.endpoint_id, ())
                if old:
                    changed.append((old, ()))
        if self.inputs.dirty or self._full_sync_pending:
            self._program()  # covers the local routes too
            self.inputs.dirty = False
            self._full_sync_pending = False
        else:
            # A workload coming or going touches its own routes only: no dump of
            # the kernel's routes (that made every ADD cost O(routes) here).
            for old, new in changed:
                self._sync_endpoint(old, new)
        if any(new for _, new in changed):
            self._keep_a_spare_block()

    def _keep_a_spare_block(self) -> None:
        """Claim this host's next block before its blocks fill up (see IPAM.ensure_spare)."""
        from gingham.ipam import IPAM

        try:
            claimed = IPAM(self.datastore, host=self.hostname).ensure_spare(SPARE_ADDRESSES)
        except GinghamError as exc:
            log.debug("no spare block claimed: %s", exc)
            return
        if claimed is not None:
            log.info("claimed block %s ahead of need", claimed)

    def _sync_endpoint(self, old: tuple[Route, ...], new: tuple[Route, ...]) -> None:
        for route in new:
            if self._link_exists(route):
                self.netlink.replace_route(route)
        for route in set(old) - set(new):
            if self._link_exists(route):  # a gone veth took its routes with it
                with contextlib.suppress(DataplaneError):
                    self.netlink.delete_route(route)

    def _program(self) -> None:
        me = self._me()
        bgp = self.inputs.bgp()
        plan = plan_routes(
            self.hostname,
            self.inputs.hosts.values(),
            self.inputs.blocks.values(),
            self.inputs.pools.values(),
            bgp_enabled=bgp.enabled,
        )
        encapsulating = any(p.vxlan_mode != "Never" for p in self.inputs.pools.values())
        tunnel_up = False
        if me is not None and me.address_v4 is not None:
            self._write_mtu(me, encapsulating)
            if encapsulating:
                tunnel_up = self._ensure_vxlan(me, plan)
        desired = [Route.from_spec(spec) for spec in plan.routes]
        desired += [r for routes in self._local.values() for r in routes if self._link_exists(r)]
        self.netlink.sync_routes(desired, owned=not_workload_route)
        if tunnel_up:  # no device yet (no tunnel address yet): no peers to prune either
            self.vxlan.remove_stale_peers(plan.vxlan_peers)
        self._apply_nat()
        if me is not None and me.address_v4 is not None:
            self._apply_bgp(me, bgp)

    def _me(self) -> HostInfo | None:
        return self.inputs.hosts.get(keys.resource_key("Node", self.hostname))

    def _link_exists(self, route: Route) -> bool:
        # A workload route is only valid while its veth exists (CNI DEL removes both).
        return route.dev is None or interface_exists(route.dev)

    def _ensure_vxlan(self, me: HostInfo, plan: RoutePlan) -> bool:
        """The VXLAN device and its peers; False while this host has no tunnel address."""
        assert me.address_v4 is not None
        tunnel = me.vxlan_tunnel_v4 or self._claim_tunnel_address()
        if tunnel is None:
            return False
        mtu = self._mtu or 1500
        self.vxlan.ensure_device(
            local=me.address_v4,
            mac=me.vxlan_mac or vxlan_mac(self.hostname),
            mtu=mtu,
            tunnel_addrs=[tunnel],
        )
        self.vxlan.add_peers(plan.vxlan_peers)
        return True

    def _claim_tunnel_address(self) -> Any:
        """Take an address from this host's block for the VXLAN device and publish it."""
        from gingham.ipam import IPAM

        try:
            got = IPAM(self.datastore, host=self.hostname).auto_assign(
                tunnel_handle(self.hostname),
                {"namespace": "", "workload": "vxlan-tunnel", "host": self.hostname},
                use="Tunnel",
            )
        except GinghamError as exc:
            log.warning("no VXLAN tunnel address yet: %s", exc)
            return None
        addr = got[0].ip
        key = keys.resource_key("Node", self.hostname)
        for _ in range(20):
            current = self.datastore.get(key)
            if current is None:
                return None
            doc = dict(current.value)
            spec = doc.get("spec")
            spec = dict(spec) if isinstance(spec, dict) else {}
            published = spec.get("ipv4VXLANTunnelAddr")
            if published:
                try:
                    return ip_address(published)
                except ValueError:
                    log.warning("Node %s has an unreadable ipv4VXLANTunnelAddr %r: replacing it",
                                self.hostname, published)
            spec["ipv4VXLANTunnelAddr"] = str(addr)
            spec["vxlanTunnelMACAddr"] = vxlan_mac(self.hostname)
            doc["spec"] = spec
            try:
                self.datastore.update(key, doc, revision=current.mod_revision)
                return addr
            except (RevisionConflict, NotFound, AlreadyExists):
                continue
        return None

    def _write_mtu(self, me: HostInfo, encapsulating: bool) -> None:
        assert me.address_v4 is not None
        try:
            underlay = detect_underlay_mtu(me.address_v4)
        except RoutingError as exc:
            log.warning("cannot detect the underlay MTU: %s", exc)
            return
        mtu = workload_mtu(underlay, encapsulating, 4)
        if mtu == self._mtu:
            return
        self._mtu = mtu
        path = self.run_dir / self.hostname / "mtu"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{mtu}\n")

    def _apply_nat(self) -> None:
        pools = list(self.inputs.pools.values())
        script = nat_outgoing_script(pools, table=NAT_TABLE)
        if script == self._nat_script:
            return
        try:
            subprocess.run(
                ["nft", "-f", "-"], input=script, text=True, check=True, capture_output=True
            )
        except subprocess.CalledProcessError as exc:
            raise DataplaneError(f"NAT outgoing rules rejected: {exc.stderr.strip()}") from exc
        self._nat_script = script

    def _apply_bgp(self, me: HostInfo, bgp: Any) -> None:
        if not bgp.enabled:
            if self.bird.running():
                self.bird.stop()
            return
        text = render_bird_config(
            bgp,
            me,
            self.inputs.hosts.values(),
            self.inputs.blocks.values(),
            self.inputs.pools.values(),
            log_file=str(self.bird.log),
        )
        result = self.bird.apply(text)
        if result != "unchanged":
            log.info("BIRD %s", result)

    def close(self) -> None:
        self.netlink.close()
