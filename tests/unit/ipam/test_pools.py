from __future__ import annotations

import ipaddress
import random
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gingham.errors import ValidationError
from gingham.ipam.pools import (
    Occupied,
    PoolSpec,
    Reservations,
    free_blocks,
    pool_from_resource,
    reservations_from_resource,
)

NETS = st.builds(
    lambda base, plen: ipaddress.ip_network(f"{ipaddress.ip_address(0xC6120000 + base)}/{plen}",
                                            strict=False),
    st.integers(0, 255), st.integers(24, 32))


@given(st.lists(NETS, max_size=12), NETS)
def test_occupied_agrees_with_brute_force(existing: list, probe: ipaddress.IPv4Network) -> None:
    assert Occupied(existing).overlaps(probe) == any(e.overlaps(probe) for e in existing)


def test_free_blocks_skip_existing_blocks_of_other_sizes() -> None:
    pool = PoolSpec(ipaddress.ip_network("198.18.0.0/28"), 30)
    occupied = Occupied([ipaddress.ip_network("198.18.0.0/29")])  # from an older block size
    got = sorted(str(n) for n in free_blocks(pool, occupied, random.Random(1)))
    assert got == ["198.18.0.12/30", "198.18.0.8/30"]


def test_pool_from_resource_defaults_and_errors() -> None:
    p = pool_from_resource({"kind": "IPPool", "metadata": {"name": "v6"}, "spec": {"cidr": "2001:db8::/64"}})
    assert p.block_size == 122 and p.node_selector == "all()" and not p.disabled
    p4 = pool_from_resource({"kind": "IPPool", "metadata": {"name": "v4"}, "spec": {"cidr": "198.18.0.0/16"}})
    assert p4.block_size == 26
    with pytest.raises(ValidationError, match=r"IPPool bad: spec.cidr"):
        pool_from_resource({"kind": "IPPool", "metadata": {"name": "bad"}, "spec": {"cidr": "x"}})
    with pytest.raises(ValidationError, match=r"spec.blockSize"):
        pool_from_resource({"kind": "IPPool", "metadata": {"name": "b"},
                            "spec": {"cidr": "198.18.0.0/24", "blockSize": 20}})


def test_node_selector() -> None:
    p = pool_from_resource({"kind": "IPPool", "metadata": {"name": "x"},
                            "spec": {"cidr": "198.18.0.0/24", "nodeSelector": "zone == 'a'"}})
    assert p.matches_node({"zone": "a"}) and not p.matches_node({"zone": "b"})


def test_reservations() -> None:
    r = Reservations(reservations_from_resource(
        {"kind": "IPReservation", "metadata": {"name": "r"}, "spec": {"reservedCIDRs": ["198.18.0.2/31", "198.18.0.9"]}}))
    skip = r.skip_for(ipaddress.ip_network("198.18.0.0/29"))
    assert [o for o in range(8) if skip(o)] == [2, 3]
    assert r.count_in(ipaddress.ip_network("198.18.0.0/28")) == 3
    assert r.contains(ipaddress.ip_address("198.18.0.9"))
    assert not r.contains(ipaddress.ip_address("2001:db8::9"))
    with pytest.raises(ValidationError, match=r"reservedCIDRs\[0\]"):
        reservations_from_resource({"kind": "IPReservation", "metadata": {"name": "r"},
                                    "spec": {"reservedCIDRs": ["q"]}})


POOL = {"kind": "IPPool", "metadata": {"name": "p"}}


@pytest.mark.parametrize(("doc", "field"), [
    ({"metadata": {"name": "p"}, "spec": {"cidr": "198.18.0.0/24"}}, "kind is None"),
    ({**POOL, "kind": "Node", "spec": {"cidr": "198.18.0.0/24"}}, "kind is 'Node'"),
    ({**POOL, "spec": "oops"}, "spec: must be an object"),
    ({**POOL, "spec": {}}, "spec.cidr: missing"),
    ({**POOL, "spec": {"cidr": 5}}, "spec.cidr"),
    ({**POOL, "spec": {"cidr": "198.18.0.0/24", "blockSize": "26"}}, "spec.blockSize"),
    ({**POOL, "spec": {"cidr": "198.18.0.0/24", "blockSize": True}}, "spec.blockSize"),
    ({**POOL, "spec": {"cidr": "198.18.0.0/24", "disabled": "false"}}, "spec.disabled"),
    ({**POOL, "spec": {"cidr": "198.18.0.0/24", "allowedUses": "Workload"}},
     "spec.allowedUses"),
    ({**POOL, "spec": {"cidr": "198.18.0.0/24", "allowedUses": [1]}}, "spec.allowedUses"),
    ({**POOL, "spec": {"cidr": "198.18.0.0/24", "nodeSelector": 7}}, "spec.nodeSelector"),
    ({**POOL, "spec": {"cidr": "198.18.0.0/24", "assignmentMode": "Sometimes"}},
     "spec.assignmentMode"),
])
def test_pool_documents_of_the_wrong_shape_are_refused(doc: dict[str, Any], field: str) -> None:
    # Read loosely, these were pools of another meaning: "false" disabled one,
    # "Workload" allowed the uses W, o, r, k...
    with pytest.raises(ValidationError, match=re.escape(field)):
        pool_from_resource(doc)


def test_pool_cidr_is_read_as_the_model_reads_it() -> None:
    p = pool_from_resource({**POOL, "spec": {"cidr": "198.18.0.7/24"}})
    assert str(p.cidr) == "198.18.0.0/24"


@pytest.mark.parametrize(("doc", "field"), [
    ({"metadata": {"name": "r"}, "spec": {"reservedCIDRs": []}}, "kind is None"),
    ({"kind": "IPReservation", "spec": "x"}, "spec: must be an object"),
    ({"kind": "IPReservation", "spec": {"reservedCIDRs": "198.18.0.0/24"}}, "must be a list"),
    ({"kind": "IPReservation", "spec": {"reservedCIDRs": [5]}}, "reservedCIDRs[0]"),
])
def test_reservation_documents_of_the_wrong_shape_are_refused(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(field)):
        reservations_from_resource(doc)


def test_a_reservation_without_spec_reserves_nothing() -> None:
    # what `apply` stores for an IPReservation given without a spec
    assert reservations_from_resource({"kind": "IPReservation", "metadata": {"name": "r"}}) \
        == []


@given(st.lists(NETS, max_size=6), NETS)
def test_reservations_agree_with_brute_force(reserved: list, block: ipaddress.IPv4Network) -> None:
    r = Reservations(reserved)
    addrs = list(block)
    skip = r.skip_for(block)
    assert [skip(o) for o in range(len(addrs))] == \
        [any(a in n for n in reserved) for a in addrs]
    assert r.count_in(block) == sum(1 for a in addrs if any(a in n for n in reserved))
