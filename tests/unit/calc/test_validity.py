"""Invalid is never wider than valid (issue 12): the calc graph's side.

Each test feeds the graph what an agent decodes from the datastore: model
resources, ``InvalidResource`` for documents that do not validate, None for
absent keys, and checks what reaches the dataplane.
"""

from __future__ import annotations

from typing import Any

import pytest

from gingham.calc import messages as m
from gingham.calc.inputs import ResourceKey
from gingham.calc.validity import DictMemory
from gingham.model import QUARANTINE_TIER, InvalidResource, decode_document, to_dict
from tests.unit.calc.builders import (
    Harness,
    k8s_policy,
    netset,
    policy,
    profile,
    tier,
    wep,
)


def bad(reason: str = "spec.fancyNewField: unknown field", **document: Any) -> InvalidResource:
    return InvalidResource(reason, document or None)


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    harness.put(
        profile("kns.a"),
        profile("kns.b"),
        wep("a", "web", ips=["198.18.0.1/32"], labels={"app": "web"}, profiles=["kns.a"]),
        wep("a", "db", ips=["198.18.0.2/32"], labels={"app": "db"}, profiles=["kns.a"]),
        wep("b", "web", ips=["198.18.0.3/32"], labels={"app": "web"}, profiles=["kns.b"]),
    )
    return harness


def quarantine_of(h: Harness, ns: str, name: str) -> m.TierInfo | None:
    tiers = h.tiers(ns, name)
    return tiers[0] if tiers and tiers[0].name == QUARANTINE_TIER else None


def test_policy_that_stops_validating_keeps_its_last_valid_version(h: Harness) -> None:
    key, valid = policy("iso", ns="a", selector="app == 'web'",
                        ingress=[{"action": "Allow", "source": {"selector": "app == 'db'"}}])
    h.put((key, valid))
    before = h.state.snapshot()
    assert h.put((key, bad())) == []  # nothing changes in the dataplane
    assert h.state.snapshot() == before
    (report,) = h.graph.invalid_resources().values()
    assert (report.key, report.kind, report.outcome) == (key, "NetworkPolicy", "last valid kept")
    assert "fancyNewField" in report.reason
    # A valid version again clears the report; a deletion removes the policy.
    h.put((key, valid))
    assert h.graph.invalid_resources() == {}
    h.put((key, bad()))
    h.put((key, None))
    assert h.graph.invalid_resources() == {}
    assert h.tiers("a", "web") == ()


def test_policy_never_seen_valid_quarantines_what_its_selector_selects(h: Harness) -> None:
    key = ResourceKey("NetworkPolicy", "new", "a")
    doc = {"kind": "NetworkPolicy", "spec": {"selector": "app == 'web'", "types": ["Ingress"],
                                             "fancyNewField": 1}}
    h.put((key, bad(**doc)))
    q = quarantine_of(h, "a", "web")
    assert q is not None and q.ingress_policies and not q.egress_policies
    assert quarantine_of(h, "a", "db") is None  # not selected
    assert quarantine_of(h, "b", "web") is None  # another namespace
    (pid,) = q.ingress_policies
    (rule,) = h.state.policies[pid].inbound
    assert rule.action == "deny" and not rule.set_ids and not rule.src_nets
    assert h.graph.invalid_resources()[key].outcome == "quarantined"
    # Once it validates, the real policy replaces the quarantine.
    _, valid = policy("new", ns="a", selector="app == 'web'", types=["Ingress"])
    h.put((key, valid))
    assert quarantine_of(h, "a", "web") is None
    assert h.graph.invalid_resources() == {}


def test_unreadable_selector_and_types_quarantine_the_whole_namespace_both_ways(
    h: Harness,
) -> None:
    key = ResourceKey("NetworkPolicy", "junk", "a")
    h.put((key, bad(spec={"selector": "app ==", "types": "sideways"})))
    for name in ("web", "db"):
        q = quarantine_of(h, "a", name)
        assert q is not None and q.ingress_policies and q.egress_policies
    assert quarantine_of(h, "b", "web") is None


def test_undecodable_global_policy_quarantines_every_endpoint(h: Harness) -> None:
    key = ResourceKey("GlobalNetworkPolicy", "junk")
    h.put((key, InvalidResource("not a JSON object: not JSON")))
    for ns, name in (("a", "web"), ("a", "db"), ("b", "web")):
        q = quarantine_of(h, ns, name)
        assert q is not None and q.ingress_policies and q.egress_policies
    h.put((key, None))
    assert all(quarantine_of(h, ns, n) is None for ns, n in (("a", "web"), ("b", "web")))
    assert h.state.policies == {}


def test_kubernetes_policy_never_seen_valid_keeps_its_pod_selector(h: Harness) -> None:
    key = ResourceKey("KubernetesNetworkPolicy", "kp", "a")
    doc = {"spec": {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Egress"],
                    "egress": "not a list"}}
    h.put((key, bad(**doc)))
    q = quarantine_of(h, "a", "db")
    assert q is not None and q.egress_policies and not q.ingress_policies
    assert quarantine_of(h, "a", "web") is None


