"""Property tests: random trees -> text -> parse -> canonical -> parse.

The trees, their rendering and their evaluation here are written straight
from the language's semantics and share no code with the parser, so a bug
in the normal form or the compiler shows up as a disagreement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gingham.errors import SelectorError
from gingham.selector import NAMESPACE_LABEL, parse

KEYS = ["a", "b", "app.kubernetes.io/name", NAMESPACE_LABEL, "in", "has", "not", "x-1"]
VALUES = ["", "x", "y", "xy", "yx", "it's", 'say "hi"', "a b", "&&"]

Tree = tuple[Any, ...]

keys = st.sampled_from(KEYS)
values = st.sampled_from(VALUES)
value_sets = st.lists(values, max_size=4)

leaves = st.one_of(
    st.tuples(st.sampled_from(["==", "!=", "contains", "starts with", "ends with"]), keys, values),
    st.tuples(st.sampled_from(["in", "not in"]), keys, value_sets),
    st.tuples(st.sampled_from(["has", "!has"]), keys),
    st.tuples(st.sampled_from(["all", "global"])),
)


def _extend(children: st.SearchStrategy[Tree]) -> st.SearchStrategy[Tree]:
    return st.one_of(
        st.tuples(st.just("!"), children),
        st.tuples(st.just("&&"), children, children),
        st.tuples(st.just("||"), children, children),
    )


trees = st.recursive(leaves, _extend, max_leaves=12)
label_sets = st.dictionaries(keys, values, max_size=len(KEYS))


def evaluate(t: Tree, labels: dict[str, str]) -> bool:
    op = t[0]
    if op in ("==", "!=", "contains", "starts with", "ends with"):
        present = t[1] in labels
        v = labels.get(t[1], "")
        return {
            "==": present and v == t[2],
            "!=": not present or v != t[2],
            "contains": present and t[2] in v,
            "starts with": present and v.startswith(t[2]),
            "ends with": present and v.endswith(t[2]),
        }[op]
    if op == "in":
        return t[1] in labels and labels[t[1]] in t[2]
    if op == "not in":
        return t[1] not in labels or labels[t[1]] not in t[2]
    if op == "has":
        return t[1] in labels
    if op == "!has":
        return t[1] not in labels
    if op == "all":
        return True
    if op == "global":
        return NAMESPACE_LABEL not in labels
    if op == "!":
        return not evaluate(t[1], labels)
    if op == "&&":
        return evaluate(t[1], labels) and evaluate(t[2], labels)
    return evaluate(t[1], labels) or evaluate(t[2], labels)


Pick = Callable[[list[str]], str]


def render(t: Tree, pick: Pick) -> str:
    """Render ``t``; ``pick`` chooses spacing, quotes and redundant parentheses."""

    def sp() -> str:
        return pick(["", " ", "  ", "\t", "\n "])

    def q(v: str) -> str:
        c = pick([c for c in "'\"" if c not in v])
        return f"{c}{v}{c}"

    def sub(child: Tree, parent: str) -> str:
        text = render(child, pick)
        # Only || binds looser than its parent (&&); other parens are noise.
        if (parent == "&&" and child[0] == "||") or pick(["", "", "", "("]):
            return f"({sp()}{text}{sp()})"
        return text

    op = t[0]
    if op in ("==", "!="):
        return f"{t[1]}{sp()}{op}{sp()}{q(t[2])}"
    if op in ("contains", "starts with", "ends with"):
        # Calico's spellings: "startswith" in one word, the literal touching the operator.
        word = op.replace(" ", pick([" ", "  ", "\t", ""]))
        return f"{t[1]} {sp()}{word}{sp()}{q(t[2])}"
    if op in ("in", "not in"):
        items = f"{sp()},{sp()}".join(q(v) for v in t[2])
        if t[2]:
            items += pick(["", f"{sp()},"])  # a trailing comma
        word = op.replace(" ", pick([" ", "   ", ""]))
        return f"{t[1]} {sp()}{word}{sp()}{{{sp()}{items}{sp()}}}"
    if op in ("has", "!has"):
        bang = "!" + sp() if op == "!has" else ""
        return f"{bang}has{sp()}({sp()}{t[1]}{sp()})"
    if op in ("all", "global"):
        return f"{op}{sp()}({sp()})"
    if op == "!":
        # "!" takes a term: a comparison is one ("!a == 'x'" negates it all),
        # a binary operator is not.
        inner = render(t[1], pick)
        if t[1][0] in ("&&", "||"):
            inner = f"({inner})"
        return f"!{sp()}{inner}"
    return f"{sub(t[1], op)}{sp()}{op}{sp()}{sub(t[2], op)}"


def first(options: list[str]) -> str:
    return options[0]


@settings(max_examples=400, deadline=None)
@given(data=st.data(), tree=trees, samples=st.lists(label_sets, min_size=1, max_size=8))
def test_roundtrip_equivalence_and_fixed_point(
    data: st.DataObject, tree: Tree, samples: list[dict[str, str]]
) -> None:
    text = render(tree, lambda options: data.draw(st.sampled_from(options)))
    sel = parse(text)
    canonical = sel.canonical
    again = parse(canonical)
    assert again.canonical == canonical, (text, canonical)
    assert again.id == sel.id
    for labels in samples:
        expected = evaluate(tree, labels)
        assert sel.evaluate(labels) is expected, (text, canonical, labels)
        assert again.evaluate(labels) is expected, (text, canonical, labels)


@settings(max_examples=200, deadline=None)
@given(tree=trees, labels=label_sets, extra=st.dictionaries(st.sampled_from(["zz", "q/r"]), values))
def test_only_label_keys_matter(tree: Tree, labels: dict[str, str], extra: dict[str, str]) -> None:
    sel = parse(render(tree, first))
    keys = sel.label_keys()
    assert keys <= set(KEYS)
    relevant = {k: v for k, v in labels.items() if k in keys}
    assert sel.evaluate(labels) is sel.evaluate(relevant)
    assert sel.evaluate({**labels, **extra}) is sel.evaluate(labels)


FRAGMENTS = [*"ab(){},'\"!=&| \tinotl.-/_", "in", "has(", "==", "&&", "||", "not in", "all()",
             "notin", "startswith", "ends with", ",}"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=20).map("".join))
def test_garbage_parses_or_raises_selector_error(expr: str) -> None:
    try:
        sel = parse(expr)
    except SelectorError as err:
        assert 0 <= err.position <= len(expr)
        assert err.expression == expr
    else:
        assert parse(sel.canonical).canonical == sel.canonical
