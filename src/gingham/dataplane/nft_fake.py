"""FakeNFT: an in-memory model of one nft table with the interface of :class:`NFT`.

It is "faithful and supported": the shared suite in tests/unit/dataplane and
tests/integration/dataplane runs the same transaction sequences against it and
against the real ``nft`` in a throwaway namespace, and the error *kinds*
(:attr:`NFTError.kind`) must agree. It does not parse rule expressions; it
only tracks what policy code gets wrong in practice: references from rules
(``@set``, ``jump``/``goto`` chain) and from verdict-map elements, object
existence, duplicates, element types of common set types, and interval overlap.

Known differences from the kernel, on purpose:
- handles are allocated like the kernel's (one counter per table, objects and
  rules in script order) but a failed transaction does not consume any;
- ``strict=True`` refuses to delete a chain that still has rules, as kernels
  before 6.x did (the kernel here deletes the rules with the chain): use it to
  check that code flushes before deleting.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import re
import socket
from dataclasses import dataclass, field

from gingham.dataplane.nft_objects import (
    Chain,
    Element,
    Map,
    NFTError,
    Rule,
    RuleCounter,
    Set,
    Table,
    TableSnapshot,
    Transaction,
    render_op,
)

_SET_REF_RE = re.compile(r"@([A-Za-z_][A-Za-z0-9_./-]*)")
_CHAIN_REF_RE = re.compile(r"\b(?:jump|goto)\s+([A-Za-z_][A-Za-z0-9_./-]*)")
_COUNTER_RE = re.compile(r"\bcounter\b(?!\s+packets)")

# typeof expressions -> the data type nft derives from them (the common ones)
_TYPEOF = {
    "ip saddr": "ipv4_addr",
    "ip daddr": "ipv4_addr",
    "ip6 saddr": "ipv6_addr",
    "ip6 daddr": "ipv6_addr",
    "tcp dport": "inet_service",
    "tcp sport": "inet_service",
    "udp dport": "inet_service",
    "udp sport": "inet_service",
    "th dport": "inet_service",
    "th sport": "inet_service",
    "iifname": "ifname",
    "oifname": "ifname",
    "meta iifname": "ifname",
    "meta oifname": "ifname",
    "meta l4proto": "inet_proto",
    "ip protocol": "inet_proto",
    "ip6 nexthdr": "inet_proto",
    "meta mark": "mark",
}


@dataclass
class _Rule:
    handle: int
    rule: str
    comment: str | None


@dataclass
class _Chain:
    spec: Chain
    handle: int
    rules: list[_Rule] = field(default_factory=list)


@dataclass
class _SetState:
    spec: Set | Map
    handle: int
    elements: dict[tuple[str, ...], Element] = field(default_factory=dict)

    @property
    def is_map(self) -> bool:
        return isinstance(self.spec, Map)

    def key_types(self) -> list[str]:
        spec = self.spec.type if self.spec.type is not None else self.spec.typeof
        assert spec is not None
        key = spec.split(":")[0] if self.is_map else spec
        parts = [p.strip() for p in key.split(" . ")]
        if self.spec.typeof is not None:
            return [_TYPEOF.get(p, "unknown") for p in parts]
        return parts


@dataclass
class _State:
    comment: str | None = None
    next_handle: int = 1
    chains: dict[str, _Chain] = field(default_factory=dict)
    sets: dict[str, _SetState] = field(default_factory=dict)

    def handle(self) -> int:
        h = self.next_handle
        self.next_handle += 1
        return h


class _KernelError(NFTError):
    """Refused by the kernel, after nft's own evaluation of the whole script passed."""


def _err(kind: str, message: str) -> NFTError:
    """An error nft itself finds while evaluating the script against its cache."""
    return NFTError(message, kind=kind)


def _kerr(kind: str, message: str) -> NFTError:
    return _KernelError(message, kind=kind)


