"""A :class:`~gingham.dataplane.nft.Transaction` as ONE nfnetlink batch, no ``nft`` process.

nft 1.0.6 reads the whole ruleset (every chain, rule and set element) into
its cache before any command, so one ``nft -f -`` costs tens of milliseconds
and grows with the table. The transactions gingham makes in steady state are
few kinds of operation: add a table, chains (base or not) and rules, flush
and delete chains, add and delete sets, maps and their elements. Those are
encoded here (rules by :mod:`gingham.dataplane.nft_rules`, sets by
:mod:`gingham.dataplane.nft_sets`) and sent as one batch, which the kernel
commits all or nothing, as it does nft's.

:meth:`NetlinkWriter.run` raises :class:`~gingham.dataplane.nft_types.Unsupported`
before sending anything when a transaction holds an operation or a rule form
it does not know (the driver then runs ``nft -f -``), and :class:`KernelRefused`
when the kernel rejects the batch with an error that may come from the
encoding rather than from the state (EINVAL and friends: the driver retries
through nft, which then reports the real problem); a refusal about the state
(no such chain, exists, busy) is an :class:`~gingham.dataplane.nft.NFTError`
naming the operation, like nft's.
"""

from __future__ import annotations

import errno
import itertools
from collections.abc import Mapping

from gingham.dataplane import nft_sets, nft_wire
from gingham.dataplane import nft_wire as w
from gingham.dataplane.nft_intervals import rbtree_type
from gingham.dataplane.nft_objects import (
    Chain,
    Element,
    Map,
    NFTError,
    Object,
    Rule,
    Set,
    Table,
    Transaction,
    Verb,
    classify_error,
    render_op,
)
from gingham.dataplane.nft_rules import RuleCompiler
from gingham.dataplane.nft_types import Unsupported

_HOOKS = {"prerouting": 0, "input": 1, "forward": 2, "output": 3, "postrouting": 4}
_PRIORITIES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50,
               "srcnat": 100}
_POLICIES = {"drop": 0, "accept": 1}
_CHAIN_TYPES = ("filter", "nat", "route")
# errors that say "the batch is malformed" rather than "the table is not as you think"
_ENCODING_ERRORS = {errno.EINVAL, errno.EOPNOTSUPP, errno.ERANGE, errno.E2BIG,
                    errno.EPROTO, errno.EMSGSIZE, errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT}


# Rule bodies repeat (every endpoint chain clears the pass mark, jumps to
# shared policy chains, ends in the same drops): their expressions are kept
# with the named sets they look up, and used again unless the rule declares
# an anonymous set or looks up a set made in the same batch (nft then names
# the set by its batch id too).
_COMPILED: dict[str, tuple[bytes, tuple[str, ...]]] = {}
_COMPILED_MAX = 8192


class KernelRefused(Unsupported):
    """The kernel refused the batch with an errno that may mean a bad encoding."""


def _udata_comment(kind: int, comment: str | None) -> list[bytes]:
    if comment is None:
        return []
    return [w.attr(kind, w.tlv(0, comment.encode() + b"\0"))]


def _priority(chain: Chain) -> int:
    prio = chain.priority
    if isinstance(prio, int):
        return prio
    text = str(prio).strip()
    if text in _PRIORITIES:
        return _PRIORITIES[text]
    try:
        return int(text)
    except ValueError:
        raise Unsupported(f"chain priority {prio!r}") from None


