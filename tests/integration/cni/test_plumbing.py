"""Workload plumbing in real namespaces: two workloads on one host namespace
reach each other through the host (/32 routes + proxy ARP, /128 + the
link-local gateway), and teardown leaves nothing. Both implementations: the
direct path's (`ip` and `nsenter`, plumbing.py) and the agent's (netlink
in-process, veth_netlink.py), which must leave the kernel in the same state."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from gingham.cni import plumbing, protocol
from gingham.cni.veth_netlink import NetlinkPlumbing
from gingham.errors import CNIError
from gingham.lab.netns import run_in_netns

pytestmark = pytest.mark.integration

Make = Callable[[str], str]


def _in_host(host: str, code: str) -> str:
    """Run plumbing code as a process inside the host namespace, as the CNI plugin runs."""
    proc = run_in_netns(host, [sys.executable, "-c", code], check=False)
    if proc.returncode != 0:
        raise AssertionError(proc.stderr)
    return proc.stdout


IMPLEMENTATIONS = ["ip", "netlink"]
# What each implementation is called as, in code run inside the host namespace.
_CALL = {
    "ip": ("from gingham.cni import plumbing as p; "
           "s = p.setup_workload_interface; t = p.teardown_workload_interface"),
    "netlink": ("from gingham.cni.veth_netlink import NetlinkPlumbing; n = NetlinkPlumbing(); "
                "s = lambda path, i, ips, mtu, c='eth0': n.setup(path, i, ips, mtu, c); "
                "t = n.teardown"),
}


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _setup(host: str, wl: str, ifname: str, ips: list[str], impl: str = "ip") -> dict[str, str]:
    code = f"import json; {_CALL[impl]}; print(json.dumps(s('/run/netns/{wl}', '{ifname}', {ips!r}, 1400)))"
    result: dict[str, str] = json.loads(_in_host(host, code))
    return result


def _teardown(host: str, ifname: str, impl: str = "ip") -> bool:
    return _in_host(host, f"{_CALL[impl]}; print(t('{ifname}'))").strip() == "True"


def _host(netns: Make) -> str:
    host = netns("host")
    # proxy ARP answers for 169.254.1.1 only when the host routes it elsewhere:
    # a fake "uplink" with a default route that stays inside this namespace
    # (this kernel has no dummy module: a veth pair stands in)
    run_in_netns(host, ["ip", "link", "add", "up0", "type", "veth", "peer", "name", "up0p"])
    run_in_netns(host, ["ip", "link", "set", "up0p", "up"])
    run_in_netns(host, ["ip", "addr", "add", "192.0.2.10/24", "dev", "up0"])
    run_in_netns(host, ["ip", "link", "set", "up0", "up"])
    run_in_netns(host, ["ip", "route", "add", "default", "via", "192.0.2.1", "dev", "up0"])
    run_in_netns(host, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
    run_in_netns(host, ["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"])
    return host


def _ping(src: str, dst: str) -> bool:
    argv = ["busybox", "ping", "-c", "1", "-W", "2"]
    if ":" in dst:
        argv.append("-6")
    return run_in_netns(src, [*argv, dst], check=False, timeout=10).returncode == 0


def _routes(host: str, family: str) -> list[dict[str, object]]:
    out = run_in_netns(host, ["ip", "-j", family, "route", "show", "proto", "201"]).stdout
    return list(json.loads(out or "[]"))


def test_veth_name() -> None:
    name = plumbing.veth_name("default", "web-1")
    assert name.startswith("gh") and len(name) == 13
    assert name == plumbing.veth_name("default", "web-1")
    assert name != plumbing.veth_name("default", "web-2")
    int(name[2:], 16)


def test_two_workloads_talk_through_the_host(netns: Make, impl: str) -> None:
    host, w1, w2 = _host(netns), netns("w1"), netns("w2")
    if1, if2 = plumbing.veth_name("ns", "w1"), plumbing.veth_name("ns", "w2")
    macs = _setup(host, w1, if1, ["198.18.0.1/32", "2001:db8::1/128"], impl)
    _setup(host, w2, if2, ["198.18.0.2/32", "2001:db8::2/128"], impl)
    assert macs["host_mac"] == plumbing.HOST_MAC
    assert len(macs["container_mac"]) == 17 and macs["container_mac"] != plumbing.HOST_MAC

    inside = json.loads(run_in_netns(w1, ["ip", "-j", "addr", "show", "dev", "eth0"]).stdout)[0]
    assert inside["mtu"] == 1400
    assert {a["local"] for a in inside["addr_info"]} >= {"198.18.0.1", "2001:db8::1"}
    r4 = {(r["dst"], r["dev"]) for r in _routes(host, "-4")}
    assert r4 == {("198.18.0.1", if1), ("198.18.0.2", if2)}
    assert {r["dst"] for r in _routes(host, "-6")} == {"2001:db8::1", "2001:db8::2"}

    assert _ping(w1, "198.18.0.2")
    assert _ping(w2, "198.18.0.1")
    assert _ping(w1, "2001:db8::2")

    assert _teardown(host, if1, impl) is True
    assert _teardown(host, if1, impl) is False  # idempotent
    assert not _ping(w2, "198.18.0.1")
    assert _teardown(host, if2, impl) is True
    links = json.loads(run_in_netns(host, ["ip", "-j", "link", "show"]).stdout)
    assert not [link["ifname"] for link in links if link["ifname"].startswith("gh")]
    assert _routes(host, "-4") == [] and _routes(host, "-6") == []
    assert json.loads(run_in_netns(w1, ["ip", "-j", "link", "show", "type", "veth"]).stdout) == []


def test_failure_leaves_nothing(netns: Make, impl: str) -> None:
    host, wl = _host(netns), netns("w")
    ifname = plumbing.veth_name("ns", "bad")
    # eth0 is already taken inside
    run_in_netns(wl, ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "x0"])
    with pytest.raises(AssertionError, match=r"CNIError"):
        _setup(host, wl, ifname, ["198.18.0.9/32"], impl)
    links = json.loads(run_in_netns(host, ["ip", "-j", "link", "show"]).stdout)
    assert not [link["ifname"] for link in links if link["ifname"].startswith("gh")]


def test_stale_host_interface_is_replaced(netns: Make, impl: str) -> None:
    host, w1, w2 = _host(netns), netns("old"), netns("new")
    ifname = plumbing.veth_name("ns", "same")
    _setup(host, w1, ifname, ["198.18.0.20/32"], impl)
    _setup(host, w2, ifname, ["198.18.0.21/32"], impl)  # DEL for the old one never came
    [route] = _routes(host, "-4")
    assert route["dst"] == "198.18.0.21"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("/run/netns/does-not-exist", "ghabc", ["198.18.0.1/32"]), protocol.ERR_INVALID_ENV),
        (("/run/netns/x;rm", "ghabc", ["198.18.0.1/32"]), protocol.ERR_INVALID_ENV),
        (("/proc/self/ns/net", "gh/abc", ["198.18.0.1/32"]), protocol.ERR_INVALID_ENV),
        (("/proc/self/ns/net", "ghabcdefghijklmnop", ["198.18.0.1/32"]), protocol.ERR_INVALID_ENV),
        (("/proc/self/ns/net", "ghabc", ["198.18.0.0/24"]), protocol.ERR_INVALID_CONFIG),
        (("/proc/self/ns/net", "ghabc", ["nonsense"]), protocol.ERR_INVALID_CONFIG),
        (("/proc/self/ns/net", "ghabc", []), protocol.ERR_INVALID_CONFIG),
    ],
)
def test_bad_input(args: tuple[str, str, list[str]], code: int) -> None:
    with pytest.raises(CNIError) as info:
        plumbing.setup_workload_interface(*args)
    assert info.value.code == code
    with pytest.raises(CNIError) as info:  # checked before any socket is opened
        NetlinkPlumbing().setup(*args, 1500, "eth0")
    assert info.value.code == code


def test_plumbing_imports_only_the_standard_library() -> None:
    code = (
        "import sys; import gingham.cni.plumbing; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('pyroute2', 'pydantic', 'httpx', 'yaml', 'click', 'rich')]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_ipv6_only_workload_in_a_proc_netns_path(netns: Make, impl: str) -> None:
    """Runtimes may pass /proc/PID/ns/net instead of a named namespace."""
    from gingham.lab.netns import spawn_in_netns, stop_process

    host, w1, w2 = _host(netns), netns("v6a"), netns("v6b")
    holder = spawn_in_netns(w2, ["sleep", "60"])
    try:
        # nsenter's child is the sleep (exec), so its pid holds w2's namespace
        proc_path = f"/proc/{holder.pid}/ns/net"
        code = (
            f"{_CALL[impl]}; "
            f"s('/run/netns/{w1}', 'ghv6a', ['2001:db8::a/128'], 1500, 'net0'); "
            f"s('{proc_path}', 'ghv6b', ['2001:db8::b/128'], 1500)"
        )
        _in_host(host, code)
        inside = json.loads(run_in_netns(w1, ["ip", "-j", "-6", "route", "show", "default"]).stdout)
        assert [(r["gateway"], r["dev"]) for r in inside] == [(plumbing.GATEWAY_V6, "net0")]
        assert _ping(w1, "2001:db8::b")
        assert _routes(host, "-4") == []
    finally:
        stop_process(holder)


# -- the two implementations agree --------------------------------------------------------


def _kernel_state(host: str, wl: str, ifname: str) -> dict[str, object]:
    """What a workload's plumbing left in the kernel, without names the kernel chose."""
    def ip(netns: str, *args: str) -> list[dict[str, object]]:
        return list(json.loads(run_in_netns(netns, ["ip", "-j", *args]).stdout or "[]"))

    def addrs(netns: str, dev: str) -> list[tuple[object, ...]]:
        [link] = ip(netns, "addr", "show", "dev", dev)
        infos = link["addr_info"]
        assert isinstance(infos, list)
        return sorted((a["family"], a.get("prefixlen"), a.get("scope"),
                       a["local"] if a.get("scope") != "link" else "link-local")
                      for a in infos)  # fmt: skip

    def routes(netns: str, family: str) -> list[tuple[object, ...]]:
        return sorted((r.get("dst"), r.get("gateway"), r.get("dev"), r.get("protocol"),
                       r.get("scope"), tuple(sorted(r.get("flags", []))))  # type: ignore[arg-type]
                      for r in ip(netns, family, "route", "show", "table", "main"))  # fmt: skip

    def link(netns: str, dev: str) -> tuple[object, ...]:
        [info] = ip(netns, "-d", "link", "show", "dev", dev)
        return (info["mtu"], info.get("operstate") in ("UP", "UNKNOWN", "LOWERLAYERDOWN", "DOWN"),
                tuple(sorted(info["flags"])), info.get("linkinfo", {}).get("info_kind"),  # type: ignore[union-attr]
                info["address"] if netns == host else "workload-mac")

    sysctls = run_in_netns(host, ["sh", "-c", " ".join(
        f"cat /proc/sys/net/{path};" for path in (
            f"ipv4/conf/{ifname}/proxy_arp", f"ipv4/conf/{ifname}/forwarding",
            f"ipv4/neigh/{ifname}/proxy_delay", f"ipv6/conf/{ifname}/accept_dad",
            f"ipv6/conf/{ifname}/accept_ra", f"ipv6/conf/{ifname}/forwarding",
            f"ipv6/conf/{ifname}/disable_ipv6"))]).stdout.split()  # fmt: skip
    return {"inside": (link(wl, "eth0"), addrs(wl, "eth0"), routes(wl, "-4"), routes(wl, "-6")),
            "host": (link(host, ifname), sysctls,
                     [r for r in routes(host, "-4") if r[2] == ifname],
                     [r for r in routes(host, "-6") if r[2] == ifname])}


