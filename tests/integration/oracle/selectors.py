"""Random Calico selectors, each with its own tiny evaluator.

The reference evaluator of :mod:`gingham.policy.explain` shares the selector
parser with the agents, so a parser bug would make both sides agree. Every
selector generated here therefore carries its meaning as a Python function
written from Calico's documentation, and the scenario tests check the parser
against it (``test_scenarios.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hypothesis import strategies as st

Labels = Mapping[str, str]

# Small vocabularies, so that random selectors match some workloads and not others.
WORKLOAD_VOCAB: dict[str, tuple[str, ...]] = {
    "app": ("web", "db"),
    "env": ("prod", "dev"),
    "role": ("a", "b"),
}
NAMESPACE_VOCAB: dict[str, tuple[str, ...]] = {"team": ("red", "blue")}
NAMESPACE_KEY = "projectcalico.org/namespace"  # implicit on every workload
NAMESPACE_NAME_KEY = "projectcalico.org/name"  # implicit on every namespace


@dataclass(frozen=True)
class Sel:
    """A selector: its text and what it means."""

    text: str
    matches: Callable[[Labels], bool]

    def __repr__(self) -> str:  # hypothesis prints examples with this
        return f"Sel({self.text!r})"


def _q(value: str) -> str:
    return f"'{value}'"


def _leaves(vocab: Mapping[str, tuple[str, ...]]) -> st.SearchStrategy[Sel]:
    keys = sorted(vocab)

    def eq(k: str, v: str) -> Sel:
        return Sel(f"{k} == {_q(v)}", lambda lb: lb.get(k) == v)

    def ne(k: str, v: str) -> Sel:
        # Calico: true as well when the label is absent.
        return Sel(f"{k} != {_q(v)}", lambda lb: lb.get(k) != v)

    def in_(k: str, vs: frozenset[str]) -> Sel:
        text = ", ".join(_q(v) for v in sorted(vs))
        return Sel(f"{k} in {{{text}}}", lambda lb: k in lb and lb[k] in vs)

    def not_in(k: str, vs: frozenset[str]) -> Sel:
        text = ", ".join(_q(v) for v in sorted(vs))
        return Sel(f"{k} not in {{{text}}}", lambda lb: lb.get(k) not in vs)

    def has(k: str) -> Sel:
        return Sel(f"has({k})", lambda lb: k in lb)

    def has_not(k: str) -> Sel:
        return Sel(f"!has({k})", lambda lb: k not in lb)

    key_value = st.sampled_from(keys).flatmap(
        lambda k: st.tuples(st.just(k), st.sampled_from(vocab[k]))
    )
    key_values = st.sampled_from(keys).flatmap(
        lambda k: st.tuples(st.just(k), st.frozensets(st.sampled_from(vocab[k]), min_size=1))
    )
    return st.one_of(
        key_value.map(lambda kv: eq(*kv)),
        key_value.map(lambda kv: ne(*kv)),
        key_values.map(lambda kv: in_(*kv)),
        key_values.map(lambda kv: not_in(*kv)),
        st.sampled_from(keys).map(has),
        st.sampled_from(keys).map(has_not),
        st.just(Sel("all()", lambda lb: True)),
    )


def _and(a: Sel, b: Sel) -> Sel:
    return Sel(f"({a.text}) && ({b.text})", lambda lb: a.matches(lb) and b.matches(lb))


def _or(a: Sel, b: Sel) -> Sel:
    return Sel(f"({a.text}) || ({b.text})", lambda lb: a.matches(lb) or b.matches(lb))


def _not(a: Sel) -> Sel:
    return Sel(f"!({a.text})", lambda lb: not a.matches(lb))


def selectors(vocab: Mapping[str, tuple[str, ...]]) -> st.SearchStrategy[Sel]:
    """Leaves combined with ``&&``, ``||`` and ``!``, at most two levels deep."""
    leaf = _leaves(vocab)
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.tuples(inner, inner).map(lambda ab: _and(*ab)),
            st.tuples(inner, inner).map(lambda ab: _or(*ab)),
            inner.map(_not),
        ),
        max_leaves=3,
    )


def endpoint_vocab(namespaces: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """What endpoint selectors may name: the workload labels and the namespace label."""
    return {**WORKLOAD_VOCAB, NAMESPACE_KEY: namespaces}


def namespace_vocab(namespaces: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    return {**NAMESPACE_VOCAB, NAMESPACE_NAME_KEY: namespaces}


def endpoint_selectors(namespaces: tuple[str, ...]) -> st.SearchStrategy[Sel]:
    return selectors(endpoint_vocab(namespaces))


def namespace_selectors(namespaces: tuple[str, ...]) -> st.SearchStrategy[Sel]:
    # global() selects only non-namespaced things: never a workload.
    return st.one_of(
        selectors(namespace_vocab(namespaces)),
        st.just(Sel("global()", lambda lb: False)),
    )
