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
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

Labels = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class _Inputs:
    own: Labels
    parents: tuple[str, ...]
    implicit: Labels


class LabelInheritance:
    def __init__(self) -> None:
        self._inputs: dict[Hashable, _Inputs] = {}
        self._labels: dict[Hashable, dict[str, str]] = {}
        self._parent_labels: dict[str, Labels] = {}
        self._children: dict[str, set[Hashable]] = {}

    def labels(self, item_id: Hashable) -> Labels:
        return self._labels[item_id]

    def update_item(
        self, item_id: Hashable, own: Labels, parents: tuple[str, ...], implicit: Labels
    ) -> Labels:
        """Set an item's inputs; returns its effective labels."""
        old = self._inputs.get(item_id)
        if old is not None and old.parents != parents:
            self._unfile(item_id, old.parents)
        if old is None or old.parents != parents:
            for parent in parents:
                self._children.setdefault(parent, set()).add(item_id)
        inputs = _Inputs(own, parents, implicit)
        self._inputs[item_id] = inputs
        labels = self._compute(inputs)
        self._labels[item_id] = labels
        return labels

    def remove_item(self, item_id: Hashable) -> None:
        old = self._inputs.pop(item_id, None)
        if old is not None:
            self._unfile(item_id, old.parents)
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
            self._parent_labels[name] = labels
        changed: list[tuple[Hashable, Labels]] = []
        for item_id in self._children.get(name, ()):
            new = self._compute(self._inputs[item_id])
            if new != self._labels[item_id]:
                self._labels[item_id] = new
                changed.append((item_id, new))
        return changed

    def _compute(self, inputs: _Inputs) -> dict[str, str]:
        labels: dict[str, str] = {}
        for parent in reversed(inputs.parents):
            inherited = self._parent_labels.get(parent)
            if inherited:
                labels.update(inherited)
        labels.update(inputs.own)
        labels.update(inputs.implicit)
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
