"""gingham's nfnetlink encoder against nft 1.0.6 and the kernel.

Three judges, from strictest to what matters:
- bytes: for every rule form (the golden scenarios, NAT and service-loop
  forms, and rules generated from random ParsedRules) the messages we encode
  are the messages ``nft --debug=mnl -c`` shows nft sending for the same
  script (set ids and nft's repeated elements aside);
- listings: the same transaction programmed once through ``nft -f -`` and
  once as our batch, each in a fresh namespace, lists identically (``nft
  list table``, ``-j``, ``-a`` with handles);
- packets: where nft's own encoding is wrong (two adjacent ``!=`` port
  matches), the rendered rule behaves as written on both paths.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from gingham.calc.messages import (
    FailsafePort,
    InSync,
    IPSetDeltaUpdate,
    IPSetUpdate,
    ParsedRule,
    PolicyID,
    PolicyUpdate,
    ProfileUpdate,
    TierInfo,
    WorkloadEndpointID,
    WorkloadEndpointRemove,
    WorkloadEndpointUpdate,
)
from gingham.dataplane import layout
from gingham.dataplane.apply import Applier
from gingham.dataplane.managers import PolicyDataplane
from gingham.dataplane.nft import (
    NFT,
    Chain,
    Element,
    Map,
    NFTError,
    Rule,
    Set,
    Table,
    Transaction,
)
from gingham.dataplane.nft_fake import FakeNFT
from gingham.dataplane.policy import SetRef, render_rule
from gingham.errors import ValidationError
from gingham.lab.netns import add_netns, delete_netns, in_netns
from tests.fixtures.netns import test_prefix
from tests.integration.dataplane.nft_bytes import differences, nft_messages, our_messages
from tests.unit.dataplane.test_policy_scenarios import SCENARIOS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def probe_ns() -> Iterator[str]:
    """A namespace for ``nft -c`` (checks against an empty ruleset, commits nothing)."""
    name = add_netns(f"{test_prefix()}nlprobe")
    try:
        yield name
    finally:
        delete_netns(name)


def scenario_tx(name: str) -> Transaction:
    dp = PolicyDataplane()
    dp.on_messages(SCENARIOS[name]())
    applier = Applier(FakeNFT(strict=True), dp)
    applier.apply()
    assert applier.last_tx is not None
    return applier.last_tx


def listings(netns: str) -> dict[str, str]:
    out = {}
    for flags in ((), ("-j",), ("-a",)):
        proc = subprocess.run(in_netns(netns, ["nft", *flags, "list", "table", "inet", "gingham"]),
                              capture_output=True, text=True, check=True)
        out[" ".join(flags) or "text"] = proc.stdout
    return out


def structure(netns: str) -> dict[str, object]:
    """The table by name (chains with their rules, sets with their elements),
    free of handles and of the order objects were made in: an incrementally
    changed table and a freshly programmed one compare equal when they hold
    the same things."""
    doc = json.loads(listings(netns)["-j"])
    chains: dict[str, list[object]] = {}
    sets: dict[str, object] = {}
    for item in doc["nftables"]:
        kind, body = next(iter(item.items()))
        if kind == "chain":
            chains.setdefault(body["name"], [])
            chains[body["name"]].insert(0, {k: v for k, v in body.items() if k != "handle"})
        elif kind == "rule":
            chains.setdefault(body["chain"], []).append(
                {k: v for k, v in body.items() if k != "handle"})
        elif kind in ("set", "map"):
            sets[body["name"]] = {k: v for k, v in body.items() if k != "handle"}
    return {"chains": chains, "sets": sets}


def assert_same_bytes(tx: Transaction, probe: str) -> None:
    only_nft, only_ours = differences(nft_messages(tx.render(), probe), our_messages(tx))
    assert not only_nft and not only_ours, (
        "nft sent:\n" + "\n\n".join(only_nft[:3]) + "\n\nwe sent:\n" + "\n\n".join(only_ours[:3]))


def assert_same_kernel(tx: Transaction, netns: Callable[[str], str]) -> NFT:
    """Program ``tx`` both ways in fresh namespaces; the listings must be equal."""
    by_nft, by_netlink = NFT(netns=netns("bynft"), netlink=False), NFT(netns=netns("bynl"))
    by_netlink.delete_table()  # so the driver knows the table holds nothing yet
    by_nft.run(tx)
    by_netlink.run(tx)
    assert by_nft.last_via == "nft"
    assert by_netlink.last_via == "netlink", by_netlink.last_fallback
    assert listings(by_netlink.netns or "") == listings(by_nft.netns or "")
    by_netlink.close()
    return by_netlink


# ------------------------------------------------------------------ golden scenarios


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden_scenario_bytes_are_nfts(name: str, probe_ns: str) -> None:
    assert_same_bytes(scenario_tx(name), probe_ns)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden_scenario_lists_like_nft(name: str, netns: Callable[[str], str]) -> None:
    assert_same_kernel(scenario_tx(name), netns)


# ------------------------------------------------------------------ other forms

NAT_RULES = [
    "ip saddr { 198.18.0.0/16 } ip daddr != { 198.18.0.0/16, 198.19.0.0/16 } masquerade",
    "ip6 saddr { 2001:db8::/64, 2001:db8:1::/64 } ip6 daddr != { 2001:db8::/32 } snat ip6 to 2001:db8::1",
    "ip saddr { 198.18.0.0/16 } ip daddr != { 198.18.0.0/15 } snat ip to 192.0.2.1",
]
FILTER_RULES = [
    "ip daddr { 10.96.0.0/12 } reject", "ip6 daddr { fd00::/108, fd01::/64 } reject", "reject",
    "ip daddr { 10.96.0.0/12, 10.1.0.0/16 } drop",
    "udp dport 4789 counter drop", "tcp dport 22 accept", "udp sport 1 udp dport 2 accept",
    "ip daddr 127.0.0.1 icmp type echo-request counter", "icmpv6 type 1 accept",
    "meta nfproto ipv4 ip saddr 1.2.0.0/20 ip daddr 0.0.0.0/0 accept",
    "meta nfproto ipv4 ip saddr 1.2.3.4 ip daddr 5.6.7.8 accept",
    "meta nfproto ipv6 ip6 saddr fe80::/10 ip6 daddr ::1 accept",
    "meta l4proto 6 th sport 80 th dport 90 accept", "meta l4proto 6 th dport 90 th sport 80 accept",
    "meta l4proto 6 th dport 80-80 accept", "meta l4proto 6 th dport != 80-80 drop",
    "meta l4proto 17 th sport != 53 th dport != 53-53 drop",
    "meta l4proto 6 th dport { 22 } accept", "meta l4proto 6 th dport { 1-5, 6-9, 20 } accept",
    "meta l4proto 6 th dport != { 1-5, 7 } accept",
    "meta nfproto ipv4 ip saddr { 198.18.0.0/24 } accept",
    "meta nfproto ipv4 ip saddr { 198.18.0.0/24, 198.18.1.0/25, 198.18.1.128/25 } accept",
    "meta nfproto ipv4 ip saddr != { 0.0.0.0/8, 198.18.0.1 } accept",
    'iifname "lo" accept', 'oifname != "gh*" drop', 'iifname "tap*" counter',
    "meta mark and 0x2000 != 0 accept", "meta mark set meta mark xor 0x4 counter",
    "ct state established,related,new accept", "ct state untracked accept",
    "limit rate 5/minute burst 3 packets log prefix \"x: \" counter",
    "meta nfproto ipv4 meta l4proto 1 icmp type { echo-request, echo-reply } accept",
    "meta nfproto ipv6 meta l4proto 58 icmpv6 type . icmpv6 code { 1 . 3, 1 . 4 } drop",
]


def _forms_tx(nat: list[str], filt: list[str]) -> Transaction:
    tx = Transaction().add(Table())
    tx.add(Chain("nat", type="nat", hook="postrouting", priority="srcnat", policy="accept"))
    tx.add(Chain("svc", type="filter", hook="forward", priority="filter", policy="accept",
                 comment="service loop"))
    for body in nat:
        tx.add(Rule("nat", body, comment="nat:x"))
    for body in filt:
        tx.add(Rule("svc", body))
    return tx


def test_nat_and_filter_forms_bytes_are_nfts(probe_ns: str) -> None:
    assert_same_bytes(_forms_tx(NAT_RULES, FILTER_RULES), probe_ns)


def test_nat_and_filter_forms_list_like_nft(netns: Callable[[str], str]) -> None:
    assert_same_kernel(_forms_tx(NAT_RULES, FILTER_RULES), netns)


# ------------------------------------------------------------------ base chains

FAILSAFE_IN = (FailsafePort("tcp", 22), FailsafePort("tcp", 2222, "192.0.2.0/24"),
               FailsafePort("udp", 68))
FAILSAFE_OUT = (FailsafePort("udp", 53), FailsafePort("tcp", 2380, "2001:db8::/32"))


def _base_tx(**kw: object) -> Transaction:
    tx = Transaction().add(Table())
    for obj in (*layout.dispatch_maps(), layout.hep_ifaces_set(), *layout.anti_spoof_sets()):
        tx.add(obj)
    specs = [*layout.all_interface_chains(), *layout.base_chains(**kw)]  # type: ignore[arg-type]
    for spec in sorted(specs, key=lambda c: (c.rank, c.name)):  # jump targets first
        tx.add(spec.chain)
        for rule in spec.nft_rules():
            tx.add(rule)
    return tx


BASE_VARIANTS = [
    {},
    {"prefixes": ("gh", "tap"), "log_drops": True, "endpoint_to_host": "Accept"},
    {"endpoint_to_host": "Return", "failsafe_in": FAILSAFE_IN, "failsafe_out": FAILSAFE_OUT,
     "workload_vxlan_port": 4790, "workload_ipip": True},
    {"prefixes": ("gh", "cali", "tap"), "log_drops": True, "workload_vxlan_port": 4789,
     "failsafe_in": FAILSAFE_IN},
]


@pytest.mark.parametrize("kw", BASE_VARIANTS, ids=range(len(BASE_VARIANTS)))
def test_base_chains_bytes_are_nfts(kw: dict[str, object], probe_ns: str) -> None:
    assert_same_bytes(_base_tx(**kw), probe_ns)


@pytest.mark.parametrize("kw", BASE_VARIANTS, ids=range(len(BASE_VARIANTS)))
def test_base_chains_list_like_nft(kw: dict[str, object], netns: Callable[[str], str]) -> None:
    assert_same_kernel(_base_tx(**kw), netns)


# ------------------------------------------------------------------ random rules

_V4 = st.builds(lambda a, n: f"198.{18 + a // 256}.{a % 256}.0/{n}",
                st.integers(0, 511), st.sampled_from([8, 16, 20, 24, 31, 32]))
_V6 = st.builds(lambda a, n: f"2001:db8:{a:x}::/{n}",
                st.integers(0, 0xFFFF), st.sampled_from([32, 48, 60, 64, 127, 128]))
_PORT_RANGE = st.tuples(st.integers(0, 70), st.integers(0, 70)).map(lambda t: (min(t), max(t)))
_PORTS = st.lists(st.one_of(_PORT_RANGE, st.integers(0, 65535).map(lambda p: (p, p))),
                  max_size=3).map(tuple)
_SETS = st.lists(st.sampled_from(["s:a", "s:b"]), max_size=2, unique=True).map(tuple)
_NAMED = st.lists(st.sampled_from(["n:a", "n:b"]), max_size=2, unique=True).map(tuple)


@st.composite
def rules(draw: st.DrawFn) -> ParsedRule:
    """Rules the renderer accepts: ports only with a port protocol, ICMP fields
    only with ICMP, nets of the families the rule can have."""
    proto = draw(st.sampled_from([None, None, 6, 17, 132, 136, 1, 58]))
    version = draw(st.sampled_from([None, None, 4, 6]))
    if proto == 1:
        version = 4 if version is None else version
    if proto == 58:
        version = 6 if version is None else version
    net = {4: _V4, 6: _V6, None: st.one_of(_V4, _V6)}[version]
    nets = st.lists(net, max_size=3).map(tuple)
    kw: dict[str, object] = {
        "action": draw(st.sampled_from(["allow", "deny", "pass", "log"])),
        "ip_version": version, "protocol": proto,
        "not_protocol": draw(st.sampled_from([None, None, 6, 17])),
    }
    for name in ("src_nets", "not_src_nets", "dst_nets", "not_dst_nets"):
        kw[name] = draw(nets)
    for name in ("src_set_ids", "not_src_set_ids", "dst_set_ids", "not_dst_set_ids"):
        kw[name] = draw(_SETS)
    if proto in (6, 17, 132, 136):
        for name in ("src_ports", "not_src_ports", "dst_ports", "not_dst_ports"):
            kw[name] = draw(_PORTS)
        for name in ("src_named_port_set_ids", "dst_named_port_set_ids",
                     "not_src_named_port_set_ids", "not_dst_named_port_set_ids"):
            kw[name] = draw(_NAMED)
    if proto in (1, 58):
        code = st.one_of(st.none(), st.integers(0, 255))
        if draw(st.booleans()):
            kw["icmp_type"] = draw(st.integers(0, 255))
            kw["icmp_code"] = draw(code)
        if draw(st.booleans()):
            kw["not_icmp_type"] = draw(st.integers(0, 255))
            kw["not_icmp_code"] = draw(code)
    return ParsedRule("policy:default/x/p:i0", **kw)  # type: ignore[arg-type]


def _rule_tx(rule: ParsedRule, in_profile: bool, untracked: bool) -> Transaction:
    try:
        specs, refs = render_rule(rule, in_profile, untracked)
    except ValidationError:
        reject()
    tx = Transaction().add(Table())
    for ref in sorted(refs, key=lambda r: (r.kind, r.set_id, r.family)):
        tx.add(_ref_set(ref))
    tx.add(Chain("pol"))
    for spec in specs:
        tx.add(Rule("pol", spec.body, comment=spec.comment))
    return tx


def _ref_set(ref: SetRef) -> Set:
    if ref.kind == "net":
        return layout.net_set(ref.set_id, ref.family)
    return layout.port_set(ref.set_id, ref.family)


_RANDOM = settings(max_examples=60, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture,
                                          HealthCheck.filter_too_much, HealthCheck.too_slow])


@_RANDOM
@given(rule=rules(), in_profile=st.booleans(), untracked=st.booleans())
def test_random_rules_bytes_are_nfts(probe_ns: str, rule: ParsedRule, in_profile: bool,
                                     untracked: bool) -> None:
    assert_same_bytes(_rule_tx(rule, in_profile, untracked), probe_ns)


@pytest.fixture(scope="module")
def ns_pair() -> Iterator[tuple[str, str]]:
    """Two namespaces for the whole module (hypothesis runs many examples per test)."""
    a = add_netns(f"{test_prefix()}nlpair-a")
    try:
        b = add_netns(f"{test_prefix()}nlpair-b")
        try:
            yield a, b
        finally:
            delete_netns(b)
    finally:
        delete_netns(a)


@settings(_RANDOM, max_examples=25)
@given(rule=rules())
def test_random_rules_list_like_nft(ns_pair: tuple[str, str], rule: ParsedRule) -> None:
    tx = _rule_tx(rule, False, False)
    a, b = ns_pair
    for ns in (a, b):
        NFT(netns=ns).delete_table()
    by_nft, by_netlink = NFT(netns=a, netlink=False), NFT(netns=b)
    by_nft.run(tx)
    by_netlink.run(tx)
    by_netlink.close()
    assert by_netlink.last_via == "netlink", by_netlink.last_fallback
    assert listings(b) == listings(a)


# ------------------------------------------------------------------ set elements

_ELEMENT_KEYS = st.sampled_from([
    *(f"10.0.0.{i}" for i in range(8)), "10.0.0.0/31", "10.0.0.2/31", "10.0.0.4/30",
    "10.0.0.8/29", "0.0.0.0", "255.255.255.255", "255.255.255.254/31", "10.0.0.1-10.0.0.5",
])
_SET_TX = st.lists(st.tuples(st.sampled_from(["add", "delete"]), _ELEMENT_KEYS),
                   min_size=1, max_size=4)
_OTHER_SETS: list[Set | Map] = [
    Set("cc", type="ifname . ipv4_addr", flags=("interval",)),
    Set("hs", type="ipv4_addr"),
    Map("vm", type="ifname : verdict"),
]
_OTHER_OPS = st.one_of(
    st.tuples(st.just("cc"), st.sampled_from(["add", "delete"]),
              st.sampled_from(["gh1", "gh2"]), _ELEMENT_KEYS),
    st.tuples(st.just("hs"), st.sampled_from(["add", "delete"]),
              st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.0/31"])),
    st.tuples(st.just("vm"), st.sampled_from(["add", "delete"]), st.sampled_from(["gh1", "gh2"]),
              st.sampled_from(["accept", "drop", "jump c", "goto c"])),
)


def _outcome(driver: NFT, tx: Transaction) -> str | None:
    try:
        driver.run(tx)
    except NFTError as exc:
        return exc.kind
    return None


@settings(_RANDOM, max_examples=30)
@given(steps=st.lists(_SET_TX, min_size=1, max_size=5), fresh=st.booleans())
def test_random_interval_set_changes_match_nft(ns_pair: tuple[str, str],
                                               steps: list[list[tuple[str, str]]],
                                               fresh: bool) -> None:
    """Adds and deletes of singletons, prefixes and ranges (adjacent, overlapping,
    touching both ends of the space), in one transaction with the set or later:
    the same outcome (or error kind) and the same elements as nft's after every step."""
    a, b = ns_pair
    by_nft, by_netlink = NFT(netns=a, netlink=False), NFT(netns=b)
    for d in (by_nft, by_netlink):
        d.delete_table()
    decl = Transaction().add(Table()).add(Set("iv", type="ipv4_addr", flags=("interval",)))
    if not fresh:
        for d in (by_nft, by_netlink):
            d.run(decl)
    for i, ops in enumerate(steps):
        tx = decl if fresh and i == 0 else Transaction()
        tx = Transaction(list(tx.ops))
        for verb, key in ops:
            tx.delete(Element("iv", key)) if verb == "delete" else tx.add(Element("iv", key))
        got = _outcome(by_netlink, tx)
        assert got == _outcome(by_nft, tx), tx.render()
        if by_nft.table_exists():
            assert listings(b)["text"] == listings(a)["text"], tx.render()
    by_netlink.close()


