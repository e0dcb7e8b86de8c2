"""The policy dataplane in the real kernel: real nft, real packets decide.

Topology (built once for the module, torn down even on failure): one host
namespace H (forwarding on, 192.0.2.1 on its loopback) and four
workload namespaces behind ``gh*`` veths, addressed like gingham's plumbing
(/32 inside, default route via 169.254.1.1; static neighbours so no test
depends on proxy ARP). Workload 4's interface is never given to the
dataplane: it is the "unknown gh* interface". Each test programs its own
messages and deletes the table afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gingham.calc import messages as m
from gingham.calc.messages import (
    InSync,
    IPSetDeltaUpdate,
    IPSetUpdate,
    ParsedRule,
    PolicyID,
    PolicyUpdate,
    ProfileUpdate,
    TierInfo,
    WorkloadEndpointID,
    WorkloadEndpointUpdate,
)
from gingham.dataplane.apply import Applier, rule_counters
from gingham.dataplane.managers import PolicyDataplane
from gingham.dataplane.nft import NFT
from gingham.errors import DataplaneError
from gingham.lab.netns import add_netns, delete_netns, run, spawn_in_netns, stop_process
from tests.fixtures.netns import test_prefix
from tests.unit.dataplane.test_policy_golden import GOLDEN
from tests.unit.dataplane.test_policy_scenarios import SCENARIOS

pytestmark = pytest.mark.integration

HOST_ADDR = "192.0.2.1"
PORTS = (80, 8080)

SERVER = textwrap.dedent("""
    import socket, sys, threading
    def echo(c):
        with c:
            while (d := c.recv(4096)):
                c.sendall(d)
    def serve(s):
        while True:
            c, _ = s.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()
    for p in sys.argv[1:]:
        s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 and IPv6
        s.bind(("::", int(p))); s.listen(64)  # listening before "ready"
        threading.Thread(target=serve, args=(s,), daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()
""")

PROBE = textwrap.dedent("""
    import json, socket, sys
    from concurrent.futures import ThreadPoolExecutor
    def probe(job):
        dst, port, src = job
        s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET); s.settimeout(0.5)
        try:
            if src: s.bind((src, 0))
            s.connect((dst, port)); s.sendall(b"x"); return s.recv(1) == b"x"
        except OSError:
            return False
        finally:
            s.close()
    jobs = json.loads(sys.argv[1])
    with ThreadPoolExecutor(len(jobs) or 1) as ex:
        print(json.dumps(list(ex.map(probe, jobs))))
