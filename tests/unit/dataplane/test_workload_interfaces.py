"""Workload interfaces (FelixConfiguration interfacePrefix), refused endpoints,
anti-spoofing before conntrack and the rp_filter the managers ask for.

Against FakeNFT: what reaches the table. The real-packet versions are in
tests/integration/security/test_anti_spoof_kernel.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gingham.calc import messages as m
from gingham.calc.messages import (
    InSync,
    ParsedRule,
    ProfileUpdate,
    WorkloadEndpointID,
    WorkloadEndpointRemove,
    WorkloadEndpointUpdate,
)
from gingham.dataplane import layout
from gingham.dataplane.apply import Applier
from gingham.dataplane.managers import DataplaneConfig, PolicyDataplane
from gingham.dataplane.nft_fake import FakeNFT
from gingham.dataplane.sysctl import Sysctl, WorkloadSysctlSync
from gingham.model.endpoints import parse_interface_prefixes

PROF = "kns.ns1"


def ep(name: str, ifname: str, ip: str = "198.18.0.1", spoof: tuple[str, ...] = (),
       ip6: str | None = None) -> WorkloadEndpointUpdate:
    return WorkloadEndpointUpdate(WorkloadEndpointID("ns1", name), ifname, (f"{ip}/32",),
                                  (f"{ip6}/128",) if ip6 else (), None, (), (PROF,),
                                  allow_spoofed_prefixes=spoof)


def setup(*msgs: m.Message) -> tuple[Applier, FakeNFT]:
    fake = FakeNFT(strict=True)
    ap = Applier(fake, PolicyDataplane())
    ap.dataplane.on_messages([
        ProfileUpdate(PROF, (ParsedRule("p:i0", "allow"),), (ParsedRule("p:e0", "allow"),)),
        *msgs, InSync()])
    ap.apply()
    return ap, fake


def ifaces_in_table(fake: FakeNFT) -> set[str]:
    """Every interface named in a dispatch map or an anti-spoofing set."""
    out = set()
    for name in (layout.MAP_TO_WL, layout.MAP_FROM_WL, layout.SPOOF_V4, layout.SPOOF_V6,
                 layout.RPF_V6):
        out |= {e.key[0] for e in fake.list_elements(name)}
    return out


def config(prefix: str | None) -> m.ConfigUpdate:
    """What the graph sends for FelixConfiguration interfacePrefix ``prefix``."""
    return m.ConfigUpdate(interface_prefixes=parse_interface_prefixes(prefix))


def rules(fake: FakeNFT, chain: str) -> list[str]:
    return [r.rule for r in fake.list_rules(chain)]


# ------------------------------------------------------------ interface prefix


def test_endpoint_naming_the_uplink_is_refused_with_a_reason(caplog: pytest.LogCaptureFixture,
                                                             ) -> None:
    uplink = ep("evil", "eth0", "198.18.0.9")
    with caplog.at_level(logging.WARNING):
        ap, fake = setup(ep("a", "gh0000000000a"), uplink)
        ap.dataplane.on_message(uplink)  # the same again: not logged again
        ap.apply()
    assert ifaces_in_table(fake) == {"gh0000000000a"}
    reason = ap.dataplane.refused_endpoints[uplink.endpoint_id]
    assert "'eth0'" in reason and "'gh'" in reason and "interfacePrefix" in reason
    assert [r.getMessage() for r in caplog.records].count(
        f"workload endpoint ns1/evil not programmed: {reason}") == 1
    assert set(ap.dataplane.rp_filter) == {"gh0000000000a"}
    ap.dataplane.on_message(WorkloadEndpointRemove(uplink.endpoint_id))
    assert dict(ap.dataplane.refused_endpoints) == {}


def test_programmed_endpoint_renamed_to_a_host_interface_is_withdrawn() -> None:
    ap, fake = setup(ep("a", "gh0000000000a"))
    ap.dataplane.on_message(ep("a", "eth0"))
    ap.apply()
    assert ifaces_in_table(fake) == set()
    assert WorkloadEndpointID("ns1", "a") in ap.dataplane.refused_endpoints
    ap.dataplane.on_message(ep("a", "gh0000000000a"))  # and back
    ap.apply()
    assert ifaces_in_table(fake) == {"gh0000000000a"}
    assert dict(ap.dataplane.refused_endpoints) == {}


@pytest.mark.parametrize("ifname", ["", "gh0000000000000x", "gh:1", "gh/1", "gh 1"])
def test_endpoint_with_an_invalid_interface_name_is_refused(ifname: str) -> None:
    bad = ep("bad", ifname)
    ap, fake = setup(bad)
    assert ifaces_in_table(fake) == set()
    assert "interfaceName" in ap.dataplane.refused_endpoints[bad.endpoint_id]


def test_prefix_change_judges_every_endpoint_again() -> None:
    gh, tap = ep("a", "gh0000000000a"), ep("vm", "tap1234", "198.18.0.7")
    ap, fake = setup(gh, tap)
    assert ifaces_in_table(fake) == {"gh0000000000a"}
    ap.dataplane.on_message(config("gh, tap"))
    ap.apply()
    assert ifaces_in_table(fake) == {"gh0000000000a", "tap1234"}
    assert dict(ap.dataplane.refused_endpoints) == {}
    wl = '{ "gh*", "tap*" }'
    assert f"iifname != {wl} return" in rules(fake, layout.RAW_WL)
    assert any(r.startswith(f"oifname {wl} ") and "drop" in r
               for r in rules(fake, layout.FWD_TO_WL))
    ap.dataplane.on_message(config("tap"))
    ap.apply()
    assert ifaces_in_table(fake) == {"tap1234"}
    assert set(ap.dataplane.refused_endpoints) == {gh.endpoint_id}
    # nothing anywhere still treats gh* as a workload interface
    for chain in fake.list_chains():
        assert not any('"gh*"' in r for r in rules(fake, chain.name)), chain.name
    ap.dataplane.on_message(config(None))  # unset: the default, gh
    ap.apply()
    assert ifaces_in_table(fake) == {"gh0000000000a"}
    assert set(ap.dataplane.refused_endpoints) == {tap.endpoint_id}


def test_unknown_workload_rules_follow_the_prefixes() -> None:
    """The fail-closed 'unknown workload interface' drop used to say gh* whatever
    the configuration: it must drop unknown interfaces of every configured prefix."""
    specs = {c.name: c for c in layout.base_chains(prefixes=("gh", "tap"))}
    for name in (layout.FWD_FROM_WL, layout.IN_FROM_WL):
        assert any(r.body == 'iifname { "gh*", "tap*" } counter drop'
                   for r in specs[name].rules), name
    assert any(r.body == 'oifname { "gh*", "tap*" } counter drop'
               for r in specs[layout.FWD_TO_WL].rules)


def test_bad_prefix_in_a_config_message_keeps_the_default(caplog: pytest.LogCaptureFixture,
                                                          ) -> None:
    with caplog.at_level(logging.ERROR):
        cfg = DataplaneConfig.from_message(
            m.ConfigUpdate(interface_prefixes=('gh"; flush ruleset; "',)))
    assert cfg.prefixes == ("gh",)
    assert "interfacePrefix" in caplog.text
    with pytest.raises(ValueError, match="prefix"):
        layout.workload_match(('gh"',))


# ------------------------------------------------------------ anti-spoofing placement


def test_anti_spoofing_runs_before_conntrack_accepts_anything() -> None:
    """Every base chain that accepts ``ct state established`` comes after raw-wl:
    raw-wl hooks prerouting (before input and forward) below conntrack's -200."""
    specs = {c.name: c for c in layout.base_chains(log_drops=False)}
    raw = specs[layout.RAW_WL]
    assert raw.chain.hook == "prerouting" and int(raw.chain.priority or 0) < -200
    bodies = [r.body for r in raw.rules]
    assert "meta nfproto ipv4 iifname . ip saddr != @wl-src4 counter drop" in bodies
    assert "meta nfproto ipv6 iifname . ip6 saddr != @wl-src6 counter drop" in bodies
    assert not any("ct state" in b for b in bodies)
    for spec in specs.values():
        if any(r.body == layout.ESTABLISHED for r in spec.rules):
            hook, prio = spec.chain.hook, int(spec.chain.priority or 0)
            assert hook in ("input", "forward", "output") or prio > -200, spec.name


