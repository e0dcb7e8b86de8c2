"""nft data types as the kernel stores them: ids, sizes, byte order, values.

A value's bytes are what nft would put in a register or a set key for the
same text, so a rule or element written by :mod:`gingham.dataplane.nft_netlink`
lists exactly like one ``nft -f -`` wrote. Anything not known here raises
:class:`Unsupported`, which makes that transaction go through ``nft`` instead.
The numbers (type ids, symbolic names) are nft 1.0's; the kernel never sees
the ids except in set declarations, where nft reads them back to print.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable
from dataclasses import dataclass

from gingham.errors import DataplaneError

HOST, BIG = 1, 2  # nft byte orders, as kept in a set's userdata
IFNAMSIZ = 16


class Unsupported(DataplaneError):
    """The netlink encoder does not know this form: use ``nft -f -`` for the transaction."""


def _uint(size: int, order: int, value: int) -> bytes:
    if not 0 <= value < 1 << (8 * size):
        raise Unsupported(f"value {value} does not fit {size} bytes")
    return value.to_bytes(size, "big" if order == BIG else "little")


def _number(text: str, names: dict[str, int] | None = None) -> int:
    if names and text in names:
        return names[text]
    try:
        return int(text, 0)
    except ValueError:
        raise Unsupported(f"not a number: {text!r}") from None


PROTOCOLS = {"icmp": 1, "igmp": 2, "ipip": 4, "tcp": 6, "egp": 8, "udp": 17, "ipv6": 41,
             "gre": 47, "esp": 50, "ah": 51, "icmpv6": 58, "ipv6-icmp": 58, "sctp": 132,
             "udplite": 136}
NFPROTO = {"ipv4": 2, "ipv6": 10}
ICMP_TYPES = {"echo-reply": 0, "destination-unreachable": 3, "source-quench": 4,
              "redirect": 5, "echo-request": 8, "router-advertisement": 9,
              "router-solicitation": 10, "time-exceeded": 11, "parameter-problem": 12,
              "timestamp-request": 13, "timestamp-reply": 14, "info-request": 15,
              "info-reply": 16, "address-mask-request": 17, "address-mask-reply": 18}
ICMPV6_TYPES = {"destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3,
                "parameter-problem": 4, "echo-request": 128, "echo-reply": 129,
                "mld-listener-query": 130, "mld-listener-report": 131,
                "mld-listener-done": 132, "mld-listener-reduction": 132,
                "nd-router-solicit": 133, "nd-router-advert": 134,
                "nd-neighbor-solicit": 135, "nd-neighbor-advert": 136, "nd-redirect": 137,
                "router-renumbering": 138, "ind-neighbor-solicit": 141,
                "ind-neighbor-advert": 142, "mld2-listener-report": 143}
CT_STATES = {"invalid": 1, "established": 2, "related": 4, "new": 8, "untracked": 64}


@dataclass(frozen=True, slots=True)
class DataType:
    """``size`` in bytes; ``parse`` turns one value's text into exactly ``size`` bytes."""

    name: str
    id: int
    size: int
    order: int
    parse: Callable[[str], bytes]
    prefixes: bool = False  # addresses: a/len and a-b are values too

    def first_last(self, text: str) -> tuple[bytes, bytes]:
        """The inclusive range a value, prefix or ``a-b`` range covers."""
        return _first_last(self, text)

    def _first_last(self, text: str) -> tuple[bytes, bytes]:
        if self.prefixes and "/" in text:
            addr, _, bits = text.partition("/")
            raw = self.parse(addr)
            width = 8 * self.size
            if not bits.isdigit() or int(bits) > width:
                raise Unsupported(f"not a network: {text!r}")
            host = (1 << (width - int(bits))) - 1
            n = int.from_bytes(raw, "big") & ~host
            return n.to_bytes(self.size, "big"), (n | host).to_bytes(self.size, "big")
        try:
            b = self.parse(text)
        except Unsupported:
            # symbolic names (destination-unreachable) hold dashes too: a range
            # only when the whole is not a value
            if "-" not in text or self.name == "ifname":
                raise
        else:
            return b, b
        lo, _, hi = text.partition("-")
        first, last = self.parse(lo.strip()), self.parse(hi.strip())
        if first > last:
            raise Unsupported(f"empty range {text!r}")
        return first, last


