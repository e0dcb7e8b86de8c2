"""A reference counter that reports the transitions that matter (0 -> 1, 1 -> 0)."""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class RefCounter(Generic[K]):
    """Counts references per key; a key is present while its count is positive.

    Invariant: ``decref`` is only called for a reference that ``incref`` made;
    breaking it is a programming error and raises ``KeyError`` rather than
    letting counts drift.
    """

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[K, int] = {}

    def incref(self, key: K) -> bool:
        """Add a reference; True if this is the first."""
        n = self._counts.get(key, 0)
        self._counts[key] = n + 1
        return n == 0

    def decref(self, key: K) -> bool:
        """Drop a reference; True if it was the last."""
        n = self._counts[key]
        if n == 1:
            del self._counts[key]
            return True
        self._counts[key] = n - 1
        return False

    def count(self, key: K) -> int:
        return self._counts.get(key, 0)

    def __contains__(self, key: object) -> bool:
        return key in self._counts

    def __iter__(self) -> Iterator[K]:
        return iter(self._counts)

    def __len__(self) -> int:
        return len(self._counts)
