"""The typed objects of an nft transaction and their rendering (no I/O).

Split from :mod:`gingham.dataplane.nft`, which re-exports everything here and
adds the drivers; see that module for the model.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from gingham.errors import DataplaneError

Verb = Literal["add", "create", "flush", "delete", "insert", "replace"]
FAMILIES = ("inet", "ip", "ip6", "arp", "bridge", "netdev")

# nft identifiers: a letter or underscore first, then letters, digits and _ . / -
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]{0,255}$")
_COMMENT_MAX = 128

# Words nft 1.0.6 refuses as a chain or set name (a bare keyword fails to
# parse and names cannot be quoted); measured by trying each one.
NFT_KEYWORDS = frozenset(
    {
        "accept",
        "add",
        "ah",
        "all",
        "arp",
        "auto-merge",
        "bridge",
        "cgroup",
        "chain",
        "comment",
        "comp",
        "constant",
        "continue",
        "counter",
        "cpu",
        "create",
        "ct",
        "day",
        "dccp",
        "define",
        "delete",
        "describe",
        "device",
        "devices",
        "dnat",
        "drop",
        "dst",
        "dup",
        "dynamic",
        "ecn",
        "element",
        "elements",
        "esp",
        "ether",
        "export",
        "exthdr",
        "fib",
        "flags",
        "flow",
        "flowtable",
        "flush",
        "frag",
        "fwd",
        "goto",
        "handle",
        "hbh",
        "hook",
        "hour",
        "ibrname",
        "icmp",
        "icmpv6",
        "igmp",
        "iif",
        "iifgroup",
        "iifname",
        "iiftype",
        "import",
        "include",
        "index",
        "inet",
        "insert",
        "interval",
        "ip",
        "ip6",
        "ipsec",
        "jhash",
        "jump",
        "limit",
        "list",
        "log",
        "map",
        "mark",
        "masquerade",
        "meta",
        "meter",
        "mh",
        "monitor",
        "netdev",
        "nftrace",
        "notrack",
        "numgen",
        "obrname",
        "offload",
        "oif",
        "oifgroup",
        "oifname",
        "oiftype",
        "osf",
        "pkttype",
        "policy",
        "position",
        "priority",
        "queue",
        "quota",
        "random",
        "redirect",
        "reject",
        "rename",
        "replace",
        "reset",
        "return",
        "rt",
        "rt0",
        "rt2",
        "rtclassid",
        "rule",
        "ruleset",
        "sctp",
        "secmark",
        "set",
        "size",
        "skgid",
        "skuid",
        "snat",
        "socket",
        "srh",
        "symhash",
        "synproxy",
        "table",
        "tcp",
        "th",
        "time",
        "timeout",
        "tproxy",
        "type",
        "typeof",
        "udp",
        "udplite",
        "update",
        "vlan",
        "vmap",
    }
)


# --------------------------------------------------------------------------- errors


class NFTError(DataplaneError):
    """nft refused a transaction or a listing.

    ``kind`` is one of ``not-found``, ``exists``, ``busy``, ``unsupported``,
    ``overlap``, ``syntax``, ``invalid``, ``other`` so that callers (and the
    tests comparing the fake with the kernel) need not parse messages.
    ``line_number`` (1-based) and ``script_line`` name the offending command.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str = "other",
        stderr: str = "",
        line_number: int | None = None,
        script_line: str = "",
    ) -> None:
        self.kind = kind
        self.stderr = stderr
        self.line_number = line_number
        self.script_line = script_line
        text = message
        if line_number is not None:
            text += f"\n  at script line {line_number}: {script_line}"
        if stderr:
            said = stderr.strip()
            # a script of thousands of bad lines must not make a message of megabytes
            if len(said) > 2000:
                said = said[:2000] + f"\n  … ({len(stderr)} characters in .stderr)"
            text += f"\n  nft said: {said}"
        super().__init__(text)


def classify_error(message: str) -> str:
    """Map nft's error text to an :class:`NFTError` kind."""
    m = message.lower()
    if "no such file or directory" in m or "does not exist" in m:
        return "not-found"
    if "file exists" in m:
        return "exists"
    if "device or resource busy" in m:
        return "busy"
    if "operation not supported" in m:
        return "unsupported"
    if "overlap" in m or "conflicting intervals" in m:
        return "overlap"
    if "syntax error" in m:
        return "syntax"
    if "invalid argument" in m:
        return "invalid"
    return "other"