class _Batch:
    """Translates one transaction; ``known`` are the sets the kernel already has."""

    def __init__(self, table: str, known: Mapping[str, Set | Map]) -> None:
        self.table = table
        self.known = dict(known)
        self.messages: list[w.Message] = []
        self._next_id = 0
        self._new_sets: dict[str, int] = {}
        self._unfilled: dict[str, bool] = {}
        self._added: dict[str, list[tuple[bytes, bytes]]] = {}
        self._compiler = RuleCompiler(self._set_id, self._new_sets.get)

    def _set_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def build(self, tx: Transaction) -> list[w.Message]:
        ops = tx.ops
        i = 0
        while i < len(ops):
            verb, obj = ops[i]
            if isinstance(obj, Element):
                i = self._elements(ops, i)
                continue
            self._one(verb, obj, i)
            i += 1
        return self.messages

    def _one(self, verb: Verb, obj: Object, op: int) -> None:
        t = w.strz(1, self.table)
        if isinstance(obj, Table) and verb == "add" and obj.comment is None:
            self.messages.append(w.Message(w.NEWTABLE, w.F_CREATE, t + w.u32(2, 0), op))
        elif isinstance(obj, Chain) and verb == "add":
            self.messages.append(self._chain(obj, op))
        elif isinstance(obj, Chain) and verb == "flush":
            self.messages.append(w.Message(w.DELRULE, 0, t + w.strz(2, obj.name), op))
        elif isinstance(obj, Chain) and verb == "delete":
            self.messages.append(w.Message(w.DELCHAIN, 0, t + w.strz(3, obj.name), op))
        elif isinstance(obj, Rule) and verb == "add" and obj.handle is None and obj.index is None:
            self._rule(obj, op)
        elif isinstance(obj, Set | Map) and verb == "add":
            set_id = self._set_id()
            self.messages.append(nft_sets.declare_named(self.table, obj, set_id, op))
            self._new_sets[obj.name] = set_id
            self._unfilled[obj.name] = True
            self.known[obj.name] = obj
        elif isinstance(obj, Set | Map) and verb == "delete":
            self.messages.append(w.Message(w.DELSET, 0, t + w.strz(2, obj.name), op))
            self.known.pop(obj.name, None)
            self._new_sets.pop(obj.name, None)
        else:
            raise Unsupported(f"{verb} {type(obj).__name__.lower()} over netlink")

    def _chain(self, chain: Chain, op: int) -> w.Message:
        parts = [w.strz(1, self.table), w.strz(3, chain.name)]
        if chain.is_base:
            if chain.type not in _CHAIN_TYPES or chain.hook not in _HOOKS:
                raise Unsupported(f"base chain {chain.type} {chain.hook}")
            parts.append(w.strz(7, str(chain.type)))
            if chain.policy is not None:
                if chain.policy not in _POLICIES:
                    raise Unsupported(f"chain policy {chain.policy!r}")
                parts.append(w.u32(5, _POLICIES[chain.policy]))
            parts.append(w.nest(4, w.u32(1, _HOOKS[str(chain.hook)]),
                                w.u32(2, _priority(chain))))
        parts += _udata_comment(12, chain.comment)
        return w.Message(w.NEWCHAIN, w.F_CREATE, b"".join(parts), op)

    def _rule(self, rule: Rule, op: int) -> None:
        cached = _COMPILED.get(rule.rule)
        if cached is not None and not any(ref in self._new_sets for ref in cached[1]):
            expressions = cached[0]
        else:
            compiled = self._compiler.compile(rule.rule)
            for anon in compiled.sets:
                self.messages += nft_sets.declare_anonymous(self.table, anon, op)
            expressions = w.nest(4, *compiled.expressions)
            if compiled.reusable:
                if len(_COMPILED) >= _COMPILED_MAX:
                    _COMPILED.clear()
                _COMPILED[rule.rule] = (expressions, tuple(compiled.refs))
        parts = [w.strz(1, self.table), w.strz(2, rule.chain), expressions,
                 *_udata_comment(7, rule.comment)]
        self.messages.append(w.Message(w.NEWRULE, w.F_CREATE | w.F_APPEND, b"".join(parts), op))

    def _elements(self, ops: list[tuple[Verb, Object]], start: int) -> int:
        """Consecutive add (or delete) of elements of one set: as few messages as fit."""
        verb, first = ops[start]
        assert isinstance(first, Element)
        if verb not in ("add", "delete"):
            raise Unsupported(f"{verb} element over netlink")
        target = self.known.get(first.set)
        if target is None:
            raise Unsupported(f"elements of {first.set}, a set this driver has not seen")
        shape = nft_sets.SetShape.of(target)
        run: list[Element] = []
        end = start
        while end < len(ops):
            v, obj = ops[end]
            if v != verb or not isinstance(obj, Element) or obj.set != first.set:
                break
            run.append(obj)
            end += 1
        if verb == "add" and shape.interval and len(shape.types) == 1:
            self._no_overlap(shape, run)
        # nft fills a set it creates with an interval end at zero first (the
        # gap before the first range): the first elements a new set gets here
        fresh = verb == "add" and self._unfilled.pop(first.set, False)
        self.messages += nft_sets.element_messages(
            self.table, shape, verb, run, start, self._new_sets.get(first.set), fresh)
        return end

    def _no_overlap(self, shape: nft_sets.SetShape, run: list[Element]) -> None:
        """The kernel checks a new range against the set's committed ranges, but
        not always against others of the same batch, where nft (which merges in
        its cache first) reports the overlap: such a transaction goes to nft."""
        ranges = self._added.setdefault(shape.name, [])
        ranges += (shape.types[0].first_last(e.key[0].strip()) for e in run)
        if len(ranges) < 2:
            return
        ranges.sort()
        for (_, hi), (lo, _) in itertools.pairwise(ranges):
            if lo <= hi:
                raise Unsupported(f"overlapping elements of {shape.name} in one transaction")


