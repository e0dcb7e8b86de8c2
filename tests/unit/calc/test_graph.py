"""Scenario tests of the calculation graph: what reaches the dataplane, and in what order."""

from __future__ import annotations

import pytest

from gingham.calc import messages as m
from gingham.calc.inputs import BlockKey, ResourceKey
from tests.unit.calc.builders import (
    HOST,
    Harness,
    felix,
    hep,
    k8s_policy,
    namespace,
    namespace_profile,
    netset,
    policy,
    profile,
    tier,
    wep,
)


def _rule_sets(h: Harness, name: str, ns: str | None = None, tier_name: str = "default"):
    return h.state.policies[m.PolicyID(tier_name, name, ns)]


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_local_endpoint_gets_policy_and_selector_set(h: Harness) -> None:
    h.put(profile("kns.prod"))
    h.put(wep("prod", "web", ips=["198.18.0.1/32"], labels={"app": "web"}, profiles=["kns.prod"]),
          wep("prod", "db", node="host-b", ips=["198.18.1.1/32"], labels={"app": "db"},
              profiles=["kns.prod"]),
          policy("web-from-db", ns="prod", selector="app == 'web'",
                 ingress=[{"action": "Allow", "protocol": "TCP",
                           "source": {"selector": "app == 'db'"},
                           "destination": {"ports": [5432]}}]))
    pol = _rule_sets(h, "web-from-db", "prod")
    (rule,) = pol.inbound
    assert rule.action == "allow" and rule.protocol == 6 and rule.dst_ports == ((5432, 5432),)
    (set_id,) = rule.src_set_ids
    assert h.set_members(set_id) == {"198.18.1.1/32"}
    ep = h.endpoint("prod", "web")
    assert ep.ipv4_nets == ("198.18.0.1/32",)
    assert [t.name for t in ep.tiers] == ["default"]
    assert ep.tiers[0].ingress_policies == (pol.policy_id,)
    assert ep.tiers[0].egress_policies == ()
    assert ep.profile_ids == ("kns.prod",)
    # The remote endpoint is only an IP-set member.
    assert m.WorkloadEndpointID("prod", "db") not in h.state.endpoints
    assert rule.rule_id == "policy:default/prod/web-from-db:i0"


def test_policy_selecting_no_local_endpoint_produces_nothing(h: Harness) -> None:
    out = h.put(wep("prod", "remote", node="host-b", ips=["198.18.1.1/32"], labels={"app": "x"}),
                policy("p", ns="prod", selector="app == 'x'",
                       ingress=[{"action": "Allow", "source": {"selector": "all()"}}]))
    assert out == []
    assert h.state.snapshot() == ({}, {}, {}, {})


def test_namespaced_policy_selects_only_its_namespace(h: Harness) -> None:
    h.put(wep("a", "w1", ips=["198.18.0.1/32"], labels={"app": "web"}),
          wep("b", "w2", ips=["198.18.0.2/32"], labels={"app": "web"}),
          policy("p", ns="a", selector="app == 'web'"))
    pid = m.PolicyID("default", "p", "a")
    assert h.endpoint("a", "w1").tiers[0].ingress_policies == (pid,)
    assert h.endpoint("b", "w2").tiers == ()


def test_rule_selector_scoped_to_policy_namespace(h: Harness) -> None:
    h.put(wep("a", "w1", ips=["198.18.0.1/32"], labels={"app": "web"}),
          wep("a", "c1", node="host-b", ips=["198.18.0.3/32"], labels={"role": "client"}),
          wep("b", "c2", node="host-b", ips=["198.18.0.4/32"], labels={"role": "client"}),
          policy("p", ns="a", selector="app == 'web'",
                 ingress=[{"action": "Allow", "source": {"selector": "role == 'client'"}}]),
          policy("g", selector="app == 'web'",
                 ingress=[{"action": "Allow", "source": {"selector": "role == 'client'"}}]))
    (ns_rule,) = _rule_sets(h, "p", "a").inbound
    (g_rule,) = _rule_sets(h, "g").inbound
    assert h.set_members(ns_rule.src_set_ids[0]) == {"198.18.0.3/32"}
    assert h.set_members(g_rule.src_set_ids[0]) == {"198.18.0.3/32", "198.18.0.4/32"}