def test_tier_never_seen_valid_quarantines_its_policies(h: Harness) -> None:
    pkey, pol = policy("sec.allow-web", tier="sec", selector="app == 'web'",
                       ingress=[{"action": "Allow"}])
    h.put(tier("sec", 10), (pkey, pol))
    assert h.tiers("a", "web")[0].name == "sec"
    tkey = ResourceKey("Tier", "sec")
    h.put((tkey, None), (tkey, bad(spec={"order": "first"})))  # gone, back never valid
    q = quarantine_of(h, "a", "web")
    assert q is not None and q.ingress_policies
    assert quarantine_of(h, "a", "db") is None
    assert h.graph.invalid_resources()[tkey].outcome == "policies quarantined"
    h.put(tier("sec", 10))
    assert h.tiers("a", "web")[0].name == "sec"
    assert quarantine_of(h, "a", "web") is None


def test_tier_that_stops_validating_keeps_its_order(h: Harness) -> None:
    pkey, pol = policy("sec.allow-web", tier="sec", selector="app == 'web'",
                       ingress=[{"action": "Allow"}])
    tkey, valid = tier("sec", 10)
    h.put((tkey, valid), (pkey, pol))
    before = h.state.snapshot()
    assert h.put((tkey, bad())) == []
    assert h.state.snapshot() == before


def test_endpoint_and_network_set_keep_their_last_valid_version(h: Harness) -> None:
    skey, nset = netset("evil", ["203.0.113.0/24"], labels={"role": "evil"})
    pkey, pol = policy("deny-evil", selector="all()", ingress=[
        {"action": "Deny", "source": {"selector": "role == 'evil'"}}, {"action": "Allow"}])
    h.put((skey, nset), (pkey, pol))
    before = h.state.snapshot()
    ekey = ResourceKey("WorkloadEndpoint", "web", "a")
    # An empty set would stop the Deny: the last valid members stay.
    assert h.put((skey, bad()), (ekey, bad())) == []
    assert h.state.snapshot() == before
    outcomes = {r.kind: r.outcome for r in h.graph.invalid_resources().values()}
    assert outcomes == {"GlobalNetworkSet": "last valid kept",
                        "WorkloadEndpoint": "last valid kept"}


def test_other_kinds_never_seen_valid_are_absent(h: Harness) -> None:
    key = ResourceKey("WorkloadEndpoint", "ghost", "a")
    h.put((key, bad(spec={"ipNetworks": ["198.18.0.9/32"]})))
    assert m.WorkloadEndpointID("a", "ghost") not in h.state.endpoints
    assert h.graph.invalid_resources()[key].outcome == "ignored"


def test_a_value_the_graph_cannot_use_is_invalid_not_absent(h: Harness) -> None:
    key, valid = policy("iso", ns="a", selector="app == 'web'", ingress=[{"action": "Allow"}])
    h.put((key, valid))
    before = h.state.snapshot()
    h.put((key, object()))  # not a resource at all: a decoding bug upstream
    assert h.state.snapshot() == before
    assert h.graph.invalid_resources()[key].outcome == "last valid kept"


def test_large_kubernetes_in_list_is_refused_when_validated() -> None:
    # It used to pass `apply` and then fail every agent's conversion.
    values = [f"v{i:05d}" + "x" * 40 for i in range(1500)]
    doc = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "big", "namespace": "a"},
           "spec": {"podSelector": {"matchExpressions": [
               {"key": "app", "operator": "In", "values": values}]}}}
    result = decode_document(doc)
    assert isinstance(result, InvalidResource)
    assert "spec.podSelector" in result.reason and len(result.reason) < 600


def test_every_index_empties_when_invalid_and_quarantined_keys_are_deleted() -> None:
    h = Harness()
    items = [
        wep("a", "web", ips=["198.18.0.1/32"], labels={"app": "web"}),
        (ResourceKey("NetworkPolicy", "q", "a"), bad(spec={"selector": "app == 'web'"})),
        (ResourceKey("Tier", "t"), bad()),
        policy("t.p", tier="t", ingress=[{"action": "Allow"}]),
        k8s_policy("kp", "a", {"podSelector": {}}),
    ]
    h.put(*items)
    h.put(*((key, None) for key, _ in items))
    assert all(v == 0 for v in h.graph.stats().values()), h.graph.stats()
    assert h.state.snapshot() == ({}, {}, {}, {})


def test_garbage_under_a_key_no_policy_can_have_is_still_quarantined(h: Harness) -> None:
    # Upper case: no Kubernetes name can be that, so no valid policy ever can.
    key = ResourceKey("KubernetesNetworkPolicy", 'UPPER\n"x', "a")
    h.put((key, InvalidResource("not a JSON object: not JSON")))
    q = quarantine_of(h, "a", "web")
    assert q is not None and q.ingress_policies and q.egress_policies
    (pid,) = q.ingress_policies
    assert pid.name.startswith("invalid-") and pid.namespace == "a"
    assert h.graph.invalid_resources()[key].outcome == "quarantined"