@settings(_RANDOM, max_examples=30)
@given(steps=st.lists(st.lists(_OTHER_OPS, min_size=1, max_size=4), min_size=1, max_size=5))
def test_random_concat_hash_and_map_changes_match_nft(
        ns_pair: tuple[str, str], steps: list[list[tuple[str, ...]]]) -> None:
    a, b = ns_pair
    by_nft, by_netlink = NFT(netns=a, netlink=False), NFT(netns=b)
    decl = Transaction().add(Table()).add(Chain("c"))
    for obj in _OTHER_SETS:
        decl.add(obj)
    for d in (by_nft, by_netlink):
        d.delete_table()
        d.run(decl)
    for ops in steps:
        tx = Transaction()
        for op in ops:
            name, verb = op[0], op[1]
            if name == "cc":
                elem = Element("cc", (op[2], op[3]))
            elif name == "hs":
                elem = Element("hs", op[2])
            else:
                elem = Element("vm", f'"{op[2]}"', None if verb == "delete" else op[3])
            tx.delete(elem) if verb == "delete" else tx.add(elem)
        got = _outcome(by_netlink, tx)
        assert got == _outcome(by_nft, tx), tx.render()
        assert listings(b)["text"] == listings(a)["text"], tx.render()
    by_netlink.close()