def test_namespace_label_change_moves_set_membership(h: Harness) -> None:
    h.put(namespace_profile("a", {"team": "red"}), namespace_profile("b", {"team": "blue"}),
          wep("a", "w1", ips=["198.18.0.1/32"], labels={"app": "web"}, profiles=["kns.a"]),
          wep("b", "w2", node="host-b", ips=["198.18.0.2/32"], profiles=["kns.b"]),
          policy("p", ns="a", selector="app == 'web'",
                 ingress=[{"action": "Allow", "source": {"namespaceSelector": "team == 'red'"}}]))
    (rule,) = _rule_sets(h, "p", "a").inbound
    sid = rule.src_set_ids[0]
    assert h.set_members(sid) == {"198.18.0.1/32"}
    out = h.put(namespace_profile("b", {"team": "red"}))
    assert m.IPSetDeltaUpdate(sid, frozenset({"198.18.0.2/32"}), frozenset()) in out
    assert h.set_members(sid) == {"198.18.0.1/32", "198.18.0.2/32"}
    h.put(namespace_profile("a", {"team": "green"}))
    assert h.set_members(sid) == {"198.18.0.2/32"}


def test_global_namespace_selector_selects_non_namespaced(h: Harness) -> None:
    h.put(wep("a", "w1", ips=["198.18.0.1/32"], labels={"app": "web"}),
          netset("ext", ["203.0.113.0/24"], labels={"kind": "ext"}),
          netset("nsnet", ["198.51.100.0/24"], ns="a", labels={"kind": "ext"}),
          policy("g", selector="app == 'web'",
                 ingress=[{"action": "Allow",
                           "source": {"selector": "kind == 'ext'", "namespaceSelector": "global()"}}]),
          policy("p", ns="a", selector="app == 'web'",
                 ingress=[{"action": "Allow", "source": {"selector": "kind == 'ext'"}}]))
    (g_rule,) = _rule_sets(h, "g").inbound
    (p_rule,) = _rule_sets(h, "p", "a").inbound
    assert h.set_members(g_rule.src_set_ids[0]) == {"203.0.113.0/24"}
    assert h.set_members(p_rule.src_set_ids[0]) == {"198.51.100.0/24"}


def test_named_ports(h: Harness) -> None:
    h.put(wep("a", "web", ips=["198.18.0.1/32"], labels={"app": "web"},
              ports=[("http", "TCP", 8080)]),
          wep("a", "web2", node="host-b", ips=["198.18.0.2/32", "2001:db8::2/128"],
              labels={"app": "web"}, ports=[("http", "TCP", 9090), ("http", "UDP", 53)]),
          wep("a", "other", node="host-b", ips=["198.18.0.3/32"], labels={"app": "other"},
              ports=[("http", "TCP", 80)]),
          policy("to-web", ns="a", selector="app == 'client'", types=["Egress"],
                 egress=[{"action": "Allow", "protocol": "TCP",
                          "destination": {"selector": "app == 'web'", "ports": ["http", 443]}}]),
          wep("a", "client", ips=["198.18.0.9/32"], labels={"app": "client"}))
    (rule,) = _rule_sets(h, "to-web", "a").outbound
    assert rule.dst_ports == ((443, 443),)
    (np_set,) = rule.dst_named_port_set_ids
    assert h.state.ipsets[np_set] == ("net-port", frozenset(
        {"198.18.0.1,tcp:8080", "198.18.0.2,tcp:9090", "2001:db8::2,tcp:9090"}))
    # The named port moves when the endpoint changes it.
    out = h.put(wep("a", "web", ips=["198.18.0.1/32"], labels={"app": "web"},
                    ports=[("http", "TCP", 8081)]))
    assert out == [m.IPSetDeltaUpdate(np_set, frozenset({"198.18.0.1,tcp:8081"}),
                                      frozenset({"198.18.0.1,tcp:8080"}))]


def test_missing_profile_fails_closed(h: Harness) -> None:
    h.put(wep("a", "w", ips=["198.18.0.1/32"], profiles=["kns.a", "extra"]), profile("kns.a"))
    ep = h.endpoint("a", "w")
    assert ep.profile_ids == () and ep.missing_profiles == ("extra",)
    h.put(profile("extra"))
    ep = h.endpoint("a", "w")
    assert ep.profile_ids == ("kns.a", "extra") and ep.missing_profiles == ()
    h.delete(profile("extra"))
    assert h.endpoint("a", "w").profile_ids == ()
    assert "extra" not in h.state.profiles


