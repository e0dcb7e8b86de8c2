"""Rule scanner: reference-counts the IP sets that active policies and profiles use.

An *owner* is an active policy or profile. ``set_owner`` replaces the owner's
references with a new list (new references are taken before old ones are
dropped, so a set both used before and after an update never flaps); a set's
first reference starts it in the member index and tells the sequencer, its
last reference stops it. Each owner counts once per set however many of its
rules use the set.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Protocol

from gingham.calc.members import IPSetMembers
from gingham.calc.messages import IPSetKind
from gingham.calc.refcount import RefCounter
from gingham.calc.rules import IPSetSpec


class SetSink(Protocol):
    def set_added(self, set_id: str, kind: IPSetKind) -> None: ...
    def set_removed(self, set_id: str) -> None: ...


class RuleScanner:
    def __init__(self, members: IPSetMembers, sink: SetSink) -> None:
        self._members = members
        self._sink = sink
        self._refs: RefCounter[str] = RefCounter()
        self._owners: dict[Hashable, frozenset[IPSetSpec]] = {}

    def set_owner(self, owner: Hashable, specs: Iterable[IPSetSpec]) -> None:
        new = frozenset(specs)
        old = self._owners.get(owner, frozenset())
        if new == old and owner in self._owners:
            return
        self._owners[owner] = new
        for spec in new - old:
            if self._refs.incref(spec.set_id):
                kind: IPSetKind = "net" if spec.named_port is None else "net-port"
                # The sequencer first: members found while starting the set
                # belong to its initial contents, not to a delta.
                self._sink.set_added(spec.set_id, kind)
                self._members.add_set(spec)
        self._release(old - new)

    def drop_owner(self, owner: Hashable) -> None:
        old = self._owners.pop(owner, None)
        if old is not None:
            self._release(old)

    def _release(self, specs: Iterable[IPSetSpec]) -> None:
        for spec in specs:
            if self._refs.decref(spec.set_id):
                # The sequencer first: it reads the members being dropped.
                self._sink.set_removed(spec.set_id)
                self._members.remove_set(spec.set_id)

    def active_sets(self) -> frozenset[str]:
        return frozenset(self._refs)

    def owner_count(self) -> int:
        return len(self._owners)
