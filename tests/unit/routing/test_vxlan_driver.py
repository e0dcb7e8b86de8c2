"""VXLAN driver command building with a fake runner (the real kernel: tests/integration/routing)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from ipaddress import ip_address

from gingham.calc.messages import VxlanPeerUpdate
from gingham.dataplane.vxlan import VxlanDriver


class FakeIP:
    def __init__(self, outputs: dict[str, object]) -> None:
        self.outputs = outputs
        self.calls: list[tuple[list[str], str | None]] = []

    def __call__(self, argv: Sequence[str], stdin: str | None) -> str:
        self.calls.append((list(argv), stdin))
        for key, value in self.outputs.items():
            if key in " ".join(argv):
                return json.dumps(value)
        return ""


def test_creates_device_in_namespace_with_calico_parameters() -> None:
    fake = FakeIP({"-d link show": []})
    d = VxlanDriver("hostns", runner=fake)
    assert d.ensure_device(ip_address("192.0.2.11"), "02:00:00:00:00:01", 1450)
    argvs = [c[0] for c in fake.calls]
    assert [
        "ip", "-n", "hostns", "link", "add", "vxlan.gingham", "type", "vxlan", "id", "4096",
        "dstport", "4789", "local", "192.0.2.11", "nolearning",
        "noudpcsum", "noudp6zerocsumtx", "noudp6zerocsumrx",
    ] in argvs  # fmt: skip
    assert [
        "ip", "-n", "hostns", "link", "set", "vxlan.gingham", "address", "02:00:00:00:00:01",
        "mtu", "1450", "up",
    ] in argvs  # fmt: skip


def test_peers_are_batched_and_only_missing_ones_written() -> None:
    have = VxlanPeerUpdate("h2", ip_address("198.18.2.0"), "02:00:00:00:00:02", ip_address("192.0.2.12"))
    new = VxlanPeerUpdate("h3", ip_address("198.18.3.0"), "02:00:00:00:00:03", ip_address("192.0.2.13"))
    fake = FakeIP(
        {
            "neigh show": [{"dst": "198.18.2.0", "lladdr": "02:00:00:00:00:02"}],
            "fdb show": [{"mac": "02:00:00:00:00:02", "dst": "192.0.2.12"}],
        }
    )
    d = VxlanDriver(None, runner=fake)
    assert d.add_peers([have, new]) == (new,)
    batches = {c[0][0]: c[1] for c in fake.calls if "-batch" in c[0]}
    assert (
        batches["bridge"]
        == "fdb replace 02:00:00:00:00:03 dev vxlan.gingham dst 192.0.2.13 self permanent\n"
    )
    assert (
        batches["ip"]
        == "neigh replace 198.18.3.0 lladdr 02:00:00:00:00:03 dev vxlan.gingham nud permanent\n"
    )
    fake.calls.clear()
    diff = d.remove_stale_peers([new])
    assert diff.removed_neighbours == ("198.18.2.0",)
    assert diff.removed_fdb == (("02:00:00:00:00:02", "192.0.2.12"),)
