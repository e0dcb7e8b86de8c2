"""Compile the nft rule bodies gingham renders into nf_tables expressions.

The grammar is the subset of nft's that :mod:`gingham.dataplane.layout`,
:mod:`gingham.dataplane.policy`, NAT and the service-loop table write
(tests/golden/nft shows every form). For that subset the result is what
nft 1.0.6 itself sends for the same text, including its quirks:

- protocol dependencies are added where nft adds them (``ip saddr`` without
  ``meta nfproto ipv4`` first gets one; ``udp dport`` gets ``meta l4proto``;
  bare ``icmp type`` gets both);
- a prefix on a byte boundary loads only the prefix's bytes;
- a one-element anonymous set is a plain comparison;
- consecutive payload comparisons are ordered by header offset, and adjacent
  equalities are merged into one load (nft's ``payload_try_merge``).

One deliberate difference: nft 1.0.6 also merges two adjacent *inequalities*
(``th sport != 53 th dport != 80`` becomes one 4-byte ``!=``, which matches
when either port differs). That is a known nft bug; here they stay two
comparisons, which is what the text means. :func:`gingham.dataplane.policy`
never renders that pair.

Anything else raises :class:`~gingham.dataplane.nft_types.Unsupported`: the
caller then sends the transaction through ``nft -f -``, never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from gingham.dataplane import nft_exprs as x
from gingham.dataplane.nft_selectors import IP4, IP6, SELECTORS, Load
from gingham.dataplane.nft_types import CT_STATES, TYPES, Unsupported, padded, wildcard

_TOKEN = re.compile(r'"[^"]*"|[{},]|[^\s{},]+')


_VERDICTS = {"accept": x.NF_ACCEPT, "drop": x.NF_DROP, "return": x.NFT_RETURN,
             "continue": x.NFT_CONTINUE}
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}


# ------------------------------------------------------------------ output


@dataclass
class AnonSet:
    """An anonymous set a rule declares: created in the same batch, before the rule."""

    id: int
    loads: tuple[Load, ...]
    interval: bool
    ranges: list[tuple[bytes, bytes]]  # inclusive; a plain element has first == last

    @property
    def name(self) -> str:
        return "__set%d"


@dataclass
class Compiled:
    expressions: list[bytes]
    sets: list[AnonSet] = field(default_factory=list)
    batch_ids: bool = False  # names a set by its id in this batch: not reusable in another
    refs: list[str] = field(default_factory=list)  # the named sets it looks up

    @property
    def reusable(self) -> bool:
        """The expressions depend on the rule text alone (no set of this batch)."""
        return not self.sets and not self.batch_ids


# ------------------------------------------------------------------ statements


@dataclass
class _Cmp:
    load: Load
    op: int
    data: bytes
    value: bool = True  # a constant value (mergeable), not a wildcard or prefix load

    def encode(self) -> list[bytes]:
        return [self.load.encode(size=len(self.data) if self.load.kind == "payload" else None),
                x.cmp(self.op, self.data)]


@dataclass
class _Raw:
    """A match nft does not merge (lookups, ranges, prefixes, masks, fib)."""

    parts: list[bytes]

    def encode(self) -> list[bytes]:
        return self.parts


@dataclass
class _Action:
    """A statement that is not a match (counter, log, verdict, NAT, mark set)."""

    parts: list[bytes]

    def encode(self) -> list[bytes]:
        return self.parts


_Stmt = _Cmp | _Raw | _Action


class _Tokens:
    def __init__(self, text: str) -> None:
        self.items: list[str] = _TOKEN.findall(text)
        self.pos = 0

    def peek(self, ahead: int = 0) -> str | None:
        i = self.pos + ahead
        return self.items[i] if i < len(self.items) else None

    def take(self) -> str:
        if self.pos >= len(self.items):
            raise Unsupported("rule ends early")
        self.pos += 1
        return self.items[self.pos - 1]

    def expect(self, word: str) -> None:
        got = self.take()
        if got != word:
            raise Unsupported(f"expected {word!r}, got {got!r}")

    def __bool__(self) -> bool:
        return self.pos < len(self.items)


class RuleCompiler:
    """Compiles rule bodies; ``new_set_id`` numbers anonymous sets within a batch."""

    def __init__(self, new_set_id: Callable[[], int],
                 named_set_id: Callable[[str], int | None] = lambda _name: None) -> None:
        self._new_set_id = new_set_id
        self._named_set_id = named_set_id
        self._out = Compiled([])

    def _set_id_of(self, name: str) -> int | None:
        self._out.refs.append(name)
        set_id = self._named_set_id(name)
        if set_id is not None:
            self._out.batch_ids = True
        return set_id

    def compile(self, body: str) -> Compiled:
        toks = _Tokens(body)
        out = self._out = Compiled([])
        stmts: list[_Stmt] = []
        self._net: int | None = None
        self._l4: int | None = None
        while toks:
            stmts += self._statement(toks, out)
        for stmt in _merge_payloads(stmts):
            out.expressions += stmt.encode()
        return out

    # -- statements

    def _statement(self, toks: _Tokens, out: Compiled) -> list[_Stmt]:
        word = toks.peek()
        if word == "counter":
            toks.take()
            if toks.peek() in ("packets", "bytes", "name"):
                raise Unsupported("counter with values or a name")
            return [_Action([x.counter()])]
        if word in _VERDICTS:
            toks.take()
            return [_Action([x.verdict(_VERDICTS[word])])]
        if word in ("jump", "goto"):
            toks.take()
            code = x.NFT_JUMP if word == "jump" else x.NFT_GOTO
            return [_Action([x.verdict(code, _chain_name(toks.take()))])]
        if word == "notrack":
            toks.take()
            return [_Action([x.notrack()])]
        if word == "log":
            return [self._log(toks)]
        if word == "limit":
            return [self._limit(toks)]
        if word == "fib":
            return self._fib(toks)
        if word == "meta" and toks.peek(1) == "mark" and toks.peek(2) == "set":
            return [self._mark_set(toks)]
        if word in ("masquerade", "snat", "reject"):
            return [self._final(toks)]
        return self._match(toks, out)

    def _final(self, toks: _Tokens) -> _Stmt:
        """The NAT and reject statements of the NAT and service-loop tables, bare forms only."""
        word = toks.take()
        if toks.peek() not in (None, "comment") and word != "snat":
            raise Unsupported(f"{word} with options")
        if word == "masquerade":
            return _Action([x.masquerade()])
        if word == "reject":
            if self._net == IP4:
                return _Action([x.reject(x.REJECT_ICMP_UNREACH, x.ICMP_PORT_UNREACH)])
            if self._net == IP6:
                return _Action([x.reject(x.REJECT_ICMP_UNREACH, x.ICMPV6_PORT_UNREACH)])
            return _Action([x.reject(x.REJECT_ICMPX_UNREACH, x.ICMPX_PORT_UNREACH)])
        family = toks.take()
        toks.expect("to")
        addr = toks.take()
        if family not in ("ip", "ip6") or toks:
            raise Unsupported("snat other than 'snat ip|ip6 to ADDRESS'")
        dtype = TYPES["ipv4_addr" if family == "ip" else "ipv6_addr"]
        return _Action([x.immediate(dtype.parse(addr)),
                     x.nat(x.NAT_SNAT, IP4 if family == "ip" else IP6)])

    def _log(self, toks: _Tokens) -> _Stmt:
        toks.take()
        prefix = None
        if toks.peek() == "prefix":
            toks.take()
            text = toks.take()
            if not (len(text) >= 2 and text[0] == text[-1] == '"') or "%" in text:
                raise Unsupported(f"log prefix {text!r}")
            prefix = text[1:-1]
        if toks.peek() in ("level", "group", "flags", "snaplen", "queue-threshold"):
            raise Unsupported(f"log {toks.peek()}")
        return _Action([x.log(prefix)])

    def _limit(self, toks: _Tokens) -> _Stmt:
        toks.take()
        toks.expect("rate")
        if toks.peek() == "over":
            raise Unsupported("limit rate over")
        rate, _, unit = toks.take().partition("/")
        if unit not in _UNITS or not rate.isdigit():
            raise Unsupported(f"limit rate {rate}/{unit}")
        if toks.peek() != "burst":
            raise Unsupported("limit without an explicit burst")
        toks.take()
        burst = toks.take()
        if not burst.isdigit() or toks.take() != "packets":
            raise Unsupported("limit burst in bytes")
        return _Action([x.limit(int(rate), _UNITS[unit], int(burst))])

    def _fib(self, toks: _Tokens) -> list[_Stmt]:
        # only the reverse-path form: fib saddr . iif oif missing|exists
        words = [toks.take() for _ in range(6)]
        if words[:5] != ["fib", "saddr", ".", "iif", "oif"] or words[5] not in (
                "missing", "exists"):
            raise Unsupported(f"fib form {' '.join(words)!r}")
        flags = x.FIB_F_SADDR | x.FIB_F_IIF | x.FIB_F_PRESENT
        op = x.CMP_EQ if words[5] == "missing" else x.CMP_NEQ
        return [_Raw([x.fib(flags, x.FIB_RESULT_OIF), x.cmp(op, bytes(4))])]

    def _mark_set(self, toks: _Tokens) -> _Stmt:
        for word in ("meta", "mark", "set", "meta", "mark"):
            toks.expect(word)
        how = toks.take()
        value = int.from_bytes(TYPES["mark"].parse(toks.take()), "little")
        if how == "and":
            mask, xor = value, 0
        elif how == "or":
            mask, xor = ~value & 0xFFFFFFFF, value
        elif how == "xor":
            mask, xor = 0xFFFFFFFF, value
        else:
            raise Unsupported(f"meta mark set meta mark {how}")
        le = TYPES["mark"].parse
        return _Action([x.meta_load(x.META_MARK), x.bitwise(le(str(mask)), le(str(xor))),
                     x.meta_set(x.META_MARK)])

    # -- matches

    def _selector(self, toks: _Tokens) -> Load:
        first = toks.take()
        key: tuple[str, ...] = (first,)
        if key not in SELECTORS:
            key = (first, toks.take())
        load = SELECTORS.get(key)
        if load is None:
            raise Unsupported(f"selector {' '.join(key)!r}")
        return load

    def _dependencies(self, load: Load) -> list[_Stmt]:
        """The protocol matches nft inserts before ``load`` (and the context it sets)."""
        deps: list[_Stmt] = []
        if load.l4 is not None:
            if self._l4 == load.l4:
                return deps
            if self._l4 is not None:
                raise Unsupported("conflicting transport protocols")
            if load.net is not None:  # icmp/icmpv6: the network protocol first
                deps += self._net_dep(load.net)
            deps.append(_Cmp(SELECTORS[("meta", "l4proto")], x.CMP_EQ, bytes([load.l4]), False))
            self._l4 = load.l4
            return deps
        if load.net is not None:
            deps += self._net_dep(load.net)
        return deps

    def _net_dep(self, net: int) -> list[_Stmt]:
        if self._net == net:
            return []
        if self._net is not None:
            raise Unsupported("conflicting network protocols")
        self._net = net
        return [_Cmp(SELECTORS[("meta", "nfproto")], x.CMP_EQ, bytes([net]), False)]

    def _match(self, toks: _Tokens, out: Compiled) -> list[_Stmt]:
        loads = [self._selector(toks)]
        while toks.peek() == ".":
            toks.take()
            loads.append(self._selector(toks))
        stmts: list[_Stmt] = []
        for load in loads:
            stmts += self._dependencies(load)
        if len(loads) > 1:
            return [*stmts, self._concat_match(toks, loads, out)]
        load = loads[0]
        if toks.peek() == "and":  # meta mark and MASK ==|!= VALUE
            toks.take()
            mask = load.dtype.parse(toks.take())
            op = self._op(toks, explicit=True)
            data = load.dtype.parse(toks.take())
            return [*stmts, _Raw([load.encode(), x.bitwise(mask, bytes(len(mask))), x.cmp(op, data)])]
        if toks.peek() == "vmap":
            toks.take()
            name = _set_ref(toks.take())
            return [*stmts, _Raw([load.encode(), x.lookup(name, self._set_id_of(name), dreg=x.REG_VERDICT)])]
        op = self._op(toks)
        rhs = toks.peek()
        if rhs is None:
            raise Unsupported("match without a value")
        if rhs.startswith("@"):
            name = _set_ref(toks.take())
            return [*stmts, _Raw([load.encode(), x.lookup(name, self._set_id_of(name), inverted=op == x.CMP_NEQ)])]
        if load.dtype.name == "ct_state":
            return [*stmts, self._flags(toks, load, op)]
        if rhs == "{":
            items = self._set_items(toks)
            if len(items) == 1:
                stmts.append(self._value(load, op, items[0]))
            else:
                stmts.append(self._anon_lookup(out, (load,), op, [[i] for i in items]))
        else:
            stmts.append(self._value(load, op, toks.take()))
        self._learn(load, stmts[-1])
        return stmts

    def _op(self, toks: _Tokens, explicit: bool = False) -> int:
        word = toks.peek()
        if word == "!=":
            toks.take()
            return x.CMP_NEQ
        if word == "==":
            toks.take()
            return x.CMP_EQ
        if word in ("<", ">", "<=", ">=", "lt", "gt", "le", "ge", "eq", "ne"):
            raise Unsupported(f"operator {word}")
        if explicit:
            raise Unsupported("bitwise match without == or !=")
        return x.CMP_EQ

    def _learn(self, load: Load, stmt: _Stmt) -> None:
        """An equality with one protocol number sets nft's protocol context."""
        if not isinstance(stmt, _Cmp) or stmt.op != x.CMP_EQ or not stmt.value:
            return
        if load is SELECTORS[("meta", "nfproto")]:
            if self._net is not None and self._net != stmt.data[0]:
                raise Unsupported("conflicting network protocols")
            self._net = stmt.data[0]
        elif load is SELECTORS[("meta", "l4proto")]:
            if self._l4 is not None and self._l4 != stmt.data[0]:
                raise Unsupported("conflicting transport protocols")
            self._l4 = stmt.data[0]

    def _flags(self, toks: _Tokens, load: Load, op: int) -> _Stmt:
        if op != x.CMP_EQ or toks.peek() in ("==", "{"):
            raise Unsupported("ct state other than a flag list")
        value = 0
        while True:
            word = toks.take()
            if word not in CT_STATES:
                raise Unsupported(f"ct state {word!r}")
            value |= CT_STATES[word]
            if toks.peek() != ",":
                break
            toks.take()
        mask = load.dtype.parse(str(value))
        return _Raw([load.encode(), x.bitwise(mask, bytes(4), with_op=False),
                     x.cmp(x.CMP_NEQ, bytes(4))])

    def _value(self, load: Load, op: int, text: str) -> _Stmt:
        """One value, prefix, range or wildcard compared with ``load``."""
        t = load.dtype
        if t.name == "ifname":
            wild = wildcard(text)
            if wild is not None:
                return _Cmp(load, op, wild, value=False)
            return _Cmp(load, op, t.parse(text))
        if t.prefixes and "/" in text:
            return self._prefix(load, op, text)
        try:
            return _Cmp(load, op, t.parse(text))
        except Unsupported:
            if "-" not in text:
                raise
        first, last = t.first_last(text)  # a range, even a-a (nft keeps it one)
        if op == x.CMP_NEQ:
            return _Raw([load.encode(), x.range_(x.RANGE_NEQ, first, last)])
        return _Raw([load.encode(), x.cmp(x.CMP_GTE, first), x.cmp(x.CMP_LTE, last)])

    def _prefix(self, load: Load, op: int, text: str) -> _Stmt:
        addr, _, bits = text.partition("/")
        if not bits.isdigit():
            raise Unsupported(f"prefix {text!r}")
        plen, size = int(bits), load.dtype.size
        if plen > 8 * size:
            raise Unsupported(f"prefix {text!r}")
        first, _ = load.dtype.first_last(text)
        if plen == 8 * size:
            return _Cmp(load, op, load.dtype.parse(addr))
        if plen and plen % 8 == 0 and load.kind == "payload":
            return _Cmp(load, op, first[: plen // 8], value=False)
        mask = ((1 << plen) - 1) << (8 * size - plen) if plen else 0
        return _Raw([load.encode(), x.bitwise(mask.to_bytes(size, "big"), bytes(size),
                                              with_op=False), x.cmp(op, first)])

    # -- sets

    def _set_items(self, toks: _Tokens) -> list[str]:
        toks.expect("{")
        items: list[str] = []
        current: list[str] = []
        while True:
            word = toks.take()
            if word in (",", "}"):
                if not current:
                    raise Unsupported("empty set element")
                items.append(" ".join(current))
                current = []
                if word == "}":
                    return items
            else:
                current.append(word)

    def _concat_match(self, toks: _Tokens, loads: list[Load], out: Compiled) -> _Stmt:
        if toks.peek() == "vmap":  # a compiled tier's dispatch (gingham.dataplane.compiled)
            toks.take()
            name = _set_ref(toks.take())
            return _Raw([*_concat_loads(loads),
                         x.lookup(name, self._set_id_of(name), dreg=x.REG_VERDICT)])
        op = self._op(toks)
        rhs = toks.peek()
        if rhs is not None and rhs.startswith("@"):
            name = _set_ref(toks.take())
            return _Raw([*_concat_loads(loads), x.lookup(name, self._set_id_of(name), inverted=op == x.CMP_NEQ)])
        if rhs != "{":
            raise Unsupported("concatenation compared with a single value")
        rows = [item.split(" . ") for item in self._set_items(toks)]
        return self._anon_lookup(out, tuple(loads), op, rows)

    def _anon_lookup(self, out: Compiled, loads: tuple[Load, ...], op: int,
                     rows: list[list[str]]) -> _Stmt:
        ranges: list[tuple[bytes, bytes]] = []
        interval = False
        for row in rows:
            if len(row) != len(loads):
                raise Unsupported("set element does not fit the concatenation")
            firsts, lasts = b"", b""
            for load, text in zip(loads, row, strict=True):
                wild = wildcard(text) if load.dtype.name == "ifname" else None
                if wild is not None:  # "gh*": every name that starts with gh
                    size = load.dtype.size
                    first, last = wild.ljust(size, b"\0"), wild.ljust(size, b"\xff")
                else:
                    first, last = load.dtype.first_last(text.strip())
                pad = b"" if len(loads) == 1 else bytes(padded(len(first)) - len(first))
                firsts += first + pad
                lasts += last + pad
            interval = interval or firsts != lasts
            ranges.append((firsts, lasts))
        if interval and len(loads) > 1:
            raise Unsupported("ranges in an anonymous concatenation")
        if any(load.desc is None for load in loads):
            raise Unsupported("anonymous set keyed by a meta or ct selector")
        anon = AnonSet(self._new_set_id(), loads, interval, ranges)
        out.sets.append(anon)
        return _Raw([*_concat_loads(list(loads)), x.lookup(anon.name, anon.id, inverted=op == x.CMP_NEQ)])


def _concat_loads(loads: list[Load]) -> list[bytes]:
    out, word = [], 0
    for load in loads:
        out.append(load.encode(x.register(word)))
        word += padded(load.size) // 4
    return out


def _set_ref(token: str) -> str:
    if not token.startswith("@") or len(token) < 2:
        raise Unsupported(f"set reference {token!r}")
    return token[1:]


def _chain_name(token: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_./-]*", token):
        raise Unsupported(f"chain name {token!r}")
    return token


# ------------------------------------------------------------------ payload merge


def _mergeable(stmt: _Stmt) -> bool:
    return (isinstance(stmt, _Cmp) and stmt.value and stmt.load.kind == "payload"
            and stmt.op in (x.CMP_EQ, x.CMP_NEQ))


def _can_merge(a: _Cmp, b: _Cmp) -> bool:
    la, lb = len(a.data), len(b.data)
    if a.load.key != b.load.key or a.load.offset + la != b.load.offset:
        return False
    total = la + lb
    if total > 16:
        return False
    return total <= 4 or a.load.key == x.LL_HEADER or la > 4 or lb > 4


def _merge_payloads(stmts: list[_Stmt]) -> list[_Stmt]:
    """nft 1.0.6's statement reduction: payload comparisons with a constant are
    collected across other matches; a statement (counter, verdict …) ends the
    collection only once it holds two or more (a quirk later nft fixed)."""
    out: list[_Stmt | None] = list(stmts)
    group: list[int] = []
    for i, stmt in enumerate(stmts):
        if isinstance(stmt, _Action):
            if len(group) >= 2:
                _merge_group(out, group)
                group = []
        elif _mergeable(stmt):
            group.append(i)
    if len(group) >= 2:
        _merge_group(out, group)
    return [stmt for stmt in out if stmt is not None]


def _merge_group(out: list[_Stmt | None], group: list[int]) -> None:
    """Adjacent equalities merge into the first of them (in header order)."""
    order = sorted(group, key=lambda i: (_cmp(out[i]).load.key, _cmp(out[i]).load.offset))
    last = order[0]
    for i in order[1:]:
        a, b = _cmp(out[last]), _cmp(out[i])
        if a.op == b.op == x.CMP_EQ and _can_merge(a, b):
            load = Load("payload", a.load.key, a.load.offset, len(a.data) + len(b.data),
                        a.load.dtype)
            out[last] = _Cmp(load, x.CMP_EQ, a.data + b.data)
            out[i] = None
        else:
            last = i


def _cmp(stmt: _Stmt | None) -> _Cmp:
    assert isinstance(stmt, _Cmp)
    return stmt
