"""Calico's extensions, measured: tiers, Pass, Log, Deny, order, global policy,
network sets, the not* matches, ICMP, service accounts, ipVersion.

Same lab and conventions as test_kubernetes.py; expectations are Calico's
documented semantics, written by hand.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.conformance.conftest import Cluster
from tests.conformance.reach import Reach

pytestmark = pytest.mark.integration

API = "apiVersion: projectcalico.org/v3\n"


def tier(name: str, order: int | None, default_action: str = "Deny") -> str:
    order_text = "" if order is None else f"order: {order}, "
    return (f"{API}kind: Tier\nmetadata: {{name: {name}}}\n"
            f"spec: {{{order_text}defaultAction: {default_action}}}\n---\n")


def np(name: str, ns: str, spec: str) -> str:
    return f"{API}kind: NetworkPolicy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec}\n---\n"


def gnp(name: str, spec: str) -> str:
    return f"{API}kind: GlobalNetworkPolicy\nmetadata: {{name: {name}}}\nspec:\n{spec}\n---\n"


IN_Z = "projectcalico.org/namespace == 'z'"


# ------------------------------------------------------------------ tiers


def test_tier_deny_before_default_tier(k8s: Cluster) -> None:
    # security (order 100) denies x -> z and passes the rest; nothing in the
    # default tier selects z, so the namespace profile allows what is passed.
    k8s.case(
        tier("security", 100)
        + gnp("security.block-x", f"  tier: security\n  selector: {IN_Z}\n  ingress:\n"
                                  "  - action: Deny\n    source: {namespaceSelector: ns == 'x'}\n"
                                  "  - action: Pass"),
        {(80, "tcp"): Reach().block(frm="x/*", to="z/*"),
         (81, "udp"): Reach().block(frm="x/*", to="z/*")},
    )


def test_tier_default_action_deny(k8s: Cluster) -> None:
    # Only y is allowed into z; the tier's default action denies the rest.
    k8s.case(
        tier("ops", 50, "Deny")
        + gnp("ops.from-y", f"  tier: ops\n  selector: {IN_Z}\n  ingress:\n"
                            "  - action: Allow\n    source: {namespaceSelector: ns == 'y'}"),
        {(80, "tcp"): Reach().block(to="z/*").allow(frm="y/*", to="z/*")},
    )


def test_tier_default_action_pass(k8s: Cluster) -> None:
    # Same policy, but the tier passes what it does not decide: the profile allows it.
    k8s.case(
        tier("ops", 50, "Pass")
        + gnp("ops.from-y", f"  tier: ops\n  selector: {IN_Z}\n  ingress:\n"
                            "  - action: Allow\n    source: {namespaceSelector: ns == 'y'}"),
        {(80, "tcp"): Reach()},
    )


def test_tier_default_pass_then_default_tier_denies(k8s: Cluster) -> None:
    k8s.case(
        tier("ops", 50, "Pass")
        + gnp("ops.from-y", f"  tier: ops\n  selector: {IN_Z}\n  ingress:\n"
                            "  - action: Allow\n    source: {namespaceSelector: ns == 'y'}")
        + np("z-from-a", "z", "  selector: pod == 'a'\n  ingress:\n  - action: Allow\n"
                              "    source: {namespaceSelector: all(), selector: pod == 'c'}"),
        # into z/a: y (ops allows) and */c (the default tier allows); z/b and z/c are
        # not selected in the default tier, so what ops passes reaches their profile.
        {(80, "tcp"): Reach().block(to="z/a").allow(frm=["y/*", "*/c"], to="z/a")},
    )


def test_tier_order(k8s: Cluster) -> None:
    # Lower order first: "first" (10) allows x -> y/a, "second" (20) denies everything into y/a.
    k8s.case(
        tier("second", 20) + tier("first", 10)
        + gnp("second.deny", "  tier: second\n  selector: >-\n"
                             "    projectcalico.org/namespace == 'y' && pod == 'a'\n"
                             "  ingress:\n  - action: Deny")
        + gnp("first.allow-x", "  tier: first\n  selector: >-\n"
                               "    projectcalico.org/namespace == 'y' && pod == 'a'\n"
                               "  ingress:\n  - action: Allow\n"
                               "    source: {namespaceSelector: ns == 'x'}\n  - action: Pass"),
        {(80, "tcp"): Reach().block(to="y/a").allow(frm="x/*", to="y/a")},
    )


def test_pass_hands_over_to_next_tier(k8s: Cluster) -> None:
    # security passes x, denies everything else into z; the default tier then
    # allows only pods labelled a (from anywhere) into z.
    k8s.case(
        tier("security", 100)
        + gnp("security.x-only", f"  tier: security\n  selector: {IN_Z}\n  ingress:\n"
                                 "  - action: Pass\n    source: {namespaceSelector: ns == 'x'}\n"
                                 "  - action: Deny")
        + np("from-a", "z", "  selector: all()\n  ingress:\n  - action: Allow\n"
                            "    source: {namespaceSelector: all(), selector: pod == 'a'}"),
        {(80, "tcp"): Reach().block(to="z/*").allow(frm="x/a", to="z/*")},
    )


# ------------------------------------------------------------------ actions and order


def test_deny_and_allow_ordered_by_policy_order(k8s: Cluster) -> None:
    deny = ("  order: 10\n  selector: pod == 'a'\n  ingress:\n  - action: Deny\n"
            "    source: {namespaceSelector: ns == 'y'}")
    allow = "  order: 20\n  selector: pod == 'a'\n  ingress:\n  - action: Allow"
    k8s.case(np("deny-y", "x", deny) + np("allow-all", "x", allow),
             {(80, "tcp"): Reach().block(frm="y/*", to="x/a")})
    # the other way round: the Allow policy comes first and decides
    k8s.case(np("deny-y", "x", deny.replace("order: 10", "order: 30"))
             + np("allow-all", "x", allow), {(80, "tcp"): Reach()})


def test_rule_order_inside_a_policy(k8s: Cluster) -> None:
    k8s.case(np("rules", "x", "  selector: pod == 'b'\n  ingress:\n"
                              "  - action: Allow\n    source: {selector: pod == 'c'}\n"
                              "  - action: Deny\n    source: {namespaceSelector: all()}\n"
                              "  - action: Allow"),
             {(80, "tcp"): Reach().block(to="x/b").allow(frm="x/c", to="x/b")})


def test_egress_deny_rule(k8s: Cluster) -> None:
    k8s.case(np("no-z", "y", "  selector: all()\n  types: [Egress]\n  egress:\n"
                             "  - action: Deny\n    destination: {namespaceSelector: ns == 'z'}\n"
                             "  - action: Allow"),
             {(80, "tcp"): Reach().block(frm="y/*", to="z/*"),
              (80, "udp"): Reach().block(frm="y/*", to="z/*")})


def test_global_policy_next_to_namespaced_policy(k8s: Cluster) -> None:
    # GNP order 100 denies z -> x; the namespaced allow-all (order 200) comes after it.
    gdeny = ("  order: 100\n  selector: projectcalico.org/namespace == 'x'\n  ingress:\n"
             "  - action: Deny\n    source: {namespaceSelector: ns == 'z'}")
    nallow = "  order: 200\n  selector: all()\n  ingress:\n  - action: Allow"
    k8s.case(gnp("deny-z-to-x", gdeny) + np("allow-all", "x", nallow),
             {(80, "tcp"): Reach().block(frm="z/*", to="x/*")})
    k8s.case(gnp("deny-z-to-x", gdeny.replace("order: 100", "order: 300"))
             + np("allow-all", "x", nallow), {(80, "tcp"): Reach()})


def test_global_policy_namespace_selector(k8s: Cluster) -> None:
    k8s.case(gnp("isolate", "  namespaceSelector: ns in {'x', 'y'}\n  selector: pod == 'c'\n"
                            "  ingress:\n  - action: Allow\n    source: {selector: pod == 'a'}"),
             {(80, "tcp"): Reach().block(to=["x/c", "y/c"]).allow(frm="*/a", to=["x/c", "y/c"])})


def test_log_then_deny(k8s: Cluster) -> None:
    k8s.case(np("log-deny", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Log\n"
                                 "  - action: Deny\n    source: {selector: pod == 'b'}\n"
                                 "  - action: Allow"),
             {(80, "tcp"): Reach().block(frm="x/b", to="x/a")})


# ------------------------------------------------------------------ network sets and nets


def test_global_network_set(k8s: Cluster) -> None:
    ya, zb = k8s.ips["y/a"], k8s.ips["z/b"]
    k8s.case(
        f"{API}kind: GlobalNetworkSet\nmetadata: {{name: trusted, labels: {{role: trusted}}}}\n"
        f"spec: {{nets: ['{ya}/32', '{zb}/32']}}\n---\n"
        + np("from-trusted", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Allow\n"
                                  "    source: {namespaceSelector: global(), "
                                  "selector: role == 'trusted'}"),
        {(80, "tcp"): Reach().block(to="x/a").allow(frm=["y/a", "z/b"], to="x/a")},
    )


def test_network_set_in_namespace(k8s: Cluster) -> None:
    yc = k8s.ips["y/c"]
    k8s.case(
        f"{API}kind: NetworkSet\nmetadata: {{name: partners, namespace: x, "
        f"labels: {{role: partner}}}}\nspec: {{nets: ['{yc}/32']}}\n---\n"
        + np("from-partners", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Allow\n"
                                   "    source: {selector: role == 'partner'}"),
        {(80, "tcp"): Reach().block(to="x/a").allow(frm="y/c", to="x/a")},
    )


def test_nets_and_not_nets(k8s: Cluster) -> None:
    zc = k8s.ips["z/c"]
    k8s.case(np("not-zc", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Allow\n"
                               f"    source: {{nets: [198.18.0.0/15], notNets: ['{zc}/32']}}"),
             {(80, "tcp"): Reach().block(frm="z/c", to="x/a")})


def test_not_selector(k8s: Cluster) -> None:
    k8s.case(np("not-b", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Allow\n"
                              "    source: {namespaceSelector: all(), notSelector: pod == 'b'}"),
             {(80, "tcp"): Reach().block(frm="*/b", to="x/a")})


def test_not_ports(k8s: Cluster) -> None:
    k8s.case(np("not-80", "x", "  selector: all()\n  ingress:\n  - action: Allow\n"
                               "    protocol: TCP\n    destination: {notPorts: [80]}"),
             {(80, "tcp"): Reach().block(to="x/*"),
              (81, "tcp"): Reach(),
              (81, "udp"): Reach().block(to="x/*")})


def test_port_range_and_named_port_in_calico_rule(k8s: Cluster) -> None:
    k8s.case(np("ports", "y", "  selector: all()\n  ingress:\n  - action: Allow\n"
                              "    protocol: UDP\n    destination: {ports: ['81:85', serve-80-tcp]}"),
             # serve-80-tcp is a TCP port: with protocol UDP it names nothing
             {(81, "udp"): Reach(),
              (80, "udp"): Reach().block(to="y/*"),
              (80, "tcp"): Reach().block(to="y/*")})


def test_not_protocol(k8s: Cluster) -> None:
    k8s.case(np("no-udp", "x", "  selector: all()\n  ingress:\n  - action: Allow\n"
                               "    notProtocol: UDP"),
             {(80, "tcp"): Reach(), (80, "udp"): Reach().block(to="x/*")})


def test_ip_version(k8s: Cluster) -> None:
    # The lab is IPv4-only: a rule for IPv6 matches nothing.
    k8s.case(np("v6-only", "x", "  selector: pod == 'c'\n  ingress:\n  - action: Allow\n"
                                "    ipVersion: 6"),
             {(80, "tcp"): Reach().block(to="x/c")})


def test_service_accounts(k8s: Cluster) -> None:
    k8s.set_service_account("y/b", "robot")
    k8s.set_service_account("x/c", "robot")
    k8s.case(np("robots", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Allow\n"
                               "    source: {serviceAccounts: {names: [robot]}}"),
             # without namespaceSelector: robots of the policy's own namespace only
             {(80, "tcp"): Reach().block(to="x/a").allow(frm="x/c", to="x/a")})
    k8s.case(np("robots", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Allow\n"
                               "    source: {namespaceSelector: all(), "
                               "serviceAccounts: {names: [robot]}}"),
             {(80, "tcp"): Reach().block(to="x/a").allow(frm=["x/c", "y/b"], to="x/a")})


def test_service_account_selectors(k8s: Cluster) -> None:
    k8s.set_service_account("y/b", "robot")
    k8s.set_service_account("x/c", "robot")
    # serviceAccounts.selector sees the account's name as projectcalico.org/name
    k8s.case(np("sa-sel", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Allow\n"
                               "    source: {namespaceSelector: all(), serviceAccounts: "
                               "{selector: \"projectcalico.org/name == 'robot'\"}}"),
             {(80, "tcp"): Reach().block(to="x/a").allow(frm=["x/c", "y/b"], to="x/a")})
    # a policy's serviceAccountSelector narrows what it selects
    k8s.case(gnp("robots-closed", "  selector: all()\n"
                                  "  serviceAccountSelector: \"projectcalico.org/name == 'robot'\"\n"
                                  "  types: [Ingress]"),
             {(80, "tcp"): Reach().block(to=["x/c", "y/b"])})


def test_services_fail_closed(k8s: Cluster) -> None:
    # Kubernetes Services are not stored in gingham: an Allow on one never
    # matches, a Deny on one denies regardless of the Service.
    svc = "    source: {services: {name: web, namespace: y}}"
    head = "  selector: pod == 'b'\n  ingress:\n"
    k8s.case(np("svc", "z", f"{head}  - action: Allow\n{svc}"),
             {(80, "tcp"): Reach().block(to="z/b")})
    k8s.case(np("svc", "z", f"{head}  - action: Deny\n{svc}\n    protocol: TCP\n"
                            "  - action: Allow"),
             {(80, "tcp"): Reach().block(to="z/b"), (80, "udp"): Reach()})


# ------------------------------------------------------------------ ICMP


def _ping(k8s: Cluster, src: str, dst: str) -> bool:
    from gingham.lab import state as labstate

    wl = labstate.load(k8s.lab).workload(src)
    proc = subprocess.run(
        ["nsenter", f"--net=/run/netns/{wl.netns}", "--", "busybox", "ping", "-c", "1",
         "-W", "1", k8s.ips[dst]], capture_output=True, timeout=10, check=False)  # fmt: skip
    return proc.returncode == 0


def _wait_ping(k8s: Cluster, src: str, dst: str, want: bool) -> None:
    import time

    deadline = time.monotonic() + 10
    while _ping(k8s, src, dst) != want:
        assert time.monotonic() < deadline, f"ping {src} -> {dst} should be {want}"


def test_icmp_type_and_code(k8s: Cluster) -> None:
    from gingham.policy.explain import explain
    from gingham.policy.world import load_world

    try:
        k8s.apply(np("echo-only", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Allow\n"
                                       "    protocol: ICMP\n    icmp: {type: 8, code: 0}"))
        _wait_ping(k8s, "y/a", "x/a", True)
        world = load_world(k8s.datastore)
        assert explain(world, "y/a", "x/a", None, "icmp", icmp_type=8, icmp_code=0).allowed
        assert not explain(world, "y/a", "x/a", None, "icmp", icmp_type=13).allowed
        # timestamp requests only: an echo request is no longer allowed
        k8s.apply(np("echo-only", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Allow\n"
                                       "    protocol: ICMP\n    icmp: {type: 13}"))
        _wait_ping(k8s, "y/a", "x/a", False)
        world = load_world(k8s.datastore)
        assert not explain(world, "y/a", "x/a", None, "icmp", icmp_type=8, icmp_code=0).allowed
        # notICMP: everything but echo requests
        k8s.apply(np("echo-only", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Allow\n"
                                       "    protocol: ICMP\n    notICMP: {type: 8}"))
        _wait_ping(k8s, "y/a", "x/a", False)
        k8s.check({(80, "tcp"): Reach().block(to="x/a")})
    finally:
        k8s.delete_applied()
    _wait_ping(k8s, "y/a", "x/a", True)
