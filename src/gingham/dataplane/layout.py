"""Layout of the ``inet gingham`` table: base chains, dispatch maps and names.

Evaluation scheme (why it looks like this)
-------------------------------------------
A packet between two workloads on one host crosses the forward hook once,
but needs *two* decisions: egress of the sender, then ingress of the
receiver. nft's ``accept`` ends evaluation only of the *current base chain*;
the packet then meets the next base chain on the same hook. So each hook that
needs two decisions has two base chains at increasing priority:

    forward    prio 0    fwd-from-wl  iifname vmap @from-wl   (egress of the sender)
    forward    prio 10   fwd-to-wl    oifname vmap @to-wl     (ingress of the receiver)
    forward    prio 20   fwd-hep-in   @fwd-hep-in  (applyOnForward, interface it came in by)
    forward    prio 30   fwd-hep-out  @fwd-hep-out (applyOnForward, interface it leaves by)
    input      prio 0    in-from-wl   iifname vmap @from-wl   (egress of a workload to its host)
    input      prio 10   in-host      endpoint-to-host action, failsafes, @to-hep
    output     prio 0    out-host     failsafes, oifname vmap @from-hep
    prerouting prio -150 pre-hep      failsafes, @pre-hep (preDNAT: before DNAT at -100)
    prerouting prio -300 raw-pre      failsafes, @raw-hep-in  (doNotTrack, before conntrack)
    prerouting prio -300 raw-wl       VXLAN/IPIP from workloads, anti-spoofing (before conntrack)
    output     prio -300 raw-out      failsafes, @raw-hep-out (doNotTrack)

"Workload interface" means a name starting with one of the configured
prefixes (FelixConfiguration ``interfacePrefix``, default ``gh``), matched
as nft wildcards (``"gh*"``, or ``{ "gh*", "tap*" }``). Every rule that tells
workload interfaces from host interfaces is rendered from those prefixes.

Host-endpoint dispatch skips workload interfaces; after each host-endpoint map, a rule
jumps to the ``*-all-host-interfaces`` chain (an all-interfaces endpoint;
empty otherwise) for interfaces not in ``@hep-ifaces`` and not ``lo``.

Inside a jumped-to chain, Allow is ``accept`` (done with this base chain),
Deny is ``drop`` (final) and Log is ``log`` with no verdict (continue).
Pass must skip the rest of the current tier, which a shared policy chain
cannot name; it sets :data:`PASS_MARK` and returns, and every later policy
jump and the tier's default drop in the endpoint chain are conditional on the
mark being clear. The mark is cleared at the start of each tier and before the
profiles, so a packet leaves with the bit as clear as our chains can make it.

Each filter-priority base chain accepts ``ct state established,related``
first (replies of allowed connections pass; a restart that rewrites chains
atomically does not disturb them) and drops ``ct state invalid``; packets an
untracked (doNotTrack) Allow marked with :data:`UNTRACKED_MARK` are accepted
there too. A workload interface missing from a dispatch map is dropped (fail
closed). gingham's own drops (tier end, no profile, anti-spoofing, reverse
path, unknown workload, endpoint-to-host) are counted under a marker comment
and, when enabled, logged rate-limited with the prefix ``gingham <marker>: ``.

Anti-spoofing comes before conntrack (``raw-wl``, prerouting at raw
priority), because an accept of ``ct state established`` cannot tell a
forged packet on an existing tuple from a real one: a packet from a
workload interface whose ``iifname . saddr`` is not in :data:`SPOOF_V4` /
:data:`SPOOF_V6` (its own addresses and allowSpoofedSourcePrefixes) is
dropped there, for the forward and the input path alike, and never creates
or refreshes a conntrack entry. IPv6 link-local (and unspecified) sources
pass only towards link-scope destinations (NDP, MLD, the host's own
link-local address): the kernel never forwards them. Second wall: strict
reverse-path filtering, for IPv4 the interface's ``rp_filter`` sysctl
(written by :class:`gingham.dataplane.sysctl.WorkloadSysctlSync`), for IPv6 (no
such sysctl) ``fib saddr . iif oif missing drop`` for the interfaces in
:data:`RPF_V6`. Both are relaxed for an endpoint with allowSpoofedSourcePrefixes
of that family: its allowed sources are not routed back through its interface.

Before the source checks, ``raw-wl`` drops VXLAN (UDP to FelixConfiguration's
``vxlanPort``) and IPIP (IP protocol 4) packets a workload sends, unless
``allowVXLANPacketsFromWorkloads`` / ``allowIPIPPacketsFromWorkloads`` say
otherwise (Calico's defaults: drop both): a workload must not inject packets
into the hosts' tunnels, whatever its policy allows.

Failsafe ports (FelixConfiguration ``failsafeInbound/OutboundHostPorts``) are
accepted ahead of host endpoint policy; one with a ``net`` only from sources
(inbound) or to destinations (outbound) in that net.

Workload chains are shared by content (see :func:`shared_chain_name`): they
hold policy only, nothing endpoint-specific.

Every chain gingham writes starts with a marker rule ``counter comment
"v:<hash>"`` whose hash covers the chain's rules: after a restart the
resync compares markers (read in one table snapshot) instead of nft's
re-printed rule text, and the counter doubles as "packets that entered this
chain".
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from gingham.calc.messages import FailsafePort, PolicyID
from gingham.dataplane import nft
from gingham.names import NFT_TABLE, PACKET_LOG_PREFIX, WORKLOAD_INTERFACE_PREFIX

FAMILY = "inet"
TABLE = NFT_TABLE
DEFAULT_PREFIXES: tuple[str, ...] = (WORKLOAD_INTERFACE_PREFIX,)
"""Workload interface prefixes when FelixConfiguration names none (as the model's default)."""

PASS_MARK = 0x1000
"""Scratch mark bit for Pass. Outside Calico's default 0xffff0000, kube-proxy's
0x4000/0x8000 and Cilium's 0x0f00; it is only meaningful inside our chains."""
UNTRACKED_MARK = 0x2000
"""Set with ``notrack`` by an Allow in a doNotTrack policy (raw priority), so
the filter chains accept the untracked packet instead of judging it again."""

# base chains
FWD_FROM_WL = "fwd-from-wl"
FWD_TO_WL = "fwd-to-wl"
IN_FROM_WL = "in-from-wl"
IN_HOST = "in-host"
OUT_HOST = "out-host"
FWD_HEP_IN = "fwd-hep-in"   # applyOnForward: ingress policy of the interface it came in by
FWD_HEP_OUT = "fwd-hep-out"  # applyOnForward: egress policy of the interface it leaves by
PRE_HEP = "pre-hep"  # preDNAT: ingress, before DNAT (priority -150)
RAW_PRE = "raw-pre"  # doNotTrack ingress (priority raw, -300)
RAW_OUT = "raw-out"  # doNotTrack egress
RAW_WL = "raw-wl"  # anti-spoofing of workload interfaces (priority raw, before conntrack)

# dispatch maps (interface name -> jump chain)
MAP_FROM_WL = "from-wl"
MAP_TO_WL = "to-wl"
MAP_TO_HEP = "to-hep"
MAP_FROM_HEP = "from-hep"
MAP_FWD_HEP_IN = "fwd-hep-in"
MAP_FWD_HEP_OUT = "fwd-hep-out"
MAP_PRE_HEP = "pre-hep"
MAP_RAW_HEP_IN = "raw-hep-in"
MAP_RAW_HEP_OUT = "raw-hep-out"
DISPATCH_MAPS = (
    MAP_FROM_WL, MAP_TO_WL, MAP_TO_HEP, MAP_FROM_HEP, MAP_FWD_HEP_IN, MAP_FWD_HEP_OUT,
    MAP_PRE_HEP, MAP_RAW_HEP_IN, MAP_RAW_HEP_OUT,
)
HEP_IFACES = "hep-ifaces"
"""Interfaces with a host endpoint of their own: an all-interfaces (``*``)
endpoint applies to the others (never to ``gh*`` workloads or ``lo``)."""
ALL_INTERFACES = "all-host-interfaces"  # longer than any interface name: no clash
ALL_HEP_KINDS = ("th", "fh", "fi", "fo", "pd")

# anti-spoofing: (interface . source address) pairs a workload may send from
SPOOF_V4 = "wl-src4"
SPOOF_V6 = "wl-src6"
RPF_V6 = "wl-rpf6"
VXLAN_FROM_WORKLOAD = "vxlan-from-workload"  # markers of gingham's own drops in raw-wl
IPIP_FROM_WORKLOAD = "ipip-from-workload"
"""Workload interfaces under strict IPv6 reverse-path filtering (nft ``fib``): all
programmed ones except those whose endpoint may send from IPv6 prefixes not its own."""
LINK_SCOPE_V6 = "ip6 saddr { ::, fe80::/10 } ip6 daddr { fe80::/10, ff02::/16 }"
"""Link-local or unspecified source to a link-scope destination: NDP (DAD from
``::`` too), MLD and talk with the host's link-local address; never forwarded."""

# ranks order the transaction: created in ascending rank, deleted in descending
RANK_SET = 0
RANK_POLICY = 1
RANK_ENDPOINT = 2
RANK_DISPATCH = 3
RANK_BASE = 4

_SAFE_IFACE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_COMMENT_MAX = 128
_PROTO_NAMES = {6: "tcp", 17: "udp", 132: "sctp", 136: "udplite", 1: "icmp", 58: "ipv6-icmp"}
_PROTO_NUMBERS = {v: k for k, v in _PROTO_NAMES.items()} | {"icmpv6": 58}

ESTABLISHED = "ct state established,related accept"
INVALID = "ct state invalid drop"
NDP = "meta l4proto ipv6-icmp icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } accept"


# compiled tiers (gingham.dataplane.compiled): chains ``ct<i|o>-``/``cs<i|o>-``, maps ``cm<i|o>-``
COMPILED_TIER_PREFIXES = ("cti-", "cto-")  # the chain an endpoint chain jumps to
COMPILED_CHAIN_PREFIXES = (*COMPILED_TIER_PREFIXES, "csi-", "cso-")
COMPILED_MAP_PREFIXES = ("cmi-", "cmo-")


def is_compiled_map(name: str) -> bool:
    return name.startswith(COMPILED_MAP_PREFIXES)


def _h(text: str, n: int = 12) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:n]


