"""Routes, links, neighbours and FDB entries over netlink (pyroute2 0.9).

The agent owns routes with protocol 201 (:data:`RTPROT_GINGHAM`) in the main
table; :meth:`Netlink.sync_routes` compares what it wants with the kernel's
protocol-201 routes and applies the smallest change: it replaces only routes
that differ, adds missing ones and removes only stale protocol-201 routes
(never a route of another protocol). The comparison is the pure
:func:`diff_routes`.

pyroute2 opens a namespace's socket from a forked child (≈ 10 ms, unsafe beside
threads): make one :class:`Netlink` per namespace and keep it.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from typing import Any, Literal

from gingham.errors import DataplaneError
from gingham.names import RTPROT_GINGHAM as RTPROT_GINGHAM
from gingham.names import WORKLOAD_INTERFACE_PREFIX

MAIN_TABLE = 254

RouteKind = Literal["unicast", "blackhole", "unreachable", "prohibit"]
_RTN = {1: "unicast", 6: "blackhole", 7: "unreachable", 8: "prohibit"}
_RTNH_F_ONLINK = 4
_RT_SCOPE_LINK = 253
_RT_SCOPE_NOWHERE = 255
_NUD_PERMANENT = 0x80
_ESRCH = 3  # the kernel's answer to deleting a route it does not have

IPNetwork = IPv4Network | IPv6Network
IPAddress = IPv4Address | IPv6Address


@dataclass(frozen=True)
class Route:
    """One route in the main table; hashable, compared field by field."""

    dst: IPNetwork
    via: IPAddress | None = None
    dev: str | None = None
    onlink: bool = False
    kind: RouteKind = "unicast"
    proto: int = RTPROT_GINGHAM

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "dst", ip_network(self.dst))
            if self.via is not None:
                object.__setattr__(self, "via", ip_address(self.via))
        except ValueError as exc:
            raise DataplaneError(f"route {self.dst}: {exc}") from None
        if self.kind not in _RTN.values():
            raise DataplaneError(f"route {self.dst}: unknown kind {self.kind!r}")
        if self.kind != "unicast" and (self.via is not None or self.dev is not None):
            raise DataplaneError(f"route {self.dst}: a {self.kind} route has no via or dev")
        if self.kind == "unicast" and self.via is None and self.dev is None:
            raise DataplaneError(f"route {self.dst}: needs via or dev")
        if self.onlink and (self.via is None or self.dev is None):
            raise DataplaneError(f"route {self.dst}: onlink needs via and dev")
        if self.via is not None and self.via.version != self.dst.version:
            raise DataplaneError(f"route {self.dst}: via {self.via} is another address family")

    @classmethod
    def from_spec(cls, spec: Any) -> Route:
        """From any object with the same fields (e.g. ``routes.RouteSpec``)."""
        return cls(spec.dst, spec.via, spec.dev, spec.onlink, spec.kind)

    def __str__(self) -> str:
        if self.kind != "unicast":
            return f"{self.kind} {self.dst} proto {self.proto}"
        text = str(self.dst)
        if self.via is not None:
            text += f" via {self.via}"
        if self.dev is not None:
            text += f" dev {self.dev}"
        if self.onlink:
            text += " onlink"
        return f"{text} proto {self.proto}"


@dataclass(frozen=True)
class RouteDiff:
    """What :func:`diff_routes` decided; ``replace`` holds new versions of changed routes."""

    add: tuple[Route, ...] = ()
    replace: tuple[Route, ...] = ()
    remove: tuple[Route, ...] = ()
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not (self.add or self.replace or self.remove)


def _sort(routes: Iterable[Route]) -> tuple[Route, ...]:
    return tuple(sorted(routes, key=lambda r: (r.dst.version, r.dst, str(r))))


def diff_routes(
    desired: Iterable[Route],
    actual: Iterable[Route],
    owned: Callable[[Route], bool] | None = None,
) -> RouteDiff:
    """The smallest change taking the kernel's ``actual`` routes to ``desired``.

    Routes are keyed by destination (one route per destination in the main
    table). Only actual routes with protocol 201 for which ``owned(route)`` is
    true may be removed; an actual route of another protocol on a desired
    destination is replaced (the agent's route wins), never silently kept.
    """
    want: dict[IPNetwork, Route] = {}
    for r in desired:
        if r.proto != RTPROT_GINGHAM:
            raise DataplaneError(f"desired route {r} must have protocol {RTPROT_GINGHAM}")
        other = want.get(r.dst)
        if other is not None and other != r:
            raise DataplaneError(f"two desired routes for {r.dst}: {other} and {r}")
        want[r.dst] = r
    have: dict[IPNetwork, Route] = {}
    for r in actual:
        if r.dst not in have or r.proto == RTPROT_GINGHAM:
            have[r.dst] = r
    add, replace, remove = [], [], []
    unchanged = 0
    for dst, r in want.items():
        cur = have.get(dst)
        if cur is None:
            add.append(r)
        elif not _same(cur, r):
            replace.append(r)
        else:
            unchanged += 1
    for dst, r in have.items():
        if dst not in want and r.proto == RTPROT_GINGHAM and (owned is None or owned(r)):
            remove.append(r)
    return RouteDiff(_sort(add), _sort(replace), _sort(remove), unchanged)


def _same(actual: Route, desired: Route) -> bool:
    """Whether ``actual`` is ``desired`` as the kernel lists it: a route given only a
    gateway comes back with the interface the kernel found for it."""
    if actual == desired:
        return True
    return (desired.dev is None and desired.via is not None and actual.dev is not None
            and Route(actual.dst, actual.via, None, actual.onlink, actual.kind,
                      actual.proto) == desired)


def not_workload_route(route: Route) -> bool:
    """``owned`` filter for managers that must leave the CNI plugin's workload routes alone."""
    return not (route.dev or "").startswith(WORKLOAD_INTERFACE_PREFIX)


@dataclass(frozen=True)
class Link:
    name: str
    index: int
    mac: str | None
    mtu: int
    up: bool
    kind: str | None


@dataclass(frozen=True)
class Neighbour:
    dst: IPAddress
    lladdr: str | None
    dev: str
    permanent: bool


@dataclass(frozen=True)
class FdbEntry:
    lladdr: str
    dst: IPAddress | None
    dev: str


class Netlink:
    """A netlink socket in one network namespace (a name under /run/netns, or None)."""

    def __init__(self, netns: str | None = None) -> None:
        from pyroute2 import IPRoute  # heavy import (~150 ms): only where netlink is used

        self.netns = netns
        try:
            self._ipr = IPRoute(netns=netns) if netns else IPRoute()
        except Exception as exc:  # pyroute2 raises OSError, NetlinkError, FileNotFoundError
            raise DataplaneError(f"cannot open netlink in namespace {netns}: {exc}") from exc

    def close(self) -> None:
        self._ipr.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, fn: Callable[..., Any], *args: Any,
              absent_ok: bool = False, **kw: Any) -> Any:
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            result = fn(*args, **kw)
            # 0.9 returns generators for dumps: consume inside the error boundary
            return list(result) if isinstance(result, Iterator) else result
        except NetlinkError as exc:
            if absent_ok and exc.code == _ESRCH:
                return None
            raise DataplaneError(f"{what}: {exc.args[1] if len(exc.args) > 1 else exc}"
                                 f" (errno {exc.code})") from exc
        except OSError as exc:
            raise DataplaneError(f"{what}: {exc}") from exc

    # ------------------------------------------------------------------ links

    def links(self, prefix: str = "") -> list[Link]:
        """Links whose name starts with ``prefix`` (e.g. ``gh`` for workload veths)."""
        out = []
        for msg in self._call("list links", self._ipr.link, "dump"):
            name = msg.get("ifname")
            if name is None or not name.startswith(prefix):
                continue
            info = msg.get("linkinfo")
            out.append(Link(
                name=name, index=msg["index"], mac=msg.get("address"), mtu=msg.get("mtu") or 0,
                up=bool(msg["flags"] & 1), kind=info.get("kind") if info else None,
            ))
        return out

    def link_index(self, name: str) -> int | None:
        if self.netns is None:
            # Our own namespace: one ioctl instead of a netlink dump of every link.
            try:
                return socket.if_nametoindex(name)
            except OSError:
                return None
        found = self._call(f"look up {name}", self._ipr.link_lookup, ifname=name)
        return found[0] if found else None

    def _index(self, name: str) -> int:
        idx = self.link_index(name)
        if idx is None:
            raise DataplaneError(f"no interface {name!r} in namespace {self.netns or '(current)'}")
        return idx

    def _names(self) -> dict[int, str]:
        return {lk.index: lk.name for lk in self.links()}

    # ------------------------------------------------------------------ routes

    def list_routes(self, proto: int | None = RTPROT_GINGHAM, table: int = MAIN_TABLE) -> list[Route]:
        """Routes of the table (main by default) with protocol ``proto`` (None: all)."""
        names = self._names()
        kw: dict[str, Any] = {"table": table}
        if proto is not None:
            kw["proto"] = proto
        out = []
        for msg in self._call("list routes", self._ipr.route, "dump", **kw):
            r = self._route_from_msg(msg, names)
            if r is not None and (proto is None or r.proto == proto) and msg.get("table") == table:
                out.append(r)
        return out

    @staticmethod
    def _route_from_msg(msg: Any, names: dict[int, str]) -> Route | None:
        kind = _RTN.get(msg["type"])
        if kind is None or msg.get("multipath"):
            return None  # local/broadcast/multicast, or multipath: never ours
        family_any = "0.0.0.0" if msg["family"] == 2 else "::"
        dst = ip_network(f"{msg.get('dst') or family_any}/{msg['dst_len']}")
        if kind != "unicast":
            return Route(dst, kind=kind, proto=msg["proto"])  # type: ignore[arg-type]
        oif = msg.get("oif")
        via = msg.get("gateway")
        dev = names.get(oif) if oif is not None else None
        if via is None and dev is None:
            return None
        return Route(dst, via, dev, bool(msg["flags"] & _RTNH_F_ONLINK), "unicast", msg["proto"])

    def _route_args(self, r: Route) -> dict[str, Any]:
        kw: dict[str, Any] = {"dst": str(r.dst), "table": MAIN_TABLE, "proto": r.proto,
                              "type": r.kind}
        if r.kind != "unicast":
            return kw
        if r.via is not None:
            kw["gateway"] = str(r.via)
        if r.dev is not None:
            kw["oif"] = self._index(r.dev)
        if r.onlink:
            kw["flags"] = _RTNH_F_ONLINK
        if r.via is None and r.dst.version == 4:
            kw["scope"] = _RT_SCOPE_LINK  # as `ip route add X dev Y` does
        return kw

    def add_route(self, r: Route) -> None:
        self._call(f"add route {r}", self._ipr.route, "add", **self._route_args(r))

    def replace_route(self, r: Route) -> None:
        self._call(f"replace route {r}", self._ipr.route, "replace", **self._route_args(r))

    def delete_route(self, r: Route, absent_ok: bool = False) -> None:
        """Delete ``r``; ``absent_ok``: a route already gone (ESRCH) is what was wanted."""
        # Scope "nowhere" matches any scope, as iproute2 asks: pyroute2's default
        # misses link-scope routes (a workload's /32), and the kernel says ESRCH.
        kw = {"dst": str(r.dst), "table": MAIN_TABLE, "proto": r.proto, "type": r.kind,
              "scope": _RT_SCOPE_NOWHERE}
        self._call(f"delete route {r}", self._ipr.route, "del", absent_ok=absent_ok, **kw)

    def apply_diff(self, diff: RouteDiff) -> None:
        """Removals first (a stale route may hold a destination), then adds and replaces.
        A route to remove that the kernel removed meanwhile (with its interface) is gone
        as wanted, not an error."""
        for r in diff.remove:
            self.delete_route(r, absent_ok=True)
        for r in (*diff.add, *diff.replace):
            self.replace_route(r)

    def sync_routes(
        self, desired: Iterable[Route], owned: Callable[[Route], bool] | None = None
    ) -> RouteDiff:
        """Make the kernel's protocol-201 routes match ``desired`` with the smallest change.

        ``owned`` narrows which stale protocol-201 routes may be removed (see
        :func:`not_workload_route`). Routes of other protocols on desired
        destinations are replaced; otherwise they are never touched.
        """
        desired = list(desired)
        actual = self.list_routes(proto=RTPROT_GINGHAM)
        wanted = {r.dst for r in desired}
        # a foreign route on a destination we want must be seen to be replaced
        actual += [r for r in self.list_routes(proto=None)
                   if r.proto != RTPROT_GINGHAM and r.dst in wanted]
        diff = diff_routes(desired, actual, owned)
        self.apply_diff(diff)
        return diff

    # ------------------------------------------------------------------ neighbours, FDB

    def list_neighbours(self, dev: str) -> list[Neighbour]:
        idx = self._index(dev)
        out = []
        for msg in self._call(f"list neighbours of {dev}", self._ipr.neigh, "dump", ifindex=idx):
            if msg.get("ifindex") != idx or msg.get("dst") is None:
                continue
            out.append(Neighbour(ip_address(msg.get("dst")), msg.get("lladdr"), dev,
                                 bool(msg["state"] & _NUD_PERMANENT)))
        return out

    def set_neighbour(self, dev: str, dst: str | IPAddress, lladdr: str) -> None:
        """A permanent neighbour entry (replaced if it exists)."""
        self._call(f"set neighbour {dst} on {dev}", self._ipr.neigh, "replace",
                   dst=str(ip_address(dst)), lladdr=lladdr, ifindex=self._index(dev),
                   state=_NUD_PERMANENT)

    def delete_neighbour(self, dev: str, dst: str | IPAddress) -> None:
        self._call(f"delete neighbour {dst} on {dev}", self._ipr.neigh, "del",
                   dst=str(ip_address(dst)), ifindex=self._index(dev))

    def list_fdb(self, dev: str) -> list[FdbEntry]:
        idx = self._index(dev)
        out = []
        for msg in self._call(f"list fdb of {dev}", self._ipr.fdb, "dump", ifindex=idx):
            if msg.get("ifindex") != idx or msg.get("lladdr") is None:
                continue
            dst = msg.get("dst")
            out.append(FdbEntry(msg.get("lladdr"), ip_address(dst) if dst else None, dev))
        return out

    def add_fdb(self, dev: str, lladdr: str, dst: str | IPAddress) -> None:
        """An FDB entry ``lladdr -> dst`` (a VXLAN remote); adding it again is harmless."""
        self._call(f"add fdb {lladdr} dst {dst} on {dev}", self._ipr.fdb, "append",
                   ifindex=self._index(dev), lladdr=lladdr, dst=str(ip_address(dst)))

    def delete_fdb(self, dev: str, lladdr: str, dst: str | IPAddress) -> None:
        self._call(f"delete fdb {lladdr} dst {dst} on {dev}", self._ipr.fdb, "del",
                   ifindex=self._index(dev), lladdr=lladdr, dst=str(ip_address(dst)))


def sync_routes(
    desired: Iterable[Route], netns: str | None = None,
    owned: Callable[[Route], bool] | None = None,
) -> RouteDiff:
    """One-shot :meth:`Netlink.sync_routes` (opens and closes a socket)."""
    with Netlink(netns) as nl:
        return nl.sync_routes(desired, owned)
