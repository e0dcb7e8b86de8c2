"""Incremental index of which selectors match which label sets.

:class:`SelectorIndex` holds selectors (by an id of the caller's choosing)
and items with labels (by id) and, on every update, *returns* the
(selector, item) pairs that started or stopped matching. It does no I/O and
calls nobody back.

Invariants (checked against :class:`BruteForceIndex` by property tests):

- After any sequence of calls, the pairs reported as started and not since
  stopped are exactly the pairs where both ids are registered and the
  selector evaluates true on the item's labels.
- So every pair is reported started once and stopped once, alternately,
  beginning with a start; one returned list never holds the same pair twice.
- Re-sending an unchanged selector or label set returns nothing; removing an
  unknown id returns nothing (deletes may be spurious).
- The order of changes within one returned list is unspecified.

How it avoids scanning: from each selector's tree comes a set of *postings*
that every matching label set must hit — ``(key, value)`` from ``==`` and
``in``, ``(key, None)`` from ``has`` and the string operators. ``&&`` needs
one operand's postings (the most selective one), ``||`` needs all of its
operands to have some. Selectors with none (``!=``, ``not in``, ``!``,
``all()``, ``global()`` alone) go in a small always-checked list. Items are
indexed the same way, so a new selector only examines items that hit one of
its postings.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from gingham.selector.ast import And, Cmp, Has, InSet, Node, Or
from gingham.selector.core import Selector

S = TypeVar("S", bound=Hashable)
I = TypeVar("I", bound=Hashable)  # noqa: E741 - the item id type, by analogy with S

# (key, value) or (key, None) for "the key is present, any value"
Posting = tuple[str, str | None]


@dataclass(frozen=True, slots=True)
class MatchChange(Generic[S, I]):
    """``matched`` True: the pair started matching; False: it stopped."""

    selector_id: S
    item_id: I
    matched: bool


def postings(node: Node) -> frozenset[Posting] | None:
    """Postings one of which every label set matching ``node`` contains; None if unknown."""
    if isinstance(node, Cmp):
        if node.op == "==":
            return frozenset(((node.key, node.value),))
        if node.op == "!=":
            return None
        return frozenset(((node.key, None),))
    if isinstance(node, InSet):
        return None if node.negated else frozenset((node.key, v) for v in node.values)
    if isinstance(node, Has):
        return frozenset(((node.key, None),))
    if isinstance(node, And):
        best: frozenset[Posting] | None = None
        for child in node.children:
            p = postings(child)
            if p is not None and (best is None or _cost(p) < _cost(best)):
                best = p
        return best
    if isinstance(node, Or):
        out: set[Posting] = set()
        for child in node.children:
            p = postings(child)
            if p is None:
                return None
            out |= p
        return frozenset(out)
    return None


def _cost(p: frozenset[Posting]) -> tuple[int, int]:
    # A key-only posting hits every item that has the key: prefer values.
    return (sum(1 for _, v in p if v is None), len(p))


def _item_postings(labels: Mapping[str, str]) -> Iterable[Posting]:
    for k, v in labels.items():
        yield (k, v)
        yield (k, None)


class SelectorIndex(Generic[S, I]):
    """Which registered selectors match which registered label sets."""

    def __init__(self) -> None:
        self._selectors: dict[S, Selector] = {}
        self._sel_postings: dict[S, frozenset[Posting] | None] = {}
        self._sels_by_posting: dict[Posting, set[S]] = {}
        self._scan_always: set[S] = set()

        self._labels: dict[I, dict[str, str]] = {}
        self._items_by_posting: dict[Posting, set[I]] = {}

        self._by_selector: dict[S, set[I]] = {}
        self._by_item: dict[I, set[S]] = {}

    # -- queries -------------------------------------------------------------
    def selector(self, sid: S) -> Selector | None:
        return self._selectors.get(sid)

    def labels(self, iid: I) -> Mapping[str, str] | None:
        return self._labels.get(iid)

    def items_matching(self, sid: S) -> frozenset[I]:
        return frozenset(self._by_selector.get(sid, ()))

    def selectors_matching(self, iid: I) -> frozenset[S]:
        return frozenset(self._by_item.get(iid, ()))

    def matches(self) -> set[tuple[S, I]]:
        """Every matching pair (for tests and debugging; O(matches))."""
        return {(s, i) for s, items in self._by_selector.items() for i in items}

    @property
    def selector_count(self) -> int:
        return len(self._selectors)

    @property
    def item_count(self) -> int:
        return len(self._labels)

    @property
    def scan_always_count(self) -> int:
        """Selectors checked against every label change (no usable posting)."""
        return len(self._scan_always)

    # -- selectors -----------------------------------------------------------
    def update_selector(self, sid: S, selector: Selector) -> list[MatchChange[S, I]]:
        old = self._selectors.get(sid)
        if old is not None and old == selector:
            return []
        if old is not None:
            self._unindex_selector(sid)
        self._selectors[sid] = selector
        p = postings(selector.node)
        self._sel_postings[sid] = p
        if p is None:
            self._scan_always.add(sid)
            candidates: Iterable[I] = self._labels
        else:
            for post in p:
                self._sels_by_posting.setdefault(post, set()).add(sid)
            found: set[I] = set()
            for post in p:
                found |= self._items_by_posting.get(post, set())
            candidates = found
        evaluate = selector.evaluate
        labels = self._labels
        now = {i for i in candidates if evaluate(labels[i])}
        return self._set_selector_matches(sid, now)

    def remove_selector(self, sid: S) -> list[MatchChange[S, I]]:
        if sid not in self._selectors:
            return []
        changes = self._set_selector_matches(sid, set())
        self._unindex_selector(sid)
        del self._selectors[sid]
        return changes

    def _unindex_selector(self, sid: S) -> None:
        p = self._sel_postings.pop(sid)
        if p is None:
            self._scan_always.discard(sid)
            return
        for post in p:
            bucket = self._sels_by_posting[post]
            bucket.discard(sid)
            if not bucket:
                del self._sels_by_posting[post]

    def _set_selector_matches(self, sid: S, now: set[I]) -> list[MatchChange[S, I]]:
        before = self._by_selector.get(sid, set())
        gone, new = before - now, now - before
        by_item = self._by_item
        for i in gone:
            sels = by_item[i]
            sels.discard(sid)
            if not sels:
                del by_item[i]
        for i in new:
            by_item.setdefault(i, set()).add(sid)
        if now:
            self._by_selector[sid] = now
        else:
            self._by_selector.pop(sid, None)
        return [MatchChange(sid, i, False) for i in gone] + [MatchChange(sid, i, True) for i in new]

    # -- items ---------------------------------------------------------------
    def update_labels(self, iid: I, labels: Mapping[str, str]) -> list[MatchChange[S, I]]:
        old = self._labels.get(iid)
        if old is not None and old == labels:
            return []
        new = dict(labels)
        if old is not None:
            self._unindex_item(iid, old)
        self._labels[iid] = new
        candidates = set(self._scan_always)
        items_by_posting, sels_by_posting = self._items_by_posting, self._sels_by_posting
        for post in _item_postings(new):
            items_by_posting.setdefault(post, set()).add(iid)
            sids = sels_by_posting.get(post)
            if sids:
                candidates |= sids
        selectors = self._selectors
        now = {s for s in candidates if selectors[s].evaluate(new)}
        return self._set_item_matches(iid, now)

    def remove_labels(self, iid: I) -> list[MatchChange[S, I]]:
        old = self._labels.pop(iid, None)
        if old is None:
            return []
        self._unindex_item(iid, old)
        return self._set_item_matches(iid, set())

    def _unindex_item(self, iid: I, labels: Mapping[str, str]) -> None:
        for post in _item_postings(labels):
            bucket = self._items_by_posting[post]
            bucket.discard(iid)
            if not bucket:
                del self._items_by_posting[post]

    def _set_item_matches(self, iid: I, now: set[S]) -> list[MatchChange[S, I]]:
        before = self._by_item.get(iid, set())
        gone, new = before - now, now - before
        by_selector = self._by_selector
        for s in gone:
            items = by_selector[s]
            items.discard(iid)
            if not items:
                del by_selector[s]
        for s in new:
            by_selector.setdefault(s, set()).add(iid)
        if now:
            self._by_item[iid] = now
        else:
            self._by_item.pop(iid, None)
        return [MatchChange(s, iid, False) for s in gone] + [MatchChange(s, iid, True) for s in new]


class BruteForceIndex(Generic[S, I]):
    """The obviously-correct reference: recompute every pair on every call.

    Same interface as :class:`SelectorIndex`; only for tests of it and of
    things built on it. O(selectors x items) per call.
    """

    def __init__(self) -> None:
        self._selectors: dict[S, Selector] = {}
        self._labels: dict[I, dict[str, str]] = {}

    def matches(self) -> set[tuple[S, I]]:
        return {
            (s, i)
            for s, sel in self._selectors.items()
            for i, labels in self._labels.items()
            if sel.evaluate(labels)
        }

    def _diff(self, before: set[tuple[S, I]]) -> list[MatchChange[S, I]]:
        after = self.matches()
        return [MatchChange(s, i, False) for s, i in before - after] + [
            MatchChange(s, i, True) for s, i in after - before
        ]

    def update_selector(self, sid: S, selector: Selector) -> list[MatchChange[S, I]]:
        before = self.matches()
        self._selectors[sid] = selector
        return self._diff(before)

    def remove_selector(self, sid: S) -> list[MatchChange[S, I]]:
        before = self.matches()
        self._selectors.pop(sid, None)
        return self._diff(before)

    def update_labels(self, iid: I, labels: Mapping[str, str]) -> list[MatchChange[S, I]]:
        before = self.matches()
        self._labels[iid] = dict(labels)
        return self._diff(before)

    def remove_labels(self, iid: I) -> list[MatchChange[S, I]]:
        before = self.matches()
        self._labels.pop(iid, None)
        return self._diff(before)
