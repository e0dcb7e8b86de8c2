"""Bugs the conformance suite found in code this area does not own, reduced to
the smallest input and kept as regression tests."""

from __future__ import annotations

import ipaddress

from gingham.calc.messages import IPSetDeltaUpdate, IPSetUpdate
from gingham.dataplane import layout
from gingham.dataplane.managers import IPSetManager, TableState


def test_ipset_delta_removes_a_member_that_the_full_update_collapsed() -> None:
    # Seen in the lab: pods y/b and z/b got adjacent addresses .194 and .195;
    # relabelling y/b out of a policy's peer selector left y/b reachable,
    # because the full update had stored the pair as 198.18.0.194/31 and the
    # delta then tried to delete the element 198.18.0.194, which is not there.
    state = TableState()
    mgr = IPSetManager(state)
    members = {"198.18.0.193/32", "198.18.0.194/32", "198.18.0.195/32"}
    mgr.update(IPSetUpdate("s:peers", "net", frozenset(members)))
    mgr.delta(IPSetDeltaUpdate("s:peers", added=frozenset(),
                               removed=frozenset({"198.18.0.194/32"})))
    elements = state.elements[layout.net_set_name("s:peers", 4)]
    covered = {str(a) for (key,) in elements
               for a in ipaddress.ip_network(key).hosts() or [ipaddress.ip_network(key)]}
    covered |= {key for (key,) in elements if "/" not in key}
    assert "198.18.0.194" not in covered, f"removed member still in the set: {sorted(elements)}"
    assert {"198.18.0.193", "198.18.0.195"} <= covered