class FakeNFT:
    """In-memory nft table; same methods and errors as :class:`NFT`."""

    def __init__(
        self, family: str = "inet", table: str = "gingham", netns: str | None = None,
        strict: bool = False,
    ) -> None:
        self.family = family
        self.table = table
        self.netns = netns
        self.strict = strict
        self._state: _State | None = None
        self.transactions: list[str] = []  # scripts applied, for tests that count writes

    # ---------------------------------------------------------------- writing

    def run(self, tx: Transaction) -> None:
        if not tx.ops:
            return
        self._state = self._apply(tx)
        self.transactions.append(tx.render(self.family, self.table))

    def check(self, tx: Transaction) -> None:
        self._apply(tx)

    def _apply(self, tx: Transaction) -> _State | None:
        # Like nft: first evaluate the whole script against a cache (errors the
        # kernel would give are not looked for yet: such commands are skipped),
        # then apply it all-or-nothing as the kernel does.
        self._run_ops(tx, userspace=True)
        return self._run_ops(tx, userspace=False)

    def _run_ops(self, tx: Transaction, userspace: bool) -> _State | None:
        state = copy.deepcopy(self._state)
        for n, (verb, obj) in enumerate(tx.ops, start=1):
            try:
                state = self._op(state, verb, obj)
            except NFTError as exc:
                if userspace and isinstance(exc, _KernelError):
                    continue
                raise NFTError(
                    f"nft: {exc.args[0]}", kind=exc.kind, line_number=n,
                    script_line=render_op(verb, obj, self.family, self.table),
                ) from None
        return state

    def _op(self, st: _State | None, verb: str, obj: object) -> _State | None:
        if isinstance(obj, Table):
            return self._table_op(st, verb, obj)
        if st is None:
            raise _err("not-found", f"No such file or directory: table {self.table}")
        if isinstance(obj, Chain):
            self._chain_op(st, verb, obj)
        elif isinstance(obj, Rule):
            self._rule_op(st, verb, obj)
        elif isinstance(obj, Set | Map):
            self._set_op(st, verb, obj)
        elif isinstance(obj, Element):
            self._element_op(st, verb, obj)
        return st

    def _table_op(self, st: _State | None, verb: str, obj: Table) -> _State | None:
        if verb in ("add", "create"):
            if st is None:
                return _State(comment=obj.comment)
            if verb == "create":
                raise _kerr("exists", f"File exists: table {self.table}")
            return st
        if st is None:
            raise _kerr("not-found", f"No such file or directory: table {self.table}")
        if verb == "delete":
            return None
        for ch in st.chains.values():  # flush table: rules only, sets keep elements
            ch.rules.clear()
        return st

    def _chain_op(self, st: _State, verb: str, obj: Chain) -> None:
        cur = st.chains.get(obj.name)
        if verb in ("add", "create"):
            if cur is None:
                st.chains[obj.name] = _Chain(obj, st.handle())
                return
            old = cur.spec
            # the kernel's order: a policy for a regular chain, then create, then hooks
            if obj.policy is not None and not old.is_base:
                raise _kerr("unsupported", f"chain {obj.name} is not a base chain: no policy")
            if verb == "create":
                raise _kerr("exists", f"File exists: chain {obj.name}")
            if obj.is_base:
                if not old.is_base:
                    raise _kerr("exists", f"chain {obj.name} exists and is not a base chain")
                if (old.type, old.hook, old.priority) != (obj.type, obj.hook, obj.priority):
                    raise _kerr("unsupported", f"Operation not supported: chain {obj.name}")
                if obj.policy is not None:
                    cur.spec = Chain(old.name, old.type, old.hook, old.priority, obj.policy,
                                     old.comment)
            return
        if cur is None:
            raise _kerr("not-found", f"No such file or directory: chain {obj.name}")
        if verb == "flush":
            cur.rules.clear()
            return
        # delete
        if self.strict and cur.rules:
            raise _kerr("busy", f"Device or resource busy: chain {obj.name} has rules")
        if self._chain_referenced(st, obj.name):
            raise _kerr("busy", f"Device or resource busy: chain {obj.name} is referenced")
        del st.chains[obj.name]

    @staticmethod
    def _chain_referenced(st: _State, name: str) -> bool:
        for ch in st.chains.values():
            if ch.spec.name == name:
                continue
            if any(name in _CHAIN_REF_RE.findall(r.rule) for r in ch.rules):
                return True
        for s in st.sets.values():
            for e in s.elements.values():
                if e.value is not None and any(
                    v in (f"jump {name}", f"goto {name}") for v in e.value
                ):
                    return True
        return False

    @staticmethod
    def _check_set_refs(st: _State, obj: Rule) -> None:
        # nft resolves @set against its cache while evaluating (before the kernel)
        for name in _SET_REF_RE.findall(obj.rule):
            s = st.sets.get(name)
            if s is None:
                raise _err("not-found", f"No such file or directory: set {name}")
            if "vmap @" + name in obj.rule and not s.is_map:
                raise _err("other", f"Expression is not a map: {name}")

    def _rule_op(self, st: _State, verb: str, obj: Rule) -> None:
        if verb != "delete":
            self._check_set_refs(st, obj)
        # an add/insert anchored at a position is resolved by nft against its
        # cache (chain and rule); delete/replace by handle go to the kernel
        anchored = verb in ("add", "insert") and (obj.handle, obj.index) != (None, None)
        fail = _err if anchored else _kerr
        ch = st.chains.get(obj.chain)
        if ch is None:
            raise fail("not-found", f"No such file or directory: chain {obj.chain}")
        pos = None
        if obj.handle is not None:
            pos = next((i for i, r in enumerate(ch.rules) if r.handle == obj.handle), None)
            if pos is None:
                raise fail("not-found", f"No such file or directory: rule handle {obj.handle}")
        elif obj.index is not None:
            if not 0 <= obj.index < len(ch.rules):
                raise fail("not-found", f"No such file or directory: rule index {obj.index}")
            pos = obj.index
        if verb == "delete":
            assert pos is not None
            del ch.rules[pos]
            return
        for name in _CHAIN_REF_RE.findall(obj.rule):
            if name not in st.chains:
                raise _kerr("not-found", f"No such file or directory: chain {name}")
        text = _COUNTER_RE.sub("counter packets 0 bytes 0", obj.rule.strip())
        if verb == "replace":
            assert pos is not None
            ch.rules[pos] = _Rule(ch.rules[pos].handle, text, obj.comment)
            return
        new = _Rule(st.handle(), text, obj.comment)
        if verb == "insert":
            ch.rules.insert(0 if pos is None else pos, new)
        else:
            ch.rules.insert(len(ch.rules) if pos is None else pos + 1, new)

    def _set_op(self, st: _State, verb: str, obj: Set | Map) -> None:
        cur = st.sets.get(obj.name)
        kind = "map" if isinstance(obj, Map) else "set"
        if verb in ("add", "create"):
            if obj.type is None and obj.typeof is None:
                raise _err("syntax", f"{kind} {obj.name}: needs a type or typeof")
            if cur is None:
                st.sets[obj.name] = _SetState(obj, st.handle())
                return
            if verb == "create" or type(cur.spec) is not type(obj) or (
                (cur.spec.type, cur.spec.typeof) != (obj.type, obj.typeof)
            ):
                raise _kerr("exists", f"File exists: {kind} {obj.name}")
            return
        if verb == "flush" and (cur is None or type(cur.spec) is not type(obj)):
            raise _err("not-found", f"No such file or directory: {kind} {obj.name}")
        if cur is None:
            raise _kerr("not-found", f"No such file or directory: {kind} {obj.name}")
        if verb == "flush":
            cur.elements.clear()
            return
        for ch in st.chains.values():
            if any(obj.name in _SET_REF_RE.findall(r.rule) for r in ch.rules):
                raise _kerr("busy", f"Device or resource busy: {kind} {obj.name} is referenced")
        del st.sets[obj.name]

    def _element_op(self, st: _State, verb: str, obj: Element) -> None:
        s = st.sets.get(obj.set)
        if s is None:
            raise _err("not-found", f"No such file or directory: set {obj.set}")
        el = obj.normalized()
        types = s.key_types()
        if len(types) == len(el.key):
            el = Element(el.set, tuple(_typed(t, p) for t, p in zip(types, el.key, strict=True)),
                         el.value, el.comment, el.timeout)
        key = el.key
        if verb == "delete":
            # nft refuses an element its set could not hold before looking it up
            interval = "interval" in s.spec.flags
            for t, part in zip(types, key, strict=False):
                _check_part(t, part, interval)
            if key not in s.elements:
                # nft checks interval sets against its cache; the kernel checks the rest
                fail = _err if "interval" in s.spec.flags else _kerr
                raise fail("not-found", f"element does not exist: {' . '.join(key)}")
            del s.elements[key]
            return
        self._check_element(st, s, el)
        old = s.elements.get(key)
        if old is not None:
            if verb == "create" or (s.is_map and old.value != el.value):
                raise _kerr("exists", f"File exists: element {' . '.join(key)}")
            return
        if "interval" in s.spec.flags:
            self._check_overlap(s, key)
        s.elements[key] = Element(obj.set, key, el.value, el.comment, el.timeout)

    @staticmethod
    def _check_element(st: _State, s: _SetState, el: Element) -> None:
        types = s.key_types()
        if len(types) != len(el.key):
            raise _err("invalid", f"element {el.key} does not match the type of {s.spec.name}")
        interval = "interval" in s.spec.flags
        for t, part in zip(types, el.key, strict=True):
            _check_part(t, part, interval)
        if s.is_map and el.value is None:
            raise _err("syntax", f"map {s.spec.name} needs a value for each element")
        if not s.is_map and el.value is not None:
            raise _err("syntax", f"set {s.spec.name} takes no values")
        for v in el.value or ():
            m = _CHAIN_REF_RE.match(v)
            if m and m.group(1) not in st.chains:
                raise _kerr("not-found", f"No such file or directory: chain {m.group(1)}")

    @staticmethod
    def _check_overlap(s: _SetState, key: tuple[str, ...]) -> None:
        new = _as_network(key[-1])
        if new is None:
            return
        for other in s.elements:
            if other[:-1] != key[:-1]:
                continue
            net = _as_network(other[-1])
            if net is not None and net.version == new.version and net.overlaps(new):
                raise _err("overlap", f"interval overlaps with an existing one: {key[-1]}")

    # ---------------------------------------------------------------- reading

    def table_exists(self) -> bool:
        return self._state is not None

    def list_chains(self) -> list[Chain]:
        if self._state is None:
            return []
        return [Chain(c.spec.name, c.spec.type, c.spec.hook, c.spec.priority, c.spec.policy)
                for c in self._state.chains.values()]

    def list_rules(self, chain: str) -> list[Rule]:
        ch = self._state.chains.get(chain) if self._state else None
        if ch is None:
            raise _err("not-found", f"cannot list chain {chain}: No such file or directory")
        return [Rule(chain, r.rule, r.comment, r.handle) for r in ch.rules]

    def list_sets(self) -> list[Set | Map]:
        if self._state is None:
            return []
        return [s.spec for s in self._state.sets.values()]

    def list_elements(self, name: str) -> list[Element]:
        s = self._state.sets.get(name) if self._state else None
        if s is None:
            raise _err("not-found", f"no set or map {name!r} in table {self.table}")
        return list(s.elements.values())

    def counters(self) -> list[RuleCounter]:
        if self._state is None:
            return []
        return [
            RuleCounter(ch.spec.name, r.handle, r.comment, 0, 0)
            for ch in self._state.chains.values()
            for r in ch.rules
            if "counter" in r.rule.split()
        ]

    def snapshot(self) -> TableSnapshot | None:
        if self._state is None:
            return None
        chains = {c.name: c for c in self.list_chains()}
        sets = {s.name: s for s in self.list_sets()}
        return TableSnapshot(
            chains=chains,
            rules={name: self.list_rules(name) for name in chains},
            sets=sets,
            elements={name: self.list_elements(name) for name in sets},
            counters=self.counters(),
        )

    def delete_table(self) -> bool:
        existed = self._state is not None
        self._state = None
        return existed

    def dump(self) -> str:
        """The table as ``nft list table`` prints it (elements sorted; '' when absent)."""
        st = self._state
        if st is None:
            return ""
        out = [f"table {self.family} {self.table} {{"]
        if st.comment:
            out.append(f'\tcomment "{st.comment}"')
        blocks = [_dump_set(s) for s in st.sets.values()]
        blocks += [_dump_chain(c) for c in st.chains.values()]
        out.append("\n\n".join(blocks))
        out.append("}")
        return "\n".join(line for line in out if line) + "\n"


