"""nf_tables expressions as netlink attributes (one ``NFTA_LIST_ELEM`` each).

Attribute numbers are the uapi header's; the order inside each expression is
the one nft 1.0 sends, so a rule encoded here is byte for byte the rule nft
would have sent (the tests compare both).
"""

from __future__ import annotations

from gingham.dataplane.nft_wire import attr, nest, strz, u32, u64

REG_VERDICT = 0
REG_1 = 1
_REG32_00 = 8

# nft_cmp_ops / nft_range_ops
CMP_EQ, CMP_NEQ, CMP_LT, CMP_LTE, CMP_GT, CMP_GTE = range(6)
RANGE_EQ, RANGE_NEQ = 0, 1

# nft_payload_bases
LL_HEADER, NETWORK_HEADER, TRANSPORT_HEADER = 0, 1, 2

# nft_meta_keys used here
META_MARK, META_IIF, META_OIF, META_IIFNAME, META_OIFNAME = 3, 4, 5, 6, 7
META_NFPROTO, META_L4PROTO = 15, 16

CT_STATE = 0

# verdict codes (netfilter.h / nf_tables.h)
NF_DROP, NF_ACCEPT = 0, 1
NFT_CONTINUE, NFT_JUMP, NFT_GOTO, NFT_RETURN = -1, -3, -4, -5

LOOKUP_F_INV = 1

# fib
FIB_RESULT_OIF = 1
FIB_F_SADDR, FIB_F_DADDR, FIB_F_MARK, FIB_F_IIF, FIB_F_OIF, FIB_F_PRESENT = (
    1, 2, 4, 8, 16, 32)

_DATA_VALUE, _DATA_VERDICT = 1, 2


def register(word: int) -> int:
    """The register holding the 32-bit word ``word`` of a concatenation.

    nft names a 16-byte-aligned start by its 128-bit register (NFT_REG_1..4)
    and any other by its 32-bit one (NFT_REG32_00..15); both address the
    same storage.
    """
    return REG_1 + word // 4 if word % 4 == 0 else _REG32_00 + word


def _expr(name: str, *parts: bytes) -> bytes:
    return nest(1, strz(1, name), nest(2, *parts))


def _value(kind: int, data: bytes) -> bytes:
    return nest(kind, attr(_DATA_VALUE, data))


def meta_load(key: int, dreg: int = REG_1) -> bytes:
    return _expr("meta", u32(2, key), u32(1, dreg))


def meta_set(key: int, sreg: int = REG_1) -> bytes:
    return _expr("meta", u32(2, key), u32(3, sreg))


def payload_load(base: int, offset: int, length: int, dreg: int = REG_1) -> bytes:
    return _expr("payload", u32(1, dreg), u32(2, base), u32(3, offset), u32(4, length))


def ct_load(key: int, dreg: int = REG_1) -> bytes:
    return _expr("ct", u32(2, key), u32(1, dreg))


def cmp(op: int, data: bytes, sreg: int = REG_1) -> bytes:
    return _expr("cmp", u32(1, sreg), u32(2, op), _value(3, data))


def range_(op: int, first: bytes, last: bytes, sreg: int = REG_1) -> bytes:
    return _expr("range", u32(1, sreg), u32(2, op), _value(3, first), _value(4, last))


def bitwise(mask: bytes, xor: bytes, sreg: int = REG_1, dreg: int = REG_1,
            with_op: bool = True) -> bytes:
    """``(sreg & mask) ^ xor``. nft names the operation for an explicit
    ``and``/``or`` but not for the masks it makes itself (flag tests, prefixes)."""
    op = [u32(6, 0)] if with_op else []
    return _expr("bitwise", u32(1, sreg), u32(2, dreg), *op, u32(3, len(mask)),
                 _value(4, mask), _value(5, xor))


def lookup(set_name: str, set_id: int | None, sreg: int = REG_1, dreg: int | None = None,
           inverted: bool = False) -> bytes:
    parts = [u32(2, sreg)]
    if dreg is not None:
        parts.append(u32(3, dreg))
    parts.append(strz(1, set_name))
    if set_id is not None:
        parts.append(u32(4, set_id))
    if inverted:
        parts.append(u32(5, LOOKUP_F_INV))
    return _expr("lookup", *parts)


def counter() -> bytes:
    return _expr("counter")


def notrack() -> bytes:
    return nest(1, strz(1, "notrack"))


def verdict(code: int, chain: str | None = None) -> bytes:
    inner = [u32(1, code)]
    if chain is not None:
        inner.append(strz(2, chain))
    return _expr("immediate", u32(1, REG_VERDICT), nest(2, nest(_DATA_VERDICT, *inner)))


def limit(rate: int, unit_seconds: int, burst: int, packets: bool = True,
          inverted: bool = False) -> bytes:
    return _expr("limit", u64(1, rate), u64(2, unit_seconds), u32(3, burst),
                 u32(4, 0 if packets else 1), u32(5, 1 if inverted else 0))


def log(prefix: str | None) -> bytes:
    return _expr("log", *([] if prefix is None else [strz(2, prefix)]))


def immediate(data: bytes, dreg: int = REG_1) -> bytes:
    return _expr("immediate", u32(1, dreg), _value(2, data))


NAT_SNAT = 0


def nat(kind: int, family: int, addr_reg: int = REG_1) -> bytes:
    return _expr("nat", u32(1, kind), u32(2, family), u32(3, addr_reg))


def masquerade() -> bytes:
    return _expr("masq")


# nft_reject_types, and the codes nft picks for a bare ``reject``
REJECT_ICMP_UNREACH, REJECT_ICMPX_UNREACH = 0, 2
ICMP_PORT_UNREACH, ICMPV6_PORT_UNREACH, ICMPX_PORT_UNREACH = 3, 4, 1


def reject(kind: int, code: int) -> bytes:
    return _expr("reject", u32(1, kind), attr(2, bytes([code])))


def fib(flags: int, result: int, dreg: int = REG_1) -> bytes:
    return _expr("fib", u32(3, flags), u32(2, result), u32(1, dreg))