def short_comment(text: str) -> str:
    """``text`` as an nft comment: at most 128 characters, no double quotes.

    Long texts keep a readable head plus a hash of the whole, so two long ids
    never collide and the same id always gives the same comment.
    """
    clean = text.replace('"', "'").replace("\n", " ")
    if len(clean) <= _COMMENT_MAX and clean == text:
        return clean
    return clean[: _COMMENT_MAX - 13] + "~" + _h(text)


# ------------------------------------------------------------------ names


def iface_id(ifname: str) -> str:
    """A chain-name-safe id for an interface: the name itself when it is safe."""
    return ifname if _SAFE_IFACE.match(ifname) else "x" + _h(ifname, 14)


def shared_chain_name(prefix: str, rules: tuple[RuleSpec, ...] | list[RuleSpec]) -> str:
    """Content-addressed name: endpoints whose chains would be equal share one.

    Workload chains hold nothing endpoint-specific (addresses live in the
    anti-spoofing sets), so endpoints with the same policies share a chain
    and adding such an endpoint only adds set and map elements.
    """
    text = "\n".join(f"{r.body}#{r.comment}" for r in rules)
    return f"{prefix}-{_h(text, 16)}"


def hep_chain(kind: str, ifname: str) -> str:
    """Host-endpoint chains by kind: ``th``/``fh`` to/from the host, ``fi``/``fo``
    forward in/out, ``pd`` preDNAT, ``ui``/``uo`` untracked in/out. ``ifname``
    ``*`` names the all-interfaces chain."""
    if ifname == "*":
        return f"{kind}-{ALL_INTERFACES}"
    return f"{kind}-{iface_id(ifname)}"


