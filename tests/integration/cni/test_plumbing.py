"""Workload plumbing in real namespaces: two workloads on one host namespace
reach each other through the host (/32 routes + proxy ARP, /128 + the
link-local gateway), and teardown leaves nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from gingham.cni import plumbing, protocol
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


def _setup(host: str, wl: str, ifname: str, ips: list[str]) -> dict[str, str]:
    code = (
        "import json; from gingham.cni.plumbing import setup_workload_interface as s; "
        f"print(json.dumps(s('/run/netns/{wl}', '{ifname}', {ips!r}, 1400)))"
    )
    result: dict[str, str] = json.loads(_in_host(host, code))
    return result


def _teardown(host: str, ifname: str) -> bool:
    code = (
        "from gingham.cni.plumbing import teardown_workload_interface as t; "
        f"print(t('{ifname}'))"
    )
    return _in_host(host, code).strip() == "True"


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


def test_two_workloads_talk_through_the_host(netns: Make) -> None:
    host, w1, w2 = _host(netns), netns("w1"), netns("w2")
    if1, if2 = plumbing.veth_name("ns", "w1"), plumbing.veth_name("ns", "w2")
    macs = _setup(host, w1, if1, ["198.18.0.1/32", "2001:db8::1/128"])
    _setup(host, w2, if2, ["198.18.0.2/32", "2001:db8::2/128"])
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

    assert _teardown(host, if1) is True
    assert _teardown(host, if1) is False  # idempotent
    assert not _ping(w2, "198.18.0.1")
    assert _teardown(host, if2) is True
    links = json.loads(run_in_netns(host, ["ip", "-j", "link", "show"]).stdout)
    assert not [link["ifname"] for link in links if link["ifname"].startswith("gh")]
    assert _routes(host, "-4") == [] and _routes(host, "-6") == []
    assert json.loads(run_in_netns(w1, ["ip", "-j", "link", "show", "type", "veth"]).stdout) == []


def test_failure_leaves_nothing(netns: Make) -> None:
    host, wl = _host(netns), netns("w")
    ifname = plumbing.veth_name("ns", "bad")
    # eth0 is already taken inside
    run_in_netns(wl, ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "x0"])
    with pytest.raises(AssertionError, match=r"CNIError"):
        _setup(host, wl, ifname, ["198.18.0.9/32"])
    links = json.loads(run_in_netns(host, ["ip", "-j", "link", "show"]).stdout)
    assert not [link["ifname"] for link in links if link["ifname"].startswith("gh")]


def test_stale_host_interface_is_replaced(netns: Make) -> None:
    host, w1, w2 = _host(netns), netns("old"), netns("new")
    ifname = plumbing.veth_name("ns", "same")
    _setup(host, w1, ifname, ["198.18.0.20/32"])
    _setup(host, w2, ifname, ["198.18.0.21/32"])  # DEL for the old one never came
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


def test_plumbing_imports_only_the_standard_library() -> None:
    code = (
        "import sys; import gingham.cni.plumbing; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('pyroute2', 'pydantic', 'httpx', 'yaml', 'click', 'rich')]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_ipv6_only_workload_in_a_proc_netns_path(netns: Make) -> None:
    """Runtimes may pass /proc/PID/ns/net instead of a named namespace."""
    from gingham.lab.netns import spawn_in_netns, stop_process

    host, w1, w2 = _host(netns), netns("v6a"), netns("v6b")
    holder = spawn_in_netns(w2, ["sleep", "60"])
    try:
        # nsenter's child is the sleep (exec), so its pid holds w2's namespace
        proc_path = f"/proc/{holder.pid}/ns/net"
        code = (
            "from gingham.cni.plumbing import setup_workload_interface as s; "
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
