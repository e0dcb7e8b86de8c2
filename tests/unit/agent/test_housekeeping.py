"""The agent's housekeeping against an in-memory datastore with real IPAM: Node and
liveness, the VXLAN tunnel address (one handle, one address), the spare block."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from ipaddress import ip_address, ip_network
from typing import Any

import pytest

from gingham.agent.housekeeping import Housekeeping, tunnel_handle
from gingham.agent.node import HostAddresses
from gingham.calc import messages as m
from gingham.datastore import keys, open_datastore
from gingham.datastore.base import Datastore
from gingham.errors import GinghamError
from gingham.ipam import IPAM
from gingham.ipam import keys as ipam_keys
from gingham.ipam.info import list_blocks
from tests.unit.ipam.helpers import put_pool

HOST = "h1"
NODE = keys.resource_key("Node", HOST)


@pytest.fixture
def ds() -> Iterator[Datastore]:
    store = open_datastore(f"memory://housekeeping-{uuid.uuid4()}", create=True)
    put_pool(store, "vxlan", "198.18.0.0/16", block_size=28, vxlanMode="Always")
    yield store
    store.close()


def keeper(ds: Datastore, **kw: Any) -> Housekeeping:
    hk = Housekeeping(ds, HOST, HostAddresses("192.0.2.11/24"), sleep=lambda _s: None, **kw)
    hk.refresh(0.0, 1000.0)
    return hk


def node_spec(ds: Datastore) -> dict[str, Any]:
    kv = ds.get(NODE)
    assert kv is not None
    return dict(kv.value["spec"])


def held(ds: Datastore) -> list[str]:
    return [str(a) for a in Housekeeping(ds, HOST, HostAddresses(None)).held_addresses(4)]


def test_registers_the_node_and_keeps_it_alive(ds: Datastore) -> None:
    hk = keeper(ds)
    assert node_spec(ds)["bgp"]["ipv4Address"] == "192.0.2.11/24"
    assert ds.get(keys.liveness_key(HOST)) is not None
    assert not hk.due(1.0) and hk.due(hk.interval)


def test_tunnel_address_is_claimed_once_and_published(ds: Datastore) -> None:
    hk = keeper(ds)
    hk.note([m.TunnelAddressWanted(4, True)])
    hk.claims(0.0)
    spec = node_spec(ds)
    addr = spec["ipv4VXLANTunnelAddr"]
    assert ip_address(addr) in ip_network("198.18.0.0/16")
    assert spec["vxlanTunnelMACAddr"]
    assert held(ds) == [addr]
    # asked again (a restarted agent, or the watch not caught up): the same address
    assert str(hk.ensure_tunnel_address(4)) == addr
    assert held(ds) == [addr]


def test_a_claim_whose_node_write_was_lost_is_reused(ds: Datastore) -> None:
    keeper(ds)
    # an earlier agent took an address under the handle and died before publishing it
    (first,) = IPAM(ds, host=HOST).auto_assign(
        tunnel_handle(HOST), {"namespace": "", "workload": "vxlan-tunnel", "host": HOST},
        use="Tunnel")
    hk = keeper(ds)
    assert hk.ensure_tunnel_address(4) == first.ip
    assert node_spec(ds)["ipv4VXLANTunnelAddr"] == str(first.ip)
    assert held(ds) == [str(first.ip)]  # one handle, one address


class RacingStore:
    """A datastore where another writer changes the Node right before our first write."""

    def __init__(self, inner: Datastore) -> None:
        self.inner = inner
        self.raced = False

    def update(self, key: str, value: Any, *, revision: int, lease: int = 0) -> int:
        if key == NODE and not self.raced:
            self.raced = True
            kv = self.inner.get(key)
            assert kv is not None
            doc = {**kv.value, "metadata": {**kv.value["metadata"], "labels": {"rack": "r9"}}}
            self.inner.update(key, doc, revision=kv.mod_revision)
        return self.inner.update(key, value, revision=revision, lease=lease)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_publishing_survives_a_concurrent_node_write(ds: Datastore) -> None:
    keeper(ds)
    racing = RacingStore(ds)
    hk = Housekeeping(racing, HOST, HostAddresses("192.0.2.11/24"),  # type: ignore[arg-type]
                      sleep=lambda _s: None)
    addr = hk.ensure_tunnel_address(4)
    assert racing.raced
    kv = ds.get(NODE)
    assert kv is not None
    assert kv.value["spec"]["ipv4VXLANTunnelAddr"] == str(addr)
    assert kv.value["metadata"]["labels"] == {"rack": "r9"}  # the other write is kept


def test_an_unreadable_handle_takes_no_second_address(ds: Datastore) -> None:
    hk = keeper(ds)
    ds.put_raw(ipam_keys.handle_key(tunnel_handle(HOST)), b"{not json")
    with pytest.raises(GinghamError):
        hk.ensure_tunnel_address(4)
    assert "ipv4VXLANTunnelAddr" not in node_spec(ds)
    assert list_blocks(ds) == []  # nothing allocated anywhere
    hk.note([m.TunnelAddressWanted(4, True)])
    hk.claims(0.0)  # logged, tried again later, never raised into the loop
    assert hk.tunnels_wanted == {4}


def test_a_published_address_that_does_not_read_is_replaced(ds: Datastore) -> None:
    keeper(ds)
    kv = ds.get(NODE)
    assert kv is not None
    ds.update(NODE, {**kv.value, "spec": {**kv.value["spec"], "ipv4VXLANTunnelAddr": 7}},
              revision=kv.mod_revision)  # 7 must not read as 0.0.0.7
    addr = keeper(ds).ensure_tunnel_address(4)
    assert addr is not None and addr in ip_network("198.18.0.0/16")
    assert node_spec(ds)["ipv4VXLANTunnelAddr"] == str(addr)


def test_claims_wait_for_their_retry_interval(ds: Datastore) -> None:
    put_pool(ds, "vxlan", "198.18.0.0/16", block_size=28, allowedUses=["Workload"])
    hk = keeper(ds, retry=5.0)
    hk.note([m.TunnelAddressWanted(4, True)])
    hk.claims(10.0)  # no pool serves tunnel addresses: fails, logged
    put_pool(ds, "vxlan", "198.18.0.0/16", block_size=28)
    hk.claims(12.0)  # too soon to try again
    assert "ipv4VXLANTunnelAddr" not in node_spec(ds)
    hk.claims(15.0)
    assert "ipv4VXLANTunnelAddr" in node_spec(ds)
    hk.note([m.TunnelAddressWanted(4, False)])
    assert hk.tunnels_wanted == set()


def test_a_new_local_workload_claims_a_spare_block_when_blocks_run_low(ds: Datastore) -> None:
    hk = keeper(ds)
    IPAM(ds, host=HOST).auto_assign("net.c1", {"namespace": "ns", "workload": "c1"})
    assert len(list_blocks(ds)) == 1  # a /28: 15 left, fewer than the spare 16
    hk.note([m.RouteUpdate(ip_network("198.18.0.0/32"), dev="gh0", workload=True)])
    hk.claims(0.0)
    blocks = list_blocks(ds)
    assert len(blocks) == 2 and {b.host for b in blocks} == {HOST}
    hk.note([m.RouteUpdate(ip_network("198.18.9.0/26"), kind="blackhole")])  # not a workload
    assert not hk.spare_wanted