def policy_key(pid: PolicyID) -> str:
    return f"{pid.tier}\0{pid.namespace or ''}\0{pid.name}"


def policy_chain(pid: PolicyID, inbound: bool) -> str:
    return f"pol-{_h(policy_key(pid))}-{'i' if inbound else 'o'}"


def profile_chain(profile_id: str, inbound: bool) -> str:
    return f"pro-{_h(profile_id)}-{'i' if inbound else 'o'}"


def _set_suffix(set_id: str) -> str:
    safe = set_id.replace(":", "_")
    if re.fullmatch(r"[A-Za-z0-9_-]{1,200}", safe):
        return safe
    return _h(set_id, 16)


def net_set_name(set_id: str, family: int) -> str:
    return f"s{family}-{_set_suffix(set_id)}"


def port_set_name(set_id: str, family: int) -> str:
    return f"p{family}-{_set_suffix(set_id)}"


def net_set(set_id: str, family: int) -> nft.Set:
    return nft.Set(
        net_set_name(set_id, family),
        type="ipv4_addr" if family == 4 else "ipv6_addr",
        flags=("interval",),
        comment=short_comment(set_id),
    )


def port_set(set_id: str, family: int) -> nft.Set:
    addr = "ipv4_addr" if family == 4 else "ipv6_addr"
    return nft.Set(
        port_set_name(set_id, family),
        type=f"{addr} . inet_proto . inet_service",
        comment=short_comment(set_id),
    )


