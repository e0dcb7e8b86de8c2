"""Routes with protocol 201, links, neighbours and FDB through pyroute2 in a
throwaway namespace; the pure route diff without one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from ipaddress import ip_address, ip_network

import pytest

from gingham.dataplane.netlink import (
    Netlink,
    Route,
    RouteDiff,
    diff_routes,
    not_workload_route,
    sync_routes,
)
from gingham.errors import DataplaneError
from gingham.lab.netns import ip_batch, run_in_netns

Make = Callable[[str], str]


# ---------------------------------------------------------------- pure


def test_route_is_normalised_and_hashable() -> None:
    r = Route("198.18.1.0/26", "192.0.2.9")  # type: ignore[arg-type]
    assert r.dst == ip_network("198.18.1.0/26") and r.via == ip_address("192.0.2.9")
    assert r == Route(ip_network("198.18.1.0/26"), ip_address("192.0.2.9"))
    assert len({r, Route(ip_network("198.18.1.0/26"), ip_address("192.0.2.9"))}) == 1
    assert str(r) == "198.18.1.0/26 via 192.0.2.9 proto 201"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dst": "198.18.0.0/33", "dev": "x"},
        {"dst": "198.18.0.1/24", "dev": "x"},  # host bits set
        {"dst": "198.18.0.0/24"},
        {"dst": "198.18.0.0/24", "via": "192.0.2.1", "kind": "blackhole"},
        {"dst": "198.18.0.0/24", "via": "192.0.2.1", "onlink": True},
        {"dst": "198.18.0.0/24", "via": "2001:db8::1", "dev": "x"},
        {"dst": "198.18.0.0/24", "kind": "anycast"},
    ],
)
def test_bad_routes(kwargs: dict[str, object]) -> None:
    with pytest.raises(DataplaneError):
        Route(**kwargs)  # type: ignore[arg-type]


def R(dst: str, via: str | None = None, dev: str | None = None, **kw: object) -> Route:
    return Route(ip_network(dst), ip_address(via) if via else None, dev, **kw)  # type: ignore[arg-type]


def test_diff_routes() -> None:
    keep = R("198.18.1.0/26", "192.0.2.9", "eth0")
    moved_old = R("198.18.2.0/26", "192.0.2.10", "eth0")
    moved_new = R("198.18.2.0/26", "192.0.2.11", "eth0")
    stale = R("198.18.3.0/26", "192.0.2.12", "eth0")
    workload = R("198.18.0.5/32", dev="gh0123456789a")
    foreign = R("198.18.4.0/26", "192.0.2.1", "eth0", proto=12)
    foreign_wanted_old = R("198.18.5.0/26", "192.0.2.1", "eth0", proto=3)
    foreign_wanted = R("198.18.5.0/26", "192.0.2.2", "eth0")
    blackhole = R("198.18.0.0/26", kind="blackhole")
    actual = [keep, moved_old, stale, workload, foreign, foreign_wanted_old]
    desired = {keep, moved_new, blackhole, foreign_wanted}
    d = diff_routes(desired, actual)
    assert d.add == (blackhole,)
    assert set(d.replace) == {moved_new, foreign_wanted}
    assert set(d.remove) == {stale, workload}
    assert d.unchanged == 1
    # a routing manager must not sweep the CNI plugin's workload routes
    assert set(diff_routes(desired, actual, not_workload_route).remove) == {stale}
    assert diff_routes(desired, [keep, moved_new, blackhole, foreign_wanted]).empty
    with pytest.raises(DataplaneError, match="two desired routes"):
        diff_routes([moved_old, moved_new], [])
    with pytest.raises(DataplaneError, match="protocol 201"):
        diff_routes([foreign], [])


# ---------------------------------------------------------------- kernel


@pytest.fixture
def host(netns: Make) -> Iterator[str]:
    ns = netns("nl")
    ip_batch(ns, [
        "link add eth0 type veth peer name peer0",
        "link set eth0 up",
        "link set peer0 up",
        "addr add 192.0.2.5/24 dev eth0",
        "link add gh0123456789a type veth peer name wl0",
        "link set gh0123456789a up",
        "link set wl0 up",
    ])
    yield ns


def _ip_routes(ns: str) -> set[str]:
    out = run_in_netns(ns, ["ip", "route", "show", "proto", "201"]).stdout
    out += run_in_netns(ns, ["ip", "-6", "route", "show", "proto", "201"]).stdout
    return {" ".join(line.split()) for line in out.splitlines() if line.strip()}


@pytest.mark.integration
def test_sync_routes_applies_smallest_change(host: str) -> None:
    desired = {
        R("198.18.1.0/26", "192.0.2.9", "eth0"),
        R("198.18.2.0/26", "203.0.113.7", "eth0", onlink=True),
        R("198.18.0.0/26", kind="blackhole"),
        R("198.18.0.5/32", dev="gh0123456789a"),
        R("2001:db8::5/128", dev="gh0123456789a"),
        R("2001:db8:1::/122", kind="blackhole"),
    }
    # a route of another protocol must survive every sync
    run_in_netns(host, ["ip", "route", "add", "198.51.100.0/24", "via", "192.0.2.1", "proto", "static"])
    with Netlink(host) as nl:
        d = nl.sync_routes(desired)
        assert len(d.add) == 6 and not d.remove
        assert set(nl.list_routes()) == desired
        text = _ip_routes(host)
        assert "198.18.2.0/26 via 203.0.113.7 dev eth0 onlink" in text
        assert "blackhole 198.18.0.0/26" in text
        assert "198.18.0.5 dev gh0123456789a scope link" in text

        # a second sync finds nothing to do
        again = nl.sync_routes(desired)
        assert again.empty and again.unchanged == 6

        # a stale proto-201 route appears (e.g. from before a restart)
        run_in_netns(host, ["ip", "route", "add", "198.18.9.0/26", "via", "192.0.2.77",
                            "proto", "201"])
        new_desired = (desired - {R("198.18.1.0/26", "192.0.2.9", "eth0")}) | {
            R("198.18.1.0/26", "192.0.2.10", "eth0")
        }
        d = nl.sync_routes(new_desired)
        assert d.remove == (R("198.18.9.0/26", "192.0.2.77", "eth0"),)
        assert d.replace == (R("198.18.1.0/26", "192.0.2.10", "eth0"),)
        assert d.add == () and d.unchanged == 5
        assert set(nl.list_routes()) == new_desired
    assert "198.51.100.0/24 via 192.0.2.1 dev eth0 proto static" in run_in_netns(
        host, ["ip", "route"]).stdout
    # the one-shot helper sweeps everything not desired, except what `owned` protects
    d = sync_routes(set(), host, owned=not_workload_route)
    assert {r.dev for r in d.remove} == {"eth0", None}
    assert {r.dst for r in Netlink(host).list_routes()} == {
        ip_network("198.18.0.5/32"), ip_network("2001:db8::5/128")
    }


@pytest.mark.integration
def test_route_errors_name_the_route(host: str) -> None:
    with Netlink(host) as nl:
        with pytest.raises(DataplaneError, match="no interface 'nope'"):
            nl.add_route(R("198.18.1.0/26", "192.0.2.9", "nope"))
        with pytest.raises(DataplaneError, match=r"198\.18\.1\.0/26 via 203\.0\.113\.9"):
            nl.add_route(R("198.18.1.0/26", "203.0.113.9", "eth0"))  # not on-link
        with pytest.raises(DataplaneError, match="delete route"):
            nl.delete_route(R("198.18.7.0/26", kind="blackhole"))


@pytest.mark.integration
def test_a_route_gone_with_its_interface_is_removed_without_error(host: str) -> None:
    # A workload's /32 goes with its veth: a diff made before that still lists it.
    run_in_netns(host, ["ip", "link", "add", "ghgone", "type", "veth", "peer", "name", "ghgone-p"])
    run_in_netns(host, ["ip", "link", "set", "ghgone", "up"])
    with Netlink(host) as nl:
        route = R("198.18.9.7/32", dev="ghgone")
        nl.add_route(route)
        [listed] = [r for r in nl.list_routes() if r.dst == route.dst]
        run_in_netns(host, ["ip", "link", "del", "ghgone"])
        nl.apply_diff(RouteDiff(remove=(listed,)))
        assert route.dst not in {r.dst for r in nl.list_routes()}
        with pytest.raises(DataplaneError, match="delete route"):
            nl.delete_route(listed)  # asked for directly, absent is still an error


@pytest.mark.integration
def test_links_neighbours_fdb(host: str) -> None:
    run_in_netns(host, ["ip", "link", "add", "vx0", "type", "vxlan", "id", "4096", "dstport",
                        "4789", "local", "192.0.2.5", "nolearning"])
    with Netlink(host) as nl:
        assert [lk.name for lk in nl.links("gh")] == ["gh0123456789a"]
        [vx] = nl.links("vx")
        assert vx.kind == "vxlan" and not vx.up and vx.mac
        assert nl.link_index("nope") is None

        nl.set_neighbour("vx0", "198.18.3.0", "66:00:00:00:00:03")
        nl.set_neighbour("vx0", "198.18.3.0", "66:00:00:00:00:04")  # replace
        [n] = [n for n in nl.list_neighbours("vx0") if n.dst == ip_address("198.18.3.0")]
        assert (n.lladdr, n.permanent) == ("66:00:00:00:00:04", True)
        nl.delete_neighbour("vx0", "198.18.3.0")
        assert not [n for n in nl.list_neighbours("vx0") if n.dst == ip_address("198.18.3.0")]

        nl.add_fdb("vx0", "66:00:00:00:00:04", "192.0.2.99")
        nl.add_fdb("vx0", "66:00:00:00:00:04", "192.0.2.99")
        fdb = [f for f in nl.list_fdb("vx0") if f.lladdr == "66:00:00:00:00:04"]
        assert [f.dst for f in fdb] == [ip_address("192.0.2.99")]
        nl.delete_fdb("vx0", "66:00:00:00:00:04", "192.0.2.99")
        assert not [f for f in nl.list_fdb("vx0") if f.lladdr == "66:00:00:00:00:04"]
        with pytest.raises(DataplaneError):
            nl.delete_fdb("vx0", "66:00:00:00:00:04", "192.0.2.99")


def _candidates() -> list[Route]:
    out = []
    for i in range(6):
        dst = f"198.18.{i}.0/26"
        out += [
            R(dst, "192.0.2.9", "eth0"),
            R(dst, "192.0.2.10"),  # the interface found from the gateway
            R(dst, "203.0.113.7", "eth0", onlink=True),
            R(dst, "203.0.113.7", "eth0"),  # not on-link: refused
            R(dst, kind="blackhole"),
            R(dst, "192.0.2.9", "nope"),  # no such interface
        ]
        out.append(R(f"198.18.9.{i}/32", dev="gh0123456789a"))
    return out


@pytest.mark.integration
def test_fake_route_table_agrees_with_the_kernel(host: str) -> None:
    """The same random operations on the kernel and on FakeRouteTable: the same errors
    and the same protocol-201 routes after every one (the fake stands in for the kernel
    in the routing managers' unit tests)."""
    import random

    from gingham.dataplane.netlink_fake import FakeRouteTable

    fake = FakeRouteTable()
    fake.add_link("eth0", "192.0.2.5/24")
    fake.add_link("peer0")
    fake.add_link("gh0123456789a")
    candidates = _candidates()
    rng = random.Random(13)
    with Netlink(host) as nl:
        for step in range(150):
            op = rng.choice(["replace", "replace", "delete", "sync"])
            args: object
            if op == "sync":
                args = rng.sample(candidates, rng.randint(0, 5))
                args = list({r.dst: r for r in args}.values())  # one per destination
            else:
                args = rng.choice(candidates)
            outcomes = []
            for table in (nl, fake):
                try:
                    if op == "replace":
                        table.replace_route(args)  # type: ignore[arg-type]
                    elif op == "delete":
                        table.delete_route(args)  # type: ignore[arg-type]
                    else:
                        table.sync_routes(args, owned=not_workload_route)  # type: ignore[arg-type]
                    outcomes.append("ok")
                except DataplaneError:
                    outcomes.append("error")
            assert outcomes[0] == outcomes[1], (step, op, args, outcomes)
            assert set(nl.list_routes()) == set(fake.list_routes()), (step, op, args)
        # an interface that goes takes its routes with it, on both
        run_in_netns(host, ["ip", "link", "del", "gh0123456789a"])
        fake.remove_link("gh0123456789a")
        assert set(nl.list_routes()) == set(fake.list_routes())
