"""The sequencer on its own: coalescing, cancellation, deltas and order."""

from __future__ import annotations

from gingham.calc import messages as m
from gingham.calc.sequencer import Sequencer


class Members:
    def __init__(self) -> None:
        self.sets: dict[str, set[str]] = {}

    def __call__(self, set_id: str) -> frozenset[str]:
        return frozenset(self.sets.get(set_id, ()))


def _seq() -> tuple[Sequencer, Members]:
    members = Members()
    return Sequencer(members), members


def test_new_set_is_sent_whole_then_as_deltas() -> None:
    seq, members = _seq()
    seq.set_added("s:1", "net")
    members.sets["s:1"] = {"a"}
    seq.set_member_added("s:1", "a")  # part of the initial contents: no delta
    assert seq.flush() == [m.IPSetUpdate("s:1", "net", frozenset({"a"}))]
    members.sets["s:1"] = {"b"}
    seq.set_member_added("s:1", "b")
    seq.set_member_removed("s:1", "a")
    seq.set_member_added("s:1", "c")
    seq.set_member_removed("s:1", "c")  # cancels
    assert seq.flush() == [m.IPSetDeltaUpdate("s:1", frozenset({"b"}), frozenset({"a"}))]
    seq.set_member_removed("s:1", "b")
    seq.set_member_added("s:1", "b")  # cancels
    assert seq.flush() == []


def test_set_added_and_removed_before_flush_sends_nothing() -> None:
    seq, _ = _seq()
    seq.set_added("s:1", "net")
    seq.set_removed("s:1")
    assert seq.flush() == []


def test_sent_set_removed_and_readded_gets_a_delta() -> None:
    seq, members = _seq()
    seq.set_added("s:1", "net")
    members.sets["s:1"] = {"a", "b"}
    assert seq.flush() == [m.IPSetUpdate("s:1", "net", frozenset({"a", "b"}))]
    seq.set_removed("s:1")
    members.sets["s:1"] = {"b", "c"}
    seq.set_added("s:1", "net")
    assert seq.flush() == [m.IPSetDeltaUpdate("s:1", frozenset({"c"}), frozenset({"a"}))]
    seq.set_removed("s:1")
    del members.sets["s:1"]
    assert seq.flush() == [m.IPSetRemove("s:1")]


def test_keyed_objects_coalesce_and_compare_with_sent() -> None:
    seq, _ = _seq()
    pid = m.PolicyID("default", "p")
    up1 = m.PolicyUpdate(pid, (), ())
    up2 = m.PolicyUpdate(pid, (m.ParsedRule("policy:default/p:i0", "allow"),), ())
    seq.policy(pid, up1)
    seq.policy(pid, up2)
    assert seq.flush() == [up2]
    seq.policy(pid, None)
    seq.policy(pid, up2)  # back to what was sent: nothing to say
    assert seq.flush() == []
    seq.policy(pid, None)
    assert seq.flush() == [m.PolicyRemove(pid)]
    seq.policy(pid, None)  # spurious
    assert seq.flush() == []


def test_order_and_in_sync_once() -> None:
    seq, _ = _seq()
    ep = m.WorkloadEndpointID("a", "w")
    seq.endpoint(ep, m.WorkloadEndpointUpdate(ep, "gh1", (), (), None, (), ()))
    seq.profile("pr", m.ProfileUpdate("pr", (), ()))
    seq.policy(m.PolicyID("t", "p"), m.PolicyUpdate(m.PolicyID("t", "p"), (), ()))
    seq.set_added("s:1", "net")
    seq.config(m.ConfigUpdate({}))
    seq.in_sync()
    kinds = [type(x) for x in seq.flush()]
    assert kinds == [m.ConfigUpdate, m.IPSetUpdate, m.PolicyUpdate, m.ProfileUpdate,
                     m.WorkloadEndpointUpdate, m.InSync]
    seq.in_sync()
    seq.config(m.ConfigUpdate({}))
    assert seq.flush() == []
    seq.endpoint(ep, None)
    seq.profile("pr", None)
    seq.policy(m.PolicyID("t", "p"), None)
    seq.set_removed("s:1")
    kinds = [type(x) for x in seq.flush()]
    assert kinds == [m.WorkloadEndpointRemove, m.ProfileRemove, m.PolicyRemove, m.IPSetRemove]
