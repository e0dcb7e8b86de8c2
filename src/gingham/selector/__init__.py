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
"""

from gingham.errors import SelectorError
from gingham.selector.ast import NAMESPACE_LABEL
from gingham.selector.core import Selector, parse

__all__ = ["NAMESPACE_LABEL", "Selector", "SelectorError", "parse"]
