"""Turn the managers' desired state into ONE nft transaction per batch, and run it.

Order inside a transaction (everything a command refers to exists before it,
nothing is deleted while referenced):

1. the table (first time), new sets and maps;
2. set element deltas;
3. new or changed chains by ascending rank: policies/profiles, endpoint
   chains, then base chains (a changed chain is flushed and refilled: the
   transaction is atomic, so no packet sees it half-written);
4. dispatch-map entries added or changed;
5. removals: dispatch entries, then every chain that goes is flushed (so no
   jump into another doomed chain remains) and deleted, then sets.

:class:`Applier` keeps what it last programmed (chain markers, sets, map
entries). Set elements are trusted to match the desired state after each
successful run; after a failed run the next :meth:`Applier.apply` does a full
:func:`resync` against the kernel.

:func:`resync` (restart path): read the existing table (chains with their
``v:`` markers from one ``nft -j list table``, sets, elements) and change only
what differs. It never flushes or deletes the table, so established traffic
does not notice a restart. Nothing at all is written before the managers have
seen :class:`~gingham.calc.messages.InSync`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from gingham.dataplane import layout, nft
from gingham.dataplane.layout import ChainSpec
from gingham.dataplane.managers import Key, PolicyDataplane, TableState

log = logging.getLogger(__name__)


@dataclass
class Programmed:
    """What the kernel holds, as far as this process knows."""

    table: bool = False
    chains: dict[str, str] = field(default_factory=dict)  # name -> marker
    chain_ranks: dict[str, int] = field(default_factory=dict)
    sets: set[str] = field(default_factory=set)
    map_entries: dict[str, dict[str, str]] = field(default_factory=dict)
    elements: dict[str, set[Key]] | None = None  # only filled by a kernel read


@dataclass(frozen=True)
class ApplyResult:
    commands: int
    seconds: float
    resync: bool


def _rank_of(name: str, base: bool) -> int:
    if base:
        return layout.RANK_BASE
    if name.startswith(("pol-", "pro-")):
        return layout.RANK_POLICY
    if name.startswith(("tw-", "fw-", "th-", "fh-")):
        return layout.RANK_ENDPOINT
    return layout.RANK_BASE


def _elem(name: str, key: Key) -> nft.Element:
    if name in layout.DISPATCH_MAPS:
        raise AssertionError("map entries go through _entry")
    return nft.Element(name, key)


def _entry(map_name: str, ifname: str, chain: str | None = None) -> nft.Element:
    if chain is None:
        return nft.Element(map_name, f'"{ifname}"')
    return layout.dispatch_element(map_name, ifname, chain)


def plan(
    state: TableState,
    prog: Programmed,
    *,
    full: bool = False,
) -> tuple[nft.Transaction, Programmed]:
    """The transaction taking ``prog`` to ``state`` and the resulting :class:`Programmed`.

    ``full`` compares everything (resync); otherwise only what ``state``
    marked dirty is looked at.
    """
    tx = nft.Transaction()
    new = Programmed(
        True,
        dict(prog.chains),
        dict(prog.chain_ranks),
        set(prog.sets),
        {k: dict(v) for k, v in prog.map_entries.items()},
    )
    if not prog.table:
        tx.add(nft.Table())

    # 1. sets and maps
    set_names = set(state.sets) | set(prog.sets) if full else state.dirty_sets
    for name in sorted(set_names):
        if name in state.sets and name not in prog.sets:
            tx.add(state.sets[name])
            new.sets.add(name)

    # 2. elements
    if full:
        actual = prog.elements or {}
        for name in sorted(state.sets):
            if name in layout.DISPATCH_MAPS:
                continue
            want = {nft.normalize_key(k) for k in state.elements.get(name, ())}
            have = actual.get(name, set()) if name in prog.sets else set()
            for k in sorted(have - want):
                tx.delete(_elem(name, k))
            for k in sorted(want - have):
                tx.add(_elem(name, k))
    else:
        for name, keys in sorted(state.elem_del.items()):
            if name in state.sets and name in prog.sets:
                for k in sorted(keys):
                    tx.delete(_elem(name, k))
        for name, keys in sorted(state.elem_add.items()):
            if name in state.sets:
                for k in sorted(keys):
                    tx.add(_elem(name, k))

    # 3. chains, ascending rank
    chain_names = set(state.chains) | set(prog.chains) if full else state.dirty_chains
    wanted: list[ChainSpec] = sorted(
        (state.chains[n] for n in chain_names if n in state.chains),
        key=lambda s: (s.rank, s.name),
    )
    for spec in wanted:
        marker = prog.chains.get(spec.name)
        if marker == spec.marker:
            continue
        if marker is None:
            tx.add(spec.chain)
        else:
            tx.flush(nft.Chain(spec.name))
        for rule in spec.nft_rules():
            tx.add(rule)
        new.chains[spec.name] = spec.marker
        new.chain_ranks[spec.name] = spec.rank

    # 4. dispatch entries
    if full:
        entry_keys = {
            (mp, ifn)
            for mp in layout.DISPATCH_MAPS
            for ifn in set(state.map_entries.get(mp, {})) | set(prog.map_entries.get(mp, {}))
        }
    else:
        entry_keys = state.dirty_entries
    removals: list[nft.Element] = []
    for mp, ifn in sorted(entry_keys):
        want_chain = state.map_entries.get(mp, {}).get(ifn)
        have_chain = prog.map_entries.get(mp, {}).get(ifn)
        if want_chain == have_chain:
            continue
        if have_chain is not None:
            if want_chain is None:
                removals.append(_entry(mp, ifn))
            else:
                tx.delete(_entry(mp, ifn))
            new.map_entries.setdefault(mp, {}).pop(ifn, None)
        if want_chain is not None:
            tx.add(_entry(mp, ifn, want_chain))
            new.map_entries.setdefault(mp, {})[ifn] = want_chain

    # 5. removals
    for e in removals:
        tx.delete(e)
    doomed = sorted(
        (n for n in chain_names if n not in state.chains and n in prog.chains),
        key=lambda n: (-prog.chain_ranks.get(n, layout.RANK_BASE), n),
    )
    for n in doomed:
        tx.flush(nft.Chain(n))
    for n in doomed:
        tx.delete(nft.Chain(n))
        new.chains.pop(n, None)
        new.chain_ranks.pop(n, None)
    for name in sorted(set_names):
        if name not in state.sets and name in prog.sets:
            tx.delete(nft.Set(name))
            new.sets.discard(name)
    return tx, new


def read_programmed(driver: nft.NFTInterface) -> Programmed:
    """What the kernel's ``gingham`` table holds (the restart path)."""
    if not driver.table_exists():
        return Programmed()
    prog = Programmed(table=True, elements={})
    markers: dict[str, str] = {}
    for c in driver.counters():
        if c.comment and c.comment.startswith("v:") and c.chain not in markers:
            markers[c.chain] = c.comment
    for chain in driver.list_chains():
        # a chain without our marker compares unequal to everything: rewritten
        prog.chains[chain.name] = markers.get(chain.name, "v:?")
        prog.chain_ranks[chain.name] = _rank_of(chain.name, chain.is_base)
    assert prog.elements is not None
    for s in driver.list_sets():
        prog.sets.add(s.name)
        elems = driver.list_elements(s.name)
        if isinstance(s, nft.Map):
            entries = prog.map_entries.setdefault(s.name, {})
            for e in elems:
                if e.value and e.value[0].startswith(("jump ", "goto ")):
                    entries[e.key[0]] = e.value[0].split()[1]
                else:
                    entries[e.key[0]] = "?"
        else:
            prog.elements[s.name] = {e.key for e in elems}
    return prog