def test_tier_and_policy_order(h: Harness) -> None:
    h.put(wep("a", "w", ips=["198.18.0.1/32"]),
          tier("security", 100), tier("platform", None, "Pass"),
          policy("z", order=10), policy("y", order=10), policy("x"), policy("w", order=1),
          policy("s1", tier="security", types=["Egress"]),
          policy("p1", tier="platform", types=["Ingress", "Egress"]))
    tiers = h.endpoint("a", "w").tiers
    assert [t.name for t in tiers] == ["security", "default", "platform"]
    assert tiers[0].ingress_policies == () and len(tiers[0].egress_policies) == 1
    assert [p.name for p in tiers[1].ingress_policies] == ["w", "y", "z", "x"]
    assert tiers[2].default_action == "pass"
    h.put(tier("default", 1))
    assert [t.name for t in h.endpoint("a", "w").tiers] == ["default", "security", "platform"]


def test_policy_update_reuses_sets_and_removal_cleans_up(h: Harness) -> None:
    h.put(wep("a", "w", ips=["198.18.0.1/32"], labels={"app": "w"}),
          policy("p", selector="app == 'w'",
                 ingress=[{"action": "Allow", "source": {"selector": "x == '1'"}}]))
    (sid,) = _rule_sets(h, "p").inbound[0].src_set_ids
    out = h.put(policy("p", selector="app == 'w'", order=5,
                       ingress=[{"action": "Allow", "source": {"selector": "x == '1'"}},
                                {"action": "Deny", "source": {"selector": "x == '1'"}}]))
    assert not any(isinstance(x, (m.IPSetUpdate, m.IPSetRemove)) for x in out)
    h.delete(policy("p"))
    assert h.state.policies == {} and sid not in h.state.ipsets
    assert h.endpoint("a", "w").tiers == ()
    h.delete(wep("a", "w"))
    assert h.state.snapshot() == ({}, {}, {}, {})
    stats = h.graph.stats()
    assert stats["ip_sets"] == 0 and stats["items"] == 0 and stats["scanner_owners"] == 0


def test_host_endpoint_tiers_by_flags(h: Harness) -> None:
    h.put(hep("eth0", labels={"role": "host"}),
          policy("normal", selector="role == 'host'"),
          policy("untracked", selector="role == 'host'", doNotTrack=True, applyOnForward=True),
          policy("predn", selector="role == 'host'", preDNAT=True, applyOnForward=True),
          policy("fwd", selector="role == 'host'", applyOnForward=True))
    ep = h.state.endpoints["eth0"]
    assert isinstance(ep, m.HostEndpointUpdate)
    names = lambda tiers: [p.name for t in tiers for p in t.ingress_policies]  # noqa: E731
    assert names(ep.tiers) == ["fwd", "normal"]
    assert names(ep.untracked_tiers) == ["untracked"]
    assert names(ep.pre_dnat_tiers) == ["predn"]
    assert names(ep.forward_tiers) == ["fwd"]
    assert ep.expected_ipv4_addrs == ("192.0.2.10",)


def test_spurious_delete_and_non_resource_keys(h: Harness) -> None:
    assert h.delete(wep("a", "never")) == []
    h.graph.on_update(BlockKey("x"), {"a": 1})
    h.graph.on_update(ResourceKey("IPPool", "p"), object())
    h.graph.on_update(ResourceKey("Unheard", "of"), object())
    assert h.flush() == []


def test_in_sync_and_config(h: Harness) -> None:
    h.graph.on_update(*felix("default", defaultEndpointToHostAction="Accept", interfacePrefix="ghx"))
    h.graph.on_update(*felix(f"node.{HOST}", defaultEndpointToHostAction="Return"))
    h.graph.on_update(*felix("node.other-host", interfacePrefix="ghy"))
    h.graph.on_in_sync()
    out = h.flush()
    assert isinstance(out[0], m.ConfigUpdate) and isinstance(out[-1], m.InSync)
    assert out[0].endpoint_to_host_action == "Return"
    assert out[0].interface_prefixes == ("ghx",)
    assert out[0].failsafe_inbound == m.DEFAULT_FAILSAFE_INBOUND  # the model's default
    h.graph.on_in_sync()
    assert h.flush() == []
    out = h.delete(felix(f"node.{HOST}"))
    assert [type(x) for x in out] == [m.ConfigUpdate]
    assert out[0].endpoint_to_host_action == "Accept"