def _check_name(what: str, name: str) -> None:
    if not _NAME_RE.match(name):
        raise NFTError(f"invalid {what} name {name!r}: use letters, digits, _ . / - (max 256)")
    if name in NFT_KEYWORDS:
        raise NFTError(f"invalid {what} name {name!r}: an nft keyword", kind="syntax")


def _check_comment(comment: str | None) -> None:
    if comment is None:
        return
    if '"' in comment or "\n" in comment or len(comment) > _COMMENT_MAX:
        raise NFTError(
            f"invalid comment {comment!r}: no double quotes or newlines, "
            f"at most {_COMMENT_MAX} characters"
        )


def _check_fragment(what: str, text: str) -> None:
    # One command per line is what lets an nft error be mapped back to its
    # object; a newline or ';' would also let a fragment smuggle in a command.
    if "\n" in text or ";" in text or "#" in text:
        raise NFTError(f"invalid {what} {text!r}: no newlines, ';' or '#'")


# --------------------------------------------------------------------------- objects


@dataclass(frozen=True)
class Table:
    comment: str | None = None

    def __post_init__(self) -> None:
        _check_comment(self.comment)


@dataclass(frozen=True)
class Chain:
    """A chain; with ``type``/``hook``/``priority`` a base chain."""

    name: str
    type: str | None = None
    hook: str | None = None
    priority: int | str | None = None
    policy: str | None = None
    comment: str | None = None

    def __post_init__(self) -> None:
        _check_name("chain", self.name)
        _check_comment(self.comment)
        base = (self.type, self.hook, self.priority)
        if any(v is not None for v in base) and any(v is None for v in base):
            raise NFTError(f"chain {self.name}: a base chain needs type, hook and priority")
        if self.policy is not None and self.hook is None:
            raise NFTError(f"chain {self.name}: only a base chain has a policy")
        for what, value in (("type", self.type), ("hook", self.hook), ("policy", self.policy)):
            if value is not None:
                _check_fragment(f"chain {what}", value)
        if isinstance(self.priority, str):
            _check_fragment("chain priority", self.priority)

    @property
    def is_base(self) -> bool:
        return self.hook is not None


@dataclass(frozen=True)
class Rule:
    """A rule in ``chain``.

    ``handle`` names an existing rule (for delete/replace, or as the anchor of
    add = after it / insert = before it); ``index`` anchors by position instead.
    """

    chain: str
    rule: str = ""
    comment: str | None = None
    handle: int | None = None
    index: int | None = None

    def __post_init__(self) -> None:
        _check_name("chain", self.chain)
        _check_fragment("rule", self.rule)
        _check_comment(self.comment)
        if self.handle is not None and self.index is not None:
            raise NFTError(f"rule in {self.chain}: give handle or index, not both")


@dataclass(frozen=True)
class Set:
    """A named set; ``type`` (``ipv4_addr``, ``ipv4_addr . inet_service``) or ``typeof``."""

    name: str
    type: str | None = None
    typeof: str | None = None
    flags: tuple[str, ...] = ()
    timeout: str | None = None
    size: int | None = None
    comment: str | None = None

    def __post_init__(self) -> None:
        _check_set_like(self)


@dataclass(frozen=True)
class Map:
    """A named map; ``type`` like ``ifname : verdict`` or ``typeof iifname : verdict``."""

    name: str
    type: str | None = None
    typeof: str | None = None
    flags: tuple[str, ...] = ()
    timeout: str | None = None
    size: int | None = None
    comment: str | None = None

    def __post_init__(self) -> None:
        _check_set_like(self)
        spec = self.type if self.type is not None else self.typeof
        if spec is not None and ":" not in spec:
            raise NFTError(f"map {self.name}: type must be 'KEY : VALUE', got {spec!r}")


def _check_set_like(obj: Set | Map) -> None:
    what = "map" if isinstance(obj, Map) else "set"
    _check_name(what, obj.name)
    _check_comment(obj.comment)
    if obj.type is not None and obj.typeof is not None:
        raise NFTError(f"{what} {obj.name}: give type or typeof, not both")
    for text in (obj.type, obj.typeof, obj.timeout, *obj.flags):
        if text is not None:
            _check_fragment(f"{what} attribute", text)
    object.__setattr__(obj, "flags", tuple(obj.flags))


