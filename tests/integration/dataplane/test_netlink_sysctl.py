"""gingham.dataplane.sysctl: settings as data, applied only where they differ;
against a directory and against /proc/sys inside a throwaway namespace."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from gingham.dataplane.sysctl import (
    Sysctl,
    forwarding_settings,
    rp_filter_settings,
    workload_interface_settings,
)
from gingham.errors import DataplaneError
from gingham.lab.netns import run_in_netns


def _fake_proc(tmp_path: Path, settings: dict[str, str]) -> Sysctl:
    for key in settings:
        p = tmp_path / key
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("0\n")
    return Sysctl(tmp_path)


def test_settings_are_data() -> None:
    s = workload_interface_settings("gh0123456789a")
    assert s == {
        "net/ipv4/conf/gh0123456789a/forwarding": "1",
        "net/ipv4/conf/gh0123456789a/proxy_arp": "1",
        "net/ipv4/neigh/gh0123456789a/proxy_delay": "0",
    }
    assert "net/ipv6/conf/gh0123456789a/forwarding" in workload_interface_settings(
        "gh0123456789a", ipv6=True)
    assert rp_filter_settings("all", "loose") == {"net/ipv4/conf/all/rp_filter": "2"}
    assert forwarding_settings(ipv6=False) == {"net/ipv4/ip_forward": "1"}
    for bad in ("../x", "a/b", "sixteen-chars-xx", ""):
        with pytest.raises(DataplaneError):
            workload_interface_settings(bad)
    with pytest.raises(DataplaneError, match="rp_filter"):
        rp_filter_settings("eth0", "sometimes")


def test_apply_writes_only_differences(tmp_path: Path) -> None:
    settings = workload_interface_settings("gh1") | forwarding_settings()
    sc = _fake_proc(tmp_path, settings)
    changed = sc.apply(settings)
    assert changed == {k: v for k, v in settings.items() if v != "0"}
    assert sc.read("net/ipv4/conf/gh1/proxy_arp") == "1"
    assert sc.read("net.ipv4.ip_forward") == "1"
    assert sc.apply(settings) == {}
    with pytest.raises(DataplaneError, match="cannot read sysctl net/ipv4/conf/nope"):
        sc.apply(workload_interface_settings("nope"))
    with pytest.raises(DataplaneError):
        sc.read("../../etc/passwd")


@pytest.mark.integration
def test_apply_in_a_namespace(netns: Callable[[str], str]) -> None:
    ns = netns("sysctl")
    run_in_netns(ns, ["ip", "link", "add", "gh0123456789a", "type", "veth", "peer", "name", "w0"])
    code = (
        "from gingham.dataplane.sysctl import *; sc = Sysctl(); "
        "s = workload_interface_settings('gh0123456789a', ipv6=True) | forwarding_settings()"
        " | rp_filter_settings('all', 'loose'); "
        "print(sorted(sc.apply(s))); print(sc.apply(s))"
    )
    out = run_in_netns(ns, [sys.executable, "-c", code]).stdout.splitlines()
    assert "'net/ipv4/conf/gh0123456789a/proxy_arp'" in out[0]
    assert out[1] == "{}"
    check = run_in_netns(ns, ["sysctl", "-n", "net.ipv4.conf.gh0123456789a.proxy_arp",
                              "net.ipv4.neigh.gh0123456789a.proxy_delay", "net.ipv4.ip_forward",
                              "net.ipv4.conf.all.rp_filter"]).stdout.split()
    assert check == ["1", "0", "1", "2"]
    # the namespace's values, not the machine's: the root namespace is untouched
    assert Path("/proc/sys/net/ipv4/conf/gh0123456789a").exists() is False
