"""The routing dataplane's managers on the faithful fakes: routes (FakeRouteTable), VXLAN
(FakeVxlanDriver), NAT outgoing (FakeNFT, the same driver interface as policy) and the MTU
file, and the order RoutingDataplane applies them in. The kernel side of each fake is
checked in tests/integration (dataplane/test_netlink.py, routing/test_drivers.py,
dataplane/test_nft_*)."""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

import pytest

from gingham.calc import messages as m
from gingham.calc.routing_types import VXLAN_DEVICE, vxlan_mac
from gingham.dataplane.mtu_file import MtuFile
from gingham.dataplane.nat import NAT_CHAIN, NAT_TABLE, NatOutgoing, nat_rules
from gingham.dataplane.netlink import Route
from gingham.dataplane.netlink_fake import FakeRouteTable
from gingham.dataplane.nft_fake import FakeNFT
from gingham.dataplane.routes import KernelRoutes
from gingham.dataplane.routing import RoutingDataplane
from gingham.dataplane.vxlan import Vxlan
from gingham.dataplane.vxlan_fake import FakeVxlanDriver
from gingham.errors import DataplaneError
from gingham.hostfiles import read_mtu

WL = "gh0123456789a"
POOL = ip_network("198.18.0.0/16")
POOL6 = ip_network("2001:db8:1::/64")


def table() -> FakeRouteTable:
    t = FakeRouteTable()
    t.add_link("eth0", "192.0.2.11/24")
    t.add_link(WL)
    return t


def wl_route(addr: str = "198.18.1.5/32", dev: str = WL) -> m.RouteUpdate:
    return m.RouteUpdate(ip_network(addr), dev=dev, workload=True)


def via(dst: str, gw: str) -> m.RouteUpdate:
    return m.RouteUpdate(ip_network(dst), via=ip_address(gw))


# --- routes ----------------------------------------------------------------------------


def test_first_apply_compares_the_whole_table_then_only_what_changed() -> None:
    t = table()
    stale = Route(ip_network("198.18.9.0/26"), ip_address("192.0.2.77"))
    t.replace_route(stale)  # left by an agent before a restart
    t.replace_route(Route(ip_network("198.18.8.5/32"), dev=WL))  # a CNI route of its own
    routes = KernelRoutes(t)
    routes.on_update(via("198.18.2.0/26", "192.0.2.12"))
    routes.on_update(m.RouteUpdate(ip_network("198.18.1.0/26"), kind="blackhole"))
    routes.apply()
    got = {r.dst for r in t.list_routes()}
    assert got == {ip_network(n) for n in ("198.18.2.0/26", "198.18.1.0/26", "198.18.8.5/32")}
    dumps = t.dumps
    # a workload comes and goes: its own route only, no dump of the table
    routes.on_update(wl_route())
    routes.apply()
    assert ip_network("198.18.1.5/32") in {r.dst for r in t.list_routes()}
    routes.on_remove(m.RouteRemove(ip_network("198.18.1.5/32")))
    routes.apply()
    assert ip_network("198.18.1.5/32") not in {r.dst for r in t.list_routes(proto=201)}
    assert t.dumps == dumps + 2  # the two list_routes calls of this test, none of apply's


def test_unchanged_routes_are_not_rewritten() -> None:
    t = table()
    routes = KernelRoutes(t)
    routes.on_update(via("198.18.2.0/26", "192.0.2.12"))
    routes.apply()
    writes = t.writes
    routes.on_update(via("198.18.2.0/26", "192.0.2.12"))  # the same again
    assert routes.apply() == 0 and t.writes == writes
    # a restarted agent finds the route the kernel lists (with the interface it chose)
    again = KernelRoutes(t)
    again.on_update(via("198.18.2.0/26", "192.0.2.12"))
    again.apply()
    assert t.writes == writes


def test_a_workload_route_waits_for_its_interface() -> None:
    t = table()
    routes = KernelRoutes(t)
    routes.apply()
    routes.on_update(wl_route(dev="gh00000000001"))  # the veth is not there (yet)
    routes.apply()
    assert t.list_routes() == []
    t.add_link("gh00000000001")
    routes.apply()  # tried again on the next apply, whatever it brings
    assert [r.dev for r in t.list_routes()] == ["gh00000000001"]
    t.remove_link("gh00000000001")  # CNI DEL: the veth and its route go first
    routes.on_remove(m.RouteRemove(ip_network("198.18.1.5/32")))
    routes.apply()  # nothing to delete, and no error for it
    assert t.list_routes() == []


def test_a_failure_makes_the_next_apply_compare_everything() -> None:
    t = table()
    routes = KernelRoutes(t)
    routes.on_update(via("198.18.2.0/26", "192.0.2.12"))
    routes.apply()
    routes.on_update(m.RouteUpdate(ip_network("198.18.3.0/26"), via=ip_address("198.18.3.0"),
                                   dev=VXLAN_DEVICE, onlink=True))
    with pytest.raises(DataplaneError, match="no interface"):
        routes.apply()  # its device is not there
    t.delete_route(Route(ip_network("198.18.2.0/26"), ip_address("192.0.2.12"), "eth0"))
    t.add_link(VXLAN_DEVICE)
    routes.apply()  # compares the whole table: the route someone deleted is back
    assert {str(r.dst) for r in t.list_routes()} == {"198.18.2.0/26", "198.18.3.0/26"}


