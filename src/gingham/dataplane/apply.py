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
:func:`resync` against the kernel. After the nft transaction it brings the
IPv4 settings of the programmed workload interfaces (forwarding, proxy ARP,
the ``rp_filter`` the managers want: :class:`~gingham.dataplane.sysctl.WorkloadSysctlSync`;
read back in full whenever the table is).

:func:`resync` (restart path): read the existing table (chains with their
``v:`` markers from one ``nft -j list table``, sets, elements) and change only
what differs. It never flushes or deletes the table, so established traffic
does not notice a restart. Nothing at all is written before the managers have
seen :class:`~gingham.calc.messages.InSync`.

With the real :class:`~gingham.dataplane.nft.NFT` driver a transaction goes
to the kernel as one nfnetlink batch of gingham's own encoding
(:mod:`gingham.dataplane.nft_netlink`: no ``nft`` process, no read of the
ruleset, so the cost of a change does not grow with the table); one the
encoder does not know goes through ``nft -f -`` instead
(:attr:`ApplyResult.via` and :attr:`ApplyResult.fallback` say which and why).
The first resync after a failed apply always uses ``nft -f -``, so an
encoding fault cannot repeat itself forever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gingham.dataplane import layout, nft
from gingham.dataplane.layout import ChainSpec
from gingham.dataplane.managers import Key, PolicyDataplane, TableState
from gingham.dataplane.sysctl import Sysctl, WorkloadSysctlSync
from gingham.errors import DataplaneError

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
    via: str = "nft"  # "netlink" (one nfnetlink batch) or "nft" (nft -f -, or a fake driver)
    fallback: str | None = None  # why a transaction that could use netlink needed nft


def _rank_of(name: str, base: bool) -> int:
    if base:
        return layout.RANK_BASE
    if name.startswith(("pol-", "pro-", *layout.COMPILED_CHAIN_PREFIXES)):
        return layout.RANK_POLICY
    if name.startswith(("tw-", "fw-", "th-", "fh-", "drop-")):
        return layout.RANK_ENDPOINT
    return layout.RANK_BASE


def _elem(name: str, key: Key, with_value: bool = True) -> nft.Element:
    if name in layout.DISPATCH_MAPS:
        raise AssertionError("map entries go through _entry")
    if layout.is_compiled_map(name):  # a compiled tier's map: the verdict is the last part
        return nft.Element(name, key[:-1], key[-1] if with_value else None)
    return nft.Element(name, key)


def _entry(map_name: str, ifname: str, chain: str | None = None) -> nft.Element:
    if chain is None:
        return nft.Element(map_name, f'"{ifname}"')
    return layout.dispatch_element(map_name, ifname, chain)


_ELEMENTS_PER_COMMAND = 1000


