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
addresses) the ipv6 channel; the router id is the host's IPv4 address.

Exports: this host's blocks and its borrowed /32 (/128) addresses, as
blackhole routes of a ``static`` protocol, nothing else — except that a route
reflector also passes on BGP routes inside the pools. Imports: everything a
peer sends; the ``kernel`` protocol writes only BGP routes into the main table
(``proto bird``, metric 512, so a route the agent programs with protocol 201
and the default metric 0 for the same destination wins: the agent's VXLAN
routes are never shadowed). iBGP peers on this host's subnet are ``direct``
sessions (next hop used as received); iBGP across subnets is multihop with
recursive next hops, which BIRD cannot resolve (it imports no underlay routes)
and therefore never installs: across subnets the agent's VXLAN routes, or the
fabric, carry the traffic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Literal

from gingham.calc.messages import BgpConfig
from gingham.calc.routing_types import BGPSettings, HostInfo, IPAddress, PeerInfo
from gingham.errors import ValidationError

SessionKind = Literal["mesh", "rr", "rr-client", "global", "node"]
_PREFIX: dict[SessionKind, str] = {
    "mesh": "Mesh",
    "rr": "RR",
    "rr-client": "RRClient",
    "global": "Global",
    "node": "Node",
}
KERNEL_METRIC = 512

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
    rr_client: bool = False
    multihop: bool = False
    direct: bool = False
    password: str | None = None
    keep_next_hop: bool = False
    from_selector: bool = False  # the peer is a gingham host picked by peerSelector

    @property
    def name(self) -> str:
        return protocol_name(self.kind, self.peer_ip)


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

    reflectors = [h for h in everyone if h.rr_cluster_id]
    for version in (4, 6):
        if reflectors:
            for h in others:
                if h.rr_cluster_id:
                    add("rr", h.address(version), host_as(settings, h))
                elif me.rr_cluster_id:
                    add("rr-client", h.address(version), host_as(settings, h), rr_client=True)
        elif settings.node_to_node_mesh:
            for h in others:
                add("mesh", h.address(version), host_as(settings, h))

    for peer in sorted(settings.peers, key=lambda p: p.name):
        if not _applies_to(peer, me, match):
            continue
        kind: SessionKind = "global" if peer.node is None and peer.node_selector is None else "node"
        extra = {"password": peer.password, "keep_next_hop": peer.keep_original_next_hop}
        if peer.peer_selector is not None:
            for h in others:
                if match(peer.peer_selector, h.labels):
                    for version in (4, 6):
                        add(
                            kind,
                            h.address(version),
                            host_as(settings, h),
                            from_selector=True,
                            **extra,
                        )
        elif peer.peer_ip is not None:
            if peer.as_number is None:
                raise ValidationError(
                    "a BGPPeer with peerIP needs asNumber", f"BGPPeer {peer.name}"
                )
            add(kind, peer.peer_ip, peer.as_number, **extra)
    return list(sessions.values())


def _bird_string(text: str) -> str:
    # BIRD's lexer has no escapes inside strings.
    if any(c in text for c in '"\\\n') or not text.isprintable():
        raise ValidationError(
            "must not contain quotes, backslashes or control characters", "password"
        )
    return text


def _cluster_id(me: HostInfo) -> str:
    raw = me.rr_cluster_id or ""
    try:
        return str(IPv4Address(raw))
    except ValueError:
        raise ValidationError(
            f"routeReflectorClusterID must be dotted-quad like 244.0.0.1, not {raw!r}",
            f"Node {me.name}: spec.bgp.routeReflectorClusterID",
        ) from None


def render_bird_config(
    config: BgpConfig,
    *,
    log_file: str | None = None,
    match: LabelMatcher = _selector_matches,
) -> str:
    """The whole ``bird.conf`` for host ``config.me``. Same inputs, same text (reloads
    compare it)."""
    settings, me = config.settings, config.me
    if me.address_v4 is None:
        raise ValidationError("BGP needs an IPv4 address for the router id", f"Node {me.name}")
    sessions = plan_sessions(settings, me, config.hosts, match)
    prefixes = config.exported
    pool_list = sorted(set(config.pools),
                       key=lambda p: (p.cidr.version, int(p.cidr.network_address)))
    is_rr = bool(me.rr_cluster_id)
    cluster = _cluster_id(me) if is_rr else None
    my_as = host_as(settings, me)

    out: list[str] = [f"# BIRD configuration for {me.name}, rendered by gingham. Do not edit."]
    out.append(f'log "{log_file}" all;' if log_file else "log stderr all;")
    out += [f"router id {me.address_v4};", "", "protocol device {", "  scan time 10;", "}", ""]
    out += [
        "# Only BGP-learned routes reach the kernel; the agent owns everything else.",
        "filter gingham_kernel_export {",
        "  if source = RTS_BGP && dest = RTD_UNICAST then accept;",
        "  reject;",
        "}",
        "",
    ]
    for v in (4, 6):
        local = me.address(v)
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
        out += [
            "}",
            "",
            f"filter gingham_export{v} {{",
            f'  if proto = "gingham_blocks{v}" then accept;',
        ]
        reflected = [str(p.cidr) for p in pool_list if p.cidr.version == v]
        if is_rr and reflected:
            nets = ", ".join(f"{c}+" for c in reflected)
            out.append(f"  if source = RTS_BGP && net ~ [ {nets} ] then accept;")
        out += ["  reject;", "}", ""]
        fam_sessions = [s for s in sessions if s.peer_ip.version == v]
        if not fam_sessions:
            continue
        if local is None:
            raise ValidationError(
                f"IPv{v} BGP peers need an IPv{v} host address", f"Node {me.name}"
            )
        port = "" if settings.listen_port == 179 else f" port {settings.listen_port}"
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
            # other gingham hosts listen on the same port; external peers on 179
            their_port = port if s.kind in ("mesh", "rr", "rr-client") or s.from_selector else ""
            out.append(f"  neighbor {s.peer_ip}{their_port} as {s.peer_as};")
            if s.direct:
                out.append("  direct;")
            if s.keep_next_hop:
                out.append(f"  ipv{v} {{ next hop keep; }};")
            if s.multihop:
                out.append("  multihop;")
            if s.rr_client:
                out += ["  rr client;", f"  rr cluster id {cluster};"]
            if s.password:
                out.append(f'  password "{_bird_string(s.password)}";')
            out += ["}", ""]
    return "\n".join(out).rstrip("\n") + "\n"