# --- VXLAN -------------------------------------------------------------------------------


def device(local: str = "192.0.2.11", mtu: int = 1450) -> m.VxlanDeviceUpdate:
    return m.VxlanDeviceUpdate(ip_address(local), vxlan_mac("h1"), mtu, (ip_address("198.18.1.0"),))


def peer(host: str, tunnel: str, underlay: str) -> m.VxlanPeerUpdate:
    return m.VxlanPeerUpdate(host, ip_address(tunnel), vxlan_mac(host), ip_address(underlay))


def test_vxlan_device_and_peers_then_stale_peers_after_routes() -> None:
    drv = FakeVxlanDriver()
    vx = Vxlan(drv)
    p2, p3 = peer("h2", "198.18.2.0", "192.0.2.12"), peer("h3", "198.18.3.0", "198.51.100.13")
    for msg in (device(), p2, p3):
        vx.on_message(msg)
    assert vx.apply_additions() is True  # created
    assert drv.neighbours() == {"198.18.2.0": vxlan_mac("h2"), "198.18.3.0": vxlan_mac("h3")}
    vx.on_message(m.VxlanPeerRemove(p3.tunnel_addr))
    assert vx.apply_additions() is False
    assert "198.18.3.0" in drv.neighbours()  # still there until the routes using it went
    vx.apply_removals()
    assert drv.neighbours() == {"198.18.2.0": vxlan_mac("h2")}
    assert drv.fdb() == {(vxlan_mac("h2"), "192.0.2.12")}
    # another underlay address: the device is made again, and its peers with it
    vx.on_message(device(local="192.0.2.99"))
    assert vx.apply_additions() is True
    assert drv.neighbours() == {"198.18.2.0": vxlan_mac("h2")} and drv.created == 2
    vx.on_message(m.VxlanDeviceRemove())
    vx.apply_removals()
    assert drv.device_info() is None


def test_vxlan_leaves_a_device_it_was_not_told_to_remove() -> None:
    drv = FakeVxlanDriver()
    drv.ensure_device(ip_address("192.0.2.11"), vxlan_mac("h1"), 1450)  # from before a restart
    vx = Vxlan(drv)
    vx.apply_additions()
    vx.apply_removals()
    assert drv.device_info() is not None  # it may be waiting for its tunnel address


# --- NAT outgoing (FakeNFT: the driver interface policy uses) --------------------------


def nat(*masq: Any, pools: tuple[Any, ...] = (POOL, POOL6), snat: str | None = None
        ) -> m.NatOutgoingUpdate:
    return m.NatOutgoingUpdate(tuple(masq), pools, ip_address(snat) if snat else None)


def test_nat_rules_per_family_and_only_for_nat_pools() -> None:
    assert nat_rules(nat(POOL, POOL6, pools=(POOL, ip_network("198.19.0.0/16"), POOL6))) == [
        "ip saddr { 198.18.0.0/16 } ip daddr != { 198.18.0.0/16, 198.19.0.0/16 } masquerade",
        "ip6 saddr { 2001:db8:1::/64 } ip6 daddr != { 2001:db8:1::/64 } masquerade",
    ]
    assert nat_rules(nat()) == []
    assert nat_rules(nat(POOL, snat="192.0.2.11")) == [
        "ip saddr { 198.18.0.0/16 } ip daddr != { 198.18.0.0/16 } snat ip to 192.0.2.11"
    ]


def test_nat_goes_through_one_transaction_and_only_when_it_changed() -> None:
    driver = FakeNFT(table=NAT_TABLE, strict=True)
    mgr = NatOutgoing(driver)
    assert not mgr.apply()  # nothing asked for yet: nothing written
    mgr.on_update(nat())
    assert mgr.apply()  # the table and its chain exist even without a NAT pool
    assert driver.list_rules(NAT_CHAIN) == []
    mgr.on_update(nat(POOL))
    assert mgr.apply() and len(driver.transactions) == 2
    (rule,) = driver.list_rules(NAT_CHAIN)
    assert rule.rule.endswith("masquerade")
    assert not mgr.apply()
    restarted = NatOutgoing(driver)  # reads the chain back by its rules' comments
    restarted.on_update(nat(POOL))
    assert not restarted.apply() and len(driver.transactions) == 2
    restarted.on_update(nat(POOL, POOL6))
    assert restarted.apply() and len(driver.list_rules(NAT_CHAIN)) == 2
    assert "type nat hook postrouting priority srcnat" in driver.dump()


# --- the MTU file ----------------------------------------------------------------------


