"""Host capabilities: probed from the host (made up here), reported per host and never
skipped silently; routing plans nothing the host lacks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import generate_latest

from gingham.agent.capabilities import (
    Capability,
    HostCapabilities,
    probe_capabilities,
    report_lines,
)
from gingham.agent.status import write_status
from gingham.calc.felix import HostSupport
from gingham.datastore.base import Datastore
from tests.unit.agent.test_step import Host, ds, host  # noqa: F401  (fixtures)


class Programs:
    """A made-up host's programs: argv[0] -> (exit code, output); absent: not installed."""

    def __init__(self, **answers: tuple[int, str]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str], stdin: str | None = None) -> tuple[int, str]:
        self.calls.append(tuple(argv))
        key = "nft_check" if list(argv[:2]) == ["nft", "-c"] else argv[0]
        if key not in self.answers:
            raise FileNotFoundError(2, "No such file or directory")
        return self.answers[key]

    def which(self, name: str) -> str | None:
        return f"/usr/sbin/{name}" if name in self.answers or name == "birdc" else None


def by_name(caps: HostCapabilities) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.present, c.detail) for c in caps.items}


def test_a_host_with_everything(tmp_path: Path) -> None:
    (tmp_path / "sys/module/vxlan").mkdir(parents=True)
    programs = Programs(nft=(0, "nftables v1.0.6 (Lester Gooch #5)"), nft_check=(0, ""),
                        bird=(0, "BIRD version 2.0.12"))
    caps = probe_capabilities(programs, tmp_path, "6.1.0", programs.which)
    assert by_name(caps) == {
        "nftables": (True, "nftables v1.0.6 (Lester Gooch #5)"),
        "vxlan": (True, "module loaded"),
        "nat": (True, "masquerade and snat accepted"),
        "bird": (True, "BIRD version 2.0.12"),
    }
    assert caps.support() == HostSupport()
    assert report_lines(caps, {"vxlan", "nat", "bird"}) == []
    # NAT is asked of the kernel in check mode: nothing is left behind.
    assert ("nft", "-c", "-f", "-") in programs.calls


def test_a_host_lacking_things(tmp_path: Path) -> None:
    modules = tmp_path / "lib/modules/6.1.0"
    modules.mkdir(parents=True)
    (modules / "modules.dep").write_text("kernel/net/ipv4/udp_tunnel.ko:\n")
    programs = Programs(nft=(0, "nftables v1.0.6"),
                        nft_check=(1, "Error: Could not process rule: No such file or directory"),
                        bird=(0, "BIRD version 1.6.8"))
    caps = probe_capabilities(programs, tmp_path, "6.1.0", programs.which)
    found = by_name(caps)
    assert found["vxlan"] == (False, "no vxlan module loaded, built in or installed for "
                                     "kernel 6.1.0")
    assert found["nat"][0] is False and "No such file" in found["nat"][1]
    assert found["bird"] == (False, "BIRD version 1.6.8: gingham renders BIRD 2 configuration")
    assert caps.support() == HostSupport(vxlan=False, nat=False, bird=False)
    lines = report_lines(caps, {"vxlan"})
    assert lines[0].startswith("not in effect: VXLAN between hosts (IPPool vxlanMode")
    assert "host capability vxlan missing" in lines[0]
    # Missing but not asked for: reported, not as a setting out of effect.
    assert lines[1].startswith("host capability nat missing")
    assert lines[2].startswith("host capability bird missing")
    # An installed module counts; so does a built-in one.
    (modules / "modules.dep").write_text("kernel/drivers/net/vxlan/vxlan.ko: udp_tunnel.ko\n")
    assert probe_capabilities(programs, tmp_path, "6.1.0", programs.which).present("vxlan")
    (modules / "modules.dep").unlink()
    (modules / "modules.builtin").write_text("kernel/drivers/net/vxlan/vxlan.ko\n")
    assert probe_capabilities(programs, tmp_path, "6.1.0", programs.which).get("vxlan") == (
        Capability("vxlan", True, "built into the kernel"))


def test_no_nft_at_all(tmp_path: Path) -> None:
    programs = Programs()
    caps = probe_capabilities(programs, tmp_path, "6.1.0", programs.which)
    found = by_name(caps)
    assert found["nftables"][0] is False and found["nat"] == (False, "no nft to ask")
    assert found["bird"] == (False, "bird not on the PATH")
    assert caps.support().nat is False
    assert any(line.startswith("not in effect: policy") for line in report_lines(caps, ()))


def test_the_agent_reports_and_routing_skips_what_the_host_lacks(
    ds: Datastore, host: Host, tmp_path: Path  # noqa: F811
) -> None:
    lacking = HostCapabilities((Capability("nftables", True, "nftables v1.0.6"),
                                Capability("vxlan", False, "no vxlan module"),
                                Capability("nat", True, "ok"), Capability("bird", True, "ok")))
    host.agent.capabilities = lambda: lacking
    host.steps()
    agent = host.agent
    assert agent.state.ready  # the rest of the dataplane is programmed
    assert host.vxlan.device_info() is None  # no device, no VXLAN route
    assert all(r.dev != "vxlan.gingham" for r in host.routes.list_routes())
    assert host.route("198.18.2.0/26") is not None  # direct routes still there
    [line] = [n for n in agent.state.notices if "vxlan" in n]
    assert line.startswith("not in effect: VXLAN between hosts") and "no vxlan module" in line
    assert line in agent.state.reasons()  # the /readyz detail
    metrics = generate_latest(agent.metrics.registry).decode()
    assert 'gingham_host_capability{name="vxlan"} 0.0' in metrics
    assert 'gingham_host_capability{name="nat"} 1.0' in metrics
    write_status(tmp_path / "status.json", "h1", agent.state)
    doc = json.loads((tmp_path / "status.json").read_text())
    assert {"name": "vxlan", "present": False, "detail": "no vxlan module"} in doc["capabilities"]