def test_namespace_and_kubernetes_policy(h: Harness) -> None:
    h.put(namespace("prod", {"team": "red"}), namespace("dev", {"team": "blue"}),
          wep("prod", "web", ips=["198.18.0.1/32"], labels={"app": "web"},
              profiles=["kns.prod"], ports=[("http", "TCP", 8080)]),
          wep("dev", "client", node="host-b", ips=["198.18.0.2/32"], labels={"app": "c"},
              profiles=["kns.dev"]),
          k8s_policy("allow-web", "prod", {
              "podSelector": {"matchLabels": {"app": "web"}},
              "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "blue"}}}],
                           "ports": [{"port": "http"}]}]}))
    pid = m.PolicyID("default", "knp.default.allow-web", "prod")
    pol = h.state.policies[pid]
    (rule,) = pol.inbound
    assert h.set_members(rule.src_set_ids[0]) == {"198.18.0.2/32"}
    assert h.state.ipsets[rule.dst_named_port_set_ids[0]] == (
        "net-port", frozenset({"198.18.0.1,tcp:8080"}))
    ep = h.endpoint("prod", "web")
    assert ep.tiers[0].ingress_policies == (pid,) and ep.profile_ids == ("kns.prod",)
    assert ep.labels["pcns.team"] == "red" and ep.labels["projectcalico.org/namespace"] == "prod"
    assert h.state.profiles["kns.prod"].inbound[0].action == "allow"
    # The client's namespace changes team: it leaves the set.
    h.put(namespace("dev", {"team": "green"}))
    assert h.set_members(rule.src_set_ids[0]) == frozenset()
    h.delete(k8s_policy("allow-web", "prod", {"podSelector": {}}))
    assert pid not in h.state.policies


def test_flush_order_of_message_kinds(h: Harness) -> None:
    """Additions: sets, policies, profiles, endpoints; removals reversed."""
    rank = {m.ConfigUpdate: 0, m.IPSetUpdate: 1, m.IPSetDeltaUpdate: 1, m.PolicyUpdate: 2,
            m.ProfileUpdate: 3, m.WorkloadEndpointUpdate: 4, m.HostEndpointUpdate: 4,
            m.WorkloadEndpointRemove: 5, m.HostEndpointRemove: 5, m.ProfileRemove: 6,
            m.PolicyRemove: 7, m.IPSetRemove: 8, m.MtuUpdate: 9, m.TunnelAddressWanted: 9,
            m.VxlanDeviceUpdate: 10, m.VxlanPeerUpdate: 11, m.RouteUpdate: 12,
            m.RouteRemove: 13, m.VxlanPeerRemove: 14, m.VxlanDeviceRemove: 15,
            m.NatOutgoingUpdate: 16, m.ServiceLoopUpdate: 16, m.BgpUpdate: 17, m.InSync: 20}
    pol = policy("p", selector="app == 'a'",
                 ingress=[{"action": "Allow", "source": {"selector": "app == 'b'"}}])
    h.graph.on_update(*wep("a", "w1", ips=["198.18.0.1/32"], labels={"app": "a"},
                           profiles=["pr"]))
    h.graph.on_update(*profile("pr"))
    h.graph.on_update(*pol)
    h.graph.on_in_sync()
    out = h.flush()
    assert [rank[type(x)] for x in out] == sorted(rank[type(x)] for x in out)
    assert {type(x) for x in out} >= {m.IPSetUpdate, m.PolicyUpdate, m.ProfileUpdate,
                                      m.WorkloadEndpointUpdate, m.InSync}
    # Swap everything for new objects in one batch: removals come after updates.
    h.graph.on_update(pol[0], None)
    h.graph.on_update(*wep("a", "w1", ips=["198.18.0.1/32"], labels={"app": "z"},
                           profiles=["pr2"]))
    h.graph.on_update(*profile("pr2"))
    h.graph.on_update(*policy("q", selector="app == 'z'",
                              ingress=[{"action": "Allow", "source": {"selector": "x == 'y'"}}]))
    out = h.flush()
    assert [rank[type(x)] for x in out] == sorted(rank[type(x)] for x in out)
    assert {type(x) for x in out} >= {m.IPSetRemove, m.PolicyRemove, m.ProfileRemove,
                                      m.IPSetUpdate, m.PolicyUpdate, m.ProfileUpdate}
    out = h.delete(wep("a", "w1"))
    assert [rank[type(x)] for x in out] == [5, 6, 7, 8, 13]  # its /32 route goes last


