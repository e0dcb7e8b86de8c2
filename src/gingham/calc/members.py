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

Scale (100k items, almost all remote endpoints, a few hundred sets): per item
the index keeps only its contributions, as a tuple of strings; its labels
are the label source's (computed on demand), and which selectors it matches
is found again when it changes: among the selectors its old labels could
match (selectors are filed by the label postings every match must hit,
``gingham.selector.index.postings``), those whose member list holds it. An
update thus evaluates only the selectors that could match it. Items are not
filed by posting (that cost more than everything else together): a new
selector's candidates come from the label source's groups (items sharing an
input), and the selector is *pending* until someone needs members
(:meth:`members`, or :meth:`settle` at flush), then evaluated with all other
pending ones in one batch. A full sync thereby fills every set once, at the
first flush, whatever order policies and endpoints arrived in. Pending sets are exactly those the
sequencer is about to send whole (``set_added`` comes first), so members
found while settling are part of their initial contents, as before.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from gingham.calc.rules import IPSetSpec
from gingham.selector import Selector
from gingham.selector.index import postings

ItemID = Hashable
Labels = Mapping[str, str]
Posting = tuple[str, str | None]


class LabelSource(Protocol):
    """Where the index reads items' labels (the graph's ``LabelInheritance``). Its
    answers must be the labels last given to :meth:`IPSetMembers.update_item`."""

    def labels(self, item_id: ItemID) -> Labels: ...

    def candidates(self, postings: frozenset[Posting]) -> Iterable[ItemID]:
        """Items whose labels hold one of ``postings`` (more is allowed)."""



@dataclass(frozen=True, slots=True)
class Item:
    """What one item contributes. ``named_ports`` are (name, protocol, port);
    ``addrs`` are the addresses named-port members are made of."""

    nets: tuple[str, ...]
    addrs: tuple[str, ...]
    named_ports: tuple[tuple[str, str, int], ...] = ()


class MemberSink(Protocol):
    def set_member_added(self, set_id: str, member: str) -> None: ...
    def set_member_removed(self, set_id: str, member: str) -> None: ...


def contributions(spec: IPSetSpec, item: Item) -> Iterable[str]:
    return _contributions(spec, (item.nets, item.addrs, item.named_ports))


# An item as the index stores it: plain tuples of strings, which the garbage
# collector stops tracking (100k Item objects would each be scanned by every
# full collection). Most items have no named port: those are stored as their
# nets alone (the caller's tuple: nothing new per item).
_Full = tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[str, str, int], ...]]
_Stored = tuple[str, ...] | _Full


def _pack(item: Item) -> _Stored:
    if not item.addrs and not item.named_ports:
        return item.nets
    return (item.nets, item.addrs, item.named_ports)


def _unpack(stored: _Stored) -> _Full:
    if not stored or isinstance(stored[0], str):
        return (stored, (), ())
    return stored


def _contributions(spec: IPSetSpec, item: _Stored) -> Iterable[str]:
    nets, addrs, named_ports = _unpack(item)
    if spec.named_port is None:
        return nets
    if not named_ports:
        return ()
    proto, name = spec.named_port
    return [
        f"{addr},{proto}:{port}"
        for (pname, pproto, port) in named_ports
        if pname == name and pproto == proto
        for addr in addrs
    ]


class _PostingIndex:
    """Selectors (by canonical text) filed under their postings: which could match a label set."""

    __slots__ = ("_by_key", "_postings", "always")

    def __init__(self) -> None:
        # key -> value (None: any value) -> selectors
        self._by_key: dict[str, dict[str | None, set[str]]] = {}
        self._postings: dict[str, frozenset[tuple[str, str | None]] | None] = {}
        self.always: set[str] = set()

    def __len__(self) -> int:
        return len(self._postings)

    def add(self, sid: str, selector: Selector) -> None:
        p = postings(selector.node)
        self._postings[sid] = p
        if p is None:
            self.always.add(sid)
            return
        for key, value in p:
            self._by_key.setdefault(key, {}).setdefault(value, set()).add(sid)

    def remove(self, sid: str) -> None:
        p = self._postings.pop(sid)
        if p is None:
            self.always.discard(sid)
            return
        for key, value in p:
            values = self._by_key[key]
            sids = values[value]
            sids.discard(sid)
            if not sids:
                del values[value]
                if not values:
                    del self._by_key[key]

    def candidates(self, labels: Labels) -> set[str]:
        found = set(self.always)
        by_key = self._by_key
        for key, value in labels.items():
            values = by_key.get(key)
            if values is not None:
                sids = values.get(value)
                if sids:
                    found |= sids
                sids = values.get(None)
                if sids:
                    found |= sids
        return found