def _dump_set(s: _SetState) -> str:
    spec = s.spec
    kind = "map" if s.is_map else "set"
    lines = [f"\t{kind} {spec.name} {{"]
    lines.append(f"\t\ttype {spec.type}" if spec.type else f"\t\ttypeof {spec.typeof}")
    if spec.size is not None:
        lines.append(f"\t\tsize {spec.size}")
    if spec.flags:
        lines.append("\t\tflags " + ",".join(spec.flags))
    if spec.timeout is not None:
        lines.append(f"\t\ttimeout {spec.timeout}")
    if spec.comment is not None:
        lines.append(f'\t\tcomment "{spec.comment}"')
    if s.elements:
        items = []
        for e in sorted(s.elements.values(), key=lambda e: e.key):
            text = " . ".join(_quote_part(t, p) for t, p in zip(s.key_types(), e.key, strict=True))
            if e.comment is not None:
                text += f' comment "{e.comment}"'
            if e.value is not None:
                text += " : " + " . ".join(e.value)
            items.append(text)
        # nft puts each map element on a line of its own, set elements a few a line
        per_line = 1 if s.is_map else 8
        rows = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
        lines.append("\t\telements = { " + ",\n\t\t\t     ".join(rows) + " }")
    lines.append("\t}")
    return "\n".join(lines)


