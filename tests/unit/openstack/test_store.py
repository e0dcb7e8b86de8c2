"""The driver's writes on a real sqlite store: endpoints, IPAM for routing, ownership."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from gingham.datastore import keys
from gingham.datastore.base import Datastore
from gingham.errors import RevisionConflict
from gingham.ipam import IPAM, list_blocks, who_holds
from gingham.openstack import names, ports
from gingham.openstack.names import Refused
from gingham.openstack.store import Store, pool_key, profile_key, wep_key
from tests.unit.ipam.helpers import put_pool
from tests.unit.openstack.neutron_dicts import (
    PORT,
    PORT2,
    PROJECT,
    SUBNET,
    WEB,
    port,
    subnet,
    web_group,
)
from tests.unit.openstack.neutron_dicts import group as sg


@pytest.fixture
def store(sqlite_store: Datastore) -> Store:
    s = Store(sqlite_store, sleep=lambda _: None)
    s.put_subnet(subnet())
    return s


def _wep(ds: Datastore, p: dict[str, Any]) -> dict[str, Any] | None:
    kv = ds.get(wep_key(ports.endpoint_document(p)))
    return None if kv is None else dict(kv.value)


def _block_of(ds: Datastore, ip: str) -> Any:
    addr = ipaddress.ip_address(ip)
    return next(b for b in list_blocks(ds) if addr in b.cidr)


def test_a_bound_port_holds_its_address_for_its_host(store: Store) -> None:
    ds = store.ds
    assert store.put_port(port())
    doc = _wep(ds, port())
    assert doc is not None and doc["spec"]["ipNetworks"] == ["198.19.5.10/32"]
    assert doc["metadata"]["uid"] and doc["metadata"]["creationTimestamp"]
    holder = who_holds(ds, "198.19.5.10")
    assert holder is not None
    assert (holder.handle, holder.host, holder.namespace) == (f"openstack.{PORT}", "host-a",
                                                              PROJECT)
    assert holder.workload == doc["spec"]["workload"]  # the leak check finds its endpoint
    # the block is host-a's: every other agent routes it there
    assert _block_of(ds, "198.19.5.10").host == "host-a"
    # a second VM of the subnet on another host borrows: a /32 to host-b everywhere
    store.put_port(port(PORT2, host="host-b", ip="198.19.5.11"))
    assert (ipaddress.ip_address("198.19.5.11"), "host-b") in \
        _block_of(ds, "198.19.5.11").borrowed
    # and the pool serves no automatic request
    with pytest.raises(Exception, match="no enabled IPv4 pool"):
        IPAM(ds, "host-a").auto_assign("cni.x")


def test_writing_again_changes_nothing(store: Store) -> None:
    store.put_port(port())
    before = store.ds.revision()
    store.put_port(port())
    assert store.ds.revision() == before


def test_a_moved_port_moves_its_endpoint_and_its_address(store: Store) -> None:
    ds = store.ds
    store.put_port(port())
    old = wep_key(ports.endpoint_document(port()))
    moved = port(host="host-b")
    store.put_port(moved, previous=port())
    assert ds.get(old) is None and _wep(ds, moved) is not None
    assert who_holds(ds, "198.19.5.10").host == "host-b"  # type: ignore[union-attr]
    assert (ipaddress.ip_address("198.19.5.10"), "host-b") in \
        _block_of(ds, "198.19.5.10").borrowed


def test_a_changed_address_is_given_back(store: Store) -> None:
    store.put_port(port())
    store.put_port(port(ip="198.19.5.77"))
    assert who_holds(store.ds, "198.19.5.10") is None
    assert who_holds(store.ds, "198.19.5.77") is not None


def test_deleting_a_port_removes_its_endpoint_and_address(store: Store) -> None:
    store.put_port(port())
    assert store.delete_port(port())
    assert _wep(store.ds, port()) is None and who_holds(store.ds, "198.19.5.10") is None
    assert store.delete_port(port())  # again: nothing left, no error


def test_an_address_of_a_port_neutron_forgot_is_taken_over(store: Store) -> None:
    """Neutron's IPAM owns the subnet: a stale port's hold on an address (its delete
    never reached the datastore) yields to the port that has the address now."""
    store.put_port(port(PORT2))  # holds .10
    store.put_port(port())  # Neutron gave .10 to PORT since
    assert who_holds(store.ds, "198.19.5.10").handle == f"openstack.{PORT}"  # type: ignore[union-attr]


def test_an_address_someone_else_holds_is_refused(store: Store) -> None:
    IPAM(store.ds, "host-a").assign("198.19.5.10", "manual-by-operator")
    with pytest.raises(Refused, match="manual-by-operator"):
        store.put_port(port())
    assert _wep(store.ds, port()) is None


def test_an_address_outside_the_driver_pools_is_refused(store: Store) -> None:
    with pytest.raises(Refused, match="no Neutron subnet"):
        store.put_port(port(ip="203.0.113.5"))


def test_a_subnet_overlapping_another_pool_is_refused(store: Store) -> None:
    put_pool(store.ds, "default-ipv4", "198.18.0.0/16")
    with pytest.raises(Refused, match="overlaps IPPool default-ipv4"):
        store.put_subnet(subnet("33333333-3333-4444-8555-666666666666", "198.18.7.0/24"))
    with pytest.raises(Refused, match="overlaps Neutron subnet"):
        store.check_subnet(subnet("33333333-3333-4444-8555-666666666666", "198.19.5.0/25"))
    store.check_subnet(subnet())  # its own pool is no conflict
    assert store.ds.get(pool_key(SUBNET)) is not None


def test_nothing_of_others_is_overwritten_or_deleted(store: Store) -> None:
    ds = store.ds
    theirs = {"apiVersion": "projectcalico.org/v3", "kind": "Profile",
              "metadata": {"name": names.profile_name(WEB)}, "spec": {}}
    ds.create(profile_key(WEB), theirs)
    with pytest.raises(Refused, match="not written by the OpenStack driver"):
        store.put_group(web_group())
    assert not store.delete_group(WEB)
    assert ds.get(profile_key(WEB)).value == theirs  # type: ignore[union-attr]


def test_resync_writes_only_what_it_saw(store: Store) -> None:
    ds = store.ds
    store.put_group(sg(rules=[]))
    kv = ds.get(profile_key(WEB))
    assert kv is not None
    assert not store.put(profile_key(WEB), {}, names.SECURITY_GROUP_ANNOTATION,
                         expected=kv.mod_revision - 1)
    assert not store.delete_group(WEB, expected=kv.mod_revision - 1)
    assert ds.get(profile_key(WEB)) is not None
    assert not store.put_port(port(), expected=5)  # absent is 0: nothing done
    assert who_holds(ds, "198.19.5.10") is None
    assert store.put_port(port(), expected=0)


def test_latest_wins_retries_a_lost_race(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = store.ds
    real_update = ds.update
    raced = []

    def racing_update(key: str, value: Any, *, revision: int, lease: int = 0) -> int:
        if not raced:  # someone else writes first, once
            raced.append(key)
            real_update(key, {**value, "spec": {}}, revision=revision)
            raise RevisionConflict(key)
        return real_update(key, value, revision=revision, lease=lease)

    store.put_group(sg(rules=[]))
    monkeypatch.setattr(ds, "update", racing_update)
    store.put_group(web_group())
    assert raced and len(ds.get(profile_key(WEB)).value["spec"]["ingress"]) == 1  # type: ignore[union-attr]


@pytest.mark.parametrize("stored,expected", [
    (None, "gh,tap"),
    ({}, "gh,tap"),
    ({"interfacePrefix": "gh"}, "gh,tap"),
    ({"interfacePrefix": "gh,veth"}, "gh,veth,tap"),
    ({"interfacePrefix": "gh,tap"}, "gh,tap"),
    ({"interfacePrefix": "t"}, "t"),
])
def test_tap_becomes_a_workload_interface_prefix(sqlite_store: Datastore,
                                                 stored: dict[str, str] | None,
                                                 expected: str) -> None:
    key = keys.resource_key("FelixConfiguration", "default")
    if stored is not None:
        sqlite_store.create(key, {"apiVersion": "projectcalico.org/v3",
                                  "kind": "FelixConfiguration",
                                  "metadata": {"name": "default"},
                                  "spec": {**stored, "logSeverityScreen": "Debug"}})
    assert Store(sqlite_store).ensure_tap_prefix()
    spec = sqlite_store.get(key).value["spec"]  # type: ignore[union-attr]
    assert spec["interfacePrefix"] == expected
    if stored is not None:
        assert spec["logSeverityScreen"] == "Debug"


def test_an_unreadable_felix_configuration_is_left_alone(sqlite_store: Datastore) -> None:
    key = keys.resource_key("FelixConfiguration", "default")
    sqlite_store.put_raw(key, b"not json")
    assert not Store(sqlite_store).ensure_tap_prefix()
    assert sqlite_store.get(key).value.raw == "not json"  # type: ignore[union-attr, attr-defined]


def test_node_exists(store: Store) -> None:
    assert not store.node_exists("host-a") and not store.node_exists("")
    store.ds.create(keys.resource_key("Node", "host-a"), {
        "apiVersion": "projectcalico.org/v3", "kind": "Node", "metadata": {"name": "host-a"},
        "spec": {}})
    assert store.node_exists("host-a")
    store.check_reachable()