# ------------------------------------------------------------------ the Applier


def _policy(name: str, port: int, sets: tuple[str, ...] = ("s:a",)) -> PolicyUpdate:
    pid = PolicyID("default", name, "ns")
    return PolicyUpdate(pid, (
        ParsedRule(f"policy:{pid}:i0", "allow", protocol=6, src_set_ids=sets,
                   dst_ports=((port, port),)),
        ParsedRule(f"policy:{pid}:i1", "deny", src_nets=("198.19.0.0/16", "2001:db8:9::/48")),
    ), (ParsedRule(f"policy:{pid}:e0", "allow", dst_set_ids=sets),))


def _endpoint(i: int, *policies: str) -> WorkloadEndpointUpdate:
    pids = tuple(PolicyID("default", p, "ns") for p in policies)
    return WorkloadEndpointUpdate(
        WorkloadEndpointID("ns", f"w{i}"), f"gh{i:011x}", (f"198.18.9.{i}/32",),
        (f"2001:db8:9::{i:x}/128",), None, (TierInfo("default", "deny", pids, pids),),
        ("kns.ns",))


def test_applier_changes_go_as_netlink_batches(netns: Callable[[str], str]) -> None:
    """Every steady-state kind of change is one batch without nft, and what the
    kernel ends with is what nft would have programmed from scratch."""
    ns = netns("apl")
    dp = PolicyDataplane()
    dp.on_messages([
        IPSetUpdate("s:a", "net", frozenset({"198.18.0.1/32", "2001:db8::1/128"})),
        IPSetUpdate("s:b", "net", frozenset({"198.18.1.0/24"})),
        _policy("p1", 80), _policy("p2", 81),
        ProfileUpdate("kns.ns", (ParsedRule("profile:kns.ns:i0", "allow"),),
                      (ParsedRule("profile:kns.ns:e0", "allow"),)),
        _endpoint(1, "p1"), InSync(),
    ])
    ap = Applier(NFT(netns=ns), dp)
    first = ap.apply()
    assert first is not None and first.resync and first.via == "netlink", first
    steps = [
        [_endpoint(2, "p1", "p2")],  # new policy combination: new endpoint chains
        [_policy("p1", 8080, ("s:a", "s:b"))],  # a policy's rules change: flush + refill
        [_policy("p3", 90, ("s:c",)), IPSetUpdate("s:c", "net", frozenset({"198.18.2.2/32"})),
         _endpoint(3, "p3")],  # a new set, a new policy, a new endpoint
        [IPSetDeltaUpdate("s:a", frozenset({"198.18.0.7/32"}), frozenset({"198.18.0.1/32"}))],
        [WorkloadEndpointRemove(WorkloadEndpointID("ns", "w3"))],  # chains and set go
        [_endpoint(1, "p2")],  # an endpoint's policies change: dispatch entries move
    ]
    for msgs in steps:
        dp.on_messages(msgs)
        res = ap.apply()
        assert res is not None and not res.resync and res.commands > 0
        assert res.via == "netlink" and res.fallback is None, res
    again = Applier(NFT(netns=ns), dp).apply()  # a restart finds nothing to change
    assert again is not None and again.commands == 0
    fresh = netns("aplfresh")
    Applier(NFT(netns=fresh), dp, fast_elements=False).apply()
    assert structure(ns) == structure(fresh)
    ap.close()