def _dump_chain(c: _Chain) -> str:
    lines = [f"\tchain {c.spec.name} {{"]
    spec = c.spec
    if spec.is_base:
        prio = _priority_text(str(spec.type), spec.priority)
        line = f"\t\ttype {spec.type} hook {spec.hook} priority {prio};"
        line += f" policy {spec.policy or 'accept'};"
        lines.append(line)
    if spec.comment is not None:
        lines.append(f'\t\tcomment "{spec.comment}"')
    for r in c.rules:
        lines.append(f"\t\t{r.rule}" + (f' comment "{r.comment}"' if r.comment else ""))
    lines.append("\t}")
    return "\n".join(lines)


# standard priorities nft prints by name, per chain type (within 10 as "name ± n")
_PRIORITY_NAMES = {
    "filter": {"raw": -300, "mangle": -150, "filter": 0, "security": 50},
    "nat": {"dstnat": -100, "srcnat": 100},
    "route": {"mangle": -150},
}


def _priority_text(chain_type: str, priority: int | str | None) -> str:
    if not isinstance(priority, int):
        return str(priority)
    for name, value in _PRIORITY_NAMES.get(chain_type, {}).items():
        delta = priority - value
        if delta == 0:
            return name
        if abs(delta) <= 10:
            return f"{name} {'+' if delta > 0 else '-'} {abs(delta)}"
    return str(priority)


