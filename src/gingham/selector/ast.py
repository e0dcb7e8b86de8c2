"""Selector syntax tree, its normal form and its canonical text.

Nodes are built only through the ``make_*`` functions, which normalise as
they go, so every tree that exists is already in normal form:

- ``!`` is pushed into comparisons where that is exact: ``!(k == v)`` is
  ``k != v`` and ``!(k in S)`` is ``k not in S`` (both are true when ``k`` is
  absent), and ``!!x`` is ``x``;
- a set of one value is an equality (``k in {v}`` is ``k == v``); set values
  are sorted and de-duplicated;
- ``&&`` and ``||`` are flattened, their operands de-duplicated and sorted by
  their canonical text; ``all()`` disappears from ``&&`` and absorbs ``||``.

Each node carries its canonical text (``.text``), computed once at
construction; equality and hashing go by that text. Printing a normal tree
and parsing the result gives the same tree back, which is what makes the
canonical form a fixed point.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

# The implicit label calc puts on every namespaced thing (workload endpoints,
# namespaced network sets). ``global()`` is true exactly when it is absent, so
# the selector stays a pure function of the label set and can be indexed.
from gingham.names import NAMESPACE_LABEL as NAMESPACE_LABEL

CmpOp = Literal["==", "!=", "contains", "starts with", "ends with"]
CMP_OPS: Final[tuple[CmpOp, ...]] = ("==", "!=", "contains", "starts with", "ends with")


def quote(value: str) -> str:
    """Quote a value: double quotes unless the value holds one.

    The grammar has no escapes, so a value with both kinds of quote cannot be
    written; the parser never produces one.
    """
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    raise ValueError(f"value {value!r} contains both quote characters")


class Node:
    """Base of the syntax tree. Compare and hash by canonical text."""

    __slots__ = ("text",)
    text: str

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and type(other) is type(self) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.text!r})"

    @property
    def is_atom(self) -> bool:
        """True when the text needs no parentheses after ``!`` or inside ``&&``."""
        return True


class All(Node):
    __slots__ = ()

    def __init__(self) -> None:
        self.text = "all()"


class Global(Node):
    __slots__ = ()

    def __init__(self) -> None:
        self.text = "global()"


class Has(Node):
    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key
        self.text = f"has({key})"


class Cmp(Node):
    """``key OP "value"`` for every binary operator except the set ones."""

    __slots__ = ("key", "op", "value")

    def __init__(self, key: str, op: CmpOp, value: str) -> None:
        self.key = key
        self.op: CmpOp = op
        self.value = value
        self.text = f"{key} {op} {quote(value)}"

    @property
    def is_atom(self) -> bool:
        return False


class InSet(Node):
    """``key in {…}`` or, negated, ``key not in {…}``; values sorted, unique."""

    __slots__ = ("key", "negated", "values")

    def __init__(self, key: str, values: tuple[str, ...], negated: bool) -> None:
        self.key = key
        self.values = values
        self.negated = negated
        op = "not in" if negated else "in"
        self.text = f"{key} {op} {{{', '.join(quote(v) for v in values)}}}"

    @property
    def is_atom(self) -> bool:
        return False


class Not(Node):
    __slots__ = ("child",)

    def __init__(self, child: Node) -> None:
        self.child = child
        inner = child.text if isinstance(child, (Has, All, Global, Not)) else f"({child.text})"
        self.text = f"!{inner}"


class And(Node):
    __slots__ = ("children",)

    def __init__(self, children: tuple[Node, ...]) -> None:
        self.children = children
        self.text = " && ".join(f"({c.text})" if isinstance(c, Or) else c.text for c in children)

    @property
    def is_atom(self) -> bool:
        return False


class Or(Node):
    __slots__ = ("children",)

    def __init__(self, children: tuple[Node, ...]) -> None:
        self.children = children
        self.text = " || ".join(c.text for c in children)

    @property
    def is_atom(self) -> bool:
        return False


ALL: Final = All()
GLOBAL: Final = Global()


def make_has(key: str) -> Node:
    return Has(key)


def make_cmp(key: str, op: CmpOp, value: str) -> Node:
    return Cmp(key, op, value)


def make_in(key: str, values: Iterable[str], negated: bool) -> Node:
    unique = tuple(sorted(set(values)))
    if len(unique) == 1:
        return Cmp(key, "!=" if negated else "==", unique[0])
    return InSet(key, unique, negated)


def make_not(child: Node) -> Node:
    if isinstance(child, Not):
        return child.child
    if isinstance(child, Cmp) and child.op in ("==", "!="):
        return Cmp(child.key, "==" if child.op == "!=" else "!=", child.value)
    if isinstance(child, InSet):
        return InSet(child.key, child.values, not child.negated)
    return Not(child)


def _flatten(kind: type[And] | type[Or], children: Iterable[Node]) -> list[Node]:
    out: list[Node] = []
    for c in children:
        if isinstance(c, kind):
            out.extend(c.children)
        else:
            out.append(c)
    return out


def make_and(children: Iterable[Node]) -> Node:
    flat = [c for c in _flatten(And, children) if not isinstance(c, All)]
    unique = sorted(set(flat), key=lambda n: n.text)
    if not unique:
        return ALL
    if len(unique) == 1:
        return unique[0]
    return And(tuple(unique))


def make_or(children: Iterable[Node]) -> Node:
    flat = _flatten(Or, children)
    if any(isinstance(c, All) for c in flat):
        return ALL
    unique = sorted(set(flat), key=lambda n: n.text)
    if len(unique) == 1:
        return unique[0]
    return Or(tuple(unique))


def label_keys(node: Node) -> frozenset[str]:
    """Every label key whose presence or value can change the result."""
    if isinstance(node, (Has, Cmp, InSet)):
        return frozenset((node.key,))
    if isinstance(node, Global):
        return frozenset((NAMESPACE_LABEL,))
    if isinstance(node, Not):
        return label_keys(node.child)
    if isinstance(node, (And, Or)):
        return frozenset().union(*(label_keys(c) for c in node.children))
    return frozenset()