# ------------------------------------------------------------------ fallback and errors


def test_unknown_form_goes_through_nft_and_is_counted(netns: Callable[[str], str]) -> None:
    real = NFT(netns=netns("fb"))
    real.run(Transaction().add(Table()).add(Chain("c")))
    assert real.last_via == "netlink"
    real.run(Transaction().add(Rule("c", "tcp flags syn / syn,ack accept")))
    assert real.last_via == "nft" and real.last_fallback is not None
    assert "selector" in real.last_fallback
    assert real.counts == {"netlink": 1, "fallback": 1, "nft": 1}
    assert [r.rule for r in real.list_rules("c")] == ["tcp flags syn / syn,ack accept"]
    real.close()


def test_refused_batch_names_the_operation_and_changes_nothing(
        netns: Callable[[str], str]) -> None:
    real = NFT(netns=netns("ref"))
    real.run(Transaction().add(Table()).add(Chain("a")))
    before = listings(real.netns or "")
    tx = Transaction().add(Chain("b")).add(Rule("b", "counter")).add(Rule("a", "jump nowhere"))
    with pytest.raises(NFTError) as info:
        real.run(tx)
    assert info.value.kind == "not-found"
    assert info.value.line_number == 3
    assert info.value.script_line == "add rule inet gingham a jump nowhere"
    assert "No such file or directory" in info.value.stderr
    assert listings(real.netns or "") == before  # chain b and its rule were not made
    real.close()