def proto_name(proto: str | int) -> str:
    """Protocol as nft lists it in set elements (name for the common ones)."""
    if isinstance(proto, int) or proto.isdigit():
        n = int(proto)
        return _PROTO_NAMES.get(n, str(n))
    low = proto.lower()
    if low in _PROTO_NUMBERS:
        return _PROTO_NAMES[_PROTO_NUMBERS[low]]
    return low


# ------------------------------------------------------------------ chains as data


@dataclass(frozen=True, slots=True)
class RuleSpec:
    body: str
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class ChainSpec:
    """A chain as gingham wants it: its declaration, rules and rank."""

    chain: nft.Chain
    rules: tuple[RuleSpec, ...]
    rank: int

    @property
    def name(self) -> str:
        return self.chain.name

    @property
    def marker(self) -> str:
        text = "\n".join(f"{r.body}#{r.comment}" for r in self.rules)
        base = self.chain
        if base.is_base:
            text = f"{base.type} {base.hook} {base.priority} {base.policy}\n{text}"
        return f"v:{_h(text)}"

    def nft_rules(self) -> list[nft.Rule]:
        marker = nft.Rule(self.name, "counter", comment=self.marker)
        return [marker] + [nft.Rule(self.name, r.body, comment=r.comment) for r in self.rules]


def make_chain(
    name: str, rules: list[RuleSpec] | tuple[RuleSpec, ...], rank: int, comment: str | None = None
) -> ChainSpec:
    c = nft.Chain(name, comment=None if comment is None else short_comment(comment))
    return ChainSpec(c, tuple(rules), rank)


def hep_ifaces_set() -> nft.Set:
    return nft.Set(HEP_IFACES, type="ifname")


def anti_spoof_sets() -> list[nft.Set]:
    return [
        nft.Set(SPOOF_V4, type="ifname . ipv4_addr", flags=("interval",)),
        nft.Set(SPOOF_V6, type="ifname . ipv6_addr", flags=("interval",)),
        nft.Set(RPF_V6, type="ifname"),
    ]