def test_label_inheritance_precedence(h: Harness) -> None:
    """Own labels beat profile labels; an earlier profile beats a later one; the
    implicit labels beat everything (a workload cannot claim another namespace)."""
    h.put(profile("p1", labels={"a": "p1", "b": "p1"}),
          profile("p2", labels={"a": "p2", "b": "p2", "c": "p2"}),
          wep("ns1", "w", ips=["198.18.0.1/32"], profiles=["p1", "p2"],
              labels={"b": "own", "projectcalico.org/namespace": "other"}))
    labels = h.endpoint("ns1", "w").labels
    assert (labels["a"], labels["b"], labels["c"]) == ("p1", "own", "p2")
    assert labels["projectcalico.org/namespace"] == "ns1"
    assert labels["projectcalico.org/orchestrator"] == "k8s"


def test_local_endpoint_label_change_moves_policies_not_remote(h: Harness) -> None:
    h.put(wep("a", "w", ips=["198.18.0.1/32"], labels={"app": "x"}),
          policy("px", selector="app == 'x'"), policy("py", selector="app == 'y'"))
    assert set(h.state.policies) == {m.PolicyID("default", "px")}
    h.put(wep("a", "w", ips=["198.18.0.1/32"], labels={"app": "y"}))
    assert set(h.state.policies) == {m.PolicyID("default", "py")}
    assert h.endpoint("a", "w").tiers[0].ingress_policies == (m.PolicyID("default", "py"),)
    # Moving the endpoint to another host removes it and its policies here.
    h.put(wep("a", "w", node="host-b", ips=["198.18.0.1/32"], labels={"app": "y"}))
    assert h.state.snapshot() == ({}, {}, {}, {})


def test_service_account_selector_and_services_fail_closed(h: Harness) -> None:
    h.put(wep("a", "w1", ips=["198.18.0.1/32"], sa="api"),
          wep("a", "w2", ips=["198.18.0.2/32"], sa="web"),
          policy("by-sa", ns="a", serviceAccountSelector="projectcalico.org/name == 'api'",
                 ingress=[{"action": "Allow", "source": {"services": {"name": "svc"}}},
                          {"action": "Deny", "source": {"services": {"name": "svc"}}}]))
    pid = m.PolicyID("default", "by-sa", "a")
    assert h.endpoint("a", "w1").tiers[0].ingress_policies == (pid,)
    assert h.endpoint("a", "w2").tiers == ()
    allow, deny = h.state.policies[pid].inbound
    (never,) = allow.src_set_ids
    assert h.set_members(never) == frozenset()
    assert deny.src_set_ids == () and deny.action == "deny"


def test_global_policy_namespace_selector_and_host_endpoints(h: Harness) -> None:
    h.put(namespace("red", {"team": "red"}), namespace("blue", {"team": "blue"}),
          wep("red", "w1", ips=["198.18.0.1/32"], labels={"app": "web"}, profiles=["kns.red"]),
          wep("blue", "w2", ips=["198.18.0.2/32"], labels={"app": "web"}, profiles=["kns.blue"]),
          hep("eth0", labels={"app": "web"}),
          policy("g", selector="app == 'web'", namespace_selector="team == 'red'"),
          policy("hosts", selector="global()",
                 ingress=[{"action": "Allow", "source": {"selector": "global()"}}]))
    g, hosts = m.PolicyID("default", "g"), m.PolicyID("default", "hosts")
    assert h.endpoint("red", "w1").tiers[0].ingress_policies == (g,)
    assert h.endpoint("blue", "w2").tiers == ()
    host = h.state.endpoints["eth0"]
    assert host.tiers[0].ingress_policies == (hosts,)
    (rule,) = h.state.policies[hosts].inbound
    assert h.set_members(rule.src_set_ids[0]) == {"192.0.2.10/32"}