@dataclass(frozen=True)
class Element:
    """An element of set/map ``set``: ``key`` (concatenation parts) and, in a map, ``value``."""

    set: str
    key: tuple[str, ...]
    value: tuple[str, ...] | None = None
    comment: str | None = None
    timeout: str | None = None

    def __init__(
        self,
        set: str,
        key: str | Sequence[str],
        value: str | Sequence[str] | None = None,
        comment: str | None = None,
        timeout: str | None = None,
    ) -> None:
        _check_name("set", set)
        _check_comment(comment)
        object.__setattr__(self, "set", set)
        object.__setattr__(self, "key", _as_parts(key, "element key"))
        object.__setattr__(
            self, "value", None if value is None else _as_parts(value, "element value")
        )
        object.__setattr__(self, "comment", comment)
        object.__setattr__(self, "timeout", timeout)
        if timeout is not None:
            _check_fragment("element timeout", timeout)

    def normalized(self) -> Element:
        """The same element with key and value in the canonical form nft lists."""
        return Element(
            self.set,
            normalize_key(self.key),
            None if self.value is None else normalize_key(self.value),
            self.comment,
            self.timeout,
        )


def _as_parts(value: str | Sequence[str], what: str) -> tuple[str, ...]:
    parts = (value,) if isinstance(value, str) else tuple(str(p) for p in value)
    if not parts or any(not p.strip() for p in parts):
        raise NFTError(f"empty {what}")
    for p in parts:
        _check_fragment(what, p)
        if any(c in p for c in "{},"):
            raise NFTError(f"invalid {what} {p!r}: no braces or commas")
    return parts


def normalize_key(parts: Iterable[str]) -> tuple[str, ...]:
    """Canonical text of element parts, as ``nft -j list`` gives them back."""
    return tuple(_normalize_part(p) for p in parts)


@functools.lru_cache(maxsize=1 << 16)
def _normalize_part(part: str) -> str:
    # a resync normalises every element it wants and every one it lists
    p = part.strip()
    if len(p) >= 2 and p[0] == p[-1] == '"':
        return p[1:-1]
    verdict = p.split()
    if len(verdict) == 2 and verdict[0] in ("jump", "goto"):
        return f"{verdict[0]} {verdict[1]}"
    try:
        if "/" in p:
            net = ipaddress.ip_network(p, strict=False)
            if net.prefixlen == net.max_prefixlen:
                return str(net.network_address)
            return str(net)
        if "-" in p:
            lo, _, hi = p.partition("-")
            try:
                return f"{ipaddress.ip_address(lo.strip())}-{ipaddress.ip_address(hi.strip())}"
            except ValueError:
                return p
        return str(ipaddress.ip_address(p))
    except ValueError:
        pass
    if p.isdigit():
        return str(int(p))
    return p


# --------------------------------------------------------------------------- transaction

Object = Table | Chain | Rule | Set | Map | Element

_ALLOWED: dict[str, tuple[type, ...]] = {
    "add": (Table, Chain, Rule, Set, Map, Element),
    "create": (Table, Chain, Set, Map, Element),
    "flush": (Table, Chain, Set, Map),
    "delete": (Table, Chain, Rule, Set, Map, Element),
    "insert": (Rule,),
    "replace": (Rule,),
}


@dataclass
class Transaction:
    """An ordered list of operations applied all-or-nothing."""

    ops: list[tuple[Verb, Object]] = field(default_factory=list)

    def _op(self, verb: Verb, obj: Object) -> Transaction:
        if not isinstance(obj, _ALLOWED[verb]):
            raise NFTError(f"cannot {verb} a {type(obj).__name__}")
        if isinstance(obj, Rule):
            if verb in ("delete", "replace") and obj.handle is None:
                raise NFTError(f"{verb} rule in {obj.chain}: needs a handle")
            if verb in ("add", "insert", "replace") and not obj.rule.strip():
                raise NFTError(f"{verb} rule in {obj.chain}: empty rule")
        self.ops.append((verb, obj))
        return self

    def add(self, obj: Object) -> Transaction:
        return self._op("add", obj)

    def create(self, obj: Object) -> Transaction:
        return self._op("create", obj)

    def flush(self, obj: Object) -> Transaction:
        return self._op("flush", obj)

    def delete(self, obj: Object) -> Transaction:
        return self._op("delete", obj)

    def insert(self, obj: Object) -> Transaction:
        return self._op("insert", obj)

    def replace(self, obj: Object) -> Transaction:
        return self._op("replace", obj)

    def __len__(self) -> int:
        return len(self.ops)

    def render(self, family: str = "inet", table: str = "gingham") -> str:
        """The nft script, one command per line (line N is ``ops[N-1]``)."""
        return "".join(render_op(verb, obj, family, table) + "\n" for verb, obj in self.ops)


