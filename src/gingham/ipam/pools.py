"""Pools and reservations as small pure types, read from stored resource dicts.

The IPAM works on these rather than on the pydantic model so that the CNI
path never imports pydantic; ``pool_from_model`` adapts a model object.
"""

from __future__ import annotations

import bisect
import ipaddress
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from gingham.errors import ValidationError
from gingham.ipam.block import MAX_BLOCK_ADDRESSES, IPAddress, IPNetwork

DEFAULT_BLOCK_SIZE = {4: 26, 6: 122}


@dataclass(frozen=True, slots=True)
class PoolSpec:
    cidr: IPNetwork
    block_size: int
    name: str = ""
    node_selector: str = "all()"
    disabled: bool = False
    vxlan_mode: str = "Never"
    nat_outgoing: bool = False
    allowed_uses: tuple[str, ...] = ("Workload", "Tunnel")
    assignment_mode: str = "Automatic"  # "Manual": only when asked for by CIDR

    def __post_init__(self) -> None:
        where = f"IPPool {self.name or self.cidr}: spec.blockSize"
        bits = self.cidr.max_prefixlen
        if not self.cidr.prefixlen <= self.block_size <= bits:
            raise ValidationError(
                f"{self.block_size} must lie between the pool's prefix length "
                f"{self.cidr.prefixlen} and {bits}", where)
        if 2 ** (bits - self.block_size) > MAX_BLOCK_ADDRESSES:
            raise ValidationError(f"/{self.block_size} blocks are larger than "
                                  f"{MAX_BLOCK_ADDRESSES} addresses", where)

    @property
    def version(self) -> int:
        return self.cidr.version

    @property
    def block_count(self) -> int:
        return int(2 ** (self.block_size - self.cidr.prefixlen))

    def block_for(self, ip: IPAddress) -> IPNetwork:
        return ipaddress.ip_network(f"{ip}/{self.block_size}", strict=False)

    def block_at(self, index: int) -> IPNetwork:
        step = 2 ** (self.cidr.max_prefixlen - self.block_size)
        base = int(self.cidr.network_address) + index * step
        return ipaddress.ip_network(f"{ipaddress.ip_address(base)}/{self.block_size}")

    def matches_node(self, labels: Mapping[str, str]) -> bool:
        return selector_matches(self.node_selector, labels)


def selector_matches(expr: str, labels: Mapping[str, str]) -> bool:
    text = (expr or "").strip()
    if text in ("", "all()"):
        return True
    try:  # the selector package is heavier than the CNI path needs: import on demand
        from gingham.selector import parse
    except ImportError as exc:
        raise ValidationError(f"cannot evaluate nodeSelector {expr!r}: selector support "
                              "is not available", "spec.nodeSelector") from exc
    return bool(parse(text).evaluate(dict(labels)))


def _spec(doc: Mapping[str, Any], what: str) -> tuple[str, Mapping[str, Any]]:
    meta = doc.get("metadata") or {}
    name = str(meta.get("name", "")) if isinstance(meta, Mapping) else ""
    spec = doc.get("spec")
    if not isinstance(spec, Mapping):
        raise ValidationError("missing spec", f"{what} {name}")
    return name, spec


def pool_from_resource(doc: Mapping[str, Any]) -> PoolSpec:
    """A PoolSpec from a stored IPPool resource dict (Calico field names)."""
    name, spec = _spec(doc, "IPPool")
    where = f"IPPool {name}"
    try:
        cidr = ipaddress.ip_network(str(spec.get("cidr")))
    except ValueError as exc:
        raise ValidationError(f"bad cidr: {exc}", f"{where}: spec.cidr") from exc
    size = spec.get("blockSize")
    if size is None:
        size = DEFAULT_BLOCK_SIZE[cidr.version]
    if not isinstance(size, int) or isinstance(size, bool):
        raise ValidationError("must be an integer", f"{where}: spec.blockSize")
    return PoolSpec(
        cidr=cidr, block_size=size, name=name,
        node_selector=str(spec.get("nodeSelector") or "all()"),
        disabled=bool(spec.get("disabled", False)),
        vxlan_mode=str(spec.get("vxlanMode") or "Never"),
        nat_outgoing=bool(spec.get("natOutgoing", False)),
        allowed_uses=tuple(str(u) for u in spec.get("allowedUses") or ("Workload", "Tunnel")),
        assignment_mode=str(spec.get("assignmentMode") or "Automatic"),
    )