class IPSetMembers:
    def __init__(self, sink: MemberSink, labels: LabelSource) -> None:
        self._sink = sink
        self._source = labels
        self._items: dict[ItemID, _Stored] = {}
        self._specs: dict[str, IPSetSpec] = {}
        self._sets_by_selector: dict[str, set[str]] = {}
        self._members: dict[str, dict[str, int]] = {}
        # Settled selectors: indexed by posting, with the items they match.
        self._selectors: dict[str, Selector] = {}
        self._index = _PostingIndex()
        self._matching: dict[str, set[ItemID]] = {}
        # Selectors of new sets whose members are not computed yet.
        self._pending: dict[str, Selector] = {}

    # --- queries -----------------------------------------------------------

    def members(self, set_id: str) -> frozenset[str]:
        self.settle()
        return frozenset(self._members.get(set_id, ()))

    def set_ids(self) -> frozenset[str]:
        return frozenset(self._specs)

    def item_count(self) -> int:
        return len(self._items)

    def has_item(self, item_id: ItemID) -> bool:
        return item_id in self._items

    def item(self, item_id: ItemID) -> Item:
        return Item(*_unpack(self._items[item_id]))

    def stats(self) -> dict[str, int]:
        return {
            "member_items": len(self._items),
            "member_index_items": len(self._items),
            "member_index_selectors": len(self._selectors) + len(self._pending),
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
            self._pending[canonical] = spec.selector
        elif canonical in self._selectors:
            items = self._items
            for item_id in self._matching[canonical]:
                self._add(spec, items[item_id])
        # else: pending, settled with its other users

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
            if self._pending.pop(canonical, None) is None:
                del self._selectors[canonical]
                del self._matching[canonical]
                self._index.remove(canonical)

    def settle(self) -> None:
        """Compute the members of every set added since the last call."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        items, source = self._items, self._source
        labels_of = source.labels
        found: dict[str, set[ItemID]] = {}
        scan: dict[str, Selector] = {}
        for sid, selector in pending.items():
            p = postings(selector.node)
            if p is None:
                scan[sid] = selector
                continue
            evaluate = selector.evaluate
            found[sid] = {
                i for i in source.candidates(p) if i in items and evaluate(labels_of(i))
            }
        if scan:  # selectors without postings: one pass over every item for all of them
            index = _PostingIndex()
            for sid, selector in scan.items():
                index.add(sid, selector)
                found[sid] = set()
            for item_id in items:
                labels = labels_of(item_id)
                for sid in index.candidates(labels):
                    if scan[sid].evaluate(labels):
                        found[sid].add(item_id)
        for sid, selector in pending.items():
            self._selectors[sid] = selector
            self._index.add(sid, selector)
            matched = found[sid]
            self._matching[sid] = matched
            for set_id in self._sets_by_selector[sid]:
                spec = self._specs[set_id]
                for item_id in matched:
                    self._add(spec, items[item_id])

    # --- items -------------------------------------------------------------

    def _matches(self, labels: Labels) -> set[str]:
        """The settled selectors that match ``labels``."""
        selectors = self._selectors
        return {s for s in self._index.candidates(labels) if selectors[s].evaluate(labels)}

    def _matched(self, item_id: ItemID, labels: Labels) -> set[str]:
        """The settled selectors ``item_id`` (whose labels were ``labels``) is in."""
        matching = self._matching
        return {s for s in self._index.candidates(labels) if item_id in matching[s]}

    def update_item(
        self, item_id: ItemID, old_labels: Labels | None, labels: Labels, item: Item
    ) -> None:
        """Set an item's contributions; ``old_labels``: its labels as last given here
        (None: new), ``labels``: now (the label source gives these from now on)."""
        old_item = self._items.get(item_id)
        new = _pack(item)
        self._items[item_id] = new
        if old_item is None or old_labels is None:
            before: set[str] = set()
            now = self._matches(labels)
            old_item = new
        else:
            before = self._matched(item_id, old_labels)
            now = before if old_labels == labels else self._matches(labels)
        matching = self._matching
        if old_item != new:
            # Contributions changed: swap old for new in every set it stays in.
            for sel in before & now:
                for set_id in self._sets_by_selector[sel]:
                    self._remove(self._specs[set_id], old_item)
                    self._add(self._specs[set_id], new)
        if now is before:
            return
        for sel in before - now:
            matching[sel].discard(item_id)
            for set_id in self._sets_by_selector[sel]:
                self._remove(self._specs[set_id], old_item)
        for sel in now - before:
            matching[sel].add(item_id)
            for set_id in self._sets_by_selector[sel]:
                self._add(self._specs[set_id], new)

    def remove_item(self, item_id: ItemID, labels: Labels) -> None:
        """Forget an item whose labels (as last given here) were ``labels``."""
        item = self._items.pop(item_id, None)
        if item is None:
            return
        for sel in self._matched(item_id, labels):
            self._matching[sel].discard(item_id)
            for set_id in self._sets_by_selector[sel]:
                self._remove(self._specs[set_id], item)

    # --- member refcounts --------------------------------------------------

    def _add(self, spec: IPSetSpec, item: _Stored) -> None:
        counts = self._members[spec.set_id]
        for m in _contributions(spec, item):
            n = counts.get(m, 0)
            counts[m] = n + 1
            if n == 0:
                self._sink.set_member_added(spec.set_id, m)

    def _remove(self, spec: IPSetSpec, item: _Stored) -> None:
        counts = self._members[spec.set_id]
        for m in _contributions(spec, item):
            n = counts[m]
            if n == 1:
                del counts[m]
                self._sink.set_member_removed(spec.set_id, m)
            else:
                counts[m] = n - 1
