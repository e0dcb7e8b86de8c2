"""Label inheritance: an item's effective labels from its own, its parents' and implicit ones.

Items are endpoints and network sets; parents are profiles, whose
``labelsToApply`` every child inherits (a Namespace reaches its workloads this
way, as profile ``kns.<ns>`` with ``pcns.``-prefixed labels). Precedence, from
weakest to strongest: parents' labels, later parents before earlier ones (the
first parent listed wins); the item's own labels; the implicit labels calc
adds (``projectcalico.org/namespace`` and friends), so no workload can claim
another namespace by labelling itself.

Invariant: every item is filed under each of its parents exactly once while
it exists, and under no parent after it is removed; likewise under the group
of its own labels and that of its implicit labels (see :meth:`candidates`).

Memory (100k endpoints, most of them remote): an item keeps one small tuple of
its inputs; its effective labels are computed when asked for (about a
microsecond), never stored. The inputs are *interned*: many items
share one label set (replicas of a deployment), one parent list and one set
of implicit labels (a namespace), so identical inputs are stored once
(:func:`frozen_labels`, :func:`frozen_parents`; bounded caches, so sharing is
an optimisation and never a condition of correctness). Nothing kept per item
is an object the garbage collector tracks (tuples of strings), so 100k
endpoints add no work to its full collections.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from functools import lru_cache

Labels = Mapping[str, str]
LabelItems = tuple[tuple[str, str], ...]
# own labels, parents, implicit labels; all interned, and all tuples of strings:
# the garbage collector stops tracking those (a tuple holding a dict, never).
_Inputs = tuple[LabelItems, tuple[str, ...], LabelItems]


def frozen_labels(labels: Mapping[str, str] | None) -> LabelItems:
    """``labels`` as a tuple of items, shared between equal inputs."""
    if not labels:
        return ()
    return _intern_labels(tuple(labels.items()))


@lru_cache(maxsize=16384)
def _intern_labels(items: LabelItems) -> LabelItems:
    return items


@lru_cache(maxsize=16384)
def frozen_parents(parents: tuple[str, ...]) -> tuple[str, ...]:
    """``parents``, shared between equal tuples (names included)."""
    return tuple(_intern_name(p) for p in parents)


@lru_cache(maxsize=16384)
def _intern_name(name: str) -> str:
    return name


Posting = tuple[str, str | None]  # (key, value), or (key, None): the key with any value


class _Groups:
    """Items grouped by one of their label inputs (an interned mapping), the
    groups filed by posting: which items have a label, without a per-item index."""

    __slots__ = ("_by_key", "_groups")

    def __init__(self) -> None:
        self._groups: dict[int, tuple[LabelItems, set[Hashable]]] = {}  # id(labels) ->
        self._by_key: dict[str, dict[str | None, set[int]]] = {}

    def __len__(self) -> int:
        return len(self._groups)

    def add(self, labels: LabelItems, item_id: Hashable) -> None:
        if not labels:
            return
        group = self._groups.get(id(labels))
        if group is None:
            group = self._groups[id(labels)] = (labels, set())
            for key, value in labels:
                values = self._by_key.setdefault(key, {})
                values.setdefault(value, set()).add(id(labels))
                values.setdefault(None, set()).add(id(labels))
        group[1].add(item_id)

    def remove(self, labels: LabelItems, item_id: Hashable) -> None:
        if not labels:
            return
        items = self._groups[id(labels)][1]
        items.discard(item_id)
        if items:
            return
        del self._groups[id(labels)]
        for key, value in labels:
            values = self._by_key[key]
            for v in (value, None):
                gids = values[v]
                gids.discard(id(labels))
                if not gids:
                    del values[v]
            if not values:
                del self._by_key[key]

    def items_with(self, key: str, value: str | None, out: set[Hashable]) -> None:
        values = self._by_key.get(key)
        if values is not None:
            for gid in values.get(value, ()):
                out |= self._groups[gid][1]


class LabelInheritance:
    def __init__(self) -> None:
        self._inputs: dict[Hashable, _Inputs] = {}
        self._parent_labels: dict[str, Labels] = {}
        self._children: dict[str, set[Hashable]] = {}
        self._own = _Groups()
        self._implicit = _Groups()
        self._parents_by_key: dict[str, dict[str | None, set[str]]] = {}

    def labels(self, item_id: Hashable) -> Labels:
        """An item's effective labels, computed now from its inputs (not kept:
        a dict per item was the largest thing the graph held per endpoint)."""
        return self._compute(self._inputs[item_id])

    def item_ids(self) -> Iterable[Hashable]:
        return self._inputs.keys()

    def candidates(self, postings: frozenset[Posting]) -> set[Hashable]:
        """Every item whose effective labels hold one of ``postings`` (and maybe more).

        An effective label comes from the item's own labels, its implicit ones
        or a parent's: the groups of those three inputs that have the label
        give the items, without an index entry per item and label."""
        out: set[Hashable] = set()
        for key, value in postings:
            self._own.items_with(key, value, out)
            self._implicit.items_with(key, value, out)
            values = self._parents_by_key.get(key)
            if values is not None:
                for parent in values.get(value, ()):
                    out |= self._children.get(parent, set())
        return out

    def update_item(
        self, item_id: Hashable, own: Labels, parents: tuple[str, ...], implicit: Labels
    ) -> tuple[Labels | None, Labels]:
        """Set an item's inputs; returns its effective labels before (None: it was
        new) and now."""
        inputs = (frozen_labels(own), frozen_parents(parents), frozen_labels(implicit))
        old = self._inputs.get(item_id)
        if old is not None and old[1] != parents:
            self._unfile(item_id, old[1])
        if old is None or old[1] != parents:
            for parent in inputs[1]:
                self._children.setdefault(parent, set()).add(item_id)
        if old is None or old[0] is not inputs[0]:
            if old is not None:
                self._own.remove(old[0], item_id)
            self._own.add(inputs[0], item_id)
        if old is None or old[2] is not inputs[2]:
            if old is not None:
                self._implicit.remove(old[2], item_id)
            self._implicit.add(inputs[2], item_id)
        self._inputs[item_id] = inputs
        before = None if old is None else self._compute(old)
        return before, self._compute(inputs)

    def remove_item(self, item_id: Hashable) -> Labels | None:
        """Forget an item; returns its effective labels (None: unknown)."""
        old = self._inputs.pop(item_id, None)
        if old is None:
            return None
        self._unfile(item_id, old[1])
        self._own.remove(old[0], item_id)
        self._implicit.remove(old[2], item_id)
        return self._compute(old)

    def update_parent(
        self, name: str, labels: Labels | None
    ) -> list[tuple[Hashable, Labels, Labels]]:
        """Set (None: forget) a parent's labels; returns the children whose
        effective labels changed, with their labels before and now."""
        if (self._parent_labels.get(name) or {}) == (labels or {}):
            if labels is None:
                self._parent_labels.pop(name, None)
            return []
        children = self._children.get(name, ())
        olds = [self._compute(self._inputs[item_id]) for item_id in children]
        before = self._parent_labels.pop(name, None)
        if before:
            self._file_parent(name, before, add=False)
        if labels is not None:
            # Copied item by item: a dict so made is one the garbage collector
            # does not track (nor are the children's made from it), while a
            # copy of a tracked dict would be.
            self._parent_labels[name] = dict(labels.items())
            self._file_parent(name, labels, add=True)
        changed: list[tuple[Hashable, Labels, Labels]] = []
        for item_id, old in zip(children, olds, strict=True):
            new = self._compute(self._inputs[item_id])
            if new != old:
                changed.append((item_id, old, new))
        return changed

    def _compute(self, inputs: _Inputs) -> Labels:
        own, parents, implicit = inputs
        labels: dict[str, str] = {}
        parent_labels = self._parent_labels
        for parent in reversed(parents):
            inherited = parent_labels.get(parent)
            if inherited:
                labels.update(inherited)
        labels.update(own)
        labels.update(implicit)
        return labels

    def _file_parent(self, name: str, labels: Labels, *, add: bool) -> None:
        for key, value in labels.items():
            values = self._parents_by_key.setdefault(key, {})
            for v in (value, None):
                if add:
                    values.setdefault(v, set()).add(name)
                else:
                    names = values[v]
                    names.discard(name)
                    if not names:
                        del values[v]
            if not values:
                del self._parents_by_key[key]

    def _unfile(self, item_id: Hashable, parents: tuple[str, ...]) -> None:
        for parent in parents:
            kids = self._children[parent]
            kids.discard(item_id)
            if not kids:
                del self._children[parent]

    def stats(self) -> dict[str, int]:
        return {
            "label_items": len(self._inputs),
            "label_parents": len(self._children),
            "parent_labels": len(self._parent_labels),
            "label_groups": len(self._own) + len(self._implicit),
            "label_parent_keys": len(self._parents_by_key),
        }
