"""How the VXLAN device is made: outer UDP checksums off for IPv4 (and IPv6 checksums
kept), said explicitly rather than left to the kernel's default; a device found with
other checksum settings (an older gingham's) is kept, traffic through it uninterrupted. The
real driver's commands with a fake runner, the manager on FakeVxlanDriver and
FakeRouteTable (checked against the kernel in tests/integration/routing/test_drivers.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from ipaddress import ip_address
from typing import Any

from gingham.calc.routing_types import VXLAN_DEVICE, vxlan_mac
from gingham.dataplane.vxlan import CHECKSUM_FLAGS, CHECKSUM_INFO, VxlanDriver
from gingham.dataplane.vxlan_fake import FakeVxlanDriver

LOCAL = ip_address("192.0.2.11")
MAC = vxlan_mac("h1")


class FakeIP:
    """Answers ``ip -j -d link show`` with ``links``; records every command."""

    def __init__(self, links: list[dict[str, Any]]) -> None:
        self.links = links
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], stdin: str | None) -> str:
        self.calls.append(list(argv))
        if "-d" in argv and "link" in argv:
            return json.dumps(self.links)
        return ""


def found(**data: Any) -> dict[str, Any]:
    """A device as ``ip -j -d link show`` prints it, with the given info_data on top of
    what gingham makes."""
    info = {"id": 4096, "port": 4789, "local": str(LOCAL), "learning": False, **CHECKSUM_INFO}
    info.update(data)
    return {"ifname": VXLAN_DEVICE, "address": MAC, "mtu": 1450, "flags": ["UP"],
            "linkinfo": {"info_kind": "vxlan", "info_data": info}}


def created(fake: FakeIP) -> list[list[str]]:
    return [c for c in fake.calls if c[1:3] == ["link", "add"] or c[3:5] == ["link", "add"]]


def test_checksum_flags_say_what_ip_then_shows() -> None:
    assert CHECKSUM_FLAGS == ("noudpcsum", "noudp6zerocsumtx", "noudp6zerocsumrx")
    assert CHECKSUM_INFO == {
        "udp_csum": False, "udp_zero_csum6_tx": False, "udp_zero_csum6_rx": False,
    }


def test_the_device_is_made_without_ipv4_udp_checksums() -> None:
    fake = FakeIP([])
    assert VxlanDriver("hostns", runner=fake).ensure_device(LOCAL, MAC, 1450)
    assert created(fake) == [[
        "ip", "-n", "hostns", "link", "add", VXLAN_DEVICE, "type", "vxlan", "id", "4096",
        "dstport", "4789", "local", "192.0.2.11", "nolearning",
        "noudpcsum", "noudp6zerocsumtx", "noudp6zerocsumrx",
    ]]  # fmt: skip


def test_a_device_with_other_checksum_settings_is_kept() -> None:
    # an older gingham's, or the kernel's default: making it again would stop its traffic
    for key in ("udp_csum", "udp_zero_csum6_tx", "udp_zero_csum6_rx"):
        fake = FakeIP([found(**{key: True})])
        assert not VxlanDriver(None, runner=fake).ensure_device(LOCAL, MAC, 1450), key
        assert ["ip", "link", "del", VXLAN_DEVICE] not in fake.calls and created(fake) == []


def test_a_device_as_gingham_makes_it_is_kept() -> None:
    fake = FakeIP([found()])
    assert not VxlanDriver(None, runner=fake).ensure_device(LOCAL, MAC, 1450)
    assert created(fake) == [] and ["ip", "link", "del", VXLAN_DEVICE] not in fake.calls


def test_checksum_keys_ip_does_not_print_do_not_make_it_again() -> None:
    link = found()
    for k in CHECKSUM_INFO:
        del link["linkinfo"]["info_data"][k]
    fake = FakeIP([link])
    assert not VxlanDriver(None, runner=fake).ensure_device(LOCAL, MAC, 1450)
    assert created(fake) == []


def test_the_fake_keeps_a_checksummed_device_as_the_kernel_driver_does() -> None:
    drv = FakeVxlanDriver()
    assert drv.ensure_device(LOCAL, MAC, 1450)
    info = drv.device_info()
    assert info is not None
    assert {k: info["linkinfo"]["info_data"][k] for k in CHECKSUM_INFO} == CHECKSUM_INFO
    assert drv._dev is not None
    drv._dev.udp_csum = True  # as an older gingham left it
    assert not drv.ensure_device(LOCAL, MAC, 1450) and drv.created == 1
