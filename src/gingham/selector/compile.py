"""Compile a normal-form syntax tree to a closure ``labels -> bool``.

The calculation graph evaluates selectors millions of times, so each node
becomes one small closure with its constants bound, and the common shapes
(two-operand ``&&``/``||``) avoid generic loops. Missing labels read as
``None``, which no quoted value equals, so ``==``/``in`` are false and
``!=``/``not in`` true for an absent label without an extra branch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gingham.selector.ast import (
    NAMESPACE_LABEL,
    And,
    Cmp,
    Global,
    Has,
    InSet,
    Node,
    Not,
    Or,
)

Labels = Mapping[str, str]
Predicate = Callable[[Labels], bool]


def _true(labels: Labels) -> bool:
    return True


def _cmp(node: Cmp) -> Predicate:
    key, value = node.key, node.value
    if node.op == "==":
        return lambda labels: labels.get(key) == value
    if node.op == "!=":
        return lambda labels: labels.get(key) != value

    if node.op == "contains":

        def contains(labels: Labels) -> bool:
            v = labels.get(key)
            return v is not None and value in v

        return contains
    if node.op == "starts with":

        def starts(labels: Labels) -> bool:
            v = labels.get(key)
            return v is not None and v.startswith(value)

        return starts

    def ends(labels: Labels) -> bool:
        v = labels.get(key)
        return v is not None and v.endswith(value)

    return ends


def _and(preds: list[Predicate]) -> Predicate:
    if len(preds) == 2:
        a, b = preds
        return lambda labels: a(labels) and b(labels)
    if len(preds) == 3:
        a, b, c = preds
        return lambda labels: a(labels) and b(labels) and c(labels)
    ps = tuple(preds)

    def every(labels: Labels) -> bool:
        for p in ps:  # noqa: SIM110 - a plain loop beats all() with a generator
            if not p(labels):
                return False
        return True

    return every


def _or(preds: list[Predicate]) -> Predicate:
    if len(preds) == 2:
        a, b = preds
        return lambda labels: a(labels) or b(labels)
    if len(preds) == 3:
        a, b, c = preds
        return lambda labels: a(labels) or b(labels) or c(labels)
    ps = tuple(preds)

    def some(labels: Labels) -> bool:
        for p in ps:  # noqa: SIM110 - a plain loop beats any() with a generator
            if p(labels):
                return True
        return False

    return some


def compile_node(node: Node) -> Predicate:
    if isinstance(node, Cmp):
        return _cmp(node)
    if isinstance(node, Has):
        key = node.key
        return lambda labels: key in labels
    if isinstance(node, InSet):
        key, values = node.key, frozenset(node.values)
        if node.negated:
            return lambda labels: labels.get(key) not in values
        return lambda labels: labels.get(key) in values
    if isinstance(node, Global):
        return lambda labels: NAMESPACE_LABEL not in labels
    if isinstance(node, Not):
        if isinstance(node.child, Has):
            nkey = node.child.key
            return lambda labels: nkey not in labels
        inner = compile_node(node.child)
        return lambda labels: not inner(labels)
    if isinstance(node, And):
        return _and([compile_node(c) for c in node.children])
    if isinstance(node, Or):
        return _or([compile_node(c) for c in node.children])
    return _true