def workload_match(prefixes: tuple[str, ...] | list[str]) -> str:
    """The nft right-hand side matching workload interface names: ``"gh*"`` or
    ``{ "gh*", "tap*" }`` (wildcards work in anonymous ifname sets too).

    Prefixes come validated (:func:`gingham.model.endpoints.parse_interface_prefixes`);
    the check here only keeps a bad one from reaching an nft script.
    """
    if not prefixes:
        raise ValueError("no workload interface prefix")
    for p in prefixes:
        if not _SAFE_IFACE.match(p):
            raise ValueError(f"invalid workload interface prefix {p!r}")
    items = [f'"{p}*"' for p in prefixes]
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def tunnel_drop_rules(vxlan_port: int | None, ipip: bool, log_drops: bool) -> list[RuleSpec]:
    """Drops of VXLAN (UDP to ``vxlan_port``) and IPIP (IP protocol 4) packets that
    workloads send, as Calico's allowVXLANPacketsFromWorkloads and
    allowIPIPPacketsFromWorkloads (both false by default) ask: a workload must not
    inject packets into the hosts' tunnels. ``vxlan_port`` None and ``ipip`` False:
    none."""
    rules: list[RuleSpec] = []
    if vxlan_port is not None:
        rules += drop_rules(f"udp dport {int(vxlan_port)}",
                            VXLAN_FROM_WORKLOAD, log_drops)
    if ipip:
        rules += drop_rules("meta l4proto 4", IPIP_FROM_WORKLOAD, log_drops)
    return rules


def anti_spoof_rules(wl: str, log_drops: bool, tunnel_drops: list[RuleSpec] | None = None,
                     ) -> tuple[list[RuleSpec], list[ChainSpec]]:
    """The body of ``raw-wl`` and the chains it jumps to; see the module doc.

    Every packet from a workload passes these rules, so each check is one
    lookup: a logged drop goes to a chain of its own (log, then count and
    drop) instead of repeating the lookup in a log rule before the drop rule.
    ``tunnel_drops`` (:func:`tunnel_drop_rules`) come first: they hold whatever
    the source address.
    """
    rules = [RuleSpec(f"iifname != {wl} return"), *(tunnel_drops or ()),
             RuleSpec(f"meta nfproto ipv6 {LINK_SCOPE_V6} return", comment="link-scope")]
    checks = [(f"meta nfproto ipv{fam} iifname . {ip} saddr != @{name}", "anti-spoof")
              for fam, ip, name in ((4, "ip", SPOOF_V4), (6, "ip6", SPOOF_V6))]
    checks.append((f"meta nfproto ipv6 iifname @{RPF_V6} fib saddr . iif oif missing",
                   "reverse-path"))
    chains: dict[str, ChainSpec] = {}
    for match, marker in checks:
        if not log_drops:
            rules += drop_rules(match, marker, False)
            continue
        name = f"drop-{marker}"
        chains[name] = make_chain(name, drop_rules("", marker, True), RANK_ENDPOINT,
                                  f"{marker} drop, logged")
        rules.append(RuleSpec(f"{match} goto {name}"))
    return rules, list(chains.values())


def dispatch_maps() -> list[nft.Map]:
    return [nft.Map(name, type="ifname : verdict") for name in DISPATCH_MAPS]


def dispatch_element(map_name: str, ifname: str, chain: str) -> nft.Element:
    return nft.Element(map_name, f'"{ifname}"', f"jump {chain}")