def test_logged_drops_cost_one_lookup_per_packet() -> None:
    rules_, chains = layout.anti_spoof_rules('"gh*"', log_drops=True)
    lookups = [r.body for r in rules_ if "@wl-src4" in r.body]
    assert lookups == ["meta nfproto ipv4 iifname . ip saddr != @wl-src4 goto drop-anti-spoof"]
    drop = {c.name: c for c in chains}["drop-anti-spoof"]
    assert [r.comment for r in drop.rules] == [None, "anti-spoof"]


def test_link_local_sources_only_towards_link_scope() -> None:
    rules_, _ = layout.anti_spoof_rules('"gh*"', log_drops=False)
    ll = [r.body for r in rules_ if "fe80::/10" in r.body]
    assert ll == ["meta nfproto ipv6 ip6 saddr { ::, fe80::/10 } "
                  "ip6 daddr { fe80::/10, ff02::/16 } return"]


# ------------------------------------------------------------ reverse path


def test_rp_filter_modes_and_ipv6_reverse_path_set() -> None:
    a = ep("a", "gh0000000000a", ip6="2001:db8::1")
    b = ep("b", "gh0000000000b", "198.18.0.2", spoof=("198.19.0.0/24",))
    c = ep("c", "gh0000000000c", "198.18.0.3", spoof=("2001:db8:9::/64",))
    ap, fake = setup(a, b, c)
    assert dict(ap.dataplane.rp_filter) == {
        "gh0000000000a": "strict", "gh0000000000b": "off", "gh0000000000c": "strict"}
    assert {e.key[0] for e in fake.list_elements(layout.RPF_V6)} == {
        "gh0000000000a", "gh0000000000b"}
    ap.dataplane.on_message(WorkloadEndpointRemove(a.endpoint_id))
    ap.apply()
    assert "gh0000000000a" not in ap.dataplane.rp_filter
    assert {e.key[0] for e in fake.list_elements(layout.RPF_V6)} == {"gh0000000000b"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fake_proc(tmp_path: Path, *ifaces: str, all_value: str = "0") -> Path:
    """/proc/sys as a new interface has it: no forwarding, no proxy ARP, rp_filter 0."""
    for name in ("all", "default", *ifaces):
        d = tmp_path / "net/ipv4/conf" / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "rp_filter").write_text(all_value + "\n" if name == "all" else "0\n")
        (d / "forwarding").write_text("0\n")
        (d / "proxy_arp").write_text("0\n")
        n = tmp_path / "net/ipv4/neigh" / name
        n.mkdir(parents=True, exist_ok=True)
        (n / "proxy_delay").write_text("80\n")
    return tmp_path


