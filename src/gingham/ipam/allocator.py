"""The IPAM shell: blocks, affinities and handles in the datastore, written with CAS.

Allocation order for a host: its own blocks, then a newly claimed block from a
pool whose nodeSelector matches the host (up to ``max_blocks_per_host``), then
single addresses borrowed from other hosts' blocks -- unless strict affinity
is set, in which case the host gets ``PoolExhausted``.

Taking addresses from a block writes the block and its handle's raised count
(``gingham.ipam.handles``) in one datastore transaction, compared at the
revisions last seen: one round trip when the cached block is current, and
the counts never disagree with the blocks, so release-by-handle always finds
every address. Releasing: ``gingham.ipam.release``. Claiming blocks:
``gingham.ipam.claims``. Cached reads of pools, reservations, configuration
and affinities: ``gingham.ipam.hostview``.

Documents that cannot be read cost their own key only
(``gingham.ipam.unreadable``): an unreadable block is skipped by every scan
and still occupies its range; an unreadable pool is skipped; unreadable
configuration falls back to its safe side (``gingham.ipam.config``). An
unreadable IPReservation stops allocation: it may reserve any address, and
handing out a reserved one gives an address to two users.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gingham.datastore.base import Datastore, KeyValue, landed
from gingham.errors import (
    AddressInUse,
    GinghamError,
    IPAMError,
    PoolExhausted,
    RevisionConflict,
    ValidationError,
)
from gingham.ipam import claims, handles, keys, release
from gingham.ipam.block import (
    Attributes,
    Block,
    IPAddress,
    IPNetwork,
    host_affinity,
)
from gingham.ipam.config import HostConfig
from gingham.ipam.hostview import HostView
from gingham.ipam.pools import (
    Occupied,
    PoolSpec,
    free_blocks,
)
from gingham.ipam.retry import Backoff
from gingham.ipam.unreadable import (
    UnreadableDocument,
    block_cidr_of_key,
    read_block,
    scan_blocks,
)

if TYPE_CHECKING:
    from gingham.ipam.info import BlockInfo, PoolUsage
    from gingham.ipam.leaks import LeakReport, ReleaseOutcome

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass(frozen=True, slots=True)
class Allocation:
    """One address handed out: release it by ``ip`` and ``sequence`` or by ``handle``."""

    ip: IPAddress
    block: IPNetwork
    sequence: int
    handle: str

    @property
    def interface(self) -> IPInterface:
        return ipaddress.ip_interface(f"{self.ip}/{self.ip.max_prefixlen}")


def _attrs(handle: str, attrs: Mapping[str, str] | None, host: str) -> Attributes:
    a = dict(attrs or {})
    return Attributes(handle=handle, namespace=str(a.get("namespace", "")),
                      workload=str(a.get("workload", "")), host=str(a.get("host") or host))


def _narrowed(pool: PoolSpec, within: IPNetwork) -> PoolSpec:
    """``pool`` cut down to the blocks that overlap ``within`` (which lies in it)."""
    if within.prefixlen <= pool.block_size:
        return dataclasses.replace(pool, cidr=within)
    return dataclasses.replace(pool, cidr=pool.block_for(within.network_address))


class IPAM(HostView):
    """Address management for one host. Not thread-safe: one per thread or process."""

    def __init__(self, ds: Datastore, host: str, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None, cache_ttl: float = 2.0,
                 config: HostConfig | None = None, max_attempts: int = 100) -> None:
        if not host or "/" in host:
            raise ValidationError(f"{host!r} is not a host name", "host")
        self.ds = ds
        self.host = host
        self.clock = clock
        self.rng = rng or random.Random()
        self.backoff = Backoff(sleep=sleep, rng=self.rng, attempts=max_attempts)
        self.cache_ttl = cache_ttl
        self._config_override = config
        self._cache: dict[str, tuple[float, Any]] = {}
        # last seen version of blocks: (block, mod_revision); a stale entry costs
        # one lost compare-and-swap, never a wrong allocation
        self._blocks: dict[str, tuple[Block, int]] = {}
        # handle documents as this call last saw or wrote them (absent: assumed
        # absent); emptied by every allocate and assign, so it stays small
        self._handles: dict[str, KeyValue | None] = {}
        self._nets: dict[str, IPNetwork] = {}
        # set for the length of one allocate(within=...): addresses outside it are
        # skipped like reserved ones
        self._within: IPNetwork | None = None

    def _network(self, text: str) -> IPNetwork:
        net = self._nets.get(text)
        if net is None:
            net = self._nets[text] = ipaddress.ip_network(text)
        return net

    def invalidate(self) -> None:
        self._cache.clear()
        self._blocks.clear()

    # -- public API: allocation ---------------------------------------------

    def auto_assign(self, handle: str, attrs: Mapping[str, str] | None = None,
                    num_v4: int = 1, num_v6: int = 0,
                    pool_cidrs: Sequence[str] | None = None,
                    use: str = "Workload") -> list[IPInterface]:
        return [a.interface
                for a in self.allocate(handle, attrs, num_v4, num_v6, pool_cidrs, use)]

    def allocate_within(self, handle: str, within: IPNetwork,
                        attrs: Mapping[str, str] | None = None,
                        use: str = "Workload") -> Allocation:
        """One address inside ``within``, a range that lies in one enabled pool (a
        Docker network's ``--subnet`` or ``--ip-range``): the same blocks, affinity
        and borrowing as ``allocate``, with every address outside the range skipped
        like a reserved one."""
        pools = [p for p in self.pools()
                 if p.version == within.version and within.subnet_of(p.cidr)]  # type: ignore[arg-type]
        if not pools:
            raise IPAMError(f"{within} lies in no IP pool")
        self._within = within
        try:  # naming the pool also serves a Manual one; a disabled one is refused
            got = self.allocate(handle, attrs, int(within.version == 4),
                                int(within.version == 6), [str(pools[0].cidr)], use)
        finally:
            self._within = None
        return got[0]

    def _skip(self, block: IPNetwork) -> Callable[[int], bool]:
        """Ordinals of ``block`` this allocation must not hand out."""
        reserved = self.reservations().skip_for(block)
        within = self._within
        if within is None:
            return reserved
        base = int(block.network_address)
        lo, hi = int(within.network_address) - base, int(within.broadcast_address) - base
        return lambda o: not lo <= o <= hi or reserved(o)

    def allocate(self, handle: str, attrs: Mapping[str, str] | None = None,
                 num_v4: int = 1, num_v6: int = 0,
                 pool_cidrs: Sequence[str] | None = None,
                 use: str = "Workload") -> list[Allocation]:
        """Addresses for ``handle``: all requested, or none (a partial result is given back).

        ``use`` is the pool's ``allowedUses`` entry this is for ("Workload", or
        "Tunnel" for a host's tunnel address). Pools in ``Manual`` assignment
        mode serve only callers that name them in ``pool_cidrs``.
        """
        if not handle:
            raise ValidationError("an allocation needs a handle", "handle")
        self._handles.clear()
        self.reservations()  # refuses before anything is claimed if one is unreadable
        who = _attrs(handle, attrs, self.host)
        got: list[Allocation] = []
        try:
            for version, count in ((4, num_v4), (6, num_v6)):
                if count > 0:
                    got += self._auto_version(version, count, who, pool_cidrs, use)
        except BaseException as exc:
            if got:
                try:
                    self.release(got)
                except GinghamError as undo:
                    exc.add_note(f"and giving back {[str(g.ip) for g in got]} failed: {undo}")
            raise
        return got

    def _auto_version(self, version: int, count: int, who: Attributes,
                      pool_cidrs: Sequence[str] | None, use: str) -> list[Allocation]:
        pools = self._eligible(version, pool_cidrs, use)
        if not pools:
            raise PoolExhausted(f"no enabled IPv{version} pool for {use} use matches host "
                                f"{self.host}")
        got: list[Allocation] = []
        try:
            self._fill(version, count, who, pools, got)
        except BaseException as exc:
            if got:  # all or nothing: give back what this call took
                try:
                    self.release(got)
                except GinghamError as undo:
                    exc.add_note(f"and giving back {[str(g.ip) for g in got]} failed: {undo}")
            raise
        return got

    def _fill(self, version: int, count: int, who: Attributes, pools: list[PoolSpec],
              got: list[Allocation]) -> None:
        """Append ``count`` addresses to ``got`` (in place, so a failure can undo them)."""

        def in_pools(cidr: IPNetwork) -> bool:
            return any(cidr.version == p.version and cidr.subnet_of(p.cidr)  # type: ignore[arg-type]
                       for p in pools)

        # 1. our own blocks: first as last seen, then -- before claiming or
        #    borrowing -- re-read, in case others freed addresses in them
        affinities = self.own_affinities()
        for fresh in (False, True):
            for cidr_text in sorted(affinities):
                cidr = self._network(cidr_text)
                if len(got) == count or cidr.version != version or not in_pools(cidr):
                    continue
                if fresh:
                    self._blocks.pop(keys.block_key(cidr), None)
                got += self._take_from(cidr, count - len(got), who, own=True)
            if len(got) == count:
                break

        # 2. claim new blocks while allowed
        cfg = self.config()
        owned = len(self.own_affinities(fresh=True)) if len(got) < count else len(affinities)
        while len(got) < count and owned < cfg.max_blocks_per_host:
            claimed = self._claim_any(pools)
            if claimed is None:
                break
            owned += 1
            self._cache.pop("affinities", None)
            got += self._take_from(claimed, count - len(got), who, own=True)

        # 3. borrow
        if len(got) < count:
            if cfg.strict_affinity:
                raise PoolExhausted(
                    f"pool exhausted for this host {self.host}: its blocks are full, "
                    f"it holds {owned} of at most {cfg.max_blocks_per_host} blocks or no "
                    "free block is left, and strict affinity forbids borrowing")
            self._borrow(count, who, in_pools, got)
        if len(got) < count:
            raise PoolExhausted(
                f"no free IPv{version} address for host {self.host} in pools "
                f"{', '.join(str(p.cidr) for p in pools)} (wanted {count}; the host holds "
                f"{owned} of at most {cfg.max_blocks_per_host} blocks)")

    def _borrow(self, count: int, who: Attributes, in_pools: Callable[[IPNetwork], bool],
                got: list[Allocation]) -> None:
        """Fill ``got`` up to ``count`` from other hosts' blocks (in place)."""
        items, _ = self.ds.list(keys.BLOCKS)
        candidates = []
        readable, _unreadable = scan_blocks(items)  # the unreadable are skipped, logged
        for kv, block in readable:
            if block.affinity == host_affinity(self.host) or not in_pools(block.cidr):
                continue
            if block.free_count(self._skip(block.cidr)):
                candidates.append(block.cidr)
                self._blocks[kv.key] = (block, kv.mod_revision)
        self.rng.shuffle(candidates)
        for cidr in candidates:
            if len(got) == count:
                break
            got += self._take_from(cidr, count - len(got), who, own=False)

    def _read_block(self, key: str) -> tuple[Block, int] | None:
        """The block at ``key`` and its revision; None if absent, UnreadableDocument
        if malformed."""
        kv = self.ds.get(key)
        if kv is None:
            self._blocks.pop(key, None)
            return None
        try:
            block = read_block(kv)
        except UnreadableDocument:
            self._blocks.pop(key, None)
            raise
        self._blocks[key] = (block.copy(), kv.mod_revision)
        return block, kv.mod_revision

    def _take_from(self, cidr: IPNetwork, need: int, who: Attributes,
                   own: bool) -> list[Allocation]:
        """Up to ``need`` addresses from one block (CAS, retried on lost races);
        none from a block that cannot be read (it is logged and left alone)."""
        key = keys.block_key(cidr)
        try:
            return self._take_from_block(key, cidr, need, who, own)
        except UnreadableDocument as exc:
            if exc.key != key:
                raise  # e.g. the handle's document: that is the caller's error
            return []

    def _take_from_block(self, key: str, cidr: IPNetwork, need: int, who: Attributes,
                         own: bool) -> list[Allocation]:
        """Block and handle in one transaction, compared at the revisions last seen
        (the block as cached, the handle as absent unless this call wrote it):
        the common case is one round trip. A lost race hands back both documents
        as they are now, and the next attempt starts from them."""
        skip = self._skip(cidr)
        cached = self._blocks.get(key)
        if cached is not None and cached[0].free_count(skip) == 0:
            return []  # full when last seen (the caller re-reads before going elsewhere)
        current = (cached[0].copy(), cached[1]) if cached else self._read_block(key)
        hkey = keys.handle_key(who.handle)
        lost = 0  # races lost on the block (the handle's are retried at once)
        try:
            for _ in range(self.backoff.attempts):
                if current is None:
                    self._blocks.pop(key, None)
                    return []
                seen, revision = current
                if seen.deleted or (own and seen.affinity != host_affinity(self.host)):
                    return []  # being deleted, or released and re-claimed by someone else
                block = seen.copy()
                ordinals = block.assign(min(need, block.free_count(skip)), who, skip)
                if not ordinals:
                    return []
                handle = self._handles.get(hkey)
                puts = {hkey: handles.raised(handle, who.handle, str(cidr), len(ordinals)),
                        key: block.to_json()}
                res = self.ds.txn({hkey: handle.mod_revision if handle else 0, key: revision},
                                  puts)
                if landed(res, puts):
                    revs = res.revisions or {k: kv.mod_revision for k, kv in res.current.items()
                                             if kv is not None}
                    self._blocks[key] = (block, revs[key])
                    self._handles[hkey] = KeyValue(hkey, puts[hkey], revs[hkey], revs[hkey])
                    return [Allocation(block.ip_of(o), cidr, block.seqs[o], who.handle)
                            for o in ordinals]
                self._handles[hkey] = res.current[hkey]
                now = res.current[key]
                if now is not None and now.mod_revision == revision:
                    continue  # only the handle had moved
                self.backoff.pause(lost)
                lost += 1
                current = None if now is None else (read_block(now), now.mod_revision)
                if current is not None:
                    self._blocks[key] = (current[0].copy(), current[1])
        except BaseException:
            self._blocks.pop(key, None)  # written or not, the cached copy is in doubt
            raise
        raise IPAMError(f"block {cidr}: gave up after {self.backoff.attempts} "
                        "compare-and-swap conflicts")

    # -- claiming blocks ----------------------------------------------------

    def _claim_any(self, pools: Sequence[PoolSpec]) -> IPNetwork | None:
        # The blocks themselves, not the affinity keys: a block of another size
        # (the pool's blockSize changed, or pools overlap) has a different key,
        # so only the block list shows that a candidate overlaps it.
        items, listed_at = self.ds.list(keys.BLOCKS)
        # Ranges by key, not by document: an unreadable block still occupies its
        # range (its addresses may be in use), so no block is claimed over it.
        occupied = Occupied(cidr for cidr in map(block_cidr_of_key, (kv.key for kv in items))
                            if cidr is not None)
        if self._within is not None:
            pools = [_narrowed(p, self._within) for p in pools]
        for pool in self.rng.sample(list(pools), len(pools)):
            for tries, cidr in enumerate(free_blocks(pool, occupied, self.rng)):
                if tries >= 16:
                    break  # everyone is racing for blocks: fall back to borrowing
                if self.claim(cidr, seen_absent_at=listed_at):
                    return cidr
        return None

    def claim(self, cidr: IPNetwork, seen_absent_at: int | None = None) -> bool:
        """Claim block ``cidr`` for this host; False if another host owns it
        (see ``gingham.ipam.claims``)."""
        got = claims.claim(self.ds, self.backoff, self.host, cidr, self.clock(),
                           seen_absent_at)
        if got is None:
            return False
        if got[0] is not None:
            self._blocks[keys.block_key(cidr)] = (got[0], got[1])
        return True

    # -- requested address --------------------------------------------------

    def assign(self, ip: str | IPAddress, handle: str,
               attrs: Mapping[str, str] | None = None) -> Allocation:
        """Allocate exactly ``ip``; AddressInUse if someone holds it."""
        addr = ipaddress.ip_address(str(ip))
        if not handle:
            raise ValidationError("an allocation needs a handle", "handle")
        if self.reservations().contains(addr):
            raise IPAMError(f"{addr} is reserved by an IPReservation")
        pools = [p for p in self.pools() if addr.version == p.version and addr in p.cidr]
        if not pools:
            raise IPAMError(f"{addr} is in no IP pool")
        if pools[0].disabled:
            raise IPAMError(f"{addr} is in disabled IP pool {pools[0].cidr}")
        who = _attrs(handle, attrs, self.host)
        cidr = self.find_block(addr)
        if cidr is None:
            cidr = pools[0].block_for(addr)
            if not self.claim(cidr):
                cidr = self.find_block(addr)
                if cidr is None:
                    raise IPAMError(f"block for {addr} vanished while claiming it; retry")
        key, hkey = keys.block_key(cidr), keys.handle_key(handle)

        def step() -> Allocation:
            kv = self.ds.get(key)
            if kv is None:
                raise IPAMError(f"block {cidr} vanished while assigning {addr}; retry")
            block = read_block(kv)
            if block.deleted:
                raise IPAMError(f"block {cidr} is being deleted; retry")
            ordinal = block.ordinal_of(addr)
            block.assign_ordinal(ordinal, who)
            hkv = self.ds.get(hkey)
            puts = {hkey: handles.raised(hkv, handle, str(cidr), 1), key: block.to_json()}
            res = self.ds.txn({key: kv.mod_revision, hkey: hkv.mod_revision if hkv else 0},
                              puts)
            if not landed(res, puts):
                raise RevisionConflict(key)
            return Allocation(addr, cidr, block.seqs[ordinal], handle)

        try:
            return self.backoff.run(f"block {cidr}", step)
        finally:
            self._blocks.pop(key, None)

    # -- views and housekeeping (delegates to info / leaks, imported on use:
    #    the CNI path needs neither) ----------------------------------------

    def ensure_spare(self, min_free: int, version: int = 4,
                     use: str = "Workload") -> IPNetwork | None:
        """Claim the next block early when this host's blocks are nearly full (the block
        claimed, or None): other hosts then route it before a workload needs it."""
        pools = self._eligible(version, None, use)
        if not pools:
            return None
        mine = [b for b in self.blocks_for_host()
                if b.cidr.version == version
                and any(b.cidr.subnet_of(p.cidr) for p in pools)]  # type: ignore[arg-type]
        if not mine or sum(b.size - b.used for b in mine) >= min_free:
            return None  # no workload here yet, or room enough
        if len(self.own_affinities(fresh=True)) >= self.config().max_blocks_per_host:
            return None
        claimed = self._claim_any(pools)
        self._cache.pop("affinities", None)
        return claimed

    def blocks(self) -> list[BlockInfo]:
        from gingham.ipam.info import list_blocks

        return list_blocks(self.ds)

    def blocks_for_host(self, host: str | None = None) -> list[BlockInfo]:
        wanted = host or self.host
        return [b for b in self.blocks() if b.host == wanted]

    def usage(self) -> list[PoolUsage]:
        from gingham.ipam.info import usage

        return usage(self.ds)

    def check(self, now: float, grace: float | None = None) -> LeakReport:
        from gingham.ipam import leaks

        return leaks.check(self.ds, now, leaks.DEFAULT_GRACE if grace is None else grace,
                           sleep=self.backoff.sleep)

    def release_from_report(self, report: LeakReport) -> ReleaseOutcome:
        from gingham.ipam import leaks

        return leaks.release_from_report(self.ds, report, sleep=self.backoff.sleep)

    # -- finding blocks -----------------------------------------------------

    def find_block(self, ip: IPAddress) -> IPNetwork | None:
        """The existing block holding ``ip``: guess from pools, else scan all blocks."""
        for pool in self.pools():
            if ip.version == pool.version and ip in pool.cidr:
                guess = pool.block_for(ip)
                if self.ds.get(keys.block_key(guess)) is not None:
                    return guess
        items, _ = self.ds.list(keys.BLOCKS)
        for kv in items:
            # by key: an unreadable block still answers for its range (reading
            # it then fails, naming the key), so nothing else claims the address
            net = block_cidr_of_key(kv.key)
            if net is not None and ip.version == net.version and ip in net:
                if kv.key != keys.block_key(net):
                    raise UnreadableDocument(kv.key, "not a block key in canonical form",
                                             f"{ip} is in its range")
                return net
        return None

    # -- release ------------------------------------------------------------

    def release(self, allocations: Iterable[Allocation]) -> list[IPAddress]:
        """Release allocations this IPAM handed out, checked by sequence number."""
        allocs = list(allocations)
        return self.release_ips([a.ip for a in allocs],
                                sequences={a.ip: a.sequence for a in allocs})

    def release_ips(self, ips: Iterable[str | IPAddress], *,
                    sequences: Mapping[IPAddress, int] | None = None,
                    handle: str | None = None) -> list[IPAddress]:
        """Free addresses; returns those that were held. ``StaleSequence`` if a
        named sequence number (or ``handle``) no longer matches the holder.

        Addresses in a block that cannot be read are left alone: the others are
        released, then UnreadableDocument names the block (and what was released).
        """
        return release.release_ips(self, ips, dict(sequences or {}), handle)

    def release_by_handle(self, handle: str) -> list[IPAddress]:
        """Free every address of ``handle`` and drop the handle. If interrupted,
        calling again finishes the job.

        A block that cannot be read is left alone and the handle kept (its
        addresses there may still be held): the rest is released, then
        UnreadableDocument names the block; calling again once it is repaired
        finishes the job. If the handle's own document cannot be read, every
        block is searched for the handle's addresses instead.
        """
        return release.release_by_handle(self, handle)

    def held_by(self, handle: str) -> list[IPAddress]:
        """The addresses ``handle`` holds now (read from the datastore, not the cache).

        UnreadableDocument if a block that may hold some cannot be read.
        """
        return release.held_by(self, handle)

    def forget_block(self, key: str) -> None:
        """Drop the cached copy of a block (it was written, or may have been)."""
        self._blocks.pop(key, None)


__all__ = ["IPAM", "AddressInUse", "Allocation", "HostConfig"]
