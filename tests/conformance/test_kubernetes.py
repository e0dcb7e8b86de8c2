"""Kubernetes NetworkPolicy conformance, in the manner of the upstream e2e tests.

Pods: x/a x/b x/c y/a … z/c, labelled ``pod=<name>`` (a and b also
``app=web``); namespaces labelled ``ns=<name>`` (and
``kubernetes.io/metadata.name``). Every expectation below is the Kubernetes
semantics written out by hand.
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import Cluster
from tests.conformance.reach import Reach

pytestmark = pytest.mark.integration


def knp(name: str, ns: str, spec: str) -> str:
    return (f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
            f"metadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec}\n---\n")


DENY_INGRESS_X = knp("deny-ingress", "x", "  podSelector: {}\n  policyTypes: [Ingress]")


# ------------------------------------------------------------------ default deny


def test_default_deny_ingress(k8s: Cluster) -> None:
    k8s.case(DENY_INGRESS_X, {
        (80, "tcp"): Reach().block(to="x/*"),
        (81, "udp"): Reach().block(to="x/*"),
    })


def test_default_deny_egress(k8s: Cluster) -> None:
    k8s.case(knp("deny-egress", "x", "  podSelector: {}\n  policyTypes: [Egress]"), {
        (80, "tcp"): Reach().block(frm="x/*"),
        (80, "udp"): Reach().block(frm="x/*"),
    })


def test_default_deny_both_directions(k8s: Cluster) -> None:
    k8s.case(knp("deny-all", "y", "  podSelector: {}\n  policyTypes: [Ingress, Egress]"), {
        (80, "tcp"): Reach().block(frm="y/*").block(to="y/*"),
    })


def test_allow_from_same_namespace(k8s: Cluster) -> None:
    k8s.case(knp("same-ns", "x", "  podSelector: {}\n  ingress:\n  - from:\n"
                                 "    - podSelector: {}"), {
        (80, "tcp"): Reach().block(to="x/*").allow(frm="x/*", to="x/*"),
    })


def test_empty_pod_selector_selects_every_pod_of_its_namespace_only(k8s: Cluster) -> None:
    # The empty podSelector selects z's pods, not those of other namespaces.
    k8s.case(knp("all-z", "z", "  podSelector: {}\n  ingress:\n  - from:\n"
                               "    - namespaceSelector: {matchLabels: {ns: y}}"), {
        (80, "tcp"): Reach().block(to="z/*").allow(frm="y/*", to="z/*"),
    })


# ------------------------------------------------------------------ pod selectors


def test_pod_selector_match_labels(k8s: Cluster) -> None:
    k8s.case(knp("a-from-b", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n"
                                  "  - from:\n    - podSelector: {matchLabels: {pod: b}}"), {
        (80, "tcp"): Reach().block(to="x/a").allow(frm="x/b", to="x/a"),
    })


@pytest.mark.parametrize(("expression", "allowed_from"), [
    ("{key: pod, operator: In, values: [b, c]}", ["x/b", "x/c"]),
    ("{key: pod, operator: NotIn, values: [b]}", ["x/a", "x/c"]),
    ("{key: app, operator: Exists}", ["x/a", "x/b"]),
    ("{key: app, operator: DoesNotExist}", ["x/c"]),
])  # fmt: skip
def test_pod_selector_match_expressions(k8s: Cluster, expression: str,
                                        allowed_from: list[str]) -> None:
    k8s.case(knp("expr", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n"
                              f"  - from:\n    - podSelector: {{matchExpressions: [{expression}]}}"),
             {(80, "tcp"): Reach().block(to="x/a").allow(frm=allowed_from, to="x/a")})


def test_namespace_selector_match_expressions(k8s: Cluster) -> None:
    k8s.case(knp("ns-expr", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n"
                                 "  - from:\n    - namespaceSelector: {matchExpressions: "
                                 "[{key: ns, operator: NotIn, values: [x, y]}]}"), {
        (80, "tcp"): Reach().block(to="x/a").allow(frm="z/*", to="x/a"),
    })


# ------------------------------------------------------------------ namespace selectors


def test_namespace_selector(k8s: Cluster) -> None:
    k8s.case(knp("from-y", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n"
                                "  - from:\n    - namespaceSelector: {matchLabels: {ns: y}}"), {
        (80, "tcp"): Reach().block(to="x/a").allow(frm="y/*", to="x/a"),
    })


def test_namespace_selector_by_metadata_name(k8s: Cluster) -> None:
    # kubernetes.io/metadata.name is set on every namespace by gingham itself.
    k8s.case(knp("from-z", "x", "  podSelector: {}\n  ingress:\n  - from:\n"
                                "    - namespaceSelector: {matchLabels: "
                                "{kubernetes.io/metadata.name: z}}"), {
        (80, "tcp"): Reach().block(to="x/*").allow(frm="z/*", to="x/*"),
    })


def test_namespace_and_pod_selector_in_one_peer(k8s: Cluster) -> None:
    k8s.case(knp("one-peer", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n"
                                  "  - from:\n    - namespaceSelector: {matchLabels: {ns: y}}\n"
                                  "      podSelector: {matchLabels: {pod: b}}"), {
        (80, "tcp"): Reach().block(to="x/a").allow(frm="y/b", to="x/a"),
    })


def test_namespace_and_pod_selector_as_two_peers(k8s: Cluster) -> None:
    k8s.case(knp("two-peers", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n"
                                   "  - from:\n    - namespaceSelector: {matchLabels: {ns: y}}\n"
                                   "    - podSelector: {matchLabels: {pod: b}}"), {
        # the podSelector peer alone means pods of the policy's own namespace
        (80, "tcp"): Reach().block(to="x/a").allow(frm=["y/*", "x/b"], to="x/a"),
    })


# ------------------------------------------------------------------ ipBlock


def test_ip_block_with_except(k8s: Cluster) -> None:
    yb = k8s.ips["y/b"]
    k8s.case(knp("cidr", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n"
                              "  - from:\n    - ipBlock: {cidr: 198.18.0.0/16, "
                              f"except: [{yb}/32]}}"), {
        (80, "tcp"): Reach().block(frm="y/b", to="x/a"),
    })


def test_egress_ip_block(k8s: Cluster) -> None:
    za, zb = k8s.ips["z/a"], k8s.ips["z/b"]
    k8s.case(knp("to-cidr", "y", "  podSelector: {matchLabels: {pod: c}}\n"
                                 "  policyTypes: [Egress]\n  egress:\n"
                                 f"  - to:\n    - ipBlock: {{cidr: {za}/32}}\n"
                                 f"    - ipBlock: {{cidr: {zb}/32}}"), {
        (80, "tcp"): Reach().block(frm="y/c").allow(frm="y/c", to=["z/a", "z/b"]),
    })


# ------------------------------------------------------------------ ports


def test_numeric_port(k8s: Cluster) -> None:
    k8s.case(knp("port-80", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n"
                                 "  - ports:\n    - {port: 80}"), {
        (80, "tcp"): Reach(),
        (81, "tcp"): Reach().block(to="x/a"),
        (80, "udp"): Reach().block(to="x/a"),  # the protocol defaults to TCP
    })


def test_named_port(k8s: Cluster) -> None:
    k8s.case(knp("named", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n"
                               "  - ports:\n    - {port: serve-81-tcp}"), {
        (80, "tcp"): Reach().block(to="x/a"),
        (81, "tcp"): Reach(),
    })


def test_named_port_egress(k8s: Cluster) -> None:
    # Egress to a named port: resolved on each destination pod.
    k8s.case(knp("named-out", "x", "  podSelector: {matchLabels: {pod: b}}\n"
                                   "  policyTypes: [Egress]\n  egress:\n"
                                   "  - ports:\n    - {port: serve-80-udp, protocol: UDP}"), {
        (80, "udp"): Reach(),
        (81, "udp"): Reach().block(frm="x/b"),
        (80, "tcp"): Reach().block(frm="x/b"),
    })


def test_end_port_range(k8s: Cluster) -> None:
    k8s.case(knp("range", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n"
                               "  - ports:\n    - {protocol: TCP, port: 81, endPort: 90}"), {
        (80, "tcp"): Reach().block(to="x/a"),
        (81, "tcp"): Reach(),
    })


def test_end_port_range_covering_both(k8s: Cluster) -> None:
    k8s.case(knp("range2", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n"
                                "  - ports:\n    - {protocol: TCP, port: 79, endPort: 81}"), {
        (80, "tcp"): Reach(),
        (81, "tcp"): Reach(),
        (81, "udp"): Reach().block(to="x/a"),
    })


def test_udp(k8s: Cluster) -> None:
    k8s.case(knp("udp", "y", "  podSelector: {}\n  ingress:\n"
                             "  - ports:\n    - {protocol: UDP, port: 81}"), {
        (81, "udp"): Reach(),
        (80, "udp"): Reach().block(to="y/*"),
        (81, "tcp"): Reach().block(to="y/*"),
    })


def test_peer_and_port_together(k8s: Cluster) -> None:
    k8s.case(knp("peer-port", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n"
                                   "  - from:\n    - namespaceSelector: {matchLabels: {ns: z}}\n"
                                   "    ports:\n    - {port: 81}"), {
        (80, "tcp"): Reach().block(to="x/a"),
        (81, "tcp"): Reach().block(to="x/a").allow(frm="z/*", to="x/a"),
    })


# ------------------------------------------------------------------ several policies


def test_policies_add_up(k8s: Cluster) -> None:
    k8s.case(
        knp("from-y", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n"
                           "  - from:\n    - namespaceSelector: {matchLabels: {ns: y}}")
        + knp("from-zb", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n"
                              "  - from:\n    - namespaceSelector: {}\n"
                              "      podSelector: {matchLabels: {pod: b}}"),
        {(80, "tcp"): Reach().block(to="x/a").allow(frm=["y/*", "z/b", "x/b"], to="x/a")},
    )


def test_deny_all_plus_allow_adds_up(k8s: Cluster) -> None:
    k8s.case(
        DENY_INGRESS_X
        + knp("allow-c", "x", "  podSelector: {matchLabels: {pod: c}}\n  ingress:\n"
                              "  - from:\n    - namespaceSelector: {}"),
        {(80, "tcp"): Reach().block(to="x/*").allow(to="x/c")},
    )


# ------------------------------------------------------------------ egress


def test_egress_to_specific_pods(k8s: Cluster) -> None:
    k8s.case(knp("to-yb", "x", "  podSelector: {matchLabels: {pod: a}}\n"
                               "  policyTypes: [Egress]\n  egress:\n  - to:\n"
                               "    - namespaceSelector: {matchLabels: {ns: y}}\n"
                               "      podSelector: {matchLabels: {pod: b}}"), {
        (80, "tcp"): Reach().block(frm="x/a").allow(frm="x/a", to="y/b"),
        (81, "udp"): Reach().block(frm="x/a").allow(frm="x/a", to="y/b"),
    })


def test_egress_and_ingress_both_needed(k8s: Cluster) -> None:
    # x/a may only send to y; y/* may only receive from z: x/a -> y is blocked at y.
    k8s.case(
        knp("out", "x", "  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n"
                        "  egress:\n  - to:\n    - namespaceSelector: {matchLabels: {ns: y}}")
        + knp("in", "y", "  podSelector: {}\n  ingress:\n  - from:\n"
                         "    - namespaceSelector: {matchLabels: {ns: z}}"),
        {(80, "tcp"): Reach().block(frm="x/a").block(to="y/*").allow(frm="z/*", to="y/*")},
    )


# ------------------------------------------------------------------ policyTypes


def test_policy_types_ingress_ignores_egress_rules(k8s: Cluster) -> None:
    k8s.case(knp("in-only", "x", "  podSelector: {matchLabels: {pod: a}}\n"
                                 "  policyTypes: [Ingress]\n"
                                 "  ingress:\n  - from:\n    - podSelector: {matchLabels: {pod: b}}\n"
                                 "  egress:\n  - to:\n    - podSelector: {matchLabels: {pod: c}}"), {
        (80, "tcp"): Reach().block(to="x/a").allow(frm="x/b", to="x/a"),
    })


def test_policy_types_egress_ignores_ingress_rules(k8s: Cluster) -> None:
    k8s.case(knp("out-only", "x", "  podSelector: {matchLabels: {pod: a}}\n"
                                  "  policyTypes: [Egress]\n"
                                  "  ingress:\n  - from:\n    - podSelector: {matchLabels: {pod: b}}\n"
                                  "  egress:\n  - to:\n    - podSelector: {matchLabels: {pod: c}}"), {
        (80, "tcp"): Reach().block(frm="x/a").allow(frm="x/a", to="x/c"),
    })


def test_policy_types_both_from_rules(k8s: Cluster) -> None:
    # No policyTypes and egress rules present: Kubernetes defaults to both.
    k8s.case(knp("both", "x", "  podSelector: {matchLabels: {pod: a}}\n"
                              "  ingress:\n  - from:\n    - podSelector: {matchLabels: {pod: b}}\n"
                              "  egress:\n  - to:\n    - podSelector: {matchLabels: {pod: c}}"), {
        (80, "tcp"): Reach().block(frm="x/a").block(to="x/a")
                            .allow(frm="x/a", to="x/c").allow(frm="x/b", to="x/a"),
    })


# ------------------------------------------------------------------ changes


def test_policy_update_and_deletion(k8s: Cluster) -> None:
    k8s.apply(DENY_INGRESS_X)
    k8s.check({(80, "tcp"): Reach().block(to="x/*")})
    k8s.apply(knp("deny-ingress", "x", "  podSelector: {}\n  ingress:\n  - from:\n"
                                       "    - namespaceSelector: {matchLabels: {ns: y}}"))
    k8s.check({(80, "tcp"): Reach().block(to="x/*").allow(frm="y/*", to="x/*")})
    k8s.apply(knp("deny-ingress", "x", "  podSelector: {matchLabels: {pod: b}}\n"
                                       "  policyTypes: [Ingress]"))
    k8s.check({(80, "tcp"): Reach().block(to="x/b")})
    k8s.delete_applied()
    k8s.baseline()


def test_pod_label_change_moves_source_in_and_out(k8s: Cluster) -> None:
    k8s.apply(knp("from-b", "x", "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n"
                                 "  - from:\n    - namespaceSelector: {}\n"
                                 "      podSelector: {matchLabels: {pod: b}}"))
    k8s.check({(80, "tcp"): Reach().block(to="x/a").allow(frm="*/b", to="x/a")})
    k8s.set_pod_labels("z/c", {"pod": "b"})
    k8s.check({(80, "tcp"): Reach().block(to="x/a").allow(frm=["*/b", "z/c"], to="x/a")})
    k8s.set_pod_labels("y/b", {"pod": "bb", "app": "web"})
    k8s.check({(80, "tcp"): Reach().block(to="x/a").allow(frm=["x/b", "z/b", "z/c"], to="x/a")})
    k8s.restore_pods()
    k8s.check({(80, "tcp"): Reach().block(to="x/a").allow(frm="*/b", to="x/a")})


def test_pod_label_change_moves_target_in_and_out(k8s: Cluster) -> None:
    k8s.apply(knp("deny-web", "y", "  podSelector: {matchLabels: {app: web}}\n"
                                   "  policyTypes: [Ingress]"))
    k8s.check({(80, "tcp"): Reach().block(to=["y/a", "y/b"])})
    k8s.set_pod_labels("y/c", {"pod": "c", "app": "web"})
    k8s.set_pod_labels("y/a", {"pod": "a"})
    k8s.check({(80, "tcp"): Reach().block(to=["y/b", "y/c"])})


def test_namespace_label_change(k8s: Cluster) -> None:
    k8s.apply(knp("from-red", "x", "  podSelector: {}\n  ingress:\n  - from:\n"
                                   "    - namespaceSelector: {matchLabels: {team: red}}"))
    k8s.check({(80, "tcp"): Reach().block(to="x/*")})
    k8s.set_namespace_labels("z", {"ns": "z", "team": "red"})
    k8s.check({(80, "tcp"): Reach().block(to="x/*").allow(frm="z/*", to="x/*")})
    k8s.set_namespace_labels("z", {"ns": "z"})
    k8s.set_namespace_labels("y", {"ns": "y", "team": "red"})
    k8s.check({(80, "tcp"): Reach().block(to="x/*").allow(frm="y/*", to="x/*")})