def base_chains(
    endpoint_to_host: str = "Drop",
    failsafe_in: tuple[FailsafePort, ...] = (),
    failsafe_out: tuple[FailsafePort, ...] = (),
    log_drops: bool = False,
    prefixes: tuple[str, ...] = DEFAULT_PREFIXES,
    workload_vxlan_port: int | None = None,
    workload_ipip: bool = False,
) -> list[ChainSpec]:
    """The base chains (and the drop chains ``raw-wl`` jumps to); those for host
    endpoints depend on configuration.

    ``endpoint_to_host`` is FelixConfiguration's defaultEndpointToHostAction:
    ``Drop`` (default), ``Accept``, or ``Return`` (let host-endpoint policy decide).
    ``failsafe_*`` are the ports kept open on host endpoints (inbound from their
    ``net`` only, outbound to it, when they name one).
    ``log_drops``: gingham's own drops also log (rate-limited).
    ``prefixes``: workload interface prefixes (FelixConfiguration interfacePrefix).
    ``workload_vxlan_port``/``workload_ipip``: drop VXLAN to that port / IPIP that
    workloads send (:func:`tunnel_drop_rules`).
    """
    wl = workload_match(prefixes)
    spoof_rules, spoof_chains = anti_spoof_rules(
        wl, log_drops, tunnel_drop_rules(workload_vxlan_port, workload_ipip, log_drops))
    head = [RuleSpec(ESTABLISHED), RuleSpec(INVALID)]
    untracked = RuleSpec(f"meta mark and {UNTRACKED_MARK:#x} != 0 accept")

    def base(name: str, hook: str, prio: int, rules: list[RuleSpec],
             tracked: bool = True) -> ChainSpec:
        c = nft.Chain(name, type="filter", hook=hook, priority=prio, policy="accept")
        return ChainSpec(c, tuple((head if tracked else []) + rules), RANK_BASE)

    action = endpoint_to_host.capitalize()
    if action not in ("Drop", "Accept", "Return"):
        raise ValueError(f"defaultEndpointToHostAction must be Drop, Accept or Return: {action!r}")
    to_host: list[RuleSpec] = [untracked, RuleSpec(f"iifname {wl} {NDP}")]
    if action == "Drop":
        to_host += drop_rules(f"iifname {wl}", "endpoint-to-host", log_drops)
    elif action == "Accept":
        to_host.append(RuleSpec(f"iifname {wl} counter accept", comment="endpoint-to-host"))
    to_host += _failsafe_rules(failsafe_in, f"iifname != {wl}", "failsafe-in")
    to_host.append(RuleSpec(f"iifname != {wl} iifname vmap @{MAP_TO_HEP}"))
    to_host.append(_all_ifaces("iifname", "th", wl))

    out_host = [untracked]
    out_host += _failsafe_rules(failsafe_out, f"oifname != {wl}", "failsafe-out")
    out_host.append(RuleSpec(f"oifname != {wl} oifname vmap @{MAP_FROM_HEP}"))
    out_host.append(_all_ifaces("oifname", "fh", wl))

    def hep(guard: str, ports: tuple[FailsafePort, ...], fs: str, dispatch: str,
            ) -> list[RuleSpec]:
        rules = _failsafe_rules(ports, guard, fs) if ports else []
        return [*rules, RuleSpec(f"{guard} {guard.split()[0]} vmap @{dispatch}")]

    return [
        base(
            FWD_FROM_WL,
            "forward",
            0,
            [
                RuleSpec(f"iifname vmap @{MAP_FROM_WL}"),
                *drop_rules(f"iifname {wl}", "unknown-workload", log_drops),
            ],
        ),
        base(
            FWD_TO_WL,
            "forward",
            10,
            [
                RuleSpec(f"oifname vmap @{MAP_TO_WL}"),
                *drop_rules(f"oifname {wl}", "unknown-workload", log_drops),
            ],
        ),
        base(
            IN_FROM_WL,
            "input",
            0,
            [
                RuleSpec(f"iifname {wl} {NDP}"),
                RuleSpec(f"iifname vmap @{MAP_FROM_WL}"),
                *drop_rules(f"iifname {wl}", "unknown-workload", log_drops),
            ],
        ),
        base(IN_HOST, "input", 10, to_host),
        base(OUT_HOST, "output", 0, out_host),
        base(FWD_HEP_IN, "forward", 20,
             [untracked, RuleSpec(f"iifname != {wl} iifname vmap @{MAP_FWD_HEP_IN}"),
              _all_ifaces("iifname", "fi", wl)]),
        base(FWD_HEP_OUT, "forward", 30,
             [untracked, RuleSpec(f"oifname != {wl} oifname vmap @{MAP_FWD_HEP_OUT}"),
              _all_ifaces("oifname", "fo", wl)]),
        base(PRE_HEP, "prerouting", -150,
             [RuleSpec(ESTABLISHED),
              *hep(f"iifname != {wl}", failsafe_in, "failsafe-in", MAP_PRE_HEP),
              _all_ifaces("iifname", "pd", wl)],
             tracked=False),
        # conntrack has not run yet at raw priority: no ct state here
        base(RAW_PRE, "prerouting", -300,
             hep(f"iifname != {wl}", failsafe_in, "failsafe-in", MAP_RAW_HEP_IN), tracked=False),
        base(RAW_OUT, "output", -300,
             hep(f"oifname != {wl}", failsafe_out, "failsafe-out", MAP_RAW_HEP_OUT),
             tracked=False),
        base(RAW_WL, "prerouting", -300, spoof_rules, tracked=False),
        *spoof_chains,
    ]


