"""Desired table contents and the exact changes not yet applied (no I/O)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from gingham.dataplane import layout, nft
from gingham.dataplane.layout import ChainSpec

Key = tuple[str, ...]


@dataclass
class TableState:
    """Desired table contents and the changes not yet applied."""

    chains: dict[str, ChainSpec] = field(default_factory=dict)
    sets: dict[str, nft.Set | nft.Map] = field(default_factory=dict)
    elements: dict[str, set[Key]] = field(default_factory=dict)
    map_entries: dict[str, dict[str, str]] = field(default_factory=dict)
    dirty_chains: set[str] = field(default_factory=set)
    dirty_sets: set[str] = field(default_factory=set)
    elem_add: dict[str, set[Key]] = field(default_factory=lambda: defaultdict(set))
    elem_del: dict[str, set[Key]] = field(default_factory=lambda: defaultdict(set))
    dirty_entries: set[tuple[str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        for mp in layout.dispatch_maps():
            self.sets[mp.name] = mp
            self.map_entries[mp.name] = {}
            self.dirty_sets.add(mp.name)
        for st in layout.anti_spoof_sets():
            self.ensure_set(st)

    # chains
    def set_chain(self, spec: ChainSpec) -> None:
        if self.chains.get(spec.name) != spec:
            self.chains[spec.name] = spec
            self.dirty_chains.add(spec.name)

    def remove_chain(self, name: str) -> None:
        if self.chains.pop(name, None) is not None:
            self.dirty_chains.add(name)

    # sets
    def ensure_set(self, s: nft.Set | nft.Map) -> None:
        if s.name not in self.sets:
            self.sets[s.name] = s
            self.elements[s.name] = set()
            self.dirty_sets.add(s.name)

    def remove_set(self, name: str) -> None:
        if name in self.sets:
            self.del_elements(name, list(self.elements.get(name, ())))
            del self.sets[name]
            self.elements.pop(name, None)
            self.dirty_sets.add(name)

    def add_elements(self, name: str, keys: Iterable[Key]) -> None:
        cur = self.elements[name]
        for k in keys:
            if k in cur:
                continue
            cur.add(k)
            if k in self.elem_del[name]:
                self.elem_del[name].discard(k)
            else:
                self.elem_add[name].add(k)

    def del_elements(self, name: str, keys: Iterable[Key]) -> None:
        cur = self.elements.get(name)
        if cur is None:
            return
        for k in keys:
            if k not in cur:
                continue
            cur.discard(k)
            if k in self.elem_add[name]:
                self.elem_add[name].discard(k)
            else:
                self.elem_del[name].add(k)

    # dispatch
    def set_entry(self, map_name: str, ifname: str, chain: str | None) -> None:
        entries = self.map_entries[map_name]
        if entries.get(ifname) == chain:
            return
        if chain is None:
            entries.pop(ifname, None)
        else:
            entries[ifname] = chain
        self.dirty_entries.add((map_name, ifname))

    def clear_dirty(self) -> None:
        self.dirty_chains.clear()
        self.dirty_sets.clear()
        self.elem_add.clear()
        self.elem_del.clear()
        self.dirty_entries.clear()

    @property
    def has_changes(self) -> bool:
        return bool(
            self.dirty_chains
            or self.dirty_sets
            or any(self.elem_add.values())
            or any(self.elem_del.values())
            or self.dirty_entries
        )
