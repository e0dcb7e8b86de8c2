"""The Docker endpoint's veth against the kernel, in a namespace of the test's own."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from gingham.docker import veth

pytestmark = pytest.mark.integration

EP = "e" * 64


def in_netns(ns: str, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=60, check=False)


def ip_json(ns: str, *args: str) -> list[dict[str, object]]:
    out = subprocess.run(["ip", "-n", ns, "-j", *args], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out or "[]")  # type: ignore[no-any-return]


def test_pair_and_host_side_as_the_cni_path_makes_them_and_delete_removes_both(
        netns: Callable[[str], str]) -> None:
    ns = netns("dveth")
    made = in_netns(ns, "import ipaddress; from gingham.docker import veth; "
                        f"print(veth.create({EP!r}, [ipaddress.ip_address('198.18.4.9'), "
                        "ipaddress.ip_address('2001:db8:4::9')], 1400))")
    assert made.returncode == 0, made.stderr
    src, host = made.stdout.strip(), veth.host_interface(EP)
    assert src == veth.container_interface(EP) and len(src) <= 15
    links = {link["ifname"]: link for link in ip_json(ns, "link")}
    assert links[host]["address"] == "ee:ee:ee:ee:ee:ee" and links[host]["mtu"] == 1400
    assert "UP" in links[host]["flags"]  # type: ignore[operator]
    routes = ip_json(ns, "route", "show", "proto", "201")
    routes += ip_json(ns, "-6", "route", "show", "proto", "201")
    assert {(r["dst"], r["dev"]) for r in routes} == {("198.18.4.9", host),
                                                       ("2001:db8:4::9", host)}
    proxy_arp = subprocess.run(["ip", "netns", "exec", ns, "cat",
                                f"/proc/sys/net/ipv4/conf/{host}/proxy_arp"],
                               capture_output=True, text=True, check=True).stdout
    assert proxy_arp.strip() == "1"
    gone = in_netns(ns, f"from gingham.docker import veth; print(veth.delete({EP!r}))")
    assert gone.stdout.strip() == "True", gone.stderr
    assert {link["ifname"] for link in ip_json(ns, "link")} == {"lo"}
    again = in_netns(ns, f"from gingham.docker import veth; print(veth.delete({EP!r}))")
    assert again.stdout.strip() == "False"


def test_a_failed_setup_leaves_nothing_behind(netns: Callable[[str], str]) -> None:
    ns = netns("dvfail")
    failed = in_netns(ns, "import ipaddress; from gingham.docker import veth\n"
                          "def broken(*_a): raise OSError(5, 'injected')\n"
                          "veth.host_sysctls = broken\n"
                          f"veth.create({EP!r}, [ipaddress.ip_address('198.18.4.9')], 1400)")
    assert failed.returncode != 0 and "DockerError" in failed.stderr
    assert "injected" in failed.stderr
    assert {link["ifname"] for link in ip_json(ns, "link")} == {"lo"}
