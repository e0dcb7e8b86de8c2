"""Checks of the scenario generator and of what the oracle shares with the code under test.

No root needed. The reference evaluator uses gingham's selector parser and
Kubernetes conversion, as the agents do; a bug there would make oracle and
kernel agree on a wrong answer. These tests compare both with meanings
written here from Calico's and Kubernetes' documentation.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gingham.model import parse_resource
from gingham.model.convert import label_selector_to_calico
from gingham.selector import parse
from tests.integration.oracle.k8s_reference import Pod, allowed, label_selector_matches
from tests.integration.oracle.scenarios import (
    NAMESPACES,
    PROBES,
    REFS,
    WORKLOADS,
    Scenario,
    _label_sets,
    cases,
    k8s_policy,
    label_selector,
    namespace_labels,
    netsets,
    render,
    scenarios,
    serve_for,
    workload_labels,
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


@settings(max_examples=200, deadline=None)
@given(label_selector(WORKLOAD_VOCAB), _label_sets(WORKLOAD_VOCAB))
def test_kubernetes_label_selector_conversion(selector: dict[str, Any],
                                              labels: dict[str, str]) -> None:  # fmt: skip
    text = label_selector_to_calico(selector)
    assert parse(text).evaluate(labels) == label_selector_matches(selector, labels), (selector, text)


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


@st.composite
def k8s_scenarios(draw: st.DrawFn) -> Scenario:
    count = draw(st.integers(1, 4))
    policies = tuple(draw(k8s_policy(f"k{i}")) for i in range(count))
    # Network sets too: Kubernetes peers select pods, never a network set's addresses.
    return Scenario(draw(workload_labels), draw(namespace_labels), None, policies,
                    draw(netsets()))  # fmt: skip


def _pods(scenario: Scenario) -> dict[str, Pod]:
    from tests.integration.oracle.sensitivity import IPS

    pods = {}
    for ref, _host in WORKLOADS:
        ns, name = ref.split("/")
        ports = tuple((n, p.upper(), port) for port, p, n in serve_for(ref) if n)
        pods[ref] = Pod(ns, name, IPS[ref], dict(scenario.labels[ref]), ports)
    return pods


@settings(max_examples=150, deadline=None)
@given(k8s_scenarios())
def test_oracle_agrees_with_kubernetes_reading(scenario: Scenario) -> None:
    """Kubernetes policies only: the reference evaluator (through gingham's
    conversion) against the independent reading of the Kubernetes API."""
    from tests.integration.oracle.sensitivity import IPS, verdicts

    pods = _pods(scenario)
    rendered = render(list(scenario.policies), IPS)
    got = verdicts(scenario)
    for (p, port), cells in zip(PROBES, got, strict=True):
        for a in REFS:
            for b in REFS:
                want = allowed(pods[a], pods[b], p, port, rendered, scenario.namespace_labels)
                assert cells[a][b] == want, (f"{p}/{port} {a}->{b}: oracle {cells[a][b]}, "
                                             f"kubernetes {want}\n" + scenario.to_yaml(IPS))


def test_kubernetes_pod_peer_ignores_network_sets() -> None:
    """``test_oracle.py::test_kubernetes_pod_selector_does_not_match_a_network_set``
    on the reference evaluator: a podSelector peer selects pods of the policy's
    namespace, never a NetworkSet's addresses (Calico's conversion adds
    ``projectcalico.org/orchestrator == 'k8s'`` to Kubernetes pod selectors)."""
    from tests.integration.oracle.scenarios import K8S_POD_PEER, NETSET_WITH_OTHER_NAMESPACE_POD
    from tests.integration.oracle.sensitivity import verdicts

    scenario = Scenario({r: {} for r in REFS}, {"oa": {}, "ob": {}}, None, (K8S_POD_PEER,),
                        (NETSET_WITH_OTHER_NAMESPACE_POD,))  # fmt: skip
    tcp80 = verdicts(scenario)[0]
    assert not tcp80["ob/w4"]["oa/w1"]  # the same pod without the network set
    assert not tcp80["ob/w5"]["oa/w1"], "the network set's labels let pod ob/w5 in"
