"""The :class:`Selector` value and the cached :func:`parse`."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from functools import lru_cache

from gingham.selector.ast import All, Node, label_keys
from gingham.selector.compile import Predicate, compile_node
from gingham.selector.parser import parse_node


class Selector:
    """A parsed selector: immutable, compared and hashed by canonical text.

    - ``evaluate(labels)`` is the compiled predicate (a plain function, so the
      attribute lookup is the only overhead);
    - ``canonical``: parse(canonical) gives an equal Selector, and canonical
      is a fixed point of parse-then-print;
    - ``id``: ``"s:"`` + 26 base64url characters of sha224(canonical), stable
      across processes and versions of Python, for IP-set and cache names.

    ``Selector(node)`` also accepts a tree built with the ``make_*`` functions
    of :mod:`gingham.selector.ast` (how calc combines a policy's selector with
    its namespace); such trees are in normal form by construction.

    ``global()`` is true for a label set without ``projectcalico.org/namespace``
    (see :data:`gingham.selector.NAMESPACE_LABEL`): callers give namespaced
    things that label, which calc does for workload endpoints and namespaced
    network sets.
    """

    __slots__ = ("_keys", "canonical", "evaluate", "id", "node")

    def __init__(self, node: Node) -> None:
        self.node = node
        self.canonical: str = node.text
        digest = hashlib.sha224(self.canonical.encode()).digest()
        self.id: str = "s:" + base64.urlsafe_b64encode(digest).decode()[:26]
        self.evaluate: Predicate = compile_node(node)
        self._keys = label_keys(node)

    def label_keys(self) -> frozenset[str]:
        """Label keys the result depends on; other labels never change it."""
        return self._keys

    @property
    def matches_all(self) -> bool:
        """True for ``all()`` (and the empty selector)."""
        return isinstance(self.node, All)

    def __call__(self, labels: Mapping[str, str]) -> bool:
        return self.evaluate(labels)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Selector) and other.canonical == self.canonical

    def __hash__(self) -> int:
        return hash(self.canonical)

    def __repr__(self) -> str:
        return f"Selector({self.canonical!r})"

    def __reduce__(self) -> tuple[object, tuple[str]]:
        # Closures do not pickle; the canonical text rebuilds an equal Selector.
        return (parse, (self.canonical,))

    def __str__(self) -> str:
        return self.canonical


@lru_cache(maxsize=8192)
def parse(expr: str) -> Selector:
    """Parse a selector; raises :class:`gingham.errors.SelectorError` with the position.

    Results are cached by the exact text, so policies repeating a selector
    share one compiled Selector.
    """
    return Selector(parse_node(expr))