def resync(driver: nft.NFTInterface, state: TableState) -> tuple[nft.Transaction, Programmed]:
    """Plan the smallest transaction from the kernel's table to ``state``."""
    prog = read_programmed(driver)
    return plan(state, prog, full=True)


class Applier:
    """Runs the managers' changes against a driver: one transaction per :meth:`apply`."""

    def __init__(self, driver: nft.NFTInterface, dataplane: PolicyDataplane) -> None:
        self.driver = driver
        self.dataplane = dataplane
        self.programmed: Programmed | None = None  # None: must resync first
        self.last_tx: nft.Transaction | None = None

    def apply(self) -> ApplyResult | None:
        """Program pending changes; None while the datastore is not in sync yet."""
        if not self.dataplane.in_sync:
            return None
        start = time.perf_counter()
        state = self.dataplane.state
        is_resync = self.programmed is None
        if self.programmed is None:
            tx, new = resync(self.driver, state)
        else:
            if not state.has_changes:
                return ApplyResult(0, 0.0, False)
            tx, new = plan(state, self.programmed)
        self.last_tx = tx
        try:
            self.driver.run(tx)
        except Exception:
            self.programmed = None  # kernel state unknown: next apply reads it back
            raise
        self.programmed = new
        state.clear_dirty()
        return ApplyResult(len(tx), time.perf_counter() - start, is_resync)


def apply_messages(applier: Applier, msgs: Iterable[object]) -> ApplyResult | None:
    """Feed messages to the applier's managers and apply them as one batch."""
    applier.dataplane.on_messages(msgs)  # type: ignore[arg-type]
    return applier.apply()
