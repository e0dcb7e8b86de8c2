"""Routes of the main table the agent owns (protocol 201): desired from messages, applied
with the smallest change.

:class:`KernelRoutes` keeps one desired route per destination from
:class:`~gingham.calc.messages.RouteUpdate` / ``RouteRemove`` and what it
programmed. The first apply, and the first after any failure, compares the
whole table (``RouteTable.sync_routes``: one dump, then only the routes that
differ; stale protocol-201 routes are removed, except workload routes, which
go with their veth). Every other apply touches only the destinations that
changed: a workload coming or going costs its own routes, never a dump.

A workload's route is only valid while its veth exists (the CNI plugin makes
the veth before the endpoint and removes it before the endpoint goes): one
whose interface is missing is left out, and tried again on every apply until
the interface appears or the route is no longer wanted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from gingham.calc.inputs import IPNetwork
from gingham.calc.messages import RouteRemove, RouteUpdate
from gingham.dataplane.netlink import Route, RouteDiff, not_workload_route
from gingham.errors import DataplaneError

log = logging.getLogger(__name__)


class RouteTable(Protocol):
    """What :class:`~gingham.dataplane.netlink.Netlink` offers (and a fake for tests)."""

    def link_index(self, name: str) -> int | None: ...
    def replace_route(self, r: Route) -> None: ...
    def delete_route(self, r: Route) -> None: ...
    def sync_routes(
        self, desired: Iterable[Route], owned: Callable[[Route], bool] | None = None
    ) -> RouteDiff: ...


def kernel_route(msg: RouteUpdate) -> Route:
    return Route(msg.dst, msg.via, msg.dev, msg.onlink, msg.kind)


class KernelRoutes:
    def __init__(self, table: RouteTable) -> None:
        self.table = table
        self._desired: dict[IPNetwork, RouteUpdate] = {}
        self._programmed: dict[IPNetwork, Route] | None = None  # None: compare everything
        self._pending: set[IPNetwork] = set()  # changed since the last successful apply
        self._missing: set[IPNetwork] = set()  # workload routes whose veth is not there

    def on_update(self, msg: RouteUpdate) -> None:
        self._desired[msg.dst] = msg
        self._pending.add(msg.dst)

    def on_remove(self, msg: RouteRemove) -> None:
        self._desired.pop(msg.dst, None)
        self._pending.add(msg.dst)

    @property
    def desired(self) -> dict[IPNetwork, RouteUpdate]:
        return self._desired

    @property
    def waiting(self) -> bool:
        """Workload routes wait for their interface (a tap plugged after its endpoint)."""
        return bool(self._missing)

    def resync(self) -> None:
        """Compare the whole table on the next apply (after a failure elsewhere, say)."""
        self._programmed = None

    def apply(self) -> int:
        """Program what changed; the number of routes written or removed."""
        try:
            if self._programmed is None:
                return self._full()
            return self._incremental()
        except Exception:
            self._programmed = None
            raise

    def _present(self, msg: RouteUpdate) -> bool:
        return not msg.workload or msg.dev is None or self.table.link_index(msg.dev) is not None

    def _full(self) -> int:
        wanted = [m for m in self._desired.values() if self._present(m)]
        self._missing = {m.dst for m in self._desired.values()} - {m.dst for m in wanted}
        routes = [kernel_route(m) for m in wanted]
        diff = self.table.sync_routes(routes, owned=not_workload_route)
        self._programmed = {r.dst: r for r in routes}
        self._pending.clear()
        if not diff.empty:
            log.info("routes: %d added, %d replaced, %d removed", len(diff.add),
                     len(diff.replace), len(diff.remove))
        return len(diff.add) + len(diff.replace) + len(diff.remove)

    def _incremental(self) -> int:
        assert self._programmed is not None
        changed = 0
        for dst in sorted(self._pending | self._missing, key=lambda n: (n.version, str(n))):
            want = self._desired.get(dst)
            have = self._programmed.get(dst)
            if want is not None and not self._present(want):
                self._missing.add(dst)
                want = None  # its veth is gone (or not there yet): nothing to program
            else:
                self._missing.discard(dst)
            if want is None:
                if have is not None:
                    self._remove(have)
                    del self._programmed[dst]
                    changed += 1
                continue
            route = kernel_route(want)
            if route != have:
                self.table.replace_route(route)
                self._programmed[dst] = route
                changed += 1
            self._pending.discard(dst)
        self._pending.clear()
        return changed

    def _remove(self, route: Route) -> None:
        if route.dev is not None and self.table.link_index(route.dev) is None:
            return  # the interface took its routes with it
        try:
            self.table.delete_route(route)
        except DataplaneError:
            if route.dev is not None and self.table.link_index(route.dev) is None:
                return  # gone meanwhile
            raise