""")


@dataclass
class Workload:
    ns: str
    ifname: str
    ip: str
    ip6: str
    wid: WorkloadEndpointID


@dataclass
class Topology:
    host: str
    wl: list[Workload]
    servers: list[subprocess.Popen[bytes]]
    compile_min: int | None = None
    """Tiers compiled from this many policies (gingham.dataplane.compiled); None: never."""

    def nft(self) -> NFT:
        return NFT(netns=self.host)


def _wait_ready(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == b"ready", f"server did not start: {line!r}"


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    prefix = f"{test_prefix()}pol"
    made: list[str] = []
    servers: list[subprocess.Popen[bytes]] = []
    try:
        host = add_netns(f"{prefix}-h")
        made.append(host)
        run(["ip", "-n", host, "addr", "add", f"{HOST_ADDR}/32", "dev", "lo"])
        run(["nsenter", f"--net=/run/netns/{host}", "sysctl", "-q", "-w",
             "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
             "net.ipv4.conf.default.rp_filter=0", "net.ipv6.conf.all.forwarding=1"])
        wls = []
        for i in range(1, 5):
            ns = add_netns(f"{prefix}-w{i}")
            made.append(ns)
            ifname, ip, mac = f"gh{i:011d}", f"198.18.0.{i}", f"02:00:00:00:00:{i:02x}"
            ip6 = f"2001:db8::{i}"
            run(["ip", "-n", host, "link", "add", ifname, "address", "ee:ee:ee:ee:ee:ee", "type",
                 "veth", "peer", "name", "eth0", "address", mac, "netns", ns])
            for cmd in (["link", "set", ifname, "up"],
                        ["route", "add", f"{ip}/32", "dev", ifname],
                        ["neigh", "replace", ip, "lladdr", mac, "dev", ifname, "nud", "permanent"],
                        ["-6", "route", "add", f"{ip6}/128", "dev", ifname],
                        ["-6", "neigh", "replace", ip6, "lladdr", mac, "dev", ifname, "nud",
                         "permanent"]):
                run(["ip", "-n", host, *cmd])
            for cmd in (["addr", "add", f"{ip}/32", "dev", "eth0"],
                        ["link", "set", "eth0", "up"],
                        ["route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"],
                        ["route", "add", "default", "via", "169.254.1.1", "dev", "eth0"],
                        ["neigh", "replace", "169.254.1.1", "lladdr", "ee:ee:ee:ee:ee:ee",
                         "dev", "eth0", "nud", "permanent"],
                        ["-6", "addr", "add", f"{ip6}/128", "dev", "eth0", "nodad"],
                        ["-6", "neigh", "replace", "fe80::1", "lladdr", "ee:ee:ee:ee:ee:ee",
                         "dev", "eth0", "nud", "permanent"],
                        ["-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0"]):
                run(["ip", "-n", ns, *cmd])
            wls.append(Workload(ns, ifname, ip, ip6, WorkloadEndpointID("ns1", f"w{i}")))
        for ns in [host, *(w.ns for w in wls)]:
            proc = spawn_in_netns(ns, [sys.executable, "-c", SERVER, *map(str, PORTS)],
                                  stdout=subprocess.PIPE)
            servers.append(proc)
            _wait_ready(proc)
        yield Topology(host, wls, servers)
    finally:
        for proc in servers:
            stop_process(proc)
        for ns in reversed(made):
            delete_netns(ns)


@pytest.fixture(params=["chains", "compiled"])
def t(topo: Topology, request: pytest.FixtureRequest) -> Iterator[Topology]:
    """Each packet test twice: policies as chains, and every tier compiled into lookups
    (the same verdicts and counters either way)."""
    topo.compile_min = 1 if request.param == "compiled" else None
    NFT(netns=topo.host).delete_table()
    run(["ip", "-n", topo.host, "route", "del", "198.18.0.50/32"], check=False)
    try:
        yield topo
    finally:
        NFT(netns=topo.host).delete_table()
        run(["ip", "-n", topo.host, "route", "del", "198.18.0.50/32"], check=False)
        run(["ip", "-n", topo.wl[0].ns, "addr", "del", "198.18.0.50/32", "dev", "eth0"], check=False)
        run(["ip", "-n", topo.host, "-6", "route", "del", "2001:db8::55/128"], check=False)
        run(["ip", "-n", topo.wl[0].ns, "-6", "addr", "del", "2001:db8::55/128", "dev", "eth0"],
            check=False)


def probe(src: Workload | str, jobs: list[tuple[str, int, str | None]]) -> list[bool]:
    ns = src.ns if isinstance(src, Workload) else src
    out = run(["nsenter", f"--net=/run/netns/{ns}", sys.executable, "-c", PROBE, json.dumps(jobs)])
    return list(json.loads(out.stdout))


def can(src: Workload, dst: Workload | str, port: int = 80, src_ip: str | None = None) -> bool:
    ip = dst.ip if isinstance(dst, Workload) else dst
    return probe(src, [(ip, port, src_ip)])[0]


PROFILE = "kns.ns1"
ALLOW_ALL_PROFILE = ProfileUpdate(PROFILE, (ParsedRule("profile:kns.ns1:i0", "allow"),),
                                  (ParsedRule("profile:kns.ns1:e0", "allow"),))


def endpoint(w: Workload, tiers: tuple[TierInfo, ...] = (), profiles: tuple[str, ...] = (PROFILE,),
             spoof: tuple[str, ...] = ()) -> WorkloadEndpointUpdate:
    return WorkloadEndpointUpdate(w.wid, w.ifname, (f"{w.ip}/32",), (f"{w.ip6}/128",), None,
                                  tiers, profiles, allow_spoofed_prefixes=spoof)


def program(t: Topology, msgs: list[m.Message], eps: dict[int, WorkloadEndpointUpdate] | None = None,
            ) -> Applier:
    """Workloads 1-3 known (profile allow-all unless overridden in ``eps``); 4 unknown."""
    ap = Applier(t.nft(), PolicyDataplane())
    ap.dataplane.endpoints.compile_min_policies = t.compile_min
    eps = eps or {}
    ap.dataplane.on_messages([ALLOW_ALL_PROFILE, *msgs])
    ap.dataplane.on_messages([eps.get(i, endpoint(t.wl[i])) for i in range(3)])
    ap.dataplane.on_message(InSync())
    ap.apply()
    return ap


def counter(t: Topology, comment: str) -> int:
    return sum(c.packets for c in t.nft().counters() if c.comment == comment)


# ---------------------------------------------------------------- tests


def test_no_policy_profile_allows(t: Topology) -> None:
    w1, w2, w3, _ = t.wl
    program(t, [])
    assert probe(w1, [(w2.ip, 80, None), (w3.ip, 8080, None)]) == [True, True]


def test_default_deny_then_allow_by_ipset_and_port(t: Topology) -> None:
    w1, w2, w3, _ = t.wl
    pid = PolicyID("default", "allow-front", "ns1")
    pol = PolicyUpdate(pid, (ParsedRule(f"policy:{pid}:i0", "allow", protocol=6,
                                        src_set_ids=("s:front",), dst_ports=((80, 80),)),), ())
    tiers = (TierInfo("default", "deny", (pid,), ()),)
    ap = program(t, [IPSetUpdate("s:front", "net", frozenset({f"{w1.ip}/32"})), pol],
                 {1: endpoint(w2, tiers)})
    assert probe(w1, [(w2.ip, 80, None), (w2.ip, 8080, None)]) == [True, False]
    assert not can(w3, w2, 80)
    assert counter(t, "tier-end:default") >= 1
    assert counter(t, f"policy:{pid}:i0") >= 1
    # a label change elsewhere moves w3 into the set: only the set changes
    ap.dataplane.on_message(IPSetDeltaUpdate("s:front", frozenset({f"{w3.ip}/32"}), frozenset()))
    res = ap.apply()
    assert res is not None and res.commands == 1 and res.via == "netlink"
    assert can(w3, w2, 80)


def test_named_port(t: Topology) -> None:
    w1, w2, w3, _ = t.wl
    pid = PolicyID("default", "named-http", "ns1")
    pol = PolicyUpdate(pid, (ParsedRule(f"policy:{pid}:i0", "allow", protocol=6,
                                        dst_named_port_set_ids=("n:http",)),), ())
    # "http" is port 8080 on w2 (and 80 on w3, which this policy does not select)
    ap = program(t, [IPSetUpdate("n:http", "net-port", frozenset({f"{w2.ip},tcp:8080",
                                                                  f"{w2.ip6},tcp:8080",
                                                                  f"{w3.ip},tcp:80"})), pol],
                 {1: endpoint(w2, (TierInfo("default", "deny", (pid,), ()),))})
    assert probe(w1, [(w2.ip, 8080, None), (w2.ip, 80, None), (w2.ip6, 8080, None)]) == [
        True, False, True]
    # the pod's named port moves to 80: one element out, one in (netlink)
    ap.dataplane.on_message(IPSetDeltaUpdate("n:http", frozenset({f"{w2.ip},tcp:80"}),
                                             frozenset({f"{w2.ip},tcp:8080"})))
    res = ap.apply()
    assert res is not None and res.via == "netlink"
    assert probe(w1, [(w2.ip, 8080, None), (w2.ip, 80, None)]) == [False, True]


def test_egress_deny(t: Topology) -> None:
    w1, w2, w3, _ = t.wl
    pid = PolicyID("default", "no-w2", "ns1")
    pol = PolicyUpdate(pid, (), (
        ParsedRule(f"policy:{pid}:e0", "deny", dst_nets=(f"{w2.ip}/32",)),
        ParsedRule(f"policy:{pid}:e1", "allow"),
    ))
    program(t, [pol], {0: endpoint(w1, (TierInfo("default", "deny", (), (pid,)),))})
    assert probe(w1, [(w2.ip, 80, None), (w3.ip, 80, None)]) == [False, True]
    assert can(w2, w1, 80)  # ingress of w1 has no policy: profile allows


def test_pass_to_next_tier_and_tier_default(t: Topology) -> None:
    w1, w2, w3, _ = t.wl
    sec = PolicyID("security", "gate")
    app = PolicyID("default", "web", "ns1")
    gate = PolicyUpdate(sec, (
        ParsedRule(f"policy:{sec}:i0", "pass", src_nets=(f"{w1.ip}/32",)),
        ParsedRule(f"policy:{sec}:i1", "log", protocol=6),
    ), ())
    web = PolicyUpdate(app, (ParsedRule(f"policy:{app}:i0", "allow", protocol=6,
                                        dst_ports=((80, 80),)),), ())
    tiers = (TierInfo("security", "deny", (sec,), ()), TierInfo("default", "deny", (app,), ()))
    program(t, [gate, web], {1: endpoint(w2, tiers)})
    # w1 is passed on to the default tier, which allows port 80 only
    assert probe(w1, [(w2.ip, 80, None), (w2.ip, 8080, None)]) == [True, False]
    # w3 is not passed: the security tier's default action denies it
    assert not can(w3, w2, 80)
    assert counter(t, "tier-end:security") >= 1
    assert counter(t, f"policy:{sec}:i1") >= 1  # logged, then continued


def test_tier_with_pass_default_falls_through_to_profile(t: Topology) -> None:
    w1, w2, _, _ = t.wl
    pid = PolicyID("security", "nothing-matches")
    pol = PolicyUpdate(pid, (ParsedRule(f"policy:{pid}:i0", "deny", protocol=17),), ())
    program(t, [pol], {1: endpoint(w2, (TierInfo("security", "pass", (pid,), ()),))})
    assert can(w1, w2, 8080)  # tier passes, no later tier: the profile allows


def test_missing_profile_fails_closed(t: Topology) -> None:
    w1, w2, _, _ = t.wl
    ep = WorkloadEndpointUpdate(w2.wid, w2.ifname, (f"{w2.ip}/32",), (), None, (), (),
                                missing_profiles=("kns.gone",))
    program(t, [], {1: ep})
    assert not can(w1, w2, 80)


def test_ipv6_sets_policy_and_anti_spoofing(t: Topology) -> None:
    w1, w2, w3, _ = t.wl
    pid = PolicyID("default", "allow-front-v6", "ns1")
    pol = PolicyUpdate(pid, (ParsedRule(f"policy:{pid}:i0", "allow", protocol=6,
                                        src_set_ids=("s:front",), dst_ports=((80, 80),)),), ())
    ap = program(t, [IPSetUpdate("s:front", "net", frozenset({f"{w1.ip6}/128", f"{w1.ip}/32"})), pol],
                 {1: endpoint(w2, (TierInfo("default", "deny", (pid,), ()),))})
    assert probe(w1, [(w2.ip6, 80, None), (w2.ip6, 8080, None), (w3.ip6, 8080, None)]) == [
        True, False, True]
    assert not can(w3, w2.ip6, 80)
    forged = "2001:db8::55"  # inside the allowed range, not its first address
    run(["ip", "-n", w1.ns, "-6", "addr", "add", f"{forged}/128", "dev", "eth0", "nodad"])
    run(["ip", "-n", t.host, "-6", "route", "add", f"{forged}/128", "dev", w1.ifname])
    assert not can(w1, w3.ip6, 80, src_ip=forged)
    ap.dataplane.on_message(endpoint(w1, spoof=("2001:db8::50/124",)))
    res = ap.apply()
    assert res is not None and res.via == "netlink"
    assert can(w1, w3.ip6, 80, src_ip=forged)


def test_unknown_workload_interface_is_dropped(t: Topology) -> None:
    w1, w2, _, w4 = t.wl
    ap = program(t, [])
    spoof_before = counter(t, "anti-spoof")
    assert not can(w4, w1, 80)
    assert not can(w1, w4, 80)
    # from w4: no address of it is known, so anti-spoofing drops it before conntrack;
    # towards w4: the unknown-workload rule
    assert counter(t, "anti-spoof") - spoof_before >= 1
    assert counter(t, "unknown-workload") >= 1
    # once known (same policies as the others: elements only, over netlink) it talks
    ap.dataplane.on_message(endpoint(w4))
    res = ap.apply()
    assert res is not None and res.via == "netlink" and res.commands == 5
    assert can(w4, w1, 80) and can(w1, w4, 80)
    # and gone again (its shared chains stay for the others): elements only
    ap.dataplane.on_message(m.WorkloadEndpointRemove(w4.wid))
    res = ap.apply()
    assert res is not None and res.via == "netlink" and res.commands == 5
    assert not can(w4, w1, 80)
    assert can(w2, w1, 80)


def test_anti_spoofing(t: Topology) -> None:
    w1, w2, _, _ = t.wl
    forged = "198.18.0.50"
    run(["ip", "-n", w1.ns, "addr", "add", f"{forged}/32", "dev", "eth0"])
    # the host routes the forged address back to w1, so only nft can stop it
    run(["ip", "-n", t.host, "route", "add", f"{forged}/32", "dev", w1.ifname])
    ap = program(t, [])
    assert can(w1, w2, 80)
    assert not can(w1, w2, 80, src_ip=forged)
    assert counter(t, "anti-spoof") >= 1
    ap.dataplane.on_message(endpoint(w1, spoof=(f"{forged}/32",)))
    res = ap.apply()
    assert res is not None and res.via == "netlink"  # an anti-spoofing element only
    assert can(w1, w2, 80, src_ip=forged)


def test_conntrack_replies_pass_and_survive_policy_change(t: Topology, tmp_path: Path) -> None:
    w1, w2, _, _ = t.wl
    pid = PolicyID("default", "ingress-only-80", "ns1")
    pol = PolicyUpdate(pid, (ParsedRule(f"policy:{pid}:i0", "allow", protocol=6,
                                        dst_ports=((80, 80),)),), ())
    iso = PolicyID("default", "isolate", "ns1")
    ap = program(t, [pol, PolicyUpdate(iso, (), ())], {
        0: endpoint(w1, (TierInfo("default", "deny", (iso,), ()),)),  # nothing may reach w1
        1: endpoint(w2, (TierInfo("default", "deny", (pid,), ()),)),
    })
    assert can(w1, w2, 80)       # the SYN-ACK back to w1 is a reply: passes
    assert not can(w2, w1, 80)   # a new connection to w1 does not
    # An established connection keeps working while a restarted agent resyncs
    # and while policy changes under it. The client exchanges a byte each
    # time the test creates a trigger file.
    client = spawn_in_netns(w1.ns, [sys.executable, "-c", textwrap.dedent(f"""
        import os, socket, time
        s = socket.create_connection(("{w2.ip}", 80), timeout=2)
        print("up", flush=True)
        for i in range(2):
            while not os.path.exists("{tmp_path}/go%d" % i):
                time.sleep(0.02)
            s.sendall(b"y")
            try:
                print("ok" if s.recv(1) == b"y" else "bad", flush=True)
            except OSError:
                print("timeout", flush=True)
    """)], stdout=subprocess.PIPE)
    try:
        assert client.stdout is not None
        assert client.stdout.readline().strip() == b"up"
        restarted = Applier(t.nft(), ap.dataplane)  # a fresh process: resync from the kernel
        res = restarted.apply()
        assert res is not None and res.resync and res.commands == 0
        (tmp_path / "go0").touch()
        assert client.stdout.readline().strip() == b"ok"
        ap.dataplane.on_message(PolicyUpdate(pid, (), ()))  # port 80 no longer allowed
        restarted.apply()
        assert not can(w1, w2, 80)  # new connections: denied
        (tmp_path / "go1").touch()
        assert client.stdout.readline().strip() == b"ok"  # the established one: still fine
    finally:
        stop_process(client)


def test_endpoint_to_host_action(t: Topology) -> None:
    w1, _, _, _ = t.wl
    ap = program(t, [])
    assert not can(w1, HOST_ADDR, 80)  # default Drop
    assert counter(t, "endpoint-to-host") >= 1
    ap.dataplane.on_message(m.ConfigUpdate(endpoint_to_host_action="Accept"))
    ap.apply()
    assert can(w1, HOST_ADDR, 80)
    # the workload's egress policy still applies before the host action
    pid = PolicyID("default", "no-host", "ns1")
    ap.dataplane.on_messages([
        PolicyUpdate(pid, (), (ParsedRule(f"policy:{pid}:e0", "deny", dst_nets=(f"{HOST_ADDR}/32",)),
                               ParsedRule(f"policy:{pid}:e1", "allow"))),
        endpoint(w1, (TierInfo("default", "deny", (), (pid,)),)),
    ])
    ap.apply()
    assert not can(w1, HOST_ADDR, 80)


def test_ping_icmp_type_rule(t: Topology) -> None:
    w1, w2, _, _ = t.wl
    pid = PolicyID("default", "ping-only", "ns1")
    pol = PolicyUpdate(pid, (ParsedRule(f"policy:{pid}:i0", "allow", protocol=1, icmp_type=8),), ())
    program(t, [pol], {1: endpoint(w2, (TierInfo("default", "deny", (pid,), ()),))})
    ping = run(["nsenter", f"--net=/run/netns/{w1.ns}", "busybox", "ping", "-c", "1", "-W", "1", w2.ip],
               check=False)
    assert ping.returncode == 0
    assert not can(w1, w2, 80)


# ---------------------------------------------------------------- golden scripts and resync


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden_script_loads_and_resyncs_to_nothing(name: str, netns: Callable[[str], str]) -> None:
    """The golden script is accepted by the kernel, and reading the table back
    (real ``nft -j`` listing) finds it identical to the desired state."""
    ns = netns("gold")
    script = (GOLDEN / f"{name}.nft").read_text()
    run(["nsenter", f"--net=/run/netns/{ns}", "nft", "-f", "-"], input=script)
    dp = PolicyDataplane()
    dp.on_messages(SCENARIOS[name]())
    ap = Applier(NFT(netns=ns), dp)
    res = ap.apply()
    assert res is not None and res.resync
    assert ap.last_tx is not None and ap.last_tx.render() == ""
    # and incremental changes after the resync are accepted by the kernel
    dp.on_messages([IPSetUpdate("s:front", "net", frozenset({"198.18.0.0/30", "198.18.0.9/32"})),
                    m.WorkloadEndpointRemove(WorkloadEndpointID("ns1", "a"))])
    ap.apply()
    again = Applier(NFT(netns=ns), dp).apply()
    assert again is not None and again.commands == 0


def test_stale_objects_removed_on_restart(netns: Callable[[str], str]) -> None:
    ns = netns("stale")
    old = PolicyDataplane()
    old.on_messages(SCENARIOS["tiers_and_profiles"]())
    Applier(NFT(netns=ns), old).apply()
    new = PolicyDataplane()
    new.on_messages([*SCENARIOS["every_field"]()])  # a different world after the restart
    ap = Applier(NFT(netns=ns), new)
    ap.apply()
    assert ap.last_tx is not None
    assert "delete table" not in ap.last_tx.render() and "flush table" not in ap.last_tx.render()
    fresh = netns("fresh")
    Applier(NFT(netns=fresh), new).apply()
    assert _listing(ns) == _listing(fresh)


def _listing(ns: str) -> dict[str, object]:
    d = NFT(netns=ns)
    return {
        "chains": {c.name: [r.rule for r in d.list_rules(c.name)] for c in d.list_chains()},
        "sets": {s.name: sorted(e.key for e in d.list_elements(s.name)) for s in d.list_sets()},
    }


# ---------------------------------------------------------------- netlink element fast path


def test_element_deltas_over_netlink_match_nft(netns: Callable[[str], str]) -> None:
    """Element-only batches bypass nft: what the kernel then lists must be what
    nft itself would have written (resync finds nothing to change)."""
    ns = netns("nl")
    dp = PolicyDataplane()
    dp.on_messages([
        IPSetUpdate("s:a", "net", frozenset({"198.18.0.1/32", "2001:db8::1/128"})),
        IPSetUpdate("n:p", "net-port", frozenset({"198.18.0.1,tcp:80", "2001:db8::1,udp:53"})),
        PolicyUpdate(PolicyID("default", "p"), (
            ParsedRule("r0", "allow", src_set_ids=("s:a",)),
            ParsedRule("r1", "allow", protocol=6, dst_named_port_set_ids=("n:p",)),
        ), ()),
        InSync(),
    ])
    ap = Applier(NFT(netns=ns), dp)
    ap.apply()
    steps = [
        IPSetDeltaUpdate("s:a", frozenset({"198.18.0.2/32", "198.18.0.3/32", "2001:db8::2/128"}),
                         frozenset({"198.18.0.1/32"})),
        IPSetDeltaUpdate("n:p", frozenset({"198.18.0.2,tcp:8080", "2001:db8::2,sctp:9"}),
                         frozenset({"198.18.0.1,tcp:80"})),
        IPSetDeltaUpdate("s:a", frozenset({"198.18.4.0/24", "2001:db8:5::/64"}), frozenset()),
        IPSetDeltaUpdate("s:a", frozenset({"198.18.0.1/32"}), frozenset({"198.18.0.3/32", "2001:db8::2/128"})),
    ]
    for msg in steps:
        dp.on_message(msg)
        res = ap.apply()
        assert res is not None and not res.resync and res.via == "netlink"
    via_netlink = _listing(ns)
    assert [k for k in via_netlink["sets"]["s4-s_a"]] == [  # type: ignore[index]
        ("198.18.0.1",), ("198.18.0.2",), ("198.18.4.0/24",)]
    check = Applier(NFT(netns=ns), dp, fast_elements=False).apply()
    assert check is not None and check.commands == 0
    fresh = netns("nlfresh")
    Applier(NFT(netns=fresh), dp, fast_elements=False).apply()
    assert via_netlink == _listing(fresh)
    ap.close()


def test_refused_netlink_batch_is_atomic_and_forces_resync(netns: Callable[[str], str]) -> None:
    ns = netns("nlerr")
    dp = PolicyDataplane()
    dp.on_messages([IPSetUpdate("s:a", "net", frozenset({"198.18.0.1/32"})),
                    PolicyUpdate(PolicyID("default", "p"),
                                 (ParsedRule("r0", "allow", src_set_ids=("s:a",)),), ()),
                    InSync()])
    ap = Applier(NFT(netns=ns), dp)
    ap.apply()
    # someone else removed the element: our delete of it is refused by the kernel
    run(["nsenter", f"--net=/run/netns/{ns}", "nft", "delete", "element", "inet", "gingham",
         "s4-s_a", "{ 198.18.0.1 }"])
    dp.on_message(IPSetDeltaUpdate("s:a", frozenset({"198.18.0.7/32"}), frozenset({"198.18.0.1/32"})))
    with pytest.raises(DataplaneError):
        ap.apply()
    assert _listing(ns)["sets"]["s4-s_a"] == []  # type: ignore[index]  # nothing half-applied
    res = ap.apply()  # the next apply reads the kernel back and repairs
    assert res is not None and res.resync
    assert _listing(ns)["sets"]["s4-s_a"] == [("198.18.0.7",)]  # type: ignore[index]
    ap.close()


# ---------------------------------------------------------------- host endpoints


def test_host_endpoint_policy_and_failsafe_ports(netns: Callable[[str], str]) -> None:
    host, outside = netns("hep"), netns("out")
    run(["ip", "-n", host, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0",
         "netns", outside])
    for ns, dev, addr in ((host, "eth1", "192.0.2.10/24"), (outside, "eth0", "192.0.2.100/24")):
        run(["ip", "-n", ns, "addr", "add", addr, "dev", dev])
        run(["ip", "-n", ns, "link", "set", dev, "up"])
    server = spawn_in_netns(host, [sys.executable, "-c", SERVER, *map(str, PORTS)],
                            stdout=subprocess.PIPE)
    try:
        _wait_ready(server)
        pid = PolicyID("security", "host-https-only")
        dp = PolicyDataplane()
        dp.on_messages([
            PolicyUpdate(pid, (ParsedRule(f"policy:{pid}:i0", "allow", protocol=6,
                                          dst_ports=((443, 443),)),),
                         (ParsedRule(f"policy:{pid}:e0", "allow"),)),
            m.HostEndpointUpdate("h-eth1", "eth1", ("192.0.2.10",), (),
                                 (TierInfo("security", "deny", (pid,), (pid,)),), (), (), (), ()),
            InSync(),
        ])
        ap = Applier(NFT(netns=host), dp)
        ap.apply()
        assert probe(outside, [("192.0.2.10", 80, None), ("192.0.2.10", 8080, None)]) == [False, False]
        assert rule_counters(NFT(netns=host)).get("tier-end:security", (0, 0))[0] >= 1
        dp.on_message(m.ConfigUpdate(failsafe_inbound=(m.FailsafePort("tcp", 8080),)))
        ap.apply()
        assert probe(outside, [("192.0.2.10", 80, None), ("192.0.2.10", 8080, None)]) == [False, True]
        dp.on_message(m.HostEndpointRemove("h-eth1"))
        ap.apply()
        assert probe(outside, [("192.0.2.10", 80, None)]) == [True]
        ap.close()
    finally:
        stop_process(server)


@dataclass
class HepLab:
    host: str
    outside: str
    wl_ip: str
    ap: Applier


@pytest.fixture
def hep(netns: Callable[[str], str]) -> Iterator[HepLab]:
    """outside (192.0.2.100) -- eth1 [host 192.0.2.10, forwarding] gh veth -- workload 198.18.0.9."""
    host, outside, wl = netns("heph"), netns("hepo"), netns("hepw")
    run(["ip", "-n", host, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0",
         "netns", outside])
    run(["ip", "-n", host, "link", "add", "gh00000000009", "address", "ee:ee:ee:ee:ee:ee",
         "type", "veth", "peer", "name", "eth0", "address", "02:00:00:00:00:09", "netns", wl])
    for ns, cmds in (
        (host, [["addr", "add", "192.0.2.10/24", "dev", "eth1"], ["link", "set", "eth1", "up"],
                ["link", "set", "gh00000000009", "up"],
                ["route", "add", "198.18.0.9/32", "dev", "gh00000000009"],
                ["neigh", "replace", "198.18.0.9", "lladdr", "02:00:00:00:00:09", "dev",
                 "gh00000000009", "nud", "permanent"]]),
        (outside, [["addr", "add", "192.0.2.100/24", "dev", "eth0"], ["link", "set", "eth0", "up"],
                   ["route", "add", "198.18.0.0/16", "via", "192.0.2.10"]]),
        (wl, [["addr", "add", "198.18.0.9/32", "dev", "eth0"], ["link", "set", "eth0", "up"],
              ["route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"],
              ["route", "add", "default", "via", "169.254.1.1", "dev", "eth0"],
              ["neigh", "replace", "169.254.1.1", "lladdr", "ee:ee:ee:ee:ee:ee", "dev", "eth0",
               "nud", "permanent"]]),
    ):
        for cmd in cmds:
            run(["ip", "-n", ns, *cmd])
    run(["nsenter", f"--net=/run/netns/{host}", "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
    servers = [spawn_in_netns(ns, [sys.executable, "-c", SERVER, *map(str, PORTS)],
                              stdout=subprocess.PIPE) for ns in (host, wl)]
    try:
        for proc in servers:
            _wait_ready(proc)
        dp = PolicyDataplane()
        dp.on_messages([
            ALLOW_ALL_PROFILE,
            WorkloadEndpointUpdate(WorkloadEndpointID("ns1", "w9"), "gh00000000009",
                                   ("198.18.0.9/32",), (), None, (), (PROFILE,)),
        ])
        ap = Applier(NFT(netns=host), dp)
        yield HepLab(host, outside, "198.18.0.9", ap)
        ap.close()
    finally:
        for proc in servers:
            stop_process(proc)


ALLOW_ALL_HOST = PolicyID("security", "host-allow-all")
DENY_ALL_HOST = PolicyID("security", "host-deny-all")


def hep_msgs(**tiers: tuple[TierInfo, ...]) -> list[m.Message]:
    return [
        PolicyUpdate(ALLOW_ALL_HOST, (ParsedRule("aa:i0", "allow"),), (ParsedRule("aa:e0", "allow"),)),
        PolicyUpdate(DENY_ALL_HOST, (), ()),
        m.HostEndpointUpdate(
            "h-eth1", "eth1", ("192.0.2.10",), (),
            tiers.get("normal", (TierInfo("security", "deny", (ALLOW_ALL_HOST,), (ALLOW_ALL_HOST,)),)),
            tiers.get("untracked", ()), tiers.get("pre_dnat", ()), tiers.get("forward", ()), ()),
        InSync(),
    ]


def test_host_endpoint_apply_on_forward(hep: HepLab) -> None:
    fwd = PolicyID("security", "fwd-web")
    hep.ap.dataplane.on_messages([
        *hep_msgs(),
        PolicyUpdate(fwd, (ParsedRule(f"policy:{fwd}:i0", "allow", protocol=6, dst_ports=((80, 80),)),),
                     (), apply_on_forward=True),
    ])
    hep.ap.apply()
    assert probe(hep.outside, [(hep.wl_ip, 80, None), (hep.wl_ip, 8080, None)]) == [True, True]
    hep.ap.dataplane.on_messages(hep_msgs(forward=(TierInfo("security", "deny", (fwd,), ()),)))
    hep.ap.apply()
    # forwarded in by eth1: its applyOnForward ingress policy allows port 80 only
    assert probe(hep.outside, [(hep.wl_ip, 80, None), (hep.wl_ip, 8080, None)]) == [True, False]
    # traffic to the host itself is not forwarded: normal policy (allow all) applies
    assert probe(hep.outside, [("192.0.2.10", 8080, None)]) == [True]


def test_host_endpoint_pre_dnat(hep: HepLab) -> None:
    pre = PolicyID("security", "pre-no-8080")
    hep.ap.dataplane.on_messages([
        PolicyUpdate(pre, (ParsedRule(f"policy:{pre}:i0", "deny", protocol=6, dst_ports=((8080, 8080),)),),
                     (), pre_dnat=True, apply_on_forward=True),
        *hep_msgs(pre_dnat=(TierInfo("security", "deny", (pre,), ()),)),
    ])
    hep.ap.apply()
    # denied before DNAT whatever normal policy says (it allows all); undecided goes on
    assert probe(hep.outside, [("192.0.2.10", 80, None), ("192.0.2.10", 8080, None),
                               (hep.wl_ip, 80, None), (hep.wl_ip, 8080, None)]) == [
        True, False, True, False]
    assert rule_counters(NFT(netns=hep.host)).get(f"policy:{pre}:i0", (0, 0))[0] >= 2


def test_host_endpoint_do_not_track(hep: HepLab) -> None:
    raw = PolicyID("security", "untracked-web")
    deny = (TierInfo("security", "deny", (DENY_ALL_HOST,), (DENY_ALL_HOST,)),)
    hep.ap.dataplane.on_messages(hep_msgs(normal=deny))
    hep.ap.apply()
    assert probe(hep.outside, [("192.0.2.10", 80, None)]) == [False]  # normal policy denies
    hep.ap.dataplane.on_messages([
        PolicyUpdate(raw, (ParsedRule(f"policy:{raw}:i0", "allow", protocol=6, dst_ports=((80, 80),)),),
                     (ParsedRule(f"policy:{raw}:e0", "allow", protocol=6, src_ports=((80, 80),)),),
                     untracked=True),
        *hep_msgs(normal=deny, untracked=(TierInfo("security", "deny", (raw,), (raw,)),)),
    ])
    hep.ap.apply()
    # allowed untracked in both directions: never judged by the (denying) filter chains
    assert probe(hep.outside, [("192.0.2.10", 80, None), ("192.0.2.10", 8080, None)]) == [True, False]
    counts = rule_counters(NFT(netns=hep.host))
    assert counts.get(f"policy:{raw}:i0", (0, 0))[0] >= 1
    assert counts.get(f"policy:{raw}:e0", (0, 0))[0] >= 1


def test_all_interfaces_host_endpoint(hep: HepLab) -> None:
    web = PolicyID("security", "host-web-only")
    tiers = (TierInfo("security", "deny", (web,), (web,)),)
    star = m.HostEndpointUpdate("h-auto", "*", ("192.0.2.10",), (), tiers, (), (), (), ())
    hep.ap.dataplane.on_messages([
        PolicyUpdate(web, (ParsedRule(f"policy:{web}:i0", "allow", protocol=6, dst_ports=((80, 80),)),),
                     (ParsedRule(f"policy:{web}:e0", "allow"),)),
        PolicyUpdate(ALLOW_ALL_HOST, (ParsedRule("aa:i0", "allow"),), (ParsedRule("aa:e0", "allow"),)),
        star, InSync(),
    ])
    hep.ap.apply()
    to_host = [("192.0.2.10", 80, None), ("192.0.2.10", 8080, None)]
    assert probe(hep.outside, to_host) == [True, False]
    assert probe(hep.host, [("127.0.0.1", 8080, None)]) == [True]  # loopback is not covered
    # an endpoint of its own for eth1 takes precedence over the catch-all
    own = m.HostEndpointUpdate("h-eth1", "eth1", ("192.0.2.10",), (),
                               (TierInfo("security", "deny", (ALLOW_ALL_HOST,), (ALLOW_ALL_HOST,)),),
                               (), (), (), ())
    hep.ap.dataplane.on_message(own)
    res = hep.ap.apply()
    assert res is not None
    assert probe(hep.outside, to_host) == [True, True]
    hep.ap.dataplane.on_message(m.HostEndpointRemove("h-eth1"))
    hep.ap.apply()
    assert probe(hep.outside, to_host) == [True, False]
    # preDNAT policy of the catch-all (its chains return) stays off eth1 once
    # eth1 has an endpoint of its own
    pre = PolicyID("security", "pre-no-8080")
    hep.ap.dataplane.on_messages([
        PolicyUpdate(pre, (ParsedRule(f"policy:{pre}:i0", "deny", protocol=6,
                                      dst_ports=((8080, 8080),)),), (), pre_dnat=True),
        m.HostEndpointUpdate("h-auto", "*", ("192.0.2.10",), (),
                             (TierInfo("security", "deny", (ALLOW_ALL_HOST,), (ALLOW_ALL_HOST,)),),
                             (), (TierInfo("security", "deny", (pre,), ()),), (), ()),
    ])
    hep.ap.apply()
    assert probe(hep.outside, to_host) == [True, False]
    hep.ap.dataplane.on_message(own)
    hep.ap.apply()
    assert probe(hep.outside, to_host) == [True, True]
    hep.ap.dataplane.on_messages([m.HostEndpointRemove("h-eth1"), m.HostEndpointRemove("h-auto")])
    hep.ap.apply()
    assert probe(hep.outside, to_host) == [True, True]