LOG_DROP_RATE = "limit rate 10/second burst 20 packets"
"""How many of gingham's own drops per rule reach the kernel log (``gingham flows``)."""


def drop_rules(match: str, comment: str, log: bool) -> list[RuleSpec]:
    """A counted drop named ``comment``, preceded (``log``) by a rate-limited log
    line with the prefix ``gingham <comment>: `` (the form Log rules use)."""
    head = f"{match} " if match else ""
    out = []
    if log:
        prefix = f"{PACKET_LOG_PREFIX}{comment}: "[:127]
        out.append(RuleSpec(f'{head}{LOG_DROP_RATE} log prefix "{prefix}"'))
    out.append(RuleSpec(f"{head}counter drop", comment=comment))
    return out


def _all_ifaces(field_: str, kind: str, wl: str) -> RuleSpec:
    return RuleSpec(f'{field_} != {wl} {field_} != "lo" {field_} != @{HEP_IFACES} '
                    f'jump {hep_chain(kind, "*")}')


def all_interface_chains() -> list[ChainSpec]:
    """The all-interfaces host-endpoint chains, empty (they return) until a
    ``*`` host endpoint exists; base chains always jump to them."""
    return [make_chain(hep_chain(kind, "*"), [], RANK_ENDPOINT, "all-interfaces host endpoint")
            for kind in ALL_HEP_KINDS]


def _failsafe_rules(ports: tuple[FailsafePort, ...], guard: str, comment: str,
                    ) -> list[RuleSpec]:
    """One accept per protocol and net: an inbound port with a net admits sources in it
    only (``saddr``), an outbound one destinations in it (``daddr``; ``guard`` says
    which: it names ``oifname`` for outbound)."""
    side = "daddr" if guard.startswith("oifname") else "saddr"
    groups: dict[tuple[str, str], list[int]] = {}
    for fs in ports:
        groups.setdefault((proto_name(fs.protocol), fs.net or ""), []).append(int(fs.port))
    out = []
    for (proto, net), plist in sorted(groups.items()):
        ps = sorted(set(plist))
        pset = str(ps[0]) if len(ps) == 1 else "{ " + ", ".join(map(str, ps)) + " }"
        where = f"{'ip6' if ':' in net else 'ip'} {side} {net} " if net else ""
        out.append(RuleSpec(f"{guard} {where}meta l4proto {proto} th dport {pset} counter accept",
                            comment=comment))
    return out
