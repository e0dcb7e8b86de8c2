"""IP-set member index: fills the active IP sets from every endpoint and network set.

Items are everything that can be an IP-set member, cluster-wide: workload
endpoints, host endpoints, NetworkSets and GlobalNetworkSets. Each item has
its effective labels (computed by the graph), the CIDRs it contributes to
``net`` sets and the named ports it declares.

Sets come and go as the rule scanner references them. A ``net`` set holds the
CIDRs of the items its selector matches; a ``net-port`` set for (proto, name)
holds ``<addr>,<proto>:<port>`` for every matching item that declares a named
port ``name`` with that protocol.

Members are reference-counted per set (two items may contribute the same
CIDR): a member is reported added on 0 -> 1 and removed on 1 -> 0, exactly
once each, to the :class:`MemberSink`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from gingham.calc.rules import IPSetSpec
from gingham.selector import SelectorIndex

ItemID = Hashable


@dataclass(frozen=True, slots=True)
class Item:
    """What one item contributes. ``named_ports`` are (name, protocol, port)."""

    nets: tuple[str, ...]
    addrs: tuple[str, ...]
    named_ports: tuple[tuple[str, str, int], ...] = ()


class MemberSink(Protocol):
    def set_member_added(self, set_id: str, member: str) -> None: ...
    def set_member_removed(self, set_id: str, member: str) -> None: ...


def contributions(spec: IPSetSpec, item: Item) -> Iterable[str]:
    if spec.named_port is None:
        return item.nets
    proto, name = spec.named_port
    return [
        f"{addr},{proto}:{port}"
        for (pname, pproto, port) in item.named_ports
        if pname == name and pproto == proto
        for addr in item.addrs
    ]


class IPSetMembers:
    def __init__(self, sink: MemberSink) -> None:
        self._sink = sink
        self._index: SelectorIndex[str, ItemID] = SelectorIndex()
        self._items: dict[ItemID, Item] = {}
        self._specs: dict[str, IPSetSpec] = {}
        self._sets_by_selector: dict[str, set[str]] = {}
        self._members: dict[str, dict[str, int]] = {}

    # --- queries -----------------------------------------------------------

    def members(self, set_id: str) -> frozenset[str]:
        return frozenset(self._members.get(set_id, ()))

    def set_ids(self) -> frozenset[str]:
        return frozenset(self._specs)

    def item_count(self) -> int:
        return len(self._items)

    def stats(self) -> dict[str, int]:
        return {
            "member_items": len(self._items),
            "member_index_items": self._index.item_count,
            "member_index_selectors": self._index.selector_count,
            "member_sets": len(self._specs),
            "member_entries": sum(len(c) for c in self._members.values()),
        }

    # --- sets --------------------------------------------------------------

    def add_set(self, spec: IPSetSpec) -> None:
        """Start computing ``spec`` (the scanner's first reference)."""
        if spec.set_id in self._specs:
            return
        self._specs[spec.set_id] = spec
        self._members[spec.set_id] = {}
        canonical = spec.selector.canonical
        users = self._sets_by_selector.setdefault(canonical, set())
        users.add(spec.set_id)
        if len(users) == 1:
            self._index.update_selector(canonical, spec.selector)
        for item_id in self._index.items_matching(canonical):
            self._add(spec, self._items[item_id])

    def remove_set(self, set_id: str) -> None:
        """Stop computing a set (the scanner's last reference went away)."""
        spec = self._specs.pop(set_id, None)
        if spec is None:
            return
        del self._members[set_id]
        canonical = spec.selector.canonical
        users = self._sets_by_selector[canonical]
        users.discard(set_id)
        if not users:
            del self._sets_by_selector[canonical]
            self._index.remove_selector(canonical)

    # --- items -------------------------------------------------------------

    def update_item(self, item_id: ItemID, labels: Mapping[str, str], item: Item) -> None:
        old = self._items.get(item_id)
        started: list[str] = []
        stopped: list[str] = []
        for change in self._index.update_labels(item_id, labels):
            (started if change.matched else stopped).append(change.selector_id)
        self._items[item_id] = item
        if old is not None and old != item:
            # Contributions changed: swap old for new in every set it stays in.
            for sel in self._index.selectors_matching(item_id).difference(started):
                for set_id in self._sets_by_selector.get(sel, ()):
                    self._remove(self._specs[set_id], old)
                    self._add(self._specs[set_id], item)
        for sel in stopped:
            for set_id in self._sets_by_selector.get(sel, ()):
                self._remove(self._specs[set_id], old if old is not None else item)
        for sel in started:
            for set_id in self._sets_by_selector.get(sel, ()):
                self._add(self._specs[set_id], item)

    def remove_item(self, item_id: ItemID) -> None:
        old = self._items.pop(item_id, None)
        if old is None:
            return
        for change in self._index.remove_labels(item_id):
            for set_id in self._sets_by_selector.get(change.selector_id, ()):
                self._remove(self._specs[set_id], old)

    # --- member refcounts --------------------------------------------------

    def _add(self, spec: IPSetSpec, item: Item) -> None:
        counts = self._members[spec.set_id]
        for m in contributions(spec, item):
            n = counts.get(m, 0)
            counts[m] = n + 1
            if n == 0:
                self._sink.set_member_added(spec.set_id, m)

    def _remove(self, spec: IPSetSpec, item: Item) -> None:
        counts = self._members[spec.set_id]
        for m in contributions(spec, item):
            n = counts[m]
            if n == 1:
                del counts[m]
                self._sink.set_member_removed(spec.set_id, m)
            else:
                counts[m] = n - 1
