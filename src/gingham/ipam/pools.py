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

from gingham.datastore.base import Undecodable
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


def node_labels_of(doc: Any) -> tuple[dict[str, str] | None, str]:
    """The labels of a stored Node resource dict, or (None, why) if unreadable.

    Unreadable labels are not taken as "no labels": a selector such as
    ``!has(zone)`` would then match a node it may not match.
    """
    if isinstance(doc, Undecodable):
        return None, doc.reason
    if not isinstance(doc, Mapping):
        return None, "not a JSON object"
    meta = doc.get("metadata")
    if meta is None:
        return {}, ""
    if not isinstance(meta, Mapping):
        return None, "metadata must be an object"
    labels = meta.get("labels")
    if labels is None:
        return {}, ""
    if not isinstance(labels, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        return None, "metadata.labels must map strings to strings"
    return dict(labels), ""


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


def _spec(doc: Mapping[str, Any], kind: str,
          required: bool = True) -> tuple[str, Mapping[str, Any]]:
    """(name, spec) of a stored resource dict of ``kind``; ValidationError naming
    the field if it is not one (undecodable bytes, another kind, a bad spec)."""
    if isinstance(doc, Undecodable):
        raise ValidationError(doc.reason, kind)
    if not isinstance(doc, Mapping):
        raise ValidationError("not a JSON object", kind)
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    where = f"{kind} {name}" if isinstance(name, str) else kind
    if doc.get("kind") != kind:  # every stored resource names its kind
        raise ValidationError(f"kind is {doc.get('kind')!r}, not {kind}", where)
    spec = doc.get("spec")
    if spec is None and not required:
        spec = {}
    if not isinstance(spec, Mapping):
        raise ValidationError("missing" if spec is None else "must be an object",
                              f"{where}: spec")
    return name if isinstance(name, str) else "", spec


def _typed(spec: Mapping[str, Any], field: str, kind: type, default: Any, where: str) -> Any:
    """``spec[field]`` if of ``kind`` (absent or null: ``default``); a bool is no int."""
    value = spec.get(field)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValidationError(f"must be a {kind.__name__}, not {value!r}",
                              f"{where}: spec.{field}")
    return value


def pool_from_resource(doc: Mapping[str, Any]) -> PoolSpec:
    """A PoolSpec from a stored IPPool resource dict (Calico field names).

    Types are checked as the model checks them (strictly): a pool read
    differently from how it was meant is worse than a pool skipped.
    """
    name, spec = _spec(doc, "IPPool")
    where = f"IPPool {name}"
    text = _typed(spec, "cidr", str, None, where)
    if text is None:
        raise ValidationError("missing", f"{where}: spec.cidr")
    try:
        cidr = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise ValidationError(f"bad cidr: {exc}", f"{where}: spec.cidr") from exc
    size = _typed(spec, "blockSize", int, DEFAULT_BLOCK_SIZE[cidr.version], where)
    uses = _typed(spec, "allowedUses", list, ["Workload", "Tunnel"], where)
    if not all(isinstance(u, str) for u in uses):
        raise ValidationError("must be a list of strings", f"{where}: spec.allowedUses")
    mode = _typed(spec, "assignmentMode", str, "Automatic", where)
    if mode not in ("Automatic", "Manual"):
        raise ValidationError(f"{mode!r} is not Automatic or Manual",
                              f"{where}: spec.assignmentMode")
    return PoolSpec(
        cidr=cidr, block_size=size, name=name,
        node_selector=_typed(spec, "nodeSelector", str, "", where) or "all()",
        disabled=_typed(spec, "disabled", bool, False, where),
        vxlan_mode=_typed(spec, "vxlanMode", str, "", where) or "Never",
        nat_outgoing=_typed(spec, "natOutgoing", bool, False, where),
        allowed_uses=tuple(uses),
        assignment_mode=mode,
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
    name, spec = _spec(doc, "IPReservation", required=False)
    where = f"IPReservation {name}: spec.reservedCIDRs"
    cidrs = spec.get("reservedCIDRs")
    if cidrs is None:
        return []
    if not isinstance(cidrs, list):
        raise ValidationError("must be a list", where)
    out: list[IPNetwork] = []
    for i, c in enumerate(cidrs):
        if not isinstance(c, str):
            raise ValidationError(f"must be a string, not {c!r}", f"{where}[{i}]")
        try:
            out.append(ipaddress.ip_network(c, strict=False))
        except ValueError as exc:
            raise ValidationError(f"bad CIDR: {exc}", f"{where}[{i}]") from exc
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