def routing(ifname: str) -> dict[str, str]:
    """What the sync writes first on a new interface besides rp_filter."""
    return {f"net/ipv4/conf/{ifname}/forwarding": "1",
            f"net/ipv4/conf/{ifname}/proxy_arp": "1",
            f"net/ipv4/neigh/{ifname}/proxy_delay": "0"}


def value(root: Path, ifname: str) -> str:
    return (root / "net/ipv4/conf" / ifname / "rp_filter").read_text().strip()


def test_rp_filter_sync_writes_retries_and_restores(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, "gha", "ghb")
    clock = Clock()
    sync = WorkloadSysctlSync(Sysctl(root), retry_after=1.0, clock=clock)
    desired = {"gha": "strict", "ghb": "off", "ghc": "strict"}
    assert sync.sync(desired, full=True) == {"net/ipv4/conf/gha/rp_filter": "1",
                                             **routing("gha"), **routing("ghb")}
    assert value(root, "gha") == "1" and value(root, "ghb") == "0"
    assert (root / "net/ipv4/conf/ghb/proxy_arp").read_text().strip() == "1"
    assert "ghc" in sync.problems  # its veth does not exist (yet)
    assert not sync.waiting()  # looked a moment ago
    fake_proc(tmp_path, "ghc")
    assert sync.sync(desired, changed=set()) == {}  # too soon to retry
    clock.now += 1.5
    assert sync.waiting()  # the agent applies although nothing changed
    assert sync.sync(desired, changed=set()) == {"net/ipv4/conf/ghc/rp_filter": "1",
                                                 **routing("ghc")}
    assert dict(sync.problems) == {}
    assert not sync.waiting()
    # incremental: an unchanged interface is not even read
    (root / "net/ipv4/conf/gha/rp_filter").write_text("0\n")
    assert sync.sync(desired, changed={"ghb"}) == {}
    # a full sync (restart, resync) reads everything back
    assert sync.sync(desired, full=True) == {"net/ipv4/conf/gha/rp_filter": "1"}
    # gone from the desired state: forgotten, the kernel value left alone
    assert sync.sync({"ghb": "off"}, changed={"gha", "ghc"}) == {}
    assert value(root, "gha") == "1"


def test_rp_filter_sync_reports_loose_all(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, "gha", all_value="2")
    sync = WorkloadSysctlSync(Sysctl(root))
    sync.sync({"gha": "strict"}, full=True)
    assert "loose" in sync.problems["all"]
    (root / "net/ipv4/conf/all/rp_filter").write_text("1\n")
    sync.sync({"gha": "strict"}, full=True)
    assert "all" not in sync.problems


def test_applier_syncs_rp_filter_after_each_apply(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, "gh0000000000a", "gh0000000000b")
    fake = FakeNFT(strict=True)
    ap = Applier(fake, PolicyDataplane(), rp_filter=WorkloadSysctlSync(Sysctl(root)))
    ap.dataplane.on_messages([ep("a", "gh0000000000a"), InSync()])
    assert value(root, "gh0000000000a") == "0"  # nothing before the first apply
    ap.apply()
    assert value(root, "gh0000000000a") == "1"
    ap.dataplane.on_message(ep("b", "gh0000000000b", "198.18.0.2"))
    ap.apply()
    assert value(root, "gh0000000000b") == "1"
    assert dict(ap.interface_problems) == {}
