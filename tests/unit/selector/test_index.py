"""SelectorIndex against the brute-force reference, and its invariants."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gingham.selector import BruteForceIndex, MatchChange, SelectorIndex, parse
from gingham.selector.index import postings
from tests.unit.selector.test_properties import first, label_sets, render, trees

KEYS = ["app", "tier", "env", "projectcalico.org/namespace"]
VALUES = ["a", "b", "c", ""]

SELECTORS = [
    "",
    "all()",
    "global()",
    "!global()",
    "app == 'a'",
    "app == 'b'",
    "app != 'a'",
    "app in {'a', 'b'}",
    "app not in {'a', 'b'}",
    "app in {}",
    "has(app)",
    "!has(app)",
    "app == 'a' && tier == 'b'",
    "app == 'a' && has(tier)",
    "has(app) && tier in {'a', 'c'}",
    "app == 'a' || tier == 'b'",
    "app == 'a' || !has(tier)",
    "app == 'a' || tier contains 'x'",
    "(app == 'a' || env == 'c') && tier != 'b'",
    "app starts with 'a'",
    "env ends with ''",
    "app == 'a' && app in {}",
    "projectcalico.org/namespace == 'b' && has(env)",
    "!(app == 'a' && tier == 'a')",
]

labels_st = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=4)
sel_ids = st.sampled_from(["s1", "s2", "s3", "s4", "s5"])
item_ids = st.sampled_from(["i1", "i2", "i3", "i4", "i5", "i6"])

ops = st.one_of(
    st.tuples(st.just("sel"), sel_ids, st.sampled_from(SELECTORS)),
    st.tuples(st.just("unsel"), sel_ids),
    st.tuples(st.just("item"), item_ids, labels_st),
    st.tuples(st.just("unitem"), item_ids),
)


def apply(index: Any, op: tuple[Any, ...]) -> list[MatchChange[str, str]]:
    kind = op[0]
    if kind == "sel":
        return index.update_selector(op[1], parse(op[2]))  # type: ignore[no-any-return]
    if kind == "unsel":
        return index.remove_selector(op[1])  # type: ignore[no-any-return]
    if kind == "item":
        return index.update_labels(op[1], op[2])  # type: ignore[no-any-return]
    return index.remove_labels(op[1])  # type: ignore[no-any-return]


def as_set(changes: list[MatchChange[str, str]]) -> set[tuple[str, str, bool]]:
    out = {(c.selector_id, c.item_id, c.matched) for c in changes}
    assert len(out) == len(changes), "a pair appeared twice in one delta"
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(ops, max_size=60))
def test_index_agrees_with_brute_force(sequence: list[tuple[Any, ...]]) -> None:
    fast: SelectorIndex[str, str] = SelectorIndex()
    slow: BruteForceIndex[str, str] = BruteForceIndex()
    replayed: set[tuple[str, str]] = set()
    for op in sequence:
        got = as_set(apply(fast, op))
        assert got == as_set(apply(slow, op)), op
        for s, i, matched in got:
            # started once, stopped once, alternately
            if matched:
                assert (s, i) not in replayed
                replayed.add((s, i))
            else:
                assert (s, i) in replayed
                replayed.remove((s, i))
        assert replayed == fast.matches() == slow.matches()
    for s, i in replayed:
        assert i in fast.items_matching(s)
        assert s in fast.selectors_matching(i)
    # Tearing everything down reports every remaining pair stopped exactly once.
    stopped: set[tuple[str, str]] = set()
    for sid in ["s1", "s2", "s3", "s4", "s5"]:
        for c in fast.remove_selector(sid):
            assert not c.matched
            stopped.add((c.selector_id, c.item_id))
    assert stopped == replayed
    for iid in ["i1", "i2", "i3", "i4", "i5", "i6"]:
        assert fast.remove_labels(iid) == []
    assert fast.matches() == set()
    # No index entry leaks: every bucket was emptied and dropped.
    assert fast._sels_by_posting == {} and fast._items_by_posting == {}
    assert fast._scan_always == set() and fast._by_item == {} and fast._by_selector == {}


def test_repeats_and_unknown_removes_are_silent() -> None:
    idx: SelectorIndex[str, int] = SelectorIndex()
    assert idx.remove_selector("nope") == []
    assert idx.remove_labels(7) == []
    assert idx.update_labels(1, {"app": "a"}) == []
    assert idx.update_selector("s", parse("app == 'a'")) == [MatchChange("s", 1, True)]
    assert idx.update_selector("s", parse("app=='a'")) == []
    assert idx.update_labels(1, {"app": "a"}) == []
    assert idx.update_labels(1, {"app": "b"}) == [MatchChange("s", 1, False)]
    assert idx.update_selector("s", parse("has(app)")) == [MatchChange("s", 1, True)]
    assert idx.remove_labels(1) == [MatchChange("s", 1, False)]
    assert idx.remove_labels(1) == []
    assert idx.selector_count == 1 and idx.item_count == 0


def test_postings_choose_a_selective_conjunct() -> None:
    def p(expr: str) -> Any:
        return postings(parse(expr).node)

    assert p("app == 'a'") == {("app", "a")}
    assert p("app in {'a', 'b'}") == {("app", "a"), ("app", "b")}
    assert p("has(app)") == {("app", None)}
    assert p("app contains 'x'") == {("app", None)}
    assert p("has(app) && tier == 'x'") == {("tier", "x")}
    assert p("app == 'a' || tier == 'b'") == {("app", "a"), ("tier", "b")}
    assert p("app in {}") == frozenset()
    for unindexable in [
        "app != 'a'",
        "app not in {'a', 'b'}",
        "!has(app)",
        "all()",
        "global()",
        "app == 'a' || !has(b)",
        "!(has(a) && has(b))",
    ]:
        assert p(unindexable) is None, unindexable


def test_index_does_not_scan_every_selector() -> None:
    """A label update evaluates only selectors whose postings it hits."""
    idx: SelectorIndex[int, str] = SelectorIndex()
    for n in range(500):
        idx.update_selector(n, parse(f"app == 'a{n}' && tier != 'x'"))
    idx.update_selector(9999, parse("tier != 'x'"))
    assert idx.scan_always_count == 1
    evaluated: list[int] = []

    class Counting:
        def __init__(self, sid: int, inner: Any) -> None:
            self.sid, self.inner = sid, inner

        def evaluate(self, labels: Any) -> bool:
            evaluated.append(self.sid)
            return self.inner.evaluate(labels)  # type: ignore[no-any-return]

    for sid, sel in list(idx._selectors.items()):
        idx._selectors[sid] = Counting(sid, sel)  # type: ignore[assignment]
    changes = idx.update_labels("w", {"app": "a7"})
    assert {(c.selector_id, c.matched) for c in changes} == {(7, True), (9999, True)}
    assert sorted(evaluated) == [7, 9999]


# Selectors from the random trees of the parser's property tests, over the
# same keys as the label sets there, so that And/Or/Not mixes reach the index.
random_ops = st.one_of(
    st.tuples(st.just("sel"), sel_ids, trees.map(lambda t: render(t, first))),
    st.tuples(st.just("unsel"), sel_ids),
    st.tuples(st.just("item"), item_ids, label_sets),
    st.tuples(st.just("unitem"), item_ids),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(random_ops, max_size=40))
def test_index_agrees_with_brute_force_on_random_selectors(
    sequence: list[tuple[Any, ...]],
) -> None:
    fast: SelectorIndex[str, str] = SelectorIndex()
    slow: BruteForceIndex[str, str] = BruteForceIndex()
    for op in sequence:
        assert as_set(apply(fast, op)) == as_set(apply(slow, op)), op
    assert fast.matches() == slow.matches()


def final_state(sequence: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The squashed sequence: one update per id still present at the end."""
    sels: dict[str, str] = {}
    items: dict[str, dict[str, str]] = {}
    for op in sequence:
        if op[0] == "sel":
            sels[op[1]] = op[2]
        elif op[0] == "unsel":
            sels.pop(op[1], None)
        elif op[0] == "item":
            items[op[1]] = op[2]
        else:
            items.pop(op[1], None)
    return [("sel", k, v) for k, v in sels.items()] + [("item", k, v) for k, v in items.items()]


@settings(max_examples=200, deadline=None)
@given(st.lists(random_ops, max_size=40), st.randoms(use_true_random=False))
def test_result_does_not_depend_on_the_path(sequence: list[tuple[Any, ...]], rnd: Any) -> None:
    """Forward, squashed, reversed, shuffled and doubled replays end equal."""

    def replay(ops: list[tuple[Any, ...]]) -> set[tuple[str, str]]:
        idx: SelectorIndex[str, str] = SelectorIndex()
        live: set[tuple[str, str]] = set()
        for op in ops:
            for c in apply(idx, op):
                if c.matched:
                    live.add((c.selector_id, c.item_id))
                else:
                    live.remove((c.selector_id, c.item_id))
        assert live == idx.matches()
        return live

    expected = replay(sequence)
    squashed = final_state(sequence)
    shuffled = list(squashed)
    rnd.shuffle(shuffled)
    assert replay(squashed) == expected
    assert replay(list(reversed(squashed))) == expected
    assert replay(shuffled) == expected
    assert replay([op for op in sequence for _ in range(2)]) == expected