class NetlinkWriter:
    """Runs transactions on one table as nfnetlink batches (see the module doc)."""

    def __init__(self, family: str, table: str, netns: str | None = None) -> None:
        if family != "inet":
            raise Unsupported(f"family {family}: the rule compiler knows inet only")
        self.family = w.FAMILY[family]
        self.family_name = family
        self.table = table
        self._nl = nft_wire.NFNetlink(netns)

    def close(self) -> None:
        self._nl.close()

    def encode(self, tx: Transaction, known: Mapping[str, Set | Map]) -> list[w.Message]:
        """The batch for ``tx`` (Unsupported when it holds something unknown here)."""
        try:
            return _Batch(self.table, known).build(tx)
        except OverflowError as exc:
            raise Unsupported(str(exc)) from None

    def run(self, tx: Transaction, known: Mapping[str, Set | Map]) -> None:
        messages = self.encode(tx, known)
        refusals = self._nl.send(self.family, messages)
        if not refusals:
            return
        first = refusals[0]
        if any(r.code in _ENCODING_ERRORS for r in refusals):
            bad = next(r for r in refusals if r.code in _ENCODING_ERRORS)
            raise KernelRefused(f"kernel refused the batch: {self._where(tx, messages, bad)}")
        raise self._error(tx, messages, first, known)

    def _where(self, tx: Transaction, messages: list[w.Message], r: nft_wire.Refusal) -> str:
        if r.index is None or r.index >= len(messages):
            return r.text
        verb, obj = tx.ops[messages[r.index].op]
        return f"{r.text} at {render_op(verb, obj, self.family_name, self.table)}"

    def _error(self, tx: Transaction, messages: list[w.Message], r: nft_wire.Refusal,
               known: Mapping[str, Set | Map]) -> NFTError:
        kind = classify_error(r.text)
        if r.index is None or r.index >= len(messages):
            return NFTError(f"nft: {r.text}", kind=kind, stderr=f"Error: {r.text}\n")
        msg = messages[r.index]
        verb, obj = tx.ops[msg.op]
        what = type(obj).__name__.lower()
        if what == "map":
            what = "set"
        text = r.text
        declared = _declared(tx, known, obj.set) if isinstance(obj, Element) else None
        if (msg.kind == w.NEWSETELEM and declared is not None
                and r.code in (errno.EEXIST, errno.ENOTEMPTY)
                and rbtree_type(declared) is not None):
            # an identical element is accepted: what the kernel refuses in an
            # interval set of one field is an overlap, which nft reports in its
            # own words (it passes the kernel's answer on for concatenations)
            text, kind = "conflicting intervals specified", "overlap"
        said = f"Error: Could not process {what}: {text}"
        return NFTError(f"nft: Could not process {what}: {text}", kind=kind,
                        stderr=said + "\n", line_number=msg.op + 1,
                        script_line=render_op(verb, obj, self.family_name, self.table))


def _declared(tx: Transaction, known: Mapping[str, Set | Map], name: str) -> Set | Map | None:
    for verb, obj in tx.ops:
        if verb == "add" and isinstance(obj, Set | Map) and obj.name == name:
            return obj
    return known.get(name)

