"""The VXLAN driver and BIRD process control against the real kernel and BIRD."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

import pytest

from gingham.calc.messages import BgpConfig
from gingham.calc.messages import VxlanPeerUpdate as VxlanPeer
from gingham.calc.routing_types import BGPSettings, HostInfo, vxlan_mac
from gingham.dataplane.vxlan import VxlanDriver
from gingham.errors import RoutingError
from gingham.lab.netns import add_veth, ip_batch
from gingham.routing.bird import BirdProcess
from gingham.routing.bird_config import render_bird_config

pytestmark = pytest.mark.integration


def _host_ns(netns) -> str:
    ns = netns("vx")
    add_veth("eth0", "peer0", netns=ns, peer_netns=ns)
    ip_batch(ns, ["addr add 192.0.2.11/24 dev eth0", "link set eth0 up", "link set peer0 up"])
    return ns


def test_vxlan_device_addresses_and_peers(netns) -> None:
    ns = _host_ns(netns)
    d = VxlanDriver(ns)
    a = ip_address
    assert d.ensure_device(
        a("192.0.2.11"), vxlan_mac("h1"), 1450, [a("198.18.1.0"), a("2001:db8:1::40")]
    )
    info = d.device_info()
    assert info is not None
    data = info["linkinfo"]["info_data"]
    assert (data["id"], data["port"], data["local"], info["mtu"]) == (
        4096,
        4789,
        "192.0.2.11",
        1450,
    )
    assert not data.get("learning", False) and info["address"] == vxlan_mac("h1")
    # same parameters: kept; a stale address goes
    assert not d.ensure_device(a("192.0.2.11"), vxlan_mac("h1"), 1400, [a("198.18.1.0")])
    addrs = VxlanDriver(ns)._json(d._ip("-j", "addr", "show", "dev", "vxlan.gingham"))
    globals_ = {i["local"] for i in addrs[0]["addr_info"] if i.get("scope") != "link"}
    assert globals_ == {"198.18.1.0"} and d.device_info()["mtu"] == 1400  # type: ignore[index]
    # another local address: recreated
    ip_batch(ns, ["addr add 192.0.2.99/24 dev eth0"])
    assert d.ensure_device(a("192.0.2.99"), vxlan_mac("h1"), 1450, [a("198.18.1.0")])

    p2 = VxlanPeer("h2", a("198.18.2.0"), vxlan_mac("h2"), a("192.0.2.12"))
    p3 = VxlanPeer("h3", a("198.18.3.0"), vxlan_mac("h3"), a("192.0.2.13"))
    assert d.sync_peers([p2, p3]).added == (p2, p3)
    assert d.sync_peers([p2, p3]).added == ()
    # h3 moved to another underlay address: the FDB entry follows (replaced in place)
    p3b = VxlanPeer("h3", p3.tunnel_addr, p3.mac, a("192.0.2.23"))
    assert d.sync_peers([p2, p3b]).added == (p3b,)
    assert d.fdb() == {(p2.mac, "192.0.2.12"), (p3.mac, "192.0.2.23")}
    d.sync_peers([])
    assert d.neighbours() == {} and d.fdb() == set()
    d.remove_device()
    assert d.device_info() is None


def test_bird_process_start_reload_reject_stop(netns, tmp_path: Path) -> None:
    ns = _host_ns(netns)
    me = HostInfo("h1", ip_address("192.0.2.11"))  # type: ignore[arg-type]
    bird = BirdProcess("h1", ns, tmp_path)
    try:
        text = render_bird_config(BgpConfig(BGPSettings(True), me, (me,), ()),
                                  log_file=str(bird.log))
        assert bird.apply(text) == "started" and bird.running()
        pid = bird.pid()
        assert bird.apply(text) == "unchanged"
        assert bird.apply(text + "# changed\n") == "reloaded" and bird.pid() == pid
        assert bird.status() == []
        with pytest.raises(RoutingError, match="rejects"):
            bird.apply(text + "protocol nonsense {\n")
        assert bird.running() and bird.pid() == pid  # the bad text never reached BIRD
        assert bird.conf.read_text() == text + "# changed\n"
    finally:
        bird.stop()
    assert not bird.running() and bird.pid() is None


def test_fake_vxlan_driver_agrees_with_the_kernel(netns) -> None:
    """The same calls on the real driver and FakeVxlanDriver give the same answers and
    leave the same device, neighbours and FDB (the fake stands in for the kernel in the
    VXLAN manager's unit tests)."""
    from gingham.dataplane.vxlan_fake import FakeVxlanDriver

    ns = _host_ns(netns)
    ip_batch(ns, ["addr add 192.0.2.99/24 dev eth0"])
    real, fake = VxlanDriver(ns), FakeVxlanDriver()
    a = ip_address
    p2 = VxlanPeer("h2", a("198.18.2.0"), vxlan_mac("h2"), a("192.0.2.12"))
    p3 = VxlanPeer("h3", a("198.18.3.0"), vxlan_mac("h3"), a("192.0.2.13"))
    p3b = VxlanPeer("h3", p3.tunnel_addr, p3.mac, a("192.0.2.23"))
    p2v6 = VxlanPeer("h2", a("2001:db8:1::40"), vxlan_mac("h2"), a("192.0.2.12"))
    calls: list[tuple[str, tuple[object, ...]]] = [
        ("ensure_device", (a("192.0.2.11"), vxlan_mac("h1"), 1450, [a("198.18.1.0")])),
        ("ensure_device", (a("192.0.2.11"), vxlan_mac("h1"), 1400, [a("198.18.1.0")])),
        ("add_peers", ([p2, p3, p2v6],)),
        ("add_peers", ([p2, p3],)),
        ("add_peers", ([p3b],)),
        ("remove_stale_peers", ([p2, p3b],)),
        ("remove_stale_peers", ([p3b],)),
        ("ensure_device", (a("192.0.2.99"), vxlan_mac("h1"), 1450, [a("198.18.1.0")])),
        ("add_peers", ([p2],)),
        ("ensure_device", (a("192.0.2.99"), vxlan_mac("h1"), 1450, [a("198.18.1.0")], 4097)),
        ("remove_device", ()),
    ]
    for name, args in calls:
        got = [getattr(d, name)(*args) for d in (real, fake)]
        assert got[0] == got[1], (name, args, got)
        info = [d.device_info() for d in (real, fake)]
        assert (info[0] is None) == (info[1] is None), name
        if info[0] is not None and info[1] is not None:
            data = [i["linkinfo"]["info_data"] for i in info]
            for k in ("id", "port", "local"):
                assert data[0].get(k) == data[1].get(k), (name, k, data)
            assert (info[0]["mtu"], info[0]["address"]) == (info[1]["mtu"], info[1]["address"])
            assert real.neighbours() == fake.neighbours(), name
            assert real.fdb() == fake.fdb(), name