class _Transaction(nft.Transaction):
    """Renders runs of element operations on one set as ONE command.

    nft handles ``add element s { a, b, … }`` far faster than one command per
    element (for interval sets it re-checks overlaps per command). The
    operations themselves are unchanged, so FakeNFT sees the same ops; only
    error line numbers refer to the coalesced script.
    """

    def render(self, family: str = "inet", table: str = "gingham") -> str:
        lines: list[str] = []
        run: list[nft.Element] = []
        run_verb = ""

        def flush_run() -> None:
            for i in range(0, len(run), _ELEMENTS_PER_COMMAND):
                chunk = run[i : i + _ELEMENTS_PER_COMMAND]
                keys = ", ".join(
                    " . ".join(e.key) + ("" if e.value is None or run_verb == "delete"
                                         else " : " + " . ".join(e.value))
                    for e in chunk
                )
                lines.append(f"{run_verb} element {family} {table} {chunk[0].set} {{ {keys} }}")
            run.clear()

        for verb, obj in self.ops:
            plain = (
                isinstance(obj, nft.Element)
                and verb in ("add", "delete")
                and obj.comment is None
                and obj.timeout is None
            )
            if plain and run and (verb != run_verb or run[0].set != obj.set):  # type: ignore[union-attr]
                flush_run()
            if plain:
                run_verb = verb
                run.append(obj)  # type: ignore[arg-type]
                continue
            if run:
                flush_run()
            lines.append(nft.render_op(verb, obj, family, table))
        if run:
            flush_run()
        return "".join(line + "\n" for line in lines)


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
    tx = _Transaction()
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

    # 2. elements. A compiled tier's map names chains: its elements are added after
    # the chains (3b), and deleted here even when the map goes too (a kernel before 6.4
    # keeps a deleted map's chains busy until the commit).
    later: list[nft.Element] = []

    def add(name: str, k: Key) -> None:
        (later.append if layout.is_compiled_map(name) else tx.add)(_elem(name, k))

    if full:
        actual = prog.elements or {}
        for name in sorted(prog.sets - set(state.sets)):
            if layout.is_compiled_map(name):
                for k in sorted(actual.get(name, ())):
                    tx.delete(_elem(name, k, with_value=False))
        for name in sorted(state.sets):
            if name in layout.DISPATCH_MAPS:
                continue
            want = {nft.normalize_key(k) for k in state.elements.get(name, ())}
            have = actual.get(name, set()) if name in prog.sets else set()
            for k in sorted(have - want):
                tx.delete(_elem(name, k, with_value=False))
            for k in sorted(want - have):
                add(name, k)
    else:
        for name, keys in sorted(state.elem_del.items()):
            if name in prog.sets and (name in state.sets or layout.is_compiled_map(name)):
                for k in sorted(keys):
                    tx.delete(_elem(name, k, with_value=False))
        for name, keys in sorted(state.elem_add.items()):
            if name in state.sets:
                for k in sorted(keys):
                    add(name, k)

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

    # 3b. elements of verdict maps, now that the chains they name exist
    for e in later:
        tx.add(e)

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
    doomed_sets = sorted(n for n in set_names if n not in state.sets and n in prog.sets)

    def delete_sets(names: Iterable[str]) -> None:
        for name in names:
            tx.delete(nft.Set(name))
            new.sets.discard(name)

    # a compiled tier's map names chains: it goes before them, once the rules that
    # look it up are flushed; other sets after the chains whose rules use them
    delete_sets(n for n in doomed_sets if layout.is_compiled_map(n))
    for n in doomed:
        tx.delete(nft.Chain(n))
        new.chains.pop(n, None)
        new.chain_ranks.pop(n, None)
    delete_sets(n for n in doomed_sets if not layout.is_compiled_map(n))
    return tx, new


def read_programmed(driver: nft.NFTInterface) -> Programmed:
    """What the kernel's ``gingham`` table holds (the restart path).

    One :meth:`snapshot` (two nft runs) however many sets there are: every nft
    run reads the whole ruleset, so per-set listing would take seconds.
    """
    snap = driver.snapshot()
    if snap is None:
        return Programmed()
    prog = Programmed(table=True, elements={})
    assert prog.elements is not None
    markers: dict[str, str] = {}
    for c in snap.counters:
        if c.comment and c.comment.startswith("v:") and c.chain not in markers:
            markers[c.chain] = c.comment
    for chain in snap.chains.values():
        # a chain without our marker compares unequal to everything: rewritten
        prog.chains[chain.name] = markers.get(chain.name, "v:?")
        prog.chain_ranks[chain.name] = _rank_of(chain.name, chain.is_base)
    for s in snap.sets.values():
        elems = snap.elements.get(s.name, [])
        prog.sets.add(s.name)
        if isinstance(s, nft.Map) and s.name not in layout.DISPATCH_MAPS:  # compiled tiers
            prog.elements[s.name] = {e.key + (e.value or ()) for e in elems}
        elif isinstance(s, nft.Map):
            entries = prog.map_entries.setdefault(s.name, {})
            for e in elems:
                if e.value and e.value[0].startswith(("jump ", "goto ")):
                    entries[e.key[0]] = e.value[0].split()[1]
                else:
                    entries[e.key[0]] = "?"
        else:
            prog.elements[s.name] = {e.key for e in elems}
    return prog


def rule_counters(driver: nft.NFTInterface) -> dict[str, tuple[int, int]]:
    """(packets, bytes) per rule comment, summed over the nft rules one rule became.

    Comments are :func:`gingham.dataplane.layout.short_comment` of the rule id
    (or markers such as ``tier-end:<tier>``, ``anti-spoof``); chain markers
    (``v:…``) count packets entering each chain and are left out.
    """
    out: dict[str, tuple[int, int]] = {}
    for c in driver.counters():
        if c.comment is None or c.comment.startswith("v:"):
            continue
        p, b = out.get(c.comment, (0, 0))
        out[c.comment] = (p + c.packets, b + c.bytes)
    return out