def _quote_part(t: str, part: str) -> str:
    return f'"{part}"' if t == "ifname" else part


def _as_network(part: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(part, strict=False)
    except ValueError:
        return None


@functools.cache
def _protocols() -> dict[str, str]:
    """Number or alias -> the name nft lists (its names come from /etc/protocols)."""
    names = {"1": "icmp", "6": "tcp", "17": "udp", "58": "ipv6-icmp", "132": "sctp"}
    try:
        with open("/etc/protocols") as f:
            for line in f:
                fields = line.split("#", 1)[0].split()
                if len(fields) >= 2 and fields[1].isdigit():
                    names.setdefault(fields[1], fields[0])
                    for alias in (fields[0], *fields[2:]):
                        names.setdefault(alias.lower(), names[fields[1]])
    except OSError:
        pass
    names.setdefault("icmpv6", "ipv6-icmp")
    return names


def _typed(t: str, part: str) -> str:
    """Element part as nft lists it for its type (protocol names, port numbers)."""
    if t == "inet_proto":
        return _protocols().get(part.lower(), part)
    if t == "inet_service" and not part.replace("-", "").isdigit():
        try:
            return str(socket.getservbyname(part))
        except OSError:
            return part
    return part


def _check_part(t: str, part: str, interval: bool) -> None:
    if t in ("ipv4_addr", "ipv6_addr"):
        version = 4 if t == "ipv4_addr" else 6
        try:
            if "/" in part or "-" in part:
                if not interval:
                    raise _err(
                        "other", "You must add 'flags interval' to your set declaration "
                        "if you want to add prefix elements",
                    )
                lo = part.split("-")[0] if "-" in part else part
                ok = ipaddress.ip_network(lo, strict=False).version == version
            else:
                ok = ipaddress.ip_address(part).version == version
        except ValueError:
            ok = False
        if not ok:
            raise _err("other", f"invalid {t} element {part!r}")
    elif t == "inet_service":
        lo, _, hi = part.partition("-")
        if not all(x.isdigit() and 0 <= int(x) <= 65535 for x in (lo, hi or lo)):
            raise _err("other", f"invalid port element {part!r}")
        if hi and not interval:
            raise _err("other", "You must add 'flags interval' to your set declaration")