def pool_from_model(pool: Any) -> PoolSpec:
    """Adapt a ``gingham.model.IPPool`` (duck-typed: snake_case attributes)."""
    spec = pool.spec
    cidr = ipaddress.ip_network(str(spec.cidr))
    size = getattr(spec, "block_size", None) or DEFAULT_BLOCK_SIZE[cidr.version]
    return PoolSpec(
        cidr=cidr, block_size=int(size), name=str(pool.metadata.name),
        node_selector=str(getattr(spec, "node_selector", None) or "all()"),
        disabled=bool(getattr(spec, "disabled", False)),
        vxlan_mode=str(getattr(spec, "vxlan_mode", None) or "Never"),
        nat_outgoing=bool(getattr(spec, "nat_outgoing", False)),
        allowed_uses=tuple(getattr(spec, "allowed_uses", None) or ("Workload", "Tunnel")),
        assignment_mode=str(getattr(spec, "assignment_mode", None) or "Automatic"),
    )


def reservations_from_resource(doc: Mapping[str, Any]) -> list[IPNetwork]:
    name, spec = _spec(doc, "IPReservation")
    cidrs = spec.get("reservedCIDRs") or []
    if not isinstance(cidrs, list):
        raise ValidationError("must be a list", f"IPReservation {name}: spec.reservedCIDRs")
    out: list[IPNetwork] = []
    for i, c in enumerate(cidrs):
        try:
            out.append(ipaddress.ip_network(str(c), strict=False))
        except ValueError as exc:
            raise ValidationError(f"bad CIDR: {exc}",
                                  f"IPReservation {name}: spec.reservedCIDRs[{i}]") from exc
    return out


class Reservations:
    """Reserved ranges; answers per block which ordinals must never be handed out."""

    def __init__(self, nets: Iterable[IPNetwork] = ()) -> None:
        self.nets = list(nets)

    def contains(self, ip: IPAddress) -> bool:
        return any(ip.version == n.version and ip in n for n in self.nets)

    def skip_for(self, block: IPNetwork) -> Callable[[int], bool]:
        lo = int(block.network_address)
        hi = int(block.broadcast_address)
        ranges: list[tuple[int, int]] = []
        for n in self.nets:
            if n.version != block.version:
                continue
            a, b = int(n.network_address), int(n.broadcast_address)
            if b < lo or a > hi:
                continue
            ranges.append((max(a, lo) - lo, min(b, hi) - lo))
        if not ranges:
            return lambda _o: False
        return lambda o: any(a <= o <= b for a, b in ranges)

    def count_in(self, net: IPNetwork) -> int:
        """Reserved addresses inside ``net`` (overlapping reservations counted once)."""
        lo, hi = int(net.network_address), int(net.broadcast_address)
        spans = sorted((max(int(n.network_address), lo), min(int(n.broadcast_address), hi))
                       for n in self.nets
                       if n.version == net.version and n.overlaps(net))
        total, end = 0, lo - 1
        for a, b in spans:
            a = max(a, end + 1)
            if b >= a:
                total += b - a + 1
                end = b
        return total


class Occupied:
    """Address ranges already covered by existing blocks (of any size)."""

    def __init__(self, nets: Iterable[IPNetwork]) -> None:
        self._starts: dict[int, list[int]] = {4: [], 6: []}
        self._reach: dict[int, list[int]] = {4: [], 6: []}  # running max of span ends
        for n in sorted(nets, key=lambda n: (n.version, int(n.network_address))):
            reach = self._reach[n.version]
            self._starts[n.version].append(int(n.network_address))
            end = int(n.broadcast_address)
            reach.append(max(end, reach[-1]) if reach else end)

    def overlaps(self, net: IPNetwork) -> bool:
        starts, reach = self._starts[net.version], self._reach[net.version]
        i = bisect.bisect_right(starts, int(net.broadcast_address))
        return i > 0 and reach[i - 1] >= int(net.network_address)


def free_blocks(pool: PoolSpec, occupied: Occupied, rng: random.Random,
                limit: int = 1 << 16) -> Iterator[IPNetwork]:
    """Blocks of ``pool`` no existing block overlaps, from a random start, wrapping.

    A random start keeps hosts that claim at the same moment from all racing
    for the first free block.
    """
    count = pool.block_count
    start = rng.randrange(count)
    for k in range(min(count, limit)):
        net = pool.block_at((start + k) % count)
        if not occupied.overlaps(net):
            yield net
