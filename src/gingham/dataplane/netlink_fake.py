"""FakeRouteTable: the main routing table of one namespace, in memory, with the route
methods of :class:`~gingham.dataplane.netlink.Netlink`.

Checked against the kernel (tests/integration/dataplane/test_netlink.py runs
the same operations on both): one route per destination; a route through an
interface needs the interface; a gateway that is not ``onlink`` must be on a
subnet of that interface; deleting a route that is not there fails; removing
an interface takes its routes with it. Protocols are kept, so a route of
another protocol on a destination the agent wants is replaced, as on the
kernel. Errors are :class:`~gingham.errors.DataplaneError`, as Netlink's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from ipaddress import ip_interface

from gingham.calc.inputs import IPNetwork
from gingham.dataplane.netlink import RTPROT_GINGHAM, Route, RouteDiff, diff_routes
from gingham.errors import DataplaneError


class FakeRouteTable:
    def __init__(self) -> None:
        self._links: dict[str, int] = {}
        self._subnets: dict[str, list[IPNetwork]] = {}
        self._routes: dict[IPNetwork, Route] = {}
        self.writes = 0  # routes added, replaced or deleted: for tests that count work
        self.dumps = 0

    # --- links ---------------------------------------------------------------------

    def add_link(self, name: str, *addresses: str) -> None:
        """An interface (up), with addresses like ``192.0.2.5/24``."""
        self._links[name] = len(self._links) + 2  # 1 is lo
        self._subnets[name] = [ip_interface(a).network for a in addresses]

    def remove_link(self, name: str) -> None:
        del self._links[name]
        del self._subnets[name]
        self._routes = {d: r for d, r in self._routes.items() if r.dev != name}

    def link_index(self, name: str) -> int | None:
        return self._links.get(name)

    # --- routes --------------------------------------------------------------------

    def list_routes(self, proto: int | None = RTPROT_GINGHAM) -> list[Route]:
        self.dumps += 1
        return [r for r in self._routes.values() if proto is None or r.proto == proto]

    def _resolve(self, r: Route) -> Route:
        """The route as the kernel stores it: a gateway without an interface gets the
        interface whose subnet holds it (and the kernel lists it with that one)."""
        what = f"replace route {r}"
        if r.dev is not None and r.dev not in self._links:
            raise DataplaneError(f"no interface {r.dev!r} in namespace (fake)")
        if r.via is None or r.onlink:
            return r
        links = [r.dev] if r.dev is not None else sorted(self._links, key=self._links.__getitem__)
        for name in links:
            if any(r.via.version == n.version and r.via in n for n in self._subnets[name]):
                return Route(r.dst, r.via, name, r.onlink, r.kind, r.proto)
        raise DataplaneError(f"{what}: Nexthop has invalid gateway (errno 22)")

    def add_route(self, r: Route) -> None:
        if r.dst in self._routes:
            raise DataplaneError(f"add route {r}: File exists (errno 17)")
        self.replace_route(r)

    def replace_route(self, r: Route) -> None:
        self._routes[r.dst] = self._resolve(r)
        self.writes += 1

    def delete_route(self, r: Route, absent_ok: bool = False) -> None:
        have = self._routes.get(r.dst)
        if have is None or have.proto != r.proto or have.kind != r.kind:
            if absent_ok:
                return
            raise DataplaneError(f"delete route {r}: No such process (errno 3)")
        del self._routes[r.dst]
        self.writes += 1

    def apply_diff(self, diff: RouteDiff) -> None:
        for r in diff.remove:
            self.delete_route(r, absent_ok=True)
        for r in (*diff.add, *diff.replace):
            self.replace_route(r)

    def sync_routes(
        self, desired: Iterable[Route], owned: Callable[[Route], bool] | None = None
    ) -> RouteDiff:
        """As :meth:`Netlink.sync_routes`: one dump, then the smallest change."""
        desired = list(desired)
        wanted = {r.dst for r in desired}
        actual = self.list_routes()
        actual += [r for r in self.list_routes(proto=None)
                   if r.proto != RTPROT_GINGHAM and r.dst in wanted]
        diff = diff_routes(desired, actual, owned)
        self.apply_diff(diff)
        return diff
