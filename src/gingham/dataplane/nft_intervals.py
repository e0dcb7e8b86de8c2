"""What the driver knows of its interval sets' ranges, to keep nft's semantics.

nft reads a set's elements before changing it and refuses an element that
overlaps another (``conflicting intervals specified``) or a delete of a range
the set does not hold. The kernel's own checks of an interval (rbtree) set
are weaker: it accepts, for instance, 10.0.0.2/31 next to 10.0.0.3 because
the new range's end element already exists. A netlink batch must not do what
nft would have refused, so the driver keeps the ranges of each such set it
knows (learned when it lists the table, kept up to date by every transaction
it runs) and :meth:`Intervals.check` sends any transaction whose element
changes would not be clean (an overlap, a delete of a range that is not
there, a set whose contents it does not know) through nft instead.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from gingham.dataplane.nft_objects import Element, Map, Set, Table, Transaction
from gingham.dataplane.nft_types import DataType, Unsupported, key_types

Range = tuple[bytes, bytes]


def rbtree_type(obj: Set | Map) -> DataType | None:
    """The key type of a single-field interval set (None: any other kind)."""
    if isinstance(obj, Map) or "interval" not in obj.flags or obj.type is None:
        return None
    try:
        types = key_types(obj.type)
    except Unsupported:
        return None
    return types[0] if len(types) == 1 else None


def _range(dtype: DataType, elem: Element) -> Range:
    return dtype.first_last(elem.key[0].strip())


class Intervals:
    """Sorted, non-overlapping ranges per interval set; absent: contents unknown."""

    def __init__(self) -> None:
        self._ranges: dict[str, list[Range]] = {}

    def forget(self, name: str | None = None) -> None:
        if name is None:
            self._ranges.clear()
        else:
            self._ranges.pop(name, None)

    def load(self, obj: Set | Map, elements: Iterable[Element]) -> None:
        """The set's contents as listed by the kernel."""
        dtype = rbtree_type(obj)
        if dtype is None:
            self._ranges.pop(obj.name, None)
            return
        try:
            self._ranges[obj.name] = sorted(_range(dtype, e) for e in elements)
        except Unsupported:
            self._ranges.pop(obj.name, None)

    def check(self, tx: Transaction, sets: dict[str, Set | Map], fresh: set[str],
              ) -> dict[str, list[Range]]:
        """The interval sets ``tx`` changes, as they will be after it; Unsupported
        when a change is one nft would refuse or one this cannot judge.
        ``fresh``: sets ``tx`` creates that are known not to exist yet."""
        after: dict[str, list[Range]] = {}
        for verb, obj in tx.ops:
            if isinstance(obj, Table) and verb in ("delete", "flush"):
                raise Unsupported(f"{verb} table")
            if isinstance(obj, Set) and verb in ("add", "create") and obj.name not in after:
                known = [] if obj.name in fresh else self._ranges.get(obj.name)
                if known is not None and rbtree_type(obj) is not None:
                    after[obj.name] = list(known)
            if isinstance(obj, Set | Map) and verb in ("delete", "flush"):
                after[obj.name] = []
            if not isinstance(obj, Element) or verb not in ("add", "create", "delete"):
                continue
            target = sets.get(obj.set)
            dtype = None if target is None else rbtree_type(target)
            if dtype is None:
                continue
            if obj.set not in after:
                known = self._ranges.get(obj.set)
                if known is None:
                    raise Unsupported(f"elements of {obj.set}, whose contents are not known")
                after[obj.set] = list(known)
            ranges = after[obj.set]
            r = _range(dtype, obj)
            i = bisect.bisect_left(ranges, r)
            present = i < len(ranges) and ranges[i] == r
            if verb == "delete":
                if not present:
                    raise Unsupported(f"delete of {obj.key[0]}, not a range of {obj.set}")
                del ranges[i]
            elif not present:
                below = ranges[i - 1] if i else None
                above = ranges[i] if i < len(ranges) else None
                if (below is not None and below[1] >= r[0]) or (
                        above is not None and above[0] <= r[1]):
                    raise Unsupported(f"{obj.key[0]} overlaps a range of {obj.set}")
                ranges.insert(i, r)
        return after

    def commit(self, after: dict[str, list[Range]]) -> None:
        self._ranges.update(after)