def test_a_restarted_graph_enforces_what_the_one_before_it_did() -> None:
    """A document that went bad while an agent ran is not "never seen valid" to the next one."""
    memory = DictMemory()
    skey, nset = netset("evil", ["203.0.113.0/24"], labels={"role": "evil"})
    pkey, pol = policy("deny-evil", selector="all()", ingress=[
        {"action": "Deny", "source": {"selector": "role == 'evil'"}}, {"action": "Allow"}])
    endpoint = wep("a", "web", ips=["198.18.0.1/32"], labels={"app": "web"})

    first = Harness(memory=memory)
    first.put(endpoint, (skey, nset), (pkey, pol))
    before = first.state.snapshot()
    first.put((skey, bad()), (pkey, bad()))
    assert set(memory.saved) == {skey, pkey}

    second = Harness(memory=memory)  # the agent restarts: it only ever reads the bad versions
    second.put(endpoint, (skey, bad()), (pkey, bad()))
    assert second.state.snapshot() == before
    assert {r.outcome for r in second.graph.invalid_resources().values()} == {"last valid kept"}
    # Valid again, or deleted: nothing left to remember.
    second.put((skey, nset), (pkey, None))
    assert memory.saved == {}


def test_a_remembered_version_of_another_key_is_not_used() -> None:
    memory = DictMemory()
    _, nset = netset("evil", ["203.0.113.0/24"])
    memory.save(ResourceKey("GlobalNetworkSet", "other"), to_dict(nset))
    h = Harness(memory=memory)
    h.put((ResourceKey("GlobalNetworkSet", "other"), bad()))
    assert h.graph.invalid_resources()[ResourceKey("GlobalNetworkSet", "other")].outcome == (
        "ignored")


def test_an_endpoint_from_a_newer_writer_is_read_without_what_this_version_does_not_know(
    h: Harness,
) -> None:
    key = ResourceKey("WorkloadEndpoint", "new", "a")
    doc = {"apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
           "metadata": {"name": "new", "namespace": "a", "labels": {"app": "web"}},
           "spec": {"node": "host-a", "interfaceName": "gh0000000000f",
                    "ipNetworks": ["198.18.0.7/32"], "quantumTunnel": {"on": True}}}
    decoded = decode_document(doc)
    assert isinstance(decoded, InvalidResource)
    h.put((key, decoded))
    assert m.WorkloadEndpointID("a", "new") in h.state.endpoints
    report = h.graph.invalid_resources()[key]
    assert report.outcome == "unknown fields ignored" and "spec.quantumTunnel" in report.reason
    # A policy never is: ignoring a field of a rule could widen it.
    pkey = ResourceKey("NetworkPolicy", "p", "a")
    pdoc = {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
            "metadata": {"name": "p", "namespace": "a"},
            "spec": {"selector": "app == 'web'", "ingress": [{"action": "Allow",
                                                              "onlyOnTuesdays": True}]}}
    h.put((pkey, decode_document(pdoc)))
    assert h.graph.invalid_resources()[pkey].outcome == "quarantined"


def test_unknown_fields_in_place_of_known_ones_keep_the_last_valid_version() -> None:
    # Found by the chaos test (seed 427297726): a network set whose spec was replaced by an
    # unknown field was read as a set without nets, and the Deny that names it opened.
    h = Harness()
    skey, nset = netset("admin-nets", ["198.18.90.129/32"], ns="client", labels={"set": "admin"})
    pkey, pol = policy("deny-admin", ns="client", types=["Egress"], egress=[
        {"action": "Deny", "destination": {"selector": "set == 'admin'"}}, {"action": "Allow"}])
    h.put(profile("kns.client"),
          wep("client", "c1", ips=["198.18.0.1/32"], profiles=["kns.client"]), (skey, nset),
          (pkey, pol))
    (pid,) = h.tiers("client", "c1")[0].egress_policies
    (set_id,) = h.state.policies[pid].outbound[0].dst_set_ids
    before = h.state.snapshot()
    doc = to_dict(nset)
    h.put((skey, decode_document({**doc, "spec": {"a": {"a": 0}}})))
    assert h.state.snapshot() == before
    assert h.set_members(set_id) == {"198.18.90.129/32"}
    report = h.graph.invalid_resources()[skey]
    assert report.outcome == "last valid kept" and "spec.nets" in report.reason
    # Beside the known fields, an unknown one is still ignored.
    h.put((skey, decode_document({**doc, "spec": {**doc["spec"], "a": 1}})))
    assert h.graph.invalid_resources()[skey].outcome == "unknown fields ignored"
    assert h.set_members(set_id) == {"198.18.90.129/32"}
