"""The resync on a real sqlite store: repairs, removals, and running beside the hooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gingham.datastore import keys
from gingham.datastore.base import Datastore
from gingham.ipam import IPAM, who_holds
from gingham.openstack import names, ports
from gingham.openstack.resync import NeutronState, resync
from gingham.openstack.store import Store, pool_key, profile_key, wep_key
from tests.unit.ipam.helpers import put_pool
from tests.unit.openstack.neutron_dicts import (
    CLIENT,
    PORT,
    PORT2,
    SUBNET,
    WEB,
    group,
    port,
    subnet,
    web_group,
)


@pytest.fixture
def store(sqlite_store: Datastore) -> Store:
    return Store(sqlite_store, sleep=lambda _: None)


def _state(**kw: Any) -> Callable[[], NeutronState]:
    state = NeutronState(subnets=kw.get("subnets", [subnet()]),
                         groups=kw.get("groups", [web_group(), group(CLIENT, "client")]),
                         ports=kw.get("ports", [port()]))
    return lambda: state


def _key(p: dict[str, Any]) -> str:
    return wep_key(ports.endpoint_document(p))


def test_a_first_resync_writes_everything_and_a_second_nothing(store: Store) -> None:
    ds = store.ds
    report = resync(store, _state(ports=[port(), port(PORT2, vif_type="ovs"),
                                         port("bbbbbbbb-1111-4111-8111-00000000000d",
                                              device_owner="network:dhcp")]))
    assert sorted(report.written) == sorted([
        pool_key(SUBNET), profile_key(WEB), profile_key(CLIENT), _key(port())])
    assert report.activate == [PORT] and not report.failed and not report.refused
    assert who_holds(ds, "198.19.5.10") is not None
    felix = ds.get(keys.resource_key("FelixConfiguration", "default"))
    assert felix is not None and felix.value["spec"]["interfacePrefix"] == "gh,tap"
    before = ds.revision()
    again = resync(store, _state(ports=[port(status="ACTIVE")]))
    assert ds.revision() == before and not again.written and not again.activate


def test_what_neutron_no_longer_has_goes_and_nothing_else(store: Store) -> None:
    ds = store.ds
    resync(store, _state())
    ds.create(keys.resource_key("Profile", "kns.default"), {
        "apiVersion": "projectcalico.org/v3", "kind": "Profile",
        "metadata": {"name": "kns.default"}, "spec": {}})
    IPAM(ds, "host-a").assign("198.19.5.99", "operator.handle")
    report = resync(store, _state(subnets=[subnet()], groups=[web_group()], ports=[]))
    assert sorted(report.deleted) == sorted([
        profile_key(CLIENT), _key(port()), "/gingham/v1/ipam/handles/openstack." + PORT])
    assert ds.get(_key(port())) is None and who_holds(ds, "198.19.5.10") is None
    assert ds.get(keys.resource_key("Profile", "kns.default")) is not None
    assert who_holds(ds, "198.19.5.99") is not None  # not the driver's handle
    gone = resync(store, _state(subnets=[], groups=[], ports=[]))
    assert pool_key(SUBNET) in gone.deleted and profile_key(WEB) in gone.deleted


def test_a_port_unbound_or_moved_meanwhile(store: Store) -> None:
    resync(store, _state())
    report = resync(store, _state(ports=[port(host="host-b", status="ACTIVE")]))
    assert _key(port()) in report.deleted
    assert _key(port(host="host-b")) in report.written
    assert who_holds(store.ds, "198.19.5.10").host == "host-b"  # type: ignore[union-attr]


def test_a_hook_that_writes_during_the_resync_wins(store: Store) -> None:
    """The hook's write after the resync's listing comes from newer Neutron state:
    the resync must not put its older view back, nor delete the hook's work."""
    ds = store.ds
    resync(store, _state())
    newer = port(ip="198.19.5.20", status="ACTIVE")
    newcomer = port(PORT2, ip="198.19.5.21")

    def read_then_hooks_write() -> NeutronState:
        state = _state(ports=[port(status="ACTIVE")])()  # Neutron as read: the old address
        store.put_port(newer)  # then a port update's hook
        store.put_port(newcomer)  # and a new port's, unknown to the state read
        return state

    report = resync(store, read_then_hooks_write)
    assert _key(port()) in report.skipped
    assert ds.get(_key(newer)).value["spec"]["ipNetworks"] == ["198.19.5.20/32"]  # type: ignore[union-attr]
    assert who_holds(ds, "198.19.5.20") is not None and who_holds(ds, "198.19.5.10") is None
    assert ds.get(_key(newcomer)) is not None  # listed after the resync's listing: kept
    assert who_holds(ds, "198.19.5.21") is not None


def test_a_half_done_write_is_repaired(store: Store) -> None:
    """The address was held but the endpoint write failed (datastore gone mid-call)."""
    store.put_subnet(subnet())
    IPAM(store.ds, "host-a").assign("198.19.5.10", names.ipam_handle(PORT),
                                    {"namespace": "x", "workload": "y"})
    report = resync(store, _state())
    assert _key(port()) in report.written
    holder = who_holds(store.ds, "198.19.5.10")
    assert holder is not None and holder.namespace == ports.endpoint_document(port())[
        "metadata"]["namespace"]


def test_what_cannot_be_done_is_reported_and_the_rest_done(store: Store) -> None:
    put_pool(store.ds, "default-ipv4", "198.18.0.0/16")
    clash = subnet("33333333-3333-4444-8555-666666666666", "198.18.7.0/24")
    stray = port(PORT2, ip="198.18.7.5", fixed_ips=[
        {"subnet_id": clash["id"], "ip_address": "198.18.7.5"}])
    report = resync(store, _state(subnets=[clash, subnet()], ports=[stray, port()]))
    assert len(report.refused) == 2
    assert "overlaps IPPool default-ipv4" in report.refused[0]
    assert "lies in no Neutron subnet" in report.refused[1]
    assert _key(port()) in report.written and store.ds.get(_key(stray)) is None
