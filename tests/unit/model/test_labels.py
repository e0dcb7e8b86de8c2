"""Every place the model takes label keys uses the rule selectors use."""

from __future__ import annotations

from gingham.model import (
    KubernetesNetworkPolicy,
    Namespace,
    load_manifests,
    namespace_to_profile,
    selector_for_namespace_labels,
)
from gingham.selector import parse

from .helpers import doc, ok, problems

K8S = "networking.k8s.io/v1"
LONG = "k" * 63  # the longest name part a label key may have


def test_profile_labels_to_apply_follow_the_rule() -> None:
    found = problems(doc("Profile", {"labelsToApply": {"ok": "v", "a/b/c": "v", "x": "-v"}}))
    assert set(found) == {"spec.labelsToApply['a/b/c']", "spec.labelsToApply['x']"}
    assert "at most one '/'" in found["spec.labelsToApply['a/b/c']"]
    assert "invalid label value" in found["spec.labelsToApply['x']"]


def test_a_namespace_with_the_longest_label_key_still_converts() -> None:
    """Its profile carries the label as a pcns. copy, five characters longer; the copy is
    accepted and a selector over it parses."""
    [ns] = load_manifests(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n"
                          f"  labels: {{{LONG}: v}}\n")
    assert isinstance(ns, Namespace)
    profile = namespace_to_profile(ns)
    parse(selector_for_namespace_labels({"matchLabels": {LONG: "v"}}))
    assert len(max(profile.spec.labels_to_apply, key=len)) > 63


def test_kubernetes_label_selectors_follow_the_rule() -> None:
    found = problems(doc("NetworkPolicy", {
        "podSelector": {"matchLabels": {"a/b/c": "x"},
                        "matchExpressions": [{"key": "-bad", "operator": "Exists"},
                                             {"key": "ok", "operator": "In",
                                              "values": ["fine", "not fine"]}]},
    }, namespace="shop", api=K8S))
    assert set(found) == {"spec.podSelector.matchLabels['a/b/c']",
                          "spec.podSelector.matchExpressions[0].key",
                          "spec.podSelector.matchExpressions[1].values[1]"}
    policy = ok(doc("NetworkPolicy", {"podSelector": {"matchLabels": {LONG: "v"}}},
                    namespace="shop", api=K8S))
    assert isinstance(policy, KubernetesNetworkPolicy)