def test_mtu_file_is_written_whole_and_only_when_it_changed(tmp_path: Path) -> None:
    path = tmp_path / "h1" / "mtu"
    f = MtuFile(path)
    f.on_update(m.MtuUpdate(1450))
    assert f.apply() and read_mtu(path) == 1450 and path.read_text() == "1450\n"
    assert not f.apply()
    assert not MtuFile(path).apply()  # nothing asked for
    again = MtuFile(path)
    again.on_update(m.MtuUpdate(1450))
    assert not again.apply()  # a restart finds it as it should be
    assert [p.name for p in path.parent.iterdir()] == ["mtu"]  # no temporary left behind


# --- the routing dataplane: order and fail static --------------------------------------


class Journal:
    """Records the order the drivers were used in."""

    def __init__(self) -> None:
        self.calls: list[str] = []


class JournalRoutes(FakeRouteTable):
    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self.journal = journal

    def replace_route(self, r: Route) -> None:
        self.journal.calls.append(f"route {r.dst}")
        super().replace_route(r)

    def delete_route(self, r: Route) -> None:
        self.journal.calls.append(f"route gone {r.dst}")
        super().delete_route(r)


class JournalVxlan(FakeVxlanDriver):
    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self.journal = journal

    def ensure_device(self, *args: Any, **kw: Any) -> bool:
        self.journal.calls.append("device")
        return super().ensure_device(*args, **kw)

    def add_peers(self, peers: Any) -> Any:
        peers = tuple(peers)
        self.journal.calls += [f"peer {p.tunnel_addr}" for p in peers]
        return super().add_peers(peers)

    def remove_stale_peers(self, peers: Any) -> Any:
        diff = super().remove_stale_peers(peers)
        self.journal.calls += [f"peer gone {a}" for a in diff.removed_neighbours]
        return diff


def routing(tmp_path: Path) -> tuple[RoutingDataplane, Journal, JournalRoutes, FakeNFT]:
    journal = Journal()
    t = JournalRoutes(journal)
    t.add_link("eth0", "192.0.2.11/24")
    t.add_link(VXLAN_DEVICE)
    nft = FakeNFT(table=NAT_TABLE)
    dp = RoutingDataplane(KernelRoutes(t), Vxlan(JournalVxlan(journal)), NatOutgoing(nft),
                          MtuFile(tmp_path / "mtu"))
    return dp, journal, t, nft


def test_peers_before_their_routes_and_after_them_when_going(tmp_path: Path) -> None:
    dp, journal, _t, nft = routing(tmp_path)
    p3 = peer("h3", "198.18.3.0", "198.51.100.13")
    vx_route = m.RouteUpdate(ip_network("198.18.3.0/26"), via=p3.tunnel_addr, dev=VXLAN_DEVICE,
                             onlink=True)
    batch = [m.MtuUpdate(1450), device(), p3, vx_route, nat(POOL)]
    dp.apply(batch)
    assert journal.calls == [] and not (tmp_path / "mtu").exists()  # nothing before InSync
    dp.apply([m.InSync()])
    assert journal.calls == ["device", "peer 198.18.3.0", "route 198.18.3.0/26"]
    assert read_mtu(tmp_path / "mtu") == 1450 and len(nft.list_rules(NAT_CHAIN)) == 1
    journal.calls.clear()
    dp.apply([m.RouteRemove(vx_route.dst), m.VxlanPeerRemove(p3.tunnel_addr)])
    assert journal.calls == ["route gone 198.18.3.0/26", "peer gone 198.18.3.0"]


def test_a_failing_manager_is_retried_with_no_new_messages(tmp_path: Path) -> None:
    dp, _journal, t, nft = routing(tmp_path)
    t.remove_link(VXLAN_DEVICE)  # the fake device is not the table's link yet
    p3 = peer("h3", "198.18.3.0", "198.51.100.13")
    vx_route = m.RouteUpdate(ip_network("198.18.3.0/26"), via=p3.tunnel_addr, dev=VXLAN_DEVICE,
                             onlink=True)
    with pytest.raises(DataplaneError):
        dp.apply([device(), p3, vx_route, nat(POOL), m.InSync()])
    assert nft.transactions == []  # what comes after the failure waits
    t.add_link(VXLAN_DEVICE)
    dp.apply([])  # the agent's retry: same desired state, the kernel read again
    assert {str(r.dst) for r in t.list_routes()} == {"198.18.3.0/26"}
    assert len(nft.list_rules(NAT_CHAIN)) == 1


def test_the_dataplane_asks_to_look_again_for_a_missing_workload_interface(
        tmp_path: Path) -> None:
    dp, _journal, t, _nft = routing(tmp_path)
    dp.apply([m.InSync()])
    assert not dp.due(0.0)  # nothing waits
    dp.apply([wl_route(dev="tap0123456789")])  # the endpoint before Nova's tap
    assert dp.due(10.0) and not dp.due(10.05)  # every 0.1 s while it waits
    t.add_link("tap0123456789")
    assert dp.due(11.0)
    dp.apply([])  # what the agent does when a plane is due
    assert [r.dev for r in t.list_routes() if r.dev == "tap0123456789"] == ["tap0123456789"]
    assert not dp.due(20.0)