def resync(driver: nft.NFTInterface, state: TableState) -> tuple[nft.Transaction, Programmed]:
    """Plan the smallest transaction from the kernel's table to ``state``."""
    prog = read_programmed(driver)
    return plan(state, prog, full=True)


class Applier:
    """Runs the managers' changes against a driver: one transaction per :meth:`apply`."""

    def __init__(
        self,
        driver: nft.NFTInterface,
        dataplane: PolicyDataplane,
        fast_elements: bool | None = None,
        rp_filter: WorkloadSysctlSync | bool | None = True,
    ) -> None:
        """``fast_elements``: False sends every transaction through ``nft -f -``
        (None: the driver's own choice; the real driver's nfnetlink path).
        ``rp_filter``: who writes the workload interfaces' rp_filter; True
        (default) means the namespace of a real :class:`~gingham.dataplane.nft.NFT`
        driver and nobody for any other driver; False or None: nobody."""
        self.driver = driver
        self.dataplane = dataplane
        self.programmed: Programmed | None = None  # None: must resync first
        self.last_tx: nft.Transaction | None = None
        self._rpf_full = True
        self._netlink = fast_elements
        self._nft_next = False  # after a failure: the resync goes through nft -f -
        if rp_filter is True:
            rp_filter = (WorkloadSysctlSync(Sysctl(netns=driver.netns))
                         if isinstance(driver, nft.NFT) else None)
        self.rp_filter: WorkloadSysctlSync | None = rp_filter or None

    def close(self) -> None:
        if isinstance(self.driver, nft.NFT):
            self.driver.close()

    def force_resync(self) -> ApplyResult | None:
        """Compare the whole kernel table (and the interfaces' rp_filter) with the
        desired state now and repair what differs (e.g. periodically, against
        other tools editing our table)."""
        self.programmed = None
        self._rpf_full = True
        return self.apply()

    def _run(self, tx: nft.Transaction) -> tuple[str, str | None]:
        """Run ``tx`` on the driver: (path taken, why nft was needed)."""
        driver = self.driver
        if not isinstance(driver, nft.NFT):
            driver.run(tx)
            return "nft", None
        netlink = False if self._nft_next else self._netlink
        driver.run(tx, netlink=netlink)
        return driver.last_via, driver.last_fallback

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
                self.sync_interfaces()
                return ApplyResult(0, 0.0, False)
            tx, new = plan(state, self.programmed)
        self.last_tx = tx
        try:
            via, why = self._run(tx) if tx.ops else ("nft", None)
        except Exception:
            self.programmed = None  # kernel state unknown: next apply reads it back
            self._rpf_full = True
            self._nft_next = True
            raise
        self._nft_next = False
        if why is not None:
            log.info("nft transaction of %d commands needed nft -f -: %s", len(tx), why)
        self.programmed = new
        state.clear_dirty()
        self.sync_interfaces()
        return ApplyResult(len(tx), time.perf_counter() - start, is_resync, via, why)

    def sync_interfaces(self) -> None:
        """Bring the workload interfaces' rp_filter to the desired modes (cheap when
        nothing changed; interfaces missing earlier are tried again, at most every 0.1
        s). Problems are in :attr:`interface_problems`, never raised: the
        nft anti-spoofing is in place whatever happens here."""
        if self.rp_filter is None or not self.dataplane.in_sync:
            return
        eps = self.dataplane.endpoints
        changed, eps.rp_filter_dirty = eps.rp_filter_dirty, set()
        full, self._rpf_full = self._rpf_full, False
        try:
            self.rp_filter.sync(eps.rp_filter, changed, full=full)
        except DataplaneError as exc:
            log.warning("rp_filter of workload interfaces not set: %s", exc)
            self._rpf_full = True

    def waiting(self) -> bool:
        """A workload interface that was missing is due to be looked for again (a tap
        plugged after its endpoint was programmed: Nova's order)."""
        return self.rp_filter is not None and self.rp_filter.waiting()

    @property
    def interface_problems(self) -> Mapping[str, str]:
        """Workload interface (or ``all``) -> why its rp_filter is not as wanted."""
        if self.rp_filter is None:
            return MappingProxyType({})
        return self.rp_filter.problems


def apply_messages(applier: Applier, msgs: Iterable[object]) -> ApplyResult | None:
    """Feed messages to the applier's managers and apply them as one batch."""
    applier.dataplane.on_messages(msgs)  # type: ignore[arg-type]
    return applier.apply()
