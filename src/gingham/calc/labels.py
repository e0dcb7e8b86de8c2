"""Label inheritance: an item's effective labels from its own, its parents' and implicit ones.

Items are endpoints and network sets; parents are profiles, whose
``labelsToApply`` every child inherits (a Namespace reaches its workloads this
way, as profile ``kns.<ns>`` with ``pcns.``-prefixed labels). Precedence, from
weakest to strongest: parents' labels, later parents before earlier ones (the
first parent listed wins); the item's own labels; the implicit labels calc
adds (``projectcalico.org/namespace`` and friends), so no workload can claim
another namespace by labelling itself.

Invariant: every item is filed under each of its parents exactly once while
it exists, and under no parent after it is removed.

Memory (100k endpoints, most of them remote): an item keeps one small tuple of
its inputs and its effective labels. The inputs are *interned*: many items
share one label set (replicas of a deployment), one parent list and one set
of implicit labels (a namespace), so identical inputs are stored once
(:func:`frozen_labels`, :func:`frozen_parents`; bounded caches, so sharing is
an optimisation and never a condition of correctness). Effective label
mappings are never changed in place once handed out: a change makes a new
one, so callers may keep them (the member index does) without copying.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from functools import lru_cache

Labels = Mapping[str, str]
_Inputs = tuple[Labels, tuple[str, ...], Labels]  # own, parents, implicit (all interned)

_EMPTY: Labels = {}


def frozen_labels(labels: Mapping[str, str] | None) -> Labels:
    """A mapping equal to ``labels`` that nobody changes, shared between equal inputs."""
    if not labels:
        return _EMPTY
    return _intern_labels(tuple(labels.items()))


@lru_cache(maxsize=16384)
def _intern_labels(items: tuple[tuple[str, str], ...]) -> Labels:
    return dict(items)


@lru_cache(maxsize=16384)
def frozen_parents(parents: tuple[str, ...]) -> tuple[str, ...]:
    """``parents``, shared between equal tuples (names included)."""
    return tuple(_intern_name(p) for p in parents)


@lru_cache(maxsize=16384)
def _intern_name(name: str) -> str:
    return name


class LabelInheritance:
    def __init__(self) -> None:
        self._inputs: dict[Hashable, _Inputs] = {}
        self._labels: dict[Hashable, Labels] = {}
        self._parent_labels: dict[str, Labels] = {}
        self._children: dict[str, set[Hashable]] = {}

    def labels(self, item_id: Hashable) -> Labels:
        return self._labels[item_id]

    def update_item(
        self, item_id: Hashable, own: Labels, parents: tuple[str, ...], implicit: Labels
    ) -> Labels:
        """Set an item's inputs; returns its effective labels (not to be changed)."""
        inputs = (frozen_labels(own), frozen_parents(parents), frozen_labels(implicit))
        old = self._inputs.get(item_id)
        if old is not None and old[1] != parents:
            self._unfile(item_id, old[1])
        if old is None or old[1] != parents:
            for parent in inputs[1]:
                self._children.setdefault(parent, set()).add(item_id)
        self._inputs[item_id] = inputs
        labels = self._compute(inputs)
        before = self._labels.get(item_id)
        if before is not None and before == labels:
            labels = before  # the same mapping: its users see nothing changed
        self._labels[item_id] = labels
        return labels

    def remove_item(self, item_id: Hashable) -> None:
        old = self._inputs.pop(item_id, None)
        if old is not None:
            self._unfile(item_id, old[1])
            del self._labels[item_id]

    def update_parent(self, name: str, labels: Labels | None) -> list[tuple[Hashable, Labels]]:
        """Set (None: forget) a parent's labels; returns the children whose
        effective labels changed, with their new labels."""
        if (self._parent_labels.get(name) or {}) == (labels or {}):
            if labels is None:
                self._parent_labels.pop(name, None)
            return []
        if labels is None:
            del self._parent_labels[name]
        else:
            self._parent_labels[name] = dict(labels)
        changed: list[tuple[Hashable, Labels]] = []
        for item_id in self._children.get(name, ()):
            new = self._compute(self._inputs[item_id])
            if new != self._labels[item_id]:
                self._labels[item_id] = new
                changed.append((item_id, new))
        return changed

    def _compute(self, inputs: _Inputs) -> Labels:
        own, parents, implicit = inputs
        labels: dict[str, str] = {}
        parent_labels = self._parent_labels
        for parent in reversed(parents):
            inherited = parent_labels.get(parent)
            if inherited:
                labels.update(inherited)
        if not labels and not implicit:
            return own  # already shared and never changed
        labels.update(own)
        labels.update(implicit)
        return labels

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
        }
