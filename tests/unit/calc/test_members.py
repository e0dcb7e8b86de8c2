"""The member index with the label index it reads, against brute force.

Sets are *pending* until members are needed and items are found through label
groups instead of a per-item index (members.py, labels.py); these tests mix
set starts and stops with item and parent-label changes in any order and
compare, after every step, each set's members and the member events with a
recomputation from scratch. Also: nothing kept per item is tracked by the
garbage collector (the 100k-endpoint sync depends on it).
"""

from __future__ import annotations

import gc
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gingham.calc.labels import LabelInheritance
from gingham.calc.members import IPSetMembers, Item, contributions
from gingham.calc.rules import IPSetSpec
from gingham.selector import parse

SELECTORS = [
    "app == 'web'",
    "app == 'web' && tier == 'x'",
    "has(tier)",
    "all()",
    "app != 'web'",
    "team == 'red'",
    "app in {'web', 'db'} || team == 'blue'",
    "!has(team)",
]
SPECS = [IPSetSpec(f"s{i}", parse(s)) for i, s in enumerate(SELECTORS)] + [
    IPSetSpec("p0", parse("has(app)"), ("tcp", "http")),
    IPSetSpec("p1", parse("team == 'red'"), ("tcp", "http")),
]
ITEMS = ["i0", "i1", "i2", "i3"]
PARENTS = ["kns.a", "kns.b"]
labels_st = st.dictionaries(st.sampled_from(["app", "tier", "team"]),
                            st.sampled_from(["web", "db", "x", "red", "blue"]), max_size=2)
item_st = st.builds(
    lambda n, ports: Item((f"10.0.0.{n}/32",), (f"10.0.0.{n}",) if ports else (),
                          (("http", "tcp", 80),) if ports else ()),
    st.integers(0, 3), st.booleans())
step_st = st.one_of(
    st.tuples(st.just("item"), st.sampled_from(ITEMS), labels_st,
              st.lists(st.sampled_from(PARENTS), max_size=2, unique=True), labels_st, item_st),
    st.tuples(st.just("drop"), st.sampled_from(ITEMS)),
    st.tuples(st.just("parent"), st.sampled_from(PARENTS), st.none() | labels_st),
    st.tuples(st.just("start"), st.sampled_from(range(len(SPECS)))),
    st.tuples(st.just("stop"), st.sampled_from(range(len(SPECS)))),
    st.tuples(st.just("settle")),
)


class Sink:
    def __init__(self) -> None:
        self.members: dict[str, set[str]] = {}

    def set_member_added(self, set_id: str, member: str) -> None:
        assert member not in self.members.setdefault(set_id, set())
        self.members[set_id].add(member)

    def set_member_removed(self, set_id: str, member: str) -> None:
        self.members[set_id].remove(member)


class Harness:
    def __init__(self) -> None:
        self.labels = LabelInheritance()
        self.sink = Sink()
        self.index = IPSetMembers(self.sink, self.labels)
        self.items: dict[str, Item] = {}
        self.sets: set[int] = set()

    def apply(self, step: tuple[Any, ...]) -> None:
        op = step[0]
        if op == "item":
            _, iid, own, parents, implicit, item = step
            old, new = self.labels.update_item(iid, own, tuple(parents), implicit)
            self.index.update_item(iid, old, new, item)
            self.items[iid] = item
        elif op == "drop" and step[1] in self.items:
            old_labels = self.labels.remove_item(step[1])
            assert old_labels is not None
            self.index.remove_item(step[1], old_labels)
            del self.items[step[1]]
        elif op == "parent":
            for iid, old, new in self.labels.update_parent(step[1], step[2]):
                self.index.update_item(iid, old, new, self.index.item(iid))
        elif op == "start" and step[1] not in self.sets:
            self.sets.add(step[1])
            self.sink.members[SPECS[step[1]].set_id] = set()
            self.index.add_set(SPECS[step[1]])
        elif op == "stop" and step[1] in self.sets:
            self.sets.discard(step[1])
            self.index.remove_set(SPECS[step[1]].set_id)
        elif op == "settle":
            self.index.settle()

    def check(self) -> None:
        for n in self.sets:
            spec = SPECS[n]
            want = {m for iid, item in self.items.items()
                    if spec.selector.evaluate(self.labels.labels(iid))
                    for m in contributions(spec, item)}
            assert self.index.members(spec.set_id) == want, spec
            # members() settled: what the sink was told adds up to the same.
            assert self.sink.members[spec.set_id] == want, spec


@settings(max_examples=300, deadline=None)
@given(st.lists(step_st, max_size=30))
def test_members_match_brute_force_after_every_step(steps: list[tuple[Any, ...]]) -> None:
    h = Harness()
    for step in steps:
        h.apply(step)
        if step[0] == "settle":
            h.check()
    h.check()
    for iid in list(h.items):
        h.apply(("drop", iid))
    for n in list(h.sets):
        h.apply(("stop", n))
    for parent in PARENTS:
        h.apply(("parent", parent, None))
    assert h.index.stats() == {"member_items": 0, "member_index_items": 0,
                               "member_index_selectors": 0, "member_sets": 0,
                               "member_entries": 0}
    assert set(h.labels.stats().values()) == {0}


def test_a_set_started_before_its_items_is_filled_at_settle() -> None:
    h = Harness()
    h.apply(("start", 0))
    h.apply(("item", "i0", {"app": "web"}, [], {}, Item(("10.0.0.1/32",), ())))
    h.apply(("parent", "kns.a", {"app": "web"}))
    h.apply(("item", "i1", {}, ["kns.a"], {}, Item(("10.0.0.2/32",), ())))
    assert h.sink.members["s0"] == set()  # pending: nothing computed yet
    assert h.index.members("s0") == {"10.0.0.1/32", "10.0.0.2/32"}
    h.check()


def test_nothing_kept_per_item_is_tracked_by_the_collector() -> None:
    h = Harness()
    h.apply(("parent", "kns.a", {"team": "red"}))
    for n in range(50):
        own = {"app": f"a{n % 5}"}
        h.apply(("item", ("WorkloadEndpoint", f"p{n}"), own, ["kns.a"], {"ns": "a"},
                 Item((f"10.1.0.{n}/32",), ())))
    h.apply(("start", 5))
    h.index.settle()
    for _ in range(3):  # a collection untracks one level of nested tuples
        gc.collect()
    stored = list(h.index._items.values()) + list(h.labels._inputs.values())
    assert stored and not any(gc.is_tracked(x) for x in stored)
