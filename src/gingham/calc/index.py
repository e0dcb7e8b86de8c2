"""Incremental matching of many selectors against many label sets.

The calculation graph asks two questions over and over: "which selectors
match this item now that its labels changed?" and "which items does this new
selector match?". Answering either by scanning everything is O(selectors) or
O(items) per update; with 100,000 endpoints that is too slow. This index
answers both from posting lists:

- each selector is filed under one *requirement* taken from its syntax tree:
  a label key with a set of values it must have (``k == v``, ``k in {…}``),
  or a key it must have (``has(k)``), or nothing (filed as "scan always");
- each item is filed under every (key, value) pair and every key it has.

An item update then evaluates only the selectors filed under its own pairs
and keys plus the scan-always ones; a new selector evaluates only the items
in its posting lists. The requirement is a necessary condition, never
sufficient, so every candidate is still evaluated.

Invariants: ``matches(sel)`` is exactly the set of items whose current labels
the selector's predicate accepts; every (selector, item) pair is reported
started once and stopped once (return, don't send: results come back as
values, nothing is called).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from gingham.selector.ast import And, Cmp, Has, InSet, Node, Or

Labels = Mapping[str, str]
Predicate = Callable[[Labels], bool]

S = TypeVar("S", bound=Hashable)
I = TypeVar("I", bound=Hashable)  # noqa: E741 - type variable for item ids
_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Requirement:
    """A necessary condition: ``key`` present, and if ``values`` is set, one of them."""

    key: str
    values: frozenset[str] | None


def requirement_of(node: Node) -> Requirement | None:
    """The most selective necessary label condition of ``node``, or None."""
    if isinstance(node, Cmp):
        if node.op == "==":
            return Requirement(node.key, frozenset((node.value,)))
        if node.op in ("contains", "starts with", "ends with"):
            return Requirement(node.key, None)
        return None
    if isinstance(node, InSet):
        return None if node.negated else Requirement(node.key, frozenset(node.values))
    if isinstance(node, Has):
        return Requirement(node.key, None)
    if isinstance(node, And):
        best: Requirement | None = None
        for child in node.children:
            req = requirement_of(child)
            if req is not None and _better(req, best):
                best = req
        return best
    if isinstance(node, Or):
        # Only a disjunction over one key keeps a requirement: the union.
        reqs = [requirement_of(c) for c in node.children]
        if not reqs or any(r is None for r in reqs):
            return None
        keys = {r.key for r in reqs if r is not None}
        if len(keys) != 1:
            return None
        if any(r is not None and r.values is None for r in reqs):
            return Requirement(keys.pop(), None)
        values: frozenset[str] = frozenset().union(*(r.values for r in reqs if r and r.values))
        return Requirement(keys.pop(), values)
    return None


def _better(req: Requirement, best: Requirement | None) -> bool:
    if best is None:
        return True
    if req.values is None:
        return False
    return best.values is None or len(req.values) < len(best.values)


class SelectorMatcher(Generic[S, I]):
    """Which registered selectors match which items, kept up to date incrementally."""

    def __init__(self) -> None:
        self._preds: dict[S, Predicate] = {}
        self._reqs: dict[S, Requirement | None] = {}
        self._by_pair: dict[tuple[str, str], set[S]] = {}
        self._by_key: dict[str, set[S]] = {}
        self._always: set[S] = set()
        self._labels: dict[I, Labels] = {}
        self._items_by_pair: dict[tuple[str, str], set[I]] = {}
        self._items_by_key: dict[str, set[I]] = {}
        self._matches: dict[S, set[I]] = {}
        self._item_matches: dict[I, set[S]] = {}

    # --- queries -----------------------------------------------------------

    def matches(self, sel: S) -> frozenset[I]:
        return frozenset(self._matches.get(sel, ()))

    def matching_selectors(self, item: I) -> frozenset[S]:
        return frozenset(self._item_matches.get(item, ()))

    def labels(self, item: I) -> Labels | None:
        return self._labels.get(item)

    def has_selector(self, sel: S) -> bool:
        return sel in self._preds

    def __len__(self) -> int:
        return len(self._labels)

    # --- selectors ---------------------------------------------------------

    def add_selector(self, sel: S, node: Node, pred: Predicate) -> frozenset[I]:
        """Register ``sel``; returns the items it matches.

        Selector ids name one meaning (e.g. canonical text): adding an id that
        is already registered changes nothing and returns its matches.
        """
        if sel in self._preds:
            return frozenset(self._matches[sel])
        req = requirement_of(node)
        self._preds[sel] = pred
        self._reqs[sel] = req
        if req is None:
            self._always.add(sel)
            candidates: Iterable[I] = self._labels
        elif req.values is None:
            self._by_key.setdefault(req.key, set()).add(sel)
            candidates = self._items_by_key.get(req.key, ())
        else:
            for v in req.values:
                self._by_pair.setdefault((req.key, v), set()).add(sel)
            candidates = self._candidates_for_values(req.key, req.values)
        labels = self._labels
        matched = {i for i in candidates if pred(labels[i])}
        self._matches[sel] = matched
        for i in matched:
            self._item_matches.setdefault(i, set()).add(sel)
        return frozenset(matched)

    def _candidates_for_values(self, key: str, values: frozenset[str]) -> Iterable[I]:
        if len(values) == 1:
            (v,) = values
            return self._items_by_pair.get((key, v), ())
        out: set[I] = set()
        for v in values:
            out.update(self._items_by_pair.get((key, v), ()))
        return out

    def remove_selector(self, sel: S) -> frozenset[I]:
        """Unregister ``sel``; returns the items it matched."""
        if sel not in self._preds:
            return frozenset()
        del self._preds[sel]
        req = self._reqs.pop(sel)
        if req is None:
            self._always.discard(sel)
        elif req.values is None:
            _discard(self._by_key, req.key, sel)
        else:
            for v in req.values:
                _discard(self._by_pair, (req.key, v), sel)
        matched = self._matches.pop(sel, set())
        for i in matched:
            _discard(self._item_matches, i, sel)
        return frozenset(matched)

    # --- items -------------------------------------------------------------

    def update_item(self, item: I, labels: Labels) -> tuple[set[S], set[S]]:
        """Set the labels of ``item``; returns (selectors started, selectors stopped)."""
        old_labels = self._labels.get(item)
        if old_labels is not None:
            if old_labels == labels:
                return set(), set()
            self._unfile_item(item, old_labels)
        self._labels[item] = labels
        for k, v in labels.items():
            self._items_by_pair.setdefault((k, v), set()).add(item)
            self._items_by_key.setdefault(k, set()).add(item)
        now = self._evaluate(labels)
        before = self._item_matches.get(item, set())
        started = now - before
        stopped = before - now
        for sel in started:
            self._matches[sel].add(item)
        for sel in stopped:
            self._matches[sel].discard(item)
        if now:
            self._item_matches[item] = now
        else:
            self._item_matches.pop(item, None)
        return started, stopped

    def remove_item(self, item: I) -> set[S]:
        """Forget ``item``; returns the selectors that matched it."""
        old_labels = self._labels.pop(item, None)
        if old_labels is None:
            return set()
        self._unfile_item(item, old_labels)
        before = self._item_matches.pop(item, set())
        for sel in before:
            self._matches[sel].discard(item)
        return before

    def _unfile_item(self, item: I, labels: Labels) -> None:
        for k, v in labels.items():
            _discard(self._items_by_pair, (k, v), item)
            _discard(self._items_by_key, k, item)

    def _evaluate(self, labels: Labels) -> set[S]:
        candidates: set[S] = set(self._always)
        by_pair, by_key = self._by_pair, self._by_key
        for k, v in labels.items():
            sels = by_pair.get((k, v))
            if sels:
                candidates.update(sels)
            sels = by_key.get(k)
            if sels:
                candidates.update(sels)
        preds = self._preds
        return {s for s in candidates if preds[s](labels)}


def _discard(index: dict[_K, set[_V]], key: _K, value: _V) -> None:
    bucket = index.get(key)
    if bucket is not None:
        bucket.discard(value)
        if not bucket:
            del index[key]
