"""BIRD 2 configuration for one host: pure rendering, golden-file tested.

Sessions (:func:`plan_sessions`), in the order BIRD sees them:

* node-to-node mesh (``Mesh_<ip>``): every other host, when the mesh is on and no
  host has a route reflector cluster id;
* route reflectors: when any host has a ``rr_cluster_id`` the mesh is off; a
  reflector peers with the other reflectors (``RR_<ip>``) and with every client
  (``RRClient_<ip>``, ``rr client``); a client peers with every reflector
  (``RR_<ip>``);
* BGPPeer resources: ``Global_<ip>`` (no node or nodeSelector) or ``Node_<ip>``
  (``node`` names this host or ``nodeSelector`` matches its labels); with
  ``peerSelector`` the peers are the selected hosts instead of ``peerIP``.
  An address already covered by an earlier session is skipped.

IPv4 sessions carry the ipv4 channel, IPv6 sessions (between IPv6 underlay
addresses) the ipv6 channel; the router id is the host's IPv4 address. A
session of a family this host has no address of is left out (and noted).

Ports: BIRD listens on this host's listenPort (``local ... port``); another
gingham host is reached on its own listenPort, an external peer on the port of
its peerIP (179 unless given).

Passwords: a session's password comes from a file on the host (BGPPeer
``password.file``; the mesh's from BGPConfiguration ``nodeMeshPassword.file``).
The renderer never reads files: the caller passes ``secrets`` (file -> password,
read by :mod:`gingham.routing.secrets`); a session whose file has no usable
password is left out (and noted), never brought up without one. BIRD
authenticates with TCP MD5; the text holds the password, so it is written 0600.

Exports: this host's blocks and its borrowed /32 (/128) addresses, and the
service CIDRs (serviceClusterIPs, serviceExternalIPs), as blackhole routes of
``static`` protocols, nothing else — except that a route reflector also passes
on BGP routes inside the pools. prefixAdvertisements add their communities to
every exported route inside their CIDR. Imports: everything a peer sends; the
``kernel`` protocol writes only BGP routes into the main table (``proto bird``,
metric 512, so a route the agent programs with protocol 201 and the default
metric 0 for the same destination wins: the agent's VXLAN routes are never
shadowed), and never one inside a service CIDR: every host announces those and
keeps traffic to them (kube-proxy's DNAT or the agent's loop-prevention drop).
iBGP peers on this host's subnet are ``direct`` sessions (next hop used as
received); iBGP across subnets is multihop with recursive next hops, which BIRD
cannot resolve (it imports no underlay routes) and therefore never installs:
across subnets the agent's VXLAN routes, or the fabric, carry the traffic.

Logging (logSeverityScreen): Debug and Trace log every message and add protocol
debugging; Info logs every message; Warning, Error and Fatal only their class
and worse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Literal

from gingham.calc.messages import BgpConfig
from gingham.calc.routing_types import (
    BGP_PORT,
    BGPSettings,
    HostInfo,
    IPAddress,
    IPNetwork,
    PeerInfo,
    PrefixAdvertisementInfo,
)
from gingham.errors import ValidationError
from gingham.routing.status import PROTOCOL_TIME_FORMAT

SessionKind = Literal["mesh", "rr", "rr-client", "global", "node"]
_PREFIX: dict[SessionKind, str] = {
    "mesh": "Mesh",
    "rr": "RR",
    "rr-client": "RRClient",
    "global": "Global",
    "node": "Node",
}
KERNEL_METRIC = 512
TCP_MD5_MAX_KEY = 80  # bytes (Linux TCP_MD5SIG_MAXKEYLEN)

LabelMatcher = Callable[[str, Mapping[str, str]], bool]


def _selector_matches(expr: str, labels: Mapping[str, str]) -> bool:
    from gingham.selector import parse

    return parse(expr)(labels)


def protocol_name(kind: SessionKind, ip: IPAddress) -> str:
    return f"{_PREFIX[kind]}_" + str(ip).replace(".", "_").replace(":", "_")


@dataclass(frozen=True)
class Session:
    kind: SessionKind
    peer_ip: IPAddress
    peer_as: int
    peer_port: int = BGP_PORT
    rr_client: bool = False
    multihop: bool = False
    direct: bool = False
    password_file: str | None = None
    keep_next_hop: bool = False
    from_selector: bool = False  # the peer is a gingham host picked by peerSelector

    @property
    def name(self) -> str:
        return protocol_name(self.kind, self.peer_ip)


@dataclass(frozen=True)
class LeftOut:
    """A planned session the configuration does not hold, and why."""

    session: str
    reason: str
    password_file: str | None = None


def host_as(settings: BGPSettings, host: HostInfo) -> int:
    return host.as_number if host.as_number is not None else settings.as_number


def _applies_to(peer: PeerInfo, me: HostInfo, match: LabelMatcher) -> bool:
    if peer.node is not None:
        return peer.node == me.name
    if peer.node_selector is not None:
        return match(peer.node_selector, me.labels)
    return True


def plan_sessions(
    settings: BGPSettings,
    me: HostInfo,
    hosts: Iterable[HostInfo],
    match: LabelMatcher = _selector_matches,
) -> list[Session]:
    others = sorted((h for h in hosts if h.name != me.name), key=lambda h: h.name)
    everyone = [me, *others]
    my_as = host_as(settings, me)
    sessions: dict[IPAddress, Session] = {}

    def add(kind: SessionKind, ip: IPAddress | None, peer_as: int, **kw: object) -> None:
        if ip is None or ip in sessions or ip in (me.address_v4, me.address_v6):
            return
        subnet = me.subnet(ip.version)
        on_link = subnet is not None and ip in subnet
        sessions[ip] = Session(
            kind,
            ip,
            peer_as,
            multihop=peer_as != my_as and not on_link,
            direct=peer_as == my_as and on_link,
            **kw,  # type: ignore[arg-type]
        )

    def host_session(kind: SessionKind, h: HostInfo, version: int, **kw: object) -> None:
        add(kind, h.address(version), host_as(settings, h), peer_port=settings.port_of(h.name),
            **kw)

    reflectors = [h for h in everyone if h.rr_cluster_id]
    for version in (4, 6):
        if reflectors:
            for h in others:
                if h.rr_cluster_id:
                    host_session("rr", h, version)
                elif me.rr_cluster_id:
                    host_session("rr-client", h, version, rr_client=True)
        elif settings.node_to_node_mesh:
            for h in others:
                host_session("mesh", h, version, password_file=settings.mesh_password_file)

    for peer in sorted(settings.peers, key=lambda p: p.name):
        if not _applies_to(peer, me, match):
            continue
        kind: SessionKind = "global" if peer.node is None and peer.node_selector is None else "node"
        extra = {"password_file": peer.password_file,
                 "keep_next_hop": peer.keep_original_next_hop}
        if peer.peer_selector is not None:
            for h in others:
                if match(peer.peer_selector, h.labels):
                    for version in (4, 6):
                        host_session(kind, h, version, from_selector=True, **extra)
        elif peer.peer_ip is not None:
            if peer.as_number is None:
                raise ValidationError(
                    "a BGPPeer with peerIP needs asNumber", f"BGPPeer {peer.name}"
                )
            add(kind, peer.peer_ip, peer.as_number, peer_port=peer.port, **extra)
    return list(sessions.values())


def password_problem(text: str) -> str | None:
    """Why ``text`` cannot be a BGP session password in BIRD's configuration, or None.
    (TCP MD5 keys are at most 80 bytes; BIRD's lexer has no escapes inside strings.)"""
    if not text:
        return "it is empty"
    if len(text.encode()) > TCP_MD5_MAX_KEY:
        return f"it is longer than {TCP_MD5_MAX_KEY} bytes"
    if not text.isascii() or not text.isprintable() or any(c in text for c in '"\\'):
        return "it holds quotes, backslashes, control or non-ASCII characters"
    return None


def _cluster_id(me: HostInfo) -> str:
    raw = me.rr_cluster_id or ""
    try:
        return str(IPv4Address(raw))
    except ValueError:
        raise ValidationError(
            f"routeReflectorClusterID must be dotted-quad like 244.0.0.1, not {raw!r}",
            f"Node {me.name}: spec.bgp.routeReflectorClusterID",
        ) from None


_LOG_CLASSES: Mapping[str, str] = {
    "Trace": "all",
    "Debug": "all",
    "Info": "all",
    "Warning": "{ warning, error, auth, fatal, bug }",
    "Error": "{ error, auth, fatal, bug }",
    "Fatal": "{ fatal, bug }",
}


def _log_lines(severity: str, log_file: str | None) -> list[str]:
    target = f'"{log_file}"' if log_file else "stderr"
    lines = [f"log {target} {_LOG_CLASSES.get(severity, 'all')};"]
    if severity in ("Trace", "Debug"):
        lines.append("debug protocols all;")
    return lines


def _community(value: str) -> str:
    parts = ", ".join(value.split(":"))
    attr = "bgp_large_community" if value.count(":") == 2 else "bgp_community"
    return f"{attr}.add(({parts}));"


def _net_key(net: IPNetwork) -> tuple[int, int, int]:
    return (net.version, int(net.network_address), net.prefixlen)


def _prefix_set(nets: Iterable[IPNetwork]) -> str:
    return "[ " + ", ".join(f"{n}+" for n in sorted(nets, key=_net_key)) + " ]"


def _community_function(v: int, ads: Iterable[PrefixAdvertisementInfo]) -> list[str]:
    """``gingham_communities<v>()``: the communities of every advertisement of family ``v``
    (a route inside several CIDRs gets the communities of each)."""
    mine = [a for a in ads if a.cidr.version == v and a.communities]
    if not mine:
        return []
    out = [f"function gingham_communities{v}() {{"]
    for ad in sorted(mine, key=lambda a: _net_key(a.cidr)):
        adds = " ".join(_community(c) for c in ad.communities)
        out.append(f"  if net ~ [ {ad.cidr}+ ] then {{ {adds} }}")
    return [*out, "}", ""]


def render_bird_config(
    config: BgpConfig,
    *,
    log_file: str | None = None,
    match: LabelMatcher = _selector_matches,
    secrets: Mapping[str, str] | None = None,
    notes: list[LeftOut] | None = None,
) -> str:
    """The whole ``bird.conf`` for host ``config.me``. Same inputs, same text (reloads
    compare it). ``secrets``: password file -> password; ``notes`` (if given) gets every
    session left out, with why."""
    settings, me = config.settings, config.me
    if me.address_v4 is None:
        raise ValidationError("BGP needs an IPv4 address for the router id", f"Node {me.name}")
    secrets = secrets or {}
    sessions = plan_sessions(settings, me, config.hosts, match)
    prefixes = config.exported
    pool_list = sorted(set(config.pools), key=lambda p: _net_key(p.cidr))
    is_rr = bool(me.rr_cluster_id)
    cluster = _cluster_id(me) if is_rr else None
    my_as = host_as(settings, me)
    services = [n for n in settings.service_cidrs]
    left_out: list[LeftOut] = []

    out: list[str] = [f"# BIRD configuration for {me.name}, rendered by gingham. Do not edit."]
    out += _log_lines(settings.log_severity, log_file)
    out += [f"router id {me.address_v4};",
            # One word with its zone: status.parse_protocols makes RFC 3339 UTC of it.
            f'timeformat protocol "{PROTOCOL_TIME_FORMAT}";',
            "", "protocol device {", "  scan time 10;", "}", ""]  # fmt: skip
    out += [
        "# Only BGP-learned routes reach the kernel; the agent owns everything else.",
        "filter gingham_kernel_export {",
    ]
    for v in (4, 6):
        fam = [n for n in services if n.version == v]
        if fam:
            out.append(f"  if net.type = NET_IP{v} && net ~ {_prefix_set(fam)} then reject;")
    out += [
        "  if source = RTS_BGP && dest = RTD_UNICAST then accept;",
        "  reject;",
        "}",
        "",
    ]
    for v in (4, 6):
        local = me.address(v)
        fam_services = [n for n in services if n.version == v]
        out += [
            f"protocol kernel gingham_kernel{v} {{",
            f"  ipv{v} {{ import none; export filter gingham_kernel_export; }};",
            f"  metric {KERNEL_METRIC};",
            "}",
            "",
            f"protocol static gingham_blocks{v} {{",
            f"  ipv{v};",
        ]
        out += [f"  route {p} blackhole;" for p in prefixes if p.version == v]
        out += ["}", ""]
        if fam_services:
            out += [f"protocol static gingham_services{v} {{", f"  ipv{v};"]
            out += [f"  route {n} blackhole;" for n in sorted(fam_services, key=_net_key)]
            out += ["}", ""]
        communities = _community_function(v, settings.prefix_advertisements)
        out += communities
        out.append(f"filter gingham_export{v} {{")
        if communities:
            out.append(f"  gingham_communities{v}();")
        out.append(f'  if proto = "gingham_blocks{v}" then accept;')
        if fam_services:
            out.append(f'  if proto = "gingham_services{v}" then accept;')
        reflected = [p.cidr for p in pool_list if p.cidr.version == v]
        if is_rr and reflected:
            out.append(f"  if source = RTS_BGP && net ~ {_prefix_set(reflected)} then accept;")
        out += ["  reject;", "}", ""]
        fam_sessions = []
        for s in sessions:
            if s.peer_ip.version != v:
                continue
            if local is None:
                left_out.append(LeftOut(s.name, f"this host has no IPv{v} address"))
                continue
            if s.password_file is not None and s.password_file not in secrets:
                left_out.append(LeftOut(s.name, f"no password from {s.password_file}",
                                        s.password_file))
                continue
            fam_sessions.append(s)
        if not fam_sessions:
            continue
        assert local is not None
        my_port = settings.port_of(me.name)
        port = "" if my_port == BGP_PORT else f" port {my_port}"
        out += [f"template bgp gingham_peer{v} {{", f"  local {local}{port} as {my_as};"]
        for opt, value in (
            ("hold time", settings.hold_time),
            ("keepalive time", settings.keepalive_time),
            ("connect retry time", settings.connect_retry_time),
            ("connect delay time", settings.connect_retry_time),
        ):
            if value is not None:
                out.append(f"  {opt} {value};")
        out += ["  graceful restart;", f"  ipv{v} {{", "    import all;"]
        out += [f"    export filter gingham_export{v};", "  };", "}", ""]
        for s in fam_sessions:
            out += [f"protocol bgp {s.name} from gingham_peer{v} {{"]
            their_port = "" if s.peer_port == BGP_PORT else f" port {s.peer_port}"
            out.append(f"  neighbor {s.peer_ip}{their_port} as {s.peer_as};")
            if s.direct:
                out.append("  direct;")
            if s.keep_next_hop:
                out.append(f"  ipv{v} {{ next hop keep; }};")
            if s.multihop:
                out.append("  multihop;")
            if s.rr_client:
                out += ["  rr client;", f"  rr cluster id {cluster};"]
            if s.password_file is not None:
                secret = secrets[s.password_file]
                if password_problem(secret) is not None:  # the reader checks; never render one
                    raise ValidationError("not a usable BGP password", s.password_file)
                out.append(f'  password "{secret}";')
            out += ["}", ""]
    if notes is not None:
        notes.extend(left_out)
    return "\n".join(out).rstrip("\n") + "\n"