@functools.lru_cache(maxsize=1 << 16)
def _first_last(dtype: DataType, text: str) -> tuple[bytes, bytes]:
    # the same elements are checked and then encoded, and a resync lists them again
    return dtype._first_last(text)


def _addr(version: int) -> Callable[[str], bytes]:
    family = socket.AF_INET if version == 4 else socket.AF_INET6

    def parse(text: str) -> bytes:
        try:
            return socket.inet_pton(family, text)
        except OSError:
            raise Unsupported(f"not an IPv{version} address: {text!r}") from None

    return parse


def _ifname(text: str) -> bytes:
    name = text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text
    raw = name.encode()
    if not raw or len(raw) >= IFNAMSIZ or b"\\" in raw or b"*" in raw:
        raise Unsupported(f"interface name {text!r}")
    return raw.ljust(IFNAMSIZ, b"\0")


TYPES: dict[str, DataType] = {t.name: t for t in (
    DataType("ipv4_addr", 7, 4, BIG, _addr(4), prefixes=True),
    DataType("ipv6_addr", 8, 16, BIG, _addr(6), prefixes=True),
    DataType("inet_proto", 12, 1, BIG, lambda s: _uint(1, BIG, _number(s, PROTOCOLS))),
    DataType("inet_service", 13, 2, BIG, lambda s: _uint(2, BIG, _number(s))),
    DataType("icmp_type", 14, 1, BIG, lambda s: _uint(1, BIG, _number(s, ICMP_TYPES))),
    DataType("mark", 19, 4, HOST, lambda s: _uint(4, HOST, _number(s))),
    DataType("ct_state", 26, 4, HOST, lambda s: _uint(4, HOST, _number(s, CT_STATES))),
    DataType("icmpv6_type", 29, 1, BIG, lambda s: _uint(1, BIG, _number(s, ICMPV6_TYPES))),
    DataType("icmp_code", 32, 1, BIG, lambda s: _uint(1, BIG, _number(s))),
    DataType("icmpv6_code", 33, 1, BIG, lambda s: _uint(1, BIG, _number(s))),
    DataType("ifname", 41, IFNAMSIZ, HOST, _ifname),
    DataType("nf_proto", 2, 1, HOST, lambda s: _uint(1, HOST, _number(s, NFPROTO))),
)}
_TYPE_BITS = 6


def padded(size: int) -> int:
    """Bytes a value takes in a concatenation (each part starts on a 32-bit register)."""
    return (size + 3) & ~3


def key_types(spec: str) -> list[DataType]:
    """``ipv4_addr . inet_service`` -> its data types (Unsupported if one is unknown)."""
    out = []
    for part in spec.split("."):
        t = TYPES.get(part.strip())
        if t is None:
            raise Unsupported(f"set type {part.strip()!r}")
        out.append(t)
    return out


def concat_id(types: list[DataType]) -> int:
    """The key type id of a set: a concatenation packs its parts' ids, 6 bits each."""
    n = 0
    for t in types:
        n = (n << _TYPE_BITS) | t.id
    return n


def key_len(types: list[DataType]) -> int:
    if len(types) == 1:
        return types[0].size
    return sum(padded(t.size) for t in types)


def wildcard(text: str) -> bytes | None:
    """The bytes an ifname wildcard (``"gh*"``) compares, or None if ``text`` is not one."""
    name = text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text
    if not name.endswith("*") or "\\" in name:
        return None
    raw = name[:-1].encode()
    if not raw or len(raw) >= IFNAMSIZ or b"*" in raw:
        raise Unsupported(f"interface wildcard {text!r}")
    return raw
