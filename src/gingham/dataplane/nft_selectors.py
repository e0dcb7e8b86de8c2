"""What a rule can match on: nft's selectors as loads into a register.

Each selector is a meta key, a packet field (header base, offset, length) or a
conntrack key, with the data type of its values, the protocol a field needs
(nft adds the matching dependency when the rule has not established it) and
how nft names it in an anonymous set's userdata.
"""

from __future__ import annotations

from dataclasses import dataclass

from gingham.dataplane import nft_exprs as x
from gingham.dataplane.nft_types import NFPROTO, PROTOCOLS, TYPES, DataType


@dataclass(frozen=True, slots=True)
class Load:
    """Something a rule loads into a register: ``kind`` meta / payload / ct."""

    kind: str
    key: int  # meta or ct key; payload base
    offset: int
    size: int
    dtype: DataType
    net: int | None = None  # nfproto this field needs (ip / ip6 fields)
    l4: int | None = None  # l4proto this field needs (tcp, udp, icmp …)
    desc: tuple[int, ...] | None = None
    """How nft describes the expression in an anonymous set's userdata: its
    (protocol, field) ids for a payload field, (key,) for meta."""

    def encode(self, dreg: int = x.REG_1, size: int | None = None) -> bytes:
        if self.kind == "meta":
            return x.meta_load(self.key, dreg)
        if self.kind == "ct":
            return x.ct_load(self.key, dreg)
        return x.payload_load(self.key, self.offset, self.size if size is None else size, dreg)


def _meta(key: int, dtype: str) -> Load:
    t = TYPES[dtype]
    return Load("meta", key, 0, t.size, t, desc=(key,))


def _field(base: int, offset: int, dtype: str, *, net: int | None = None,
           l4: int | None = None, desc: tuple[int, int] | None = None) -> Load:
    t = TYPES[dtype]
    return Load("payload", base, offset, t.size, t, net, l4, desc)


_NET, _TH = x.NETWORK_HEADER, x.TRANSPORT_HEADER
IP4, IP6 = NFPROTO["ipv4"], NFPROTO["ipv6"]
# nft's proto_desc ids and header template indexes (kept in anonymous sets' userdata)
_D_ICMP, _D_UDP, _D_UDPLITE, _D_TCP, _D_SCTP, _D_TH, _D_IP, _DIP6, _D_ICMP6 = (
    4, 6, 7, 8, 10, 11, 12, 13, 14)

SELECTORS: dict[tuple[str, ...], Load] = {
    ("meta", "nfproto"): _meta(x.META_NFPROTO, "nf_proto"),
    ("meta", "l4proto"): _meta(x.META_L4PROTO, "inet_proto"),
    ("meta", "mark"): _meta(x.META_MARK, "mark"),
    ("meta", "iifname"): _meta(x.META_IIFNAME, "ifname"),
    ("meta", "oifname"): _meta(x.META_OIFNAME, "ifname"),
    ("iifname",): _meta(x.META_IIFNAME, "ifname"),
    ("oifname",): _meta(x.META_OIFNAME, "ifname"),
    ("ip", "saddr"): _field(_NET, 12, "ipv4_addr", net=IP4, desc=(_D_IP, 11)),
    ("ip", "daddr"): _field(_NET, 16, "ipv4_addr", net=IP4, desc=(_D_IP, 12)),
    ("ip6", "saddr"): _field(_NET, 8, "ipv6_addr", net=IP6, desc=(_DIP6, 8)),
    ("ip6", "daddr"): _field(_NET, 24, "ipv6_addr", net=IP6, desc=(_DIP6, 9)),
    ("th", "sport"): _field(_TH, 0, "inet_service", desc=(_D_TH, 1)),
    ("th", "dport"): _field(_TH, 2, "inet_service", desc=(_D_TH, 2)),
    ("icmp", "type"): _field(_TH, 0, "icmp_type", net=IP4, l4=1, desc=(_D_ICMP, 1)),
    ("icmp", "code"): _field(_TH, 1, "icmp_code", net=IP4, l4=1, desc=(_D_ICMP, 2)),
    ("icmpv6", "type"): _field(_TH, 0, "icmpv6_type", net=IP6, l4=58, desc=(_D_ICMP6, 1)),
    ("icmpv6", "code"): _field(_TH, 1, "icmpv6_code", net=IP6, l4=58, desc=(_D_ICMP6, 2)),
    ("ct", "state"): Load("ct", x.CT_STATE, 0, 4, TYPES["ct_state"]),
}
for _proto, _desc in (("tcp", _D_TCP), ("udp", _D_UDP), ("sctp", _D_SCTP),
                      ("udplite", _D_UDPLITE)):
    SELECTORS[(_proto, "sport")] = _field(_TH, 0, "inet_service", l4=PROTOCOLS[_proto],
                                          desc=(_desc, 1))
    SELECTORS[(_proto, "dport")] = _field(_TH, 2, "inet_service", l4=PROTOCOLS[_proto],
                                          desc=(_desc, 2))