def test_the_agents_plumbing_leaves_what_the_direct_path_leaves(netns: Make) -> None:
    host, wa, wb = _host(netns), netns("via-ip"), netns("via-netlink")
    ia, ib = plumbing.veth_name("ns", "a"), plumbing.veth_name("ns", "b")
    _setup(host, wa, ia, ["198.18.0.31/32", "2001:db8::31/128"], "ip")
    _setup(host, wb, ib, ["198.18.0.32/32", "2001:db8::32/128"], "netlink")
    a, b = _kernel_state(host, wa, ia), _kernel_state(host, wb, ib)
    # each has its own veth and addresses; the rest must be identical
    rename = json.dumps(b).replace(ib, ia).replace("198.18.0.32", "198.18.0.31")
    rename = rename.replace("2001:db8::32", "2001:db8::31")
    assert json.loads(rename) == json.loads(json.dumps(a))


def test_a_del_takes_the_veth_out_of_service_at_once_and_the_reaper_deletes_it(
    netns: Make,
) -> None:
    host, wl = _host(netns), netns("reaped")
    ifname = plumbing.veth_name("ns", "reaped")
    code = (
        "import json, time; from gingham.cni.veth_netlink import NetlinkPlumbing, Reaper; "
        "from gingham.cni.plumbing import interface_exists as exists; "
        "r = Reaper(); n = NetlinkPlumbing(r); "
        f"n.setup('/run/netns/{wl}', '{ifname}', ['198.18.0.40/32'], 1400, 'eth0'); "
        f"assert n.teardown('{ifname}', wait=False) is True; "
        "import subprocess; "
        "routes = subprocess.run(['ip', '-j', 'route', 'show', 'proto', '201'], "
        "capture_output=True, text=True).stdout; "
        "r.close(); "
        f"print(json.dumps({{'routes': json.loads(routes or '[]'), 'gone': not exists('{ifname}')}}))"
    )
    got = json.loads(_in_host(host, code))
    assert got == {"routes": [], "gone": True}
    assert json.loads(run_in_netns(wl, ["ip", "-j", "link", "show", "type", "veth"]).stdout) == []


def test_the_agents_plumbing_returns_with_both_ends_operational(netns: Make) -> None:
    """Its contract: nothing sent right after setup is dropped by a link the kernel is
    still bringing up (on a busy host a lost first ARP request costs a second)."""
    host, wl = _host(netns), netns("oper")
    ifname = plumbing.veth_name("ns", "oper")
    code = (
        "import json; from gingham.cni.veth_netlink import NetlinkPlumbing; "
        "from gingham.cni.rtnl import RouteSocket; n = NetlinkPlumbing(); "
        f"n.setup('/run/netns/{wl}', '{ifname}', ['198.18.0.50/32'], 1400, 'eth0'); "
        f"print(json.dumps(RouteSocket.open().link('{ifname}').operational))"
    )
    assert json.loads(_in_host(host, code)) is True
    [inside] = json.loads(run_in_netns(wl, ["ip", "-j", "link", "show", "dev", "eth0"]).stdout)
    assert inside["operstate"] == "UP"
