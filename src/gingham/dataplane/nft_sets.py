"""Set and map declarations and their elements as nf_tables messages.

Named sets come from :class:`~gingham.dataplane.nft.Set` / ``Map`` objects
declared with ``type`` (the forms gingham uses: addresses, interval sets,
concatenations, interface names, verdict maps); anonymous sets from the rule
compiler. Both carry the same userdata nft writes (key byte order, the
``typeof`` description nft reads back to print elements, comments), so nft
lists them as if it had made them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from gingham.dataplane import nft_wire as w
from gingham.dataplane.nft_objects import Element, Map, Set
from gingham.dataplane.nft_rules import AnonSet
from gingham.dataplane.nft_selectors import Load
from gingham.dataplane.nft_types import (
    BIG,
    HOST,
    DataType,
    Unsupported,
    concat_id,
    key_len,
    key_types,
    padded,
)

# nft_set_flags
_ANONYMOUS, _CONSTANT, _INTERVAL, _MAP, _CONCAT = 0x1, 0x2, 0x4, 0x8, 0x80
_DATA_VERDICT = 0xFFFFFF00
_ELEM_INTERVAL_END = 0x1
_NF_ACCEPT, _NF_DROP, _NFT_JUMP, _NFT_GOTO = 1, 0, -3, -4

# libnftnl set userdata items
_UD_KEYBYTEORDER, _UD_DATABYTEORDER, _UD_MERGE, _UD_KEY_TYPEOF = 0, 1, 2, 3
_UD_DATA_INTERVAL, _UD_COMMENT = 6, 7
_EXPR_PAYLOAD, _EXPR_META, _EXPR_CONCAT = 7, 9, 13

# an interval that reaches the top of the key space has no end element; nft
# marks its start "open" in the element's userdata (NFTNL_UDATA_SET_ELEM_FLAGS)
_OPEN = w.attr(6, w.tlv(1, struct.pack("<I", 1)))

_ELEMS_MAX = 60000  # bytes of elements per message (an attribute holds 64 KiB)


def _le32(value: int) -> bytes:
    return struct.pack("<I", value)


@dataclass(frozen=True, slots=True)
class SetShape:
    """What encoding an element needs to know about its set or map."""

    name: str
    types: tuple[DataType, ...]
    interval: bool
    verdict_map: bool

    @classmethod
    def of(cls, obj: Set | Map) -> SetShape:
        if obj.typeof is not None or obj.type is None:
            raise Unsupported(f"set {obj.name} declared with typeof")
        if obj.timeout is not None or obj.size is not None:
            raise Unsupported(f"set {obj.name} with timeout or size")
        if set(obj.flags) - {"interval"}:
            raise Unsupported(f"set {obj.name} flags {obj.flags}")
        spec, verdict_map = obj.type, False
        if isinstance(obj, Map):
            spec, _, value = spec.partition(":")
            if value.strip() != "verdict":
                raise Unsupported(f"map {obj.name} of {value.strip()}")
            verdict_map = True
        return cls(obj.name, tuple(key_types(spec)), "interval" in obj.flags, verdict_map)


# ------------------------------------------------------------------ declarations


def declare_named(table: str, obj: Set | Map, set_id: int, op: int) -> w.Message:
    shape = SetShape.of(obj)
    types = list(shape.types)
    concat = len(types) > 1
    flags = (_INTERVAL if shape.interval else 0) | (_MAP if shape.verdict_map else 0)
    if concat and shape.interval:
        flags |= _CONCAT
    parts = [w.strz(1, table), w.strz(2, obj.name), w.u32(3, flags),
             w.u32(4, concat_id(types)), w.u32(5, key_len(types))]
    if shape.verdict_map:
        parts += [w.u32(6, _DATA_VERDICT), w.u32(7, 0)]
    parts.append(w.u32(10, set_id))
    if concat and shape.interval:
        parts.append(w.nest(9, w.nest(2, *(w.nest(1, w.u32(1, t.size)) for t in types))))
    udata = w.tlv(_UD_KEYBYTEORDER, _le32(0 if concat else types[0].order))
    if shape.verdict_map:
        udata += w.tlv(_UD_DATABYTEORDER, _le32(0))
    if concat:
        udata += w.tlv(_UD_KEY_TYPEOF, w.tlv(0, _le32(_EXPR_CONCAT)) + w.tlv(1, b""))
    if shape.verdict_map:
        udata += w.tlv(_UD_DATA_INTERVAL, _le32(0))
    if obj.comment is not None:
        udata += w.tlv(_UD_COMMENT, obj.comment.encode() + b"\0")
    parts.append(w.attr(13, udata))
    return w.Message(w.NEWSET, w.F_CREATE, b"".join(parts), op)


def _typeof(load: Load) -> bytes:
    assert load.desc is not None
    kind = _EXPR_META if load.kind == "meta" else _EXPR_PAYLOAD
    fields = b"".join(w.tlv(i, _le32(v)) for i, v in enumerate(load.desc))
    return w.tlv(0, _le32(kind)) + w.tlv(1, fields)


def declare_anonymous(table: str, anon: AnonSet, op: int) -> list[w.Message]:
    """The NEWSET of an anonymous set and the NEWSETELEM(s) filling it."""
    loads = list(anon.loads)
    types = [load.dtype for load in loads]
    elems = list(_anon_elements(anon))
    flags = _ANONYMOUS | _CONSTANT | (_INTERVAL if anon.interval else 0)
    concat = len(types) > 1
    # an anonymous set's byte order is its key expression's: network order for
    # packet fields, host order for meta keys
    order = 0 if concat else HOST if loads[0].kind == "meta" else BIG
    udata = w.tlv(_UD_KEYBYTEORDER, _le32(order))
    if anon.interval:
        udata += w.tlv(_UD_MERGE, _le32(1))
    if concat:
        inner = b"".join(w.tlv(i, _typeof(load)) for i, load in enumerate(loads))
        udata += w.tlv(_UD_KEY_TYPEOF, w.tlv(0, _le32(_EXPR_CONCAT)) + w.tlv(1, inner))
    else:
        udata += w.tlv(_UD_KEY_TYPEOF, _typeof(loads[0]))
    decl = w.Message(w.NEWSET, w.F_CREATE, b"".join([
        w.strz(1, table), w.strz(2, anon.name), w.u32(3, flags), w.u32(4, concat_id(types)),
        w.u32(5, key_len(types)), w.u32(10, anon.id),
        w.nest(9, w.u32(1, len(elems) + sum(e.endswith(_OPEN) for e in elems))),
        w.attr(13, udata)]), op)
    head = w.strz(1, table) + w.strz(2, anon.name) + w.u32(4, anon.id)
    return [decl, *(w.Message(w.NEWSETELEM, w.F_CREATE, head + body, op)
                     for body in _element_lists(elems))]


def _key(kind: int, data: bytes) -> bytes:
    """``kind`` {NFTA_DATA_VALUE: data}, packed at once (a full sync has tens of
    thousands of these)."""
    n = len(data)
    pad = b"\0" * (-n % 4)
    return struct.pack("=HHHH", 8 + n + len(pad), kind | w.NLA_F_NESTED, 4 + n, 1) + data + pad


_END_FLAG = w.u32(3, _ELEM_INTERVAL_END)


def _end(data: bytes) -> bytes:
    return _END_FLAG + _key(1, data)


def _anon_elements(anon: AnonSet) -> Iterator[bytes]:
    if not anon.interval:
        for first, _ in anon.ranges:
            yield _key(1, first)
        return
    size = len(anon.ranges[0][0])
    top = (1 << (8 * size)) - 1
    spans = sorted((int.from_bytes(a, "big"), int.from_bytes(b, "big")) for a, b in anon.ranges)
    merged: list[list[int]] = []
    for lo, hi in spans:  # nft merges overlapping and adjacent ranges
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    if merged[0][0] > 0:  # nft opens an interval set with the gap before its first range
        yield _end(bytes(size))
    for lo, hi in merged:
        if hi < top:
            yield _key(1, lo.to_bytes(size, "big"))
            yield _end((hi + 1).to_bytes(size, "big"))
        else:
            yield _key(1, lo.to_bytes(size, "big")) + _OPEN


def _element_lists(elems: Iterable[bytes]) -> Iterator[bytes]:
    """NFTA_SET_ELEM_LIST_ELEMENTS attributes, split to fit 16-bit lengths."""
    chunk: list[bytes] = []
    size = 0
    for elem in elems:
        item = w.nest(len(chunk) + 1, elem)
        if chunk and size + len(item) > _ELEMS_MAX:
            yield w.nest(3, *chunk)
            chunk, size = [], 0
            item = w.nest(1, elem)
        chunk.append(item)
        size += len(item)
    if chunk:
        yield w.nest(3, *chunk)


# ------------------------------------------------------------------ named elements


def _field(t: DataType, text: str) -> tuple[bytes, bytes]:
    return t.first_last(text.strip().strip('"') if t.name != "ifname" else text.strip())


def _verdict(value: tuple[str, ...]) -> bytes:
    words = value[0].split() if len(value) == 1 else []
    if words == ["accept"] or words == ["drop"]:
        inner = w.u32(1, _NF_ACCEPT if words[0] == "accept" else _NF_DROP)
    elif len(words) == 2 and words[0] in ("jump", "goto"):
        code = _NFT_JUMP if words[0] == "jump" else _NFT_GOTO
        inner = w.u32(1, code) + w.strz(2, words[1])
    else:
        raise Unsupported(f"map value {value}")
    return w.nest(2, w.nest(2, inner))


def element_attrs(shape: SetShape, elem: Element, with_value: bool) -> list[bytes]:
    """The element(s) one :class:`Element` becomes (an interval in an rbtree set is two)."""
    if elem.comment is not None or elem.timeout is not None:
        raise Unsupported("element with a comment or timeout")
    types = shape.types
    if len(types) != len(elem.key):
        raise Unsupported(f"element {elem.key} does not fit {shape.name}")
    data = b""
    if shape.verdict_map and with_value:
        if elem.value is None:
            raise Unsupported(f"map element {elem.key} without a value")
        data = _verdict(elem.value)
    fields = [_field(t, text) for t, text in zip(types, elem.key, strict=True)]
    if len(types) > 1:
        pad = [bytes(padded(t.size) - t.size) for t in types]
        first = b"".join(f[0] + p for f, p in zip(fields, pad, strict=True))
        last = b"".join(f[1] + p for f, p in zip(fields, pad, strict=True))
        if not shape.interval:
            if first != last:
                raise Unsupported("a range in a set without intervals")
            return [_key(1, first) + data]
        return [_key(1, first) + _key(10, last) + data]
    first, last = fields[0]
    if not shape.interval:
        if first != last:
            raise Unsupported("a range in a set without intervals")
        return [_key(1, first) + data]
    end = int.from_bytes(last, "big") + 1
    if end < 1 << (8 * len(last)):
        return [_key(1, first) + data, _end(end.to_bytes(len(last), "big"))]
    return [_key(1, first) + data + _OPEN]


def element_messages(table: str, shape: SetShape, verb: str, elems: list[Element], op: int,
                     set_id: int | None = None, open_gap: bool = False) -> list[w.Message]:
    """Messages adding or deleting ``elems``. ``open_gap``: the set is new, so
    (as nft does) an interval end at zero comes first unless a range starts
    there. Interval elements of one field go in key order, as nft sends them."""
    pairs: list[tuple[tuple[bytes, bool], bytes]] = []
    for elem in elems:
        for item in element_attrs(shape, elem, verb == "add"):
            pairs.append((_sort_key(item), item))
    if shape.interval and len(shape.types) == 1:  # rbtree; nft keeps concatenations in order
        pairs.sort(key=lambda p: p[0])
    attrs = [item for _, item in pairs]
    if open_gap and shape.interval and len(shape.types) == 1 and attrs:
        zero = bytes(shape.types[0].size)
        if pairs[0][0][0] != zero:
            attrs.insert(0, _end(zero))
    kind, flags = (w.NEWSETELEM, w.F_CREATE) if verb == "add" else (w.DELSETELEM, 0)
    head = w.strz(1, table) + w.strz(2, shape.name)
    if set_id is not None:
        head += w.u32(4, set_id)
    return [w.Message(kind, flags, head + body, op) for body in _element_lists(attrs)]


def _sort_key(item: bytes) -> tuple[bytes, bool]:
    """What nft orders interval elements by: the key, and at one key the end of
    the range below before the start of the range above (198.18.0.1 and
    198.18.0.2 make an end and a start at .2; the other way round the kernel
    sees an empty range and refuses the batch)."""
    off = 0
    is_start = True
    while off + 4 <= len(item):
        length, kind = struct.unpack_from("=HH", item, off)
        if kind == 3:
            is_start = False
        if kind & ~w.NLA_F_NESTED == 1:
            return item[off + 8: off + length], is_start
        off += (length + 3) & ~3
    return b"", is_start

