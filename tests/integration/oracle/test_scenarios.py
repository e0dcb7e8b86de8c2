"""Checks of the scenario generator and of what the oracle shares with the code under test.

No root needed. The reference evaluator uses gingham's selector parser and
Kubernetes conversion, as the agents do; a bug there would make oracle and
kernel agree on a wrong answer. These tests compare both with meanings
written here from Calico's and Kubernetes' documentation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings

from gingham.model import parse_resource
from gingham.model.convert import label_selector_to_calico
from gingham.selector import parse
from tests.integration.oracle.scenarios import (
    NAMESPACES,
    REFS,
    _label_sets,
    cases,
    label_selector,
    render,
    scenarios,
)
from tests.integration.oracle.selectors import (
    NAMESPACE_KEY,
    NAMESPACE_NAME_KEY,
    WORKLOAD_VOCAB,
    endpoint_selectors,
    endpoint_vocab,
    namespace_selectors,
    namespace_vocab,
)

IPS = {ref: f"198.18.0.{i + 1}" for i, ref in enumerate(REFS)}


@settings(max_examples=100, deadline=None)
@given(cases())
def test_every_generated_manifest_is_valid(case: Any) -> None:
    for scenario in case:
        for doc in render(scenario.manifests() if scenario else [], IPS):
            parse_resource(doc)


@settings(max_examples=200, deadline=None)
@given(endpoint_selectors(NAMESPACES), _label_sets(endpoint_vocab(NAMESPACES)))
def test_selector_parser_agrees_with_documented_meaning(sel: Any, labels: dict[str, str]) -> None:
    assert parse(sel.text).evaluate(labels) == sel.matches(labels), sel.text


@settings(max_examples=200, deadline=None)
@given(namespace_selectors(NAMESPACES), _label_sets(namespace_vocab(NAMESPACES)))
def test_namespace_selector_meaning(sel: Any, labels: dict[str, str]) -> None:
    # As the oracle sees a namespace: its labels plus the implicit namespace label.
    seen = {**labels, NAMESPACE_KEY: labels.get(NAMESPACE_NAME_KEY, "oa")}
    assert parse(sel.text).evaluate(seen) == sel.matches(labels), sel.text


def _k8s_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Kubernetes' LabelSelector, from its API reference: every term must hold;
    NotIn and DoesNotExist hold for an absent key; empty matches everything."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[op]
        if not ok:
            return False
    return True


@settings(max_examples=200, deadline=None)
@given(label_selector(WORKLOAD_VOCAB), _label_sets(WORKLOAD_VOCAB))
def test_kubernetes_label_selector_conversion(selector: dict[str, Any],
                                              labels: dict[str, str]) -> None:  # fmt: skip
    text = label_selector_to_calico(selector)
    assert parse(text).evaluate(labels) == _k8s_matches(selector, labels), (selector, text)


def test_generator_coverage() -> None:
    """Over a fixed sample, every policy kind, action and field shows up."""
    seen: set[str] = set()

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                seen.add(k)
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, path)
        elif path == "action":
            seen.add(str(value))

    @settings(max_examples=150, deadline=None, derandomize=True, database=None)
    @given(scenarios())
    def collect(scenario: Any) -> None:
        for doc in scenario.manifests():
            seen.add(f"kind:{doc['apiVersion']}/{doc['kind']}")
            walk(doc, "")

    collect()
    wanted = {
        "kind:projectcalico.org/v3/NetworkPolicy", "kind:networking.k8s.io/v1/NetworkPolicy",
        "kind:projectcalico.org/v3/GlobalNetworkPolicy", "kind:projectcalico.org/v3/Tier",
        "Allow", "Deny", "Pass", "Log", "selector", "notSelector", "namespaceSelector", "nets", "notNets", "ports",
        "notPorts", "order", "types", "policyTypes", "podSelector", "ipBlock", "except",
        "endPort", "matchLabels", "matchExpressions", "defaultAction", "notProtocol",
        "kind:projectcalico.org/v3/NetworkSet", "kind:projectcalico.org/v3/GlobalNetworkSet",
    }  # fmt: skip
    assert wanted <= seen, wanted - seen


def test_every_feature_decides_some_verdict() -> None:
    """Each feature, taken out, flips some oracle verdict in a fixed sample:
    a generator that silently stopped exercising one would fail here.
    (``python -m tests.integration.oracle.sensitivity`` prints the rates.)"""
    from tests.integration.oracle.sensitivity import rates

    never = [name for name, rate in rates(150).items() if rate == 0]
    assert not never, never
