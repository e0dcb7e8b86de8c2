"""Managers + apply against FakeNFT: message sequences -> table state, and
incremental changes touch only what they should (count the commands)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gingham.calc import messages as m
from gingham.calc.messages import (
    InSync,
    IPSetDeltaUpdate,
    IPSetRemove,
    IPSetUpdate,
    ParsedRule,
    PolicyID,
    PolicyRemove,
    PolicyUpdate,
    ProfileRemove,
    ProfileUpdate,
    TierInfo,
    WorkloadEndpointID,
    WorkloadEndpointRemove,
    WorkloadEndpointUpdate,
)
from gingham.dataplane import layout
from gingham.dataplane.apply import Applier, ApplyResult
from gingham.dataplane.managers import PolicyDataplane
from gingham.dataplane.nft_fake import FakeNFT
from gingham.errors import DataplaneError
from tests.unit.dataplane.test_policy_scenarios import SCENARIOS

P = PolicyID("default", "web", "ns1")
PROF = "kns.ns1"


def policy(pid: PolicyID = P, set_id: str = "s:front", port: int = 80) -> PolicyUpdate:
    return PolicyUpdate(pid, (ParsedRule(f"policy:{pid}:i0", "allow", protocol=6,
                                         src_set_ids=(set_id,), dst_ports=((port, port),)),), ())


def profile(pid: str = PROF) -> ProfileUpdate:
    return ProfileUpdate(pid, (ParsedRule(f"profile:{pid}:i0", "allow"),),
                         (ParsedRule(f"profile:{pid}:e0", "allow"),))


def wl(name: str, ip: str, pols: tuple[PolicyID, ...] = (P,), ifname: str | None = None,
       profiles: tuple[str, ...] = (PROF,)) -> WorkloadEndpointUpdate:
    return WorkloadEndpointUpdate(
        WorkloadEndpointID("ns1", name), ifname or f"gh{name:0>11}", (f"{ip}/32",), (), None,
        (TierInfo("default", "deny", pols, ()),) if pols else (), profiles)


def base() -> list[m.Message]:
    return [IPSetUpdate("s:front", "net", frozenset({"198.18.9.1/32"})), policy(), profile(),
            wl("a", "198.18.0.1"), InSync()]


def applier(msgs: list[m.Message] | None = None) -> tuple[Applier, FakeNFT]:
    fake = FakeNFT(strict=True)
    ap = Applier(fake, PolicyDataplane())
    ap.dataplane.on_messages(base() if msgs is None else msgs)
    ap.apply()
    return ap, fake


def step(ap: Applier, *msgs: m.Message) -> list[str]:
    """Apply ``msgs`` as one batch; the nft commands it took."""
    ap.dataplane.on_messages(msgs)
    ap.apply()
    assert ap.last_tx is not None
    return ap.last_tx.render().splitlines()


def snapshot(fake: FakeNFT) -> dict[str, Any]:
    """Table contents independent of creation order and handles."""
    chains = {c.name: [(r.rule, r.comment) for r in fake.list_rules(c.name)] for c in fake.list_chains()}
    sets = {s.name: sorted((e.key, e.value) for e in fake.list_elements(s.name))
            for s in fake.list_sets()}
    return {"chains": chains, "sets": sets}


def test_nothing_is_written_before_in_sync() -> None:
    fake = FakeNFT()
    ap = Applier(fake, PolicyDataplane())
    ap.dataplane.on_messages(base()[:-1])
    assert ap.apply() is None
    assert fake.transactions == [] and not fake.table_exists()
    ap.dataplane.on_message(InSync())
    assert ap.apply() is not None
    assert len(fake.transactions) == 1  # everything in ONE transaction


def test_remote_label_change_touches_set_elements_only() -> None:
    ap, _ = applier()
    cmds = step(ap, IPSetDeltaUpdate("s:front", frozenset({"198.18.9.2/32"}), frozenset({"198.18.9.1/32"})))
    assert cmds == [
        "delete element inet gingham s4-s_front { 198.18.9.1 }",
        "add element inet gingham s4-s_front { 198.18.9.2 }",
    ]


def wl_chains(fake: FakeNFT, ifname: str) -> tuple[str, str]:
    """(to-workload, from-workload) chain names the dispatch maps give ``ifname``."""
    to = {e.key[0]: e.value[0].split()[1] for e in fake.list_elements("to-wl") if e.value}
    fr = {e.key[0]: e.value[0].split()[1] for e in fake.list_elements("from-wl") if e.value}
    return to[ifname], fr[ifname]


def test_adding_a_workload_like_another_adds_elements_only() -> None:
    ap, fake = applier()
    cmds = step(ap, wl("b", "198.18.0.2"))
    tw, fw = wl_chains(fake, "gh0000000000a")
    assert cmds == [
        'add element inet gingham wl-rpf6 { "gh0000000000b" }',
        'add element inet gingham wl-src4 { "gh0000000000b" . 198.18.0.2 }',
        f'add element inet gingham from-wl {{ "gh0000000000b" : jump {fw} }}',
        f'add element inet gingham to-wl {{ "gh0000000000b" : jump {tw} }}',
    ]
    assert wl_chains(fake, "gh0000000000b") == (tw, fw)  # shared with a


def test_adding_a_workload_with_new_policies_adds_its_chains() -> None:
    ap, fake = applier([*base()[:-1], profile("kns.other"), InSync()])
    cmds = step(ap, wl("b", "198.18.0.2", profiles=("kns.other",)))
    touched = {c.split()[4] for c in cmds if c.startswith(("add chain", "flush chain", "add rule"))}
    assert touched == set(wl_chains(fake, "gh0000000000b"))
    assert touched.isdisjoint(wl_chains(fake, "gh0000000000a"))
    assert sum(c.startswith("add chain") for c in cmds) == 2


def test_shared_chain_goes_with_its_last_user() -> None:
    ap, fake = applier([*base()[:-1], wl("b", "198.18.0.2"), InSync()])
    chains = set(wl_chains(fake, "gh0000000000a"))
    step(ap, WorkloadEndpointRemove(WorkloadEndpointID("ns1", "a")))
    assert chains <= {c.name for c in fake.list_chains()}
    step(ap, WorkloadEndpointRemove(WorkloadEndpointID("ns1", "b")))
    assert chains.isdisjoint({c.name for c in fake.list_chains()})
    assert fake.list_elements("wl-src4") == []


def test_policy_update_rewrites_only_that_policy() -> None:
    ap, _ = applier([*base()[:-1], wl("b", "198.18.0.2"), InSync()])
    cmds = step(ap, policy(port=8080))
    chains = {c.split()[4] for c in cmds}
    assert chains == {layout.policy_chain(P, True)}
    assert cmds[0] == f"flush chain inet gingham {layout.policy_chain(P, True)}"


def test_unchanged_update_writes_nothing() -> None:
    ap, fake = applier()
    n = len(fake.transactions)
    step(ap, policy(), wl("a", "198.18.0.1"), profile())
    assert len(fake.transactions) == n


def test_removal_in_reverse_dependency_order() -> None:
    ap, fake = applier()
    cmds = step(ap, WorkloadEndpointRemove(WorkloadEndpointID("ns1", "a")), ProfileRemove(PROF),
                PolicyRemove(P), IPSetRemove("s:front"))
    kinds = [" ".join(c.split()[:2]) for c in cmds]
    assert kinds == ["delete element"] * 4 + ["flush chain"] * 6 + ["delete chain"] * 6 + ["delete set"] * 2
    # anti-spoofing and reverse-path elements with the set deltas, first
    assert "wl-rpf6" in cmds[0] and "wl-src4" in cmds[1]
    deleted = [c.split()[4] for c in cmds if c.startswith("delete chain")]
    assert {d[:3] for d in deleted[:2]} == {"fw-", "tw-"}
    infrastructure = layout.base_chains(log_drops=True) + layout.all_interface_chains()
    assert {c.name for c in fake.list_chains()} == {c.name for c in infrastructure}


def test_policy_removed_while_referenced_fails_closed() -> None:
    ap, fake = applier()
    step(ap, PolicyRemove(P))
    rules = [r.rule for r in fake.list_rules(wl_chains(fake, "gh0000000000a")[0])]
    assert not any("jump pol-" in r for r in rules)
    assert any(r.endswith("drop") and "0x1000 == 0" in r for r in rules)
    step(ap, policy())  # comes back: the endpoint jumps to it again
    assert any("jump pol-" in r.rule for r in fake.list_rules(wl_chains(fake, "gh0000000000a")[0]))


def test_ipset_removed_while_referenced_is_emptied_not_deleted() -> None:
    ap, fake = applier()
    step(ap, IPSetRemove("s:front"))
    assert fake.list_elements("s4-s_front") == []
    step(ap, PolicyRemove(P))
    assert "s4-s_front" not in {s.name for s in fake.list_sets()}


def test_set_created_for_rule_before_ipset_update() -> None:
    ap, fake = applier([policy(set_id="s:later"), InSync()])
    assert fake.list_elements("s4-s_later") == []
    step(ap, IPSetUpdate("s:later", "net", frozenset({"198.18.0.0/24", "198.18.0.3/32"})))
    assert [e.key for e in fake.list_elements("s4-s_later")] == [("198.18.0.0/24",)]


def test_overlapping_members_are_collapsed_and_deltas_stay_exact() -> None:
    ap, fake = applier([IPSetUpdate("s:n", "net", frozenset({"198.18.0.4/32"})), policy(set_id="s:n"), InSync()])
    step(ap, IPSetDeltaUpdate("s:n", frozenset({"198.18.0.0/24"}), frozenset()))
    assert [e.key for e in fake.list_elements("s4-s_n")] == [("198.18.0.0/24",)]
    step(ap, IPSetDeltaUpdate("s:n", frozenset(), frozenset({"198.18.0.0/24"})))
    assert [e.key for e in fake.list_elements("s4-s_n")] == [("198.18.0.4",)]


def test_named_port_members() -> None:
    _, fake = applier([IPSetUpdate("n:h", "net-port", frozenset({"198.18.0.2,tcp:80", "2001:db8::2,udp:53"})),
                       InSync()])
    assert [e.key for e in fake.list_elements("p4-n_h")] == [("198.18.0.2", "tcp", "80")]
    assert [e.key for e in fake.list_elements("p6-n_h")] == [("2001:db8::2", "udp", "53")]


def test_interface_rename_moves_chains() -> None:
    ap, fake = applier()
    chains = wl_chains(fake, "gh0000000000a")
    cmds = step(ap, wl("a", "198.18.0.1", ifname="ghrenamed0001"))
    assert not any("chain" in c for c in cmds)  # same policies: same chains
    assert wl_chains(fake, "ghrenamed0001") == chains
    assert [e.key for e in fake.list_elements("to-wl")] == [("ghrenamed0001",)]
    assert [e.key for e in fake.list_elements("wl-src4")] == [("ghrenamed0001", "198.18.0.1")]


def test_config_update_rewrites_in_host_only() -> None:
    ap, fake = applier()
    cmds = step(ap, m.ConfigUpdate(endpoint_to_host_action="Accept"))
    assert {c.split()[4] for c in cmds} == {layout.IN_HOST}
    assert any(r.rule.startswith('iifname "gh*" counter') and r.rule.endswith("accept")
               for r in fake.list_rules(layout.IN_HOST))


def test_bad_failsafe_configuration_keeps_the_defaults() -> None:
    from gingham.dataplane.managers import DataplaneConfig
    cfg = DataplaneConfig.from_message(m.ConfigUpdate(
        failsafe_inbound=(m.FailsafePort("tcp", 70000),),  # no such port
        failsafe_outbound=(m.FailsafePort("udp", 53, "192.0.2.0/24"),),
        endpoint_to_host_action="Sometimes",  # type: ignore[arg-type]
    ))
    assert cfg.failsafe_in == m.DEFAULT_FAILSAFE_INBOUND
    assert cfg.failsafe_out == (m.FailsafePort("udp", 53, "192.0.2.0/24"),)
    assert cfg.endpoint_to_host == "Drop"
    cfg = DataplaneConfig.from_message(m.ConfigUpdate(
        failsafe_outbound=(m.FailsafePort("udp", 53, "192.0.2.0/33"),)))
    assert cfg.failsafe_out == m.DEFAULT_FAILSAFE_OUTBOUND


def test_restart_resync_changes_nothing_when_equal() -> None:
    _ap, fake = applier()
    before = snapshot(fake)
    ap2 = Applier(fake, PolicyDataplane())
    ap2.dataplane.on_messages(base())
    res = ap2.apply()
    assert res is not None and res.resync and res.commands == 0
    assert snapshot(fake) == before


def test_restart_resync_removes_only_stale_objects() -> None:
    _ap, fake = applier([*base()[:-1], wl("b", "198.18.0.2"),
                        IPSetUpdate("s:old", "net", frozenset({"198.18.7.7/32"})), InSync()])
    ap2 = Applier(fake, PolicyDataplane())
    ap2.dataplane.on_messages(base())  # b and s:old are gone since
    ap2.apply()
    assert ap2.last_tx is not None
    cmds = ap2.last_tx.render().splitlines()
    assert not any(c.startswith(("flush table", "delete table")) for c in cmds)
    assert not any("gh0000000000a" in c for c in cmds)  # a untouched
    assert any("gh0000000000b" in c for c in cmds)
    fresh = FakeNFT()
    Applier(fresh, ap2.dataplane).apply()
    assert snapshot(fake) == snapshot(fresh)


def test_resync_repairs_a_tampered_chain_and_element() -> None:
    from gingham.dataplane import nft
    _ap, fake = applier()
    tw = wl_chains(fake, "gh0000000000a")[0]
    tx = nft.Transaction()
    tx.flush(nft.Chain(tw)).add(nft.Rule(tw, "accept"))
    tx.delete(nft.Element("s4-s_front", "198.18.9.1"))
    fake.run(tx)
    ap2 = Applier(fake, PolicyDataplane())
    ap2.dataplane.on_messages(base())
    ap2.apply()
    fresh = FakeNFT()
    Applier(fresh, ap2.dataplane).apply()
    assert snapshot(fake) == snapshot(fresh)


def test_force_resync_repairs_tampering() -> None:
    from gingham.dataplane import nft
    ap, fake = applier()
    before = snapshot(fake)
    fake.run(nft.Transaction().delete(nft.Element("s4-s_front", "198.18.9.1")))
    assert ap.apply() == ApplyResult(0, 0.0, False)  # incremental: nothing pending
    res = ap.force_resync()
    assert res is not None and res.resync and res.commands == 1
    assert snapshot(fake) == before


def test_failed_run_forces_resync() -> None:
    ap, fake = applier()
    real_run = fake.run
    calls = {"n": 0}

    def flaky(tx: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise DataplaneError("boom")
        real_run(tx)

    fake.run = flaky  # type: ignore[method-assign]
    ap.dataplane.on_message(wl("b", "198.18.0.2"))
    with pytest.raises(DataplaneError):
        ap.apply()
    res = ap.apply()
    assert res is not None and res.resync
    assert [e.key for e in fake.list_elements("wl-src4")] == [
        ("gh0000000000a", "198.18.0.1"), ("gh0000000000b", "198.18.0.2")]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenarios_program_and_resync_to_zero(name: str) -> None:
    _ap, fake = applier(SCENARIOS[name]())
    ap2 = Applier(fake, PolicyDataplane())
    ap2.dataplane.on_messages(SCENARIOS[name]())
    res = ap2.apply()
    assert res is not None and res.commands == 0


# ---------------------------------------------------------------- property test

SET_IDS = ["s:a", "s:b"]
PIDS = [PolicyID("default", "p1", "ns1"), PolicyID("t", "p2")]
PROFS = ["kns.ns1", "kns.ns2"]
IPS = [f"198.18.0.{i}/32" for i in range(1, 5)] + ["198.18.0.0/30", "2001:db8::1/128"]

members = st.frozensets(st.sampled_from(IPS), max_size=4)
rule_st = st.builds(
    lambda a, s, n, p: ParsedRule("r", a, protocol=6 if p else None,
                                  src_set_ids=(s,) if s else (), not_dst_set_ids=(n,) if n else (),
                                  dst_ports=((p, p),) if p else ()),
    st.sampled_from(["allow", "deny", "pass", "log"]),
    st.none() | st.sampled_from(SET_IDS), st.none() | st.sampled_from(SET_IDS),
    st.none() | st.integers(1, 3),
)
tier_st = st.builds(
    lambda pols, d: TierInfo("t", d, tuple(pols), tuple(reversed(pols))),
    st.lists(st.sampled_from(PIDS), max_size=2, unique=True), st.sampled_from(["deny", "pass"]),
)
msg_st = st.one_of(
    st.builds(IPSetUpdate, st.sampled_from(SET_IDS), st.just("net"), members),
    st.builds(IPSetDeltaUpdate, st.sampled_from(SET_IDS), members, members).map(
        lambda d: IPSetDeltaUpdate(d.set_id, d.added - d.removed, d.removed)),
    st.builds(IPSetRemove, st.sampled_from(SET_IDS)),
    st.builds(PolicyUpdate, st.sampled_from(PIDS), st.lists(rule_st, max_size=2).map(tuple),
              st.lists(rule_st, max_size=2).map(tuple)),
    st.builds(PolicyRemove, st.sampled_from(PIDS)),
    st.builds(ProfileUpdate, st.sampled_from(PROFS), st.lists(rule_st, max_size=1).map(tuple),
              st.just(())),
    st.builds(ProfileRemove, st.sampled_from(PROFS)),
    st.builds(lambda n, ifn, t, pr: WorkloadEndpointUpdate(
        WorkloadEndpointID("ns1", n), ifn, ("198.18.0.1/32",), (), None, t, pr),
        st.sampled_from(["a", "b"]), st.sampled_from(["gh00000000001", "gh00000000002", "gh00000000003"]),
        st.lists(tier_st, max_size=2).map(tuple), st.lists(st.sampled_from(PROFS), max_size=2, unique=True).map(tuple)),
    st.builds(lambda n: WorkloadEndpointRemove(WorkloadEndpointID("ns1", n)), st.sampled_from(["a", "b"])),
    st.builds(lambda n, ifn, t, u, p, f, pr: m.HostEndpointUpdate(
        n, ifn, ("192.0.2.10",), (), t, u, p, f, pr),
        st.sampled_from(["h1", "h2", "h3"]), st.sampled_from(["eth0", "eth1", "*", None]),
        st.lists(tier_st, max_size=1).map(tuple), st.lists(tier_st, max_size=1).map(tuple),
        st.lists(tier_st, max_size=1).map(tuple), st.lists(tier_st, max_size=1).map(tuple),
        st.lists(st.sampled_from(PROFS), max_size=1).map(tuple)),
    st.builds(m.HostEndpointRemove, st.sampled_from(["h1", "h2", "h3"])),
    st.just("apply"),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(msg_st, max_size=25))
def test_incremental_equals_full_program(seq: list[Any]) -> None:
    """Whatever the path, the strict fake accepts every transaction and ends
    equal to a fresh full program of the same desired state; a resync then
    finds nothing to do."""
    fake = FakeNFT(strict=True)
    ap = Applier(fake, PolicyDataplane())
    ap.dataplane.on_message(InSync())
    ap.apply()
    for item in seq:
        if item == "apply":
            ap.apply()
        else:
            ap.dataplane.on_message(item)
    ap.apply()
    fresh = FakeNFT(strict=True)
    Applier(fresh, ap.dataplane).apply()
    assert snapshot(fake) == snapshot(fresh)
    again = Applier(fake, ap.dataplane)
    res = again.apply()
    assert res is not None and res.commands == 0
