"""Calico's selector language: parse, canonical form, evaluate, label index.

    >>> from gingham.selector import parse
    >>> s = parse("app == 'web' && tier in {'a', 'b'}")
    >>> s.canonical
    'app == "web" && tier in {"a", "b"}'
    >>> s.evaluate({"app": "web", "tier": "b"})
    True

Parse errors raise :class:`gingham.errors.SelectorError` (``.position`` is the
0-based column). The empty selector selects everything, as in Calico.
``global()`` matches label sets without :data:`NAMESPACE_LABEL`.

:class:`SelectorIndex` tells, incrementally, which (selector, item) pairs
start or stop matching; :class:`BruteForceIndex` is its reference for tests.
"""

from gingham.errors import SelectorError
from gingham.selector.ast import NAMESPACE_LABEL
from gingham.selector.core import Selector, parse
from gingham.selector.index import BruteForceIndex, MatchChange, SelectorIndex

__all__ = [
    "NAMESPACE_LABEL",
    "BruteForceIndex",
    "MatchChange",
    "Selector",
    "SelectorError",
    "SelectorIndex",
    "parse",
]