def test_kernel_refusal_is_retried_through_nft(netns: Callable[[str], str]) -> None:
    """A refusal that may be the encoder's fault (here EOPNOTSUPP: a base chain
    moved to another hook) goes to nft, which reports it in its own words."""
    real = NFT(netns=netns("eop"))
    real.run(Transaction().add(Table()).add(
        Chain("in", type="filter", hook="input", priority=0, policy="accept")))
    with pytest.raises(NFTError) as info:
        real.run(Transaction().add(Chain("in", type="filter", hook="output", priority=0)))
    assert info.value.kind == "unsupported"
    assert real.last_fallback is not None and "refused" in real.last_fallback
    assert real.counts["fallback"] == 1
    real.close()


# ------------------------------------------------------------------ packets decide

SEND = textwrap.dedent("""
    import socket, sys
    for sport, dport in ((53, 22), (54, 22), (54, 80)):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", sport)); s.sendto(b"x", ("127.0.0.1", dport)); s.close()
""")


@pytest.mark.parametrize("netlink", [False, True])
def test_not_ports_are_tested_each_on_its_own(netns: Callable[[str], str],
                                              netlink: bool) -> None:
    """notPorts 53 (source) and 80 (destination): only a packet from a port
    other than 53 to a port other than 80 matches. (nft's own encoding of
    ``th sport != 53 th dport != 80`` would match any packet whose ports are
    not exactly 53 -> 80; the renderer writes the pair so it cannot.)"""
    rule = ParsedRule("policy:x:e0", "deny", protocol=17, not_src_ports=((53, 53),),
                      not_dst_ports=((80, 80),))
    [spec], _ = render_rule(rule)
    ns = netns("ports")
    real = NFT(netns=ns, netlink=netlink)
    real.run(Transaction().add(Table())
             .add(Chain("out", type="filter", hook="output", priority=0, policy="accept"))
             .add(Rule("out", spec.body.replace("counter drop", "counter"), comment="m")))
    assert real.last_via == ("netlink" if netlink else "nft")
    subprocess.run(in_netns(ns, [sys.executable, "-c", SEND]), check=True, timeout=30)
    got = {c.comment: c.packets for c in real.counters()}
    assert got["m"] == 1  # (54, 22) only
    real.close()


def test_listing_json_is_parseable_after_netlink(netns: Callable[[str], str]) -> None:
    """nft reads back what we wrote without complaint (JSON of every scenario)."""
    ns = netns("json")
    real = NFT(netns=ns)
    real.run(scenario_tx("every_field"))
    doc = json.loads(listings(ns)["-j"])
    assert any("rule" in item for item in doc["nftables"])
    snap = real.snapshot()
    assert snap is not None and snap.counters
    real.close()