def _opts(items: list[str]) -> str:
    return " { " + " ; ".join(items) + " ; }" if items else ""


def _comment(comment: str | None) -> str:
    return f' comment "{comment}"' if comment is not None else ""


def render_op(verb: Verb, obj: Object, family: str, table: str) -> str:
    """One nft command for one operation."""
    where = f"{family} {table}"
    if isinstance(obj, Table):
        opts = [f'comment "{obj.comment}"'] if obj.comment and verb in ("add", "create") else []
        return f"{verb} table {where}{_opts(opts)}"
    if isinstance(obj, Chain):
        opts = []
        if verb in ("add", "create"):
            if obj.is_base:
                opts.append(f"type {obj.type} hook {obj.hook} priority {obj.priority}")
                if obj.policy is not None:
                    opts.append(f"policy {obj.policy}")
            if obj.comment is not None:
                opts.append(f'comment "{obj.comment}"')
        return f"{verb} chain {where} {obj.name}{_opts(opts)}"
    if isinstance(obj, Set | Map):
        kind = "map" if isinstance(obj, Map) else "set"
        opts = []
        if verb in ("add", "create"):
            if obj.type is not None:
                opts.append(f"type {obj.type}")
            if obj.typeof is not None:
                opts.append(f"typeof {obj.typeof}")
            if obj.flags:
                opts.append("flags " + ",".join(obj.flags))
            if obj.timeout is not None:
                opts.append(f"timeout {obj.timeout}")
            if obj.size is not None:
                opts.append(f"size {obj.size}")
            if obj.comment is not None:
                opts.append(f'comment "{obj.comment}"')
        return f"{verb} {kind} {where} {obj.name}{_opts(opts)}"
    if isinstance(obj, Rule):
        head = f"{verb} rule {where} {obj.chain}"
        if verb == "delete":
            return f"{head} handle {obj.handle}"
        if verb == "replace":
            return f"{head} handle {obj.handle} {obj.rule}{_comment(obj.comment)}"
        if obj.handle is not None:
            head += f" position {obj.handle}"
        elif obj.index is not None:
            head += f" index {obj.index}"
        return f"{head} {obj.rule}{_comment(obj.comment)}"
    # Element
    text = " . ".join(obj.key)
    if verb != "delete":
        if obj.timeout is not None:
            text += f" timeout {obj.timeout}"
        text += _comment(obj.comment)
        if obj.value is not None:
            text += " : " + " . ".join(obj.value)
    return f"{verb} element {where} {obj.set} {{ {text} }}"


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class RuleCounter:
    chain: str
    handle: int
    comment: str | None
    packets: int
    bytes: int


@dataclass(frozen=True)
class TableSnapshot:
    """The whole table read at once (two nft calls however many sets it has)."""

    chains: dict[str, Chain]
    rules: dict[str, list[Rule]]  # chain -> rules in order, with handles
    sets: dict[str, Set | Map]
    elements: dict[str, list[Element]]  # set or map -> its elements, normalised
    counters: list[RuleCounter]


class NFTInterface(Protocol):
    """What both :class:`NFT` and ``FakeNFT`` offer."""

    family: str
    table: str

    def run(self, tx: Transaction) -> None: ...
    def check(self, tx: Transaction) -> None: ...
    def list_chains(self) -> list[Chain]: ...
    def list_rules(self, chain: str) -> list[Rule]: ...
    def list_sets(self) -> list[Set | Map]: ...
    def list_elements(self, name: str) -> list[Element]: ...
    def counters(self) -> list[RuleCounter]: ...
    def delete_table(self) -> bool: ...
    def table_exists(self) -> bool: ...
    def snapshot(self) -> TableSnapshot | None: ...


# --------------------------------------------------------------------------- real driver
