"""The reference evaluator on hand-built worlds: each expectation is the
documented semantics (DESIGN.md section 3, Calico and Kubernetes docs)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gingham.errors import ValidationError
from gingham.model import load_manifests
from gingham.policy.explain import explain, explain_matrix, matrix
from gingham.policy.world import World

NAMESPACES = """
apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {ns: x}}
---
apiVersion: v1
kind: Namespace
metadata: {name: y, labels: {ns: y, team: red}}
"""


def wep(ns: str, name: str, ip: str, labels: str = "{}", extra: str = "") -> str:
    return f"""---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {{name: h1-cni-{name}-eth0, namespace: {ns}, labels: {labels}}}
spec:
  workload: {name}
  node: h1
  orchestrator: cni
  interfaceName: gh{ns}{name}
  ipNetworks: [{ip}/32]
  profiles: [kns.{ns}]
  ports:
  - {{name: http, protocol: TCP, port: 8080}}
  - {{name: dns, protocol: UDP, port: 53}}
{extra}"""


PODS = (
    wep("x", "a", "198.18.0.1", "{pod: a, app: web}")
    + wep("x", "b", "198.18.0.2", "{pod: b}", "  serviceAccountName: robot\n")
    + wep("y", "a", "198.18.0.3", "{pod: a}")
    + wep("y", "b", "198.18.0.4", "{pod: b, app: web}")
)


def world(extra: str = "") -> World:
    return World.build(load_manifests(NAMESPACES + PODS + ("---\n" + extra if extra else "")))


def allowed(w: World, src: str, dst: str, port: int | None = 80, proto: str = "tcp") -> bool:
    return explain(w, src, dst, port, proto).allowed


def np(name: str, ns: str, spec: str) -> str:
    return (f"apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\n"
            f"metadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec}\n---\n")


def gnp(name: str, spec: str) -> str:
    return (f"apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n"
            f"metadata: {{name: {name}}}\nspec:\n{spec}\n---\n")


def tier(name: str, order: int | None, action: str = "Deny") -> str:
    o = "" if order is None else f"order: {order}, "
    return (f"apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {{name: {name}}}\n"
            f"spec: {{{o}defaultAction: {action}}}\n---\n")


# ------------------------------------------------------------------ profiles


def test_no_policy_means_the_namespace_profile_allows() -> None:
    v = explain(world(), "x/a", "y/b", 80)
    assert v.allowed
    assert v.ingress.decided_by == "profile"
    assert v.ingress.reason == "no policy selects y/b: profile kns.y allows (ingress rule 0)"
    assert v.egress.rule_id == "profile:kns.x:e0"


def test_missing_profile_fails_closed() -> None:
    w = World.build(load_manifests(PODS))  # no Namespace, so no kns.* profiles
    v = explain(w, "x/a", "y/b", 80)
    assert not v.allowed
    assert v.egress.decided_by == "missing-profile"
    assert "kns.x does not exist" in v.egress.reason


def test_loopback_is_always_allowed() -> None:
    w = world(np("deny", "x", "  selector: all()\n  types: [Ingress, Egress]"))
    v = explain(w, "x/a", "x/a", 80)
    assert v.allowed and v.ingress.decided_by == "loopback"


def test_unknown_workload_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match=r"no workload endpoint 'x/zz'.*known: x/a"):
        explain(world(), "x/a", "x/zz", 80)


# ------------------------------------------------------------------ selection


def test_a_selected_endpoint_denies_what_no_rule_allows() -> None:
    w = world(np("only-b", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Allow\n"
                                "    source: {selector: pod == 'b'}"))
    assert allowed(w, "x/b", "x/a")
    v = explain(w, "y/a", "x/a", 80)
    assert not v.allowed
    assert (v.ingress.decided_by, v.ingress.tier, v.ingress.rule_id) == (
        "tier-default", "default", "tier-end:default")
    assert v.ingress.policies_selecting == ("default/x/only-b",)
    assert v.egress.allowed  # egress of y/a is untouched


def test_namespaced_policy_selects_only_its_namespace() -> None:
    w = world(np("deny", "x", "  selector: all()\n  types: [Ingress]"))
    assert not allowed(w, "y/a", "x/b")
    assert allowed(w, "x/a", "y/a")


def test_types_limit_the_directions() -> None:
    w = world(np("egress-only", "x", "  selector: pod == 'a'\n  types: [Egress]"))
    assert not allowed(w, "x/a", "y/a")
    assert allowed(w, "y/a", "x/a")


def test_global_policy_namespace_selector() -> None:
    w = world(gnp("red", "  namespaceSelector: team == 'red'\n  selector: all()\n"
                         "  types: [Ingress]"))
    assert not allowed(w, "x/a", "y/a")
    assert allowed(w, "y/a", "x/a")


def test_rule_selector_in_namespaced_policy_is_scoped_to_its_namespace() -> None:
    w = world(np("from-b", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Allow\n"
                                "    source: {selector: pod == 'b'}"))
    assert allowed(w, "x/b", "x/a")
    assert not allowed(w, "y/b", "x/a")  # pod=b, but in another namespace


def test_namespace_selector_sees_namespace_labels() -> None:
    w = world(np("from-red", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Allow\n"
                                  "    source: {namespaceSelector: team == 'red'}"))
    assert allowed(w, "y/a", "x/a") and allowed(w, "y/b", "x/a")
    assert not allowed(w, "x/b", "x/a")


def test_kubernetes_policy_is_converted() -> None:
    w = world("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
              "metadata: {name: web, namespace: y}\n"
              "spec:\n  podSelector: {matchLabels: {app: web}}\n  ingress:\n  - from:\n"
              "    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: x}}\n"
              "      podSelector: {matchExpressions: [{key: pod, operator: NotIn, values: [b]}]}\n")
    assert allowed(w, "x/a", "y/b")
    assert not allowed(w, "x/b", "y/b")
    assert not allowed(w, "y/a", "y/b")
    assert allowed(w, "x/b", "y/a")  # y/a is not selected
    assert explain(w, "x/a", "y/b", 80).ingress.policy == "default/y/knp.default.web"


# ------------------------------------------------------------------ order, tiers, actions


def test_policy_order_then_name() -> None:
    deny = "  selector: pod == 'a'\n  ingress:\n  - action: Deny"
    allow = "  selector: pod == 'a'\n  ingress:\n  - action: Allow"
    w = world(np("b-allow", "x", "  order: 5\n" + allow) + np("a-deny", "x", "  order: 5\n" + deny))
    assert not allowed(w, "y/a", "x/a")  # same order: a-deny sorts first by name
    w = world(np("b-allow", "x", "  order: 5\n" + allow) + np("a-deny", "x", deny))
    assert allowed(w, "y/a", "x/a")  # no order sorts last


def test_tier_order_absent_last_and_default_tier() -> None:
    deny = "  selector: pod == 'a'\n  ingress:\n  - action: Deny"
    allow = "  selector: pod == 'a'\n  ingress:\n  - action: Allow"
    # The default tier has order 1,000,000: a tier with order 10 comes first.
    w = world(tier("early", 10) + gnp("early.allow", "  tier: early\n" + allow)
              + np("deny", "x", deny))
    assert allowed(w, "y/a", "x/a")
    assert explain(w, "y/a", "x/a", 80).ingress.tier == "early"
    # A tier without order comes after the default tier.
    w = world(tier("late", None) + gnp("late.allow", "  tier: late\n" + allow)
              + np("deny", "x", deny))
    assert not allowed(w, "y/a", "x/a")


def test_pass_skips_to_the_next_tier_and_then_the_profile() -> None:
    w = world(tier("sec", 10) + gnp("sec.pass", "  tier: sec\n  selector: pod == 'a'\n"
                                                "  ingress:\n  - action: Pass"))
    v = explain(w, "y/a", "x/a", 80)
    assert v.allowed and v.ingress.decided_by == "profile"
    assert v.ingress.reason.startswith("every tier passed")
    w2 = World.build([*w.policies, *load_manifests(
        NAMESPACES + PODS + "---\n" + tier("sec", 10)
        + np("deny", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Deny"))])
    assert not allowed(w2, "y/a", "x/a")


def test_tier_default_action_pass() -> None:
    spec = ("  tier: ops\n  selector: pod == 'a'\n  ingress:\n  - action: Allow\n"
            "    source: {namespaceSelector: ns == 'x'}")
    assert not allowed(world(tier("ops", 1, "Deny") + gnp("ops.x", spec)), "y/a", "x/a")
    assert allowed(world(tier("ops", 1, "Pass") + gnp("ops.x", spec)), "y/a", "x/a")


def test_log_continues_and_is_recorded() -> None:
    w = world(np("log", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Log\n"
                             "  - action: Deny\n    source: {selector: pod == 'b'}\n"
                             "  - action: Allow"))
    v = explain(w, "x/b", "x/a", 80)
    assert not v.allowed
    assert v.ingress.logged == ("policy:default/x/log:i0",)
    assert (v.ingress.rule_index, v.ingress.rule_id) == (1, "policy:default/x/log:i1")
    assert allowed(w, "y/b", "x/a")


# ------------------------------------------------------------------ matches


def test_ports_numeric_range_and_named() -> None:
    w = world(np("ports", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Allow\n"
                               "    protocol: TCP\n    destination: {ports: ['100:200', http]}"))
    assert allowed(w, "y/a", "x/a", 150)
    assert allowed(w, "y/a", "x/a", 8080)  # named port http of x/a
    assert not allowed(w, "y/a", "x/a", 80)
    assert not allowed(w, "y/a", "x/a", 150, "udp")


def test_named_port_needs_the_protocol_it_was_declared_with() -> None:
    w = world(np("dns", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Allow\n"
                             "    protocol: TCP\n    destination: {ports: [dns]}"))
    assert not allowed(w, "y/a", "x/a", 53)


def test_not_matches() -> None:
    w = world(np("nots", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Allow\n"
                              "    notProtocol: UDP\n"
                              "    source: {notNets: [198.18.0.4/32], namespaceSelector: all(),"
                              " notSelector: pod == 'b'}\n"
                              "    destination: {}"))
    assert allowed(w, "y/a", "x/a")
    assert not allowed(w, "y/a", "x/a", 80, "udp")
    assert not allowed(w, "x/b", "x/a")  # notSelector
    assert not allowed(w, "y/b", "x/a")  # notNets (and notSelector)
    w = world(np("np", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Allow\n"
                            "    protocol: TCP\n    destination: {notPorts: [80, '90:99']}"))
    assert not allowed(w, "y/a", "x/a", 95) and allowed(w, "y/a", "x/a", 81)


def test_network_sets() -> None:
    w = world("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\n"
              "metadata: {name: g, labels: {role: trusted}}\nspec: {nets: [198.18.0.4/32]}\n---\n"
              "apiVersion: projectcalico.org/v3\nkind: NetworkSet\n"
              "metadata: {name: n, namespace: x, labels: {role: partner}}\n"
              "spec: {nets: [198.18.0.3/32]}\n---\n"
              + np("sets", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Allow\n"
                                "    source: {namespaceSelector: global(), selector: role == 'trusted'}\n"
                                "  - action: Allow\n    source: {selector: role == 'partner'}"))
    assert allowed(w, "y/b", "x/a")  # in the global set
    assert allowed(w, "y/a", "x/a")  # in x's network set
    assert not allowed(w, "x/b", "x/a")


def test_service_accounts_and_icmp_and_ip_version() -> None:
    w = world(np("sa", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Allow\n"
                            "    source: {serviceAccounts: {names: [robot]}}\n"
                            "  - action: Allow\n    protocol: ICMP\n    icmp: {type: 8, code: 0}\n"
                            "  - action: Allow\n    ipVersion: 6"))
    assert allowed(w, "x/b", "x/a")
    assert not allowed(w, "y/a", "x/a")
    assert explain(w, "y/a", "x/a", None, "icmp", icmp_type=8, icmp_code=0).allowed
    assert not explain(w, "y/a", "x/a", None, "icmp", icmp_type=8, icmp_code=1).allowed


# ------------------------------------------------------------------ matrices


def test_matrix_and_explain_matrix_from_a_datastore(tmp_path: object) -> None:
    from gingham.datastore import open_datastore
    from gingham.datastore.resources import ResourceStore

    text = NAMESPACES + PODS + "---\n" + np("deny", "y", "  selector: all()\n  types: [Ingress]")
    ds = open_datastore(f"sqlite://{tmp_path}/t.db", create=True)
    try:
        for res in load_manifests(text):
            ResourceStore(ds).apply(res)
        names = ["x/a", "y/a", "missing/pod"]
        got = explain_matrix(ds, names, 80)
    finally:
        ds.close()
    assert got == {
        "x/a": {"x/a": True, "y/a": False, "missing/pod": False},
        "y/a": {"x/a": True, "y/a": True, "missing/pod": False},
        "missing/pod": {"x/a": False, "y/a": False, "missing/pod": False},
    }


@settings(max_examples=25, deadline=None)
@given(st.permutations(list(range(6))))
def test_verdicts_do_not_depend_on_resource_order(order: list[int]) -> None:
    extra = [
        tier("sec", 10, "Pass"),
        gnp("sec.p", "  tier: sec\n  selector: pod == 'a'\n  ingress:\n  - action: Pass\n"
                     "    source: {selector: pod == 'b'}\n  - action: Deny"),
        np("z1", "x", "  order: 3\n  selector: all()\n  ingress:\n  - action: Allow\n"
                      "    source: {namespaceSelector: all(), selector: app == 'web'}"),
        np("z2", "x", "  order: 3\n  selector: all()\n  ingress:\n  - action: Deny"),
        np("e", "y", "  selector: pod == 'b'\n  types: [Egress]\n  egress:\n  - action: Allow\n"
                     "    destination: {namespaceSelector: ns == 'x'}"),
        np("l", "y", "  selector: all()\n  ingress:\n  - action: Log"),
    ]
    resources = load_manifests(NAMESPACES + PODS)
    policies = [load_manifests(extra[i])[0] for i in order]
    names = ["x/a", "x/b", "y/a", "y/b"]
    base = matrix(World.build(resources + [load_manifests(e)[0] for e in extra]), names, 80)
    assert matrix(World.build(policies + resources), names, 80) == base


def test_addresses_outside_gingham() -> None:
    w = world(np("out", "x", "  selector: pod == 'a'\n  types: [Egress]\n  egress:\n"
                             "  - action: Allow\n    destination: {nets: [203.0.113.0/24]}")
              + np("in", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Allow\n"
                              "    source: {nets: [192.0.2.0/24], notNets: [192.0.2.9/32]}"))
    v = explain(w, "x/a", "203.0.113.7", 443)
    assert v.allowed and v.ingress.decided_by == "not-an-endpoint"
    assert "203.0.113.7 is not a gingham workload" in v.ingress.reason
    assert not explain(w, "x/a", "198.51.100.7", 443).allowed
    assert explain(w, "192.0.2.8", "x/a", 80).allowed
    assert not explain(w, "192.0.2.9", "x/a", 80).allowed
    # an address a workload owns is that workload
    assert explain(w, "198.18.0.3", "x/a", 80).egress.endpoint == "y/a"
    with pytest.raises(ValidationError, match="neither"):
        explain(w, "192.0.2.1", "192.0.2.2", 80)


def test_service_account_selectors_see_the_account_name() -> None:
    w = world(np("sa-sel", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Allow\n"
                                "    source: {serviceAccounts: "
                                "{selector: \"projectcalico.org/name == 'robot'\"}}"))
    assert allowed(w, "x/b", "x/a")  # x/b runs as robot
    assert not allowed(w, "y/b", "x/a")
    w = world(np("robots-only", "x", "  selector: all()\n"
                                     "  serviceAccountSelector: \"projectcalico.org/name == 'robot'\"\n"
                                     "  types: [Ingress]"))
    assert not allowed(w, "y/a", "x/b")  # selected: x/b's account is robot
    assert allowed(w, "y/a", "x/a")  # not selected: no account


def test_services_fail_closed() -> None:
    svc = "    source: {services: {name: web, namespace: y}}"
    head = "  selector: pod == 'a'\n  ingress:\n"
    # Services are not stored: an Allow on one never matches ...
    w = world(np("svc", "x", f"{head}  - action: Allow\n{svc}"))
    v = explain(w, "y/a", "x/a", 80)
    assert not v.allowed and v.ingress.decided_by == "tier-default"
    # ... and a Deny on one drops the Service condition, denying more.
    w = world(np("svc", "x", f"{head}  - action: Deny\n{svc}\n  - action: Allow"))
    v = explain(w, "y/a", "x/a", 80)
    assert not v.allowed and v.ingress.rule_index == 0
