"""Cheap read-only views of IPAM state: blocks and their hosts, pool usage, holders.

``block_info(doc)`` turns one stored block document into a ``BlockInfo``, so a
watcher on ``keys.BLOCKS`` (the routing engine) can keep its own table current
from watch events without re-listing.

Documents that cannot be read are left out of every view and logged;
``scan_blocks`` / ``unreadable`` say which they are, for the CLI to warn about.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gingham.datastore.base import Datastore
from gingham.errors import ValidationError
from gingham.ipam import keys
from gingham.ipam.block import Block, IPAddress, IPNetwork, affinity_host
from gingham.ipam.pools import (
    PoolSpec,
    Reservations,
    pool_from_resource,
    reservations_from_resource,
)
from gingham.ipam.unreadable import BadBlock, Unreadable, UnreadableDocument, reason, skipped
from gingham.ipam.unreadable import scan_blocks as _scan


@dataclass(frozen=True, slots=True)
class BlockInfo:
    cidr: IPNetwork
    host: str | None  # the affine host: routes for the whole block point at it
    allocated_ips: tuple[IPAddress, ...]
    borrowed: tuple[tuple[IPAddress, str], ...]  # (address, host) held by other hosts
    size: int

    @property
    def borrowed_by(self) -> tuple[str, ...]:
        return tuple(sorted({h for _, h in self.borrowed}))

    @property
    def used(self) -> int:
        return len(self.allocated_ips)

    @property
    def free(self) -> int:
        return self.size - self.used


def block_info(doc: Mapping[str, Any]) -> BlockInfo:
    """ValidationError if ``doc`` is not a sound block."""
    return _info(Block.from_json(doc))


def _info(block: Block) -> BlockInfo:
    host = affinity_host(block.affinity)
    allocated = []
    borrowed = []
    for ordinal, attrs in block.allocated():
        ip = block.ip_of(ordinal)
        allocated.append(ip)
        if attrs.host and attrs.host != host:
            borrowed.append((ip, attrs.host))
    return BlockInfo(block.cidr, host, tuple(allocated), tuple(borrowed), block.size)


def scan_blocks(ds: Datastore) -> tuple[list[BlockInfo], list[BadBlock]]:
    """Every readable block (sorted by address) and the block keys that cannot be read."""
    items, _ = ds.list(keys.BLOCKS)
    readable, bad = _scan(items)
    infos = [_info(block) for _, block in readable]
    return sorted(infos, key=lambda b: (b.cidr.version, int(b.cidr.network_address))), bad


def list_blocks(ds: Datastore) -> list[BlockInfo]:
    """Every readable block, sorted by address (unreadable ones are logged)."""
    return scan_blocks(ds)[0]


@dataclass(frozen=True, slots=True)
class PoolUsage:
    cidr: IPNetwork
    total: int
    in_use: int  # in readable blocks
    reserved: int  # reserved addresses not in use
    blocks: int  # readable blocks
    unreadable_blocks: int = 0  # their addresses are counted as neither in use nor free

    unknown: int = 0  # addresses in unreadable blocks

    @property
    def free(self) -> int:
        return self.total - self.in_use - self.reserved - self.unknown

    def to_json(self) -> dict[str, Any]:
        return {"cidr": str(self.cidr), "total": self.total, "inUse": self.in_use,
                "free": self.free, "reserved": self.reserved, "blocks": self.blocks,
                "unreadableBlocks": self.unreadable_blocks, "unknown": self.unknown}


def read_pools(ds: Datastore) -> tuple[list[PoolSpec], list[Unreadable]]:
    """Readable IP pools and the ones that cannot be read (logged)."""
    items, _ = ds.list(keys.POOLS)
    pools: list[PoolSpec] = []
    bad: list[Unreadable] = []
    for kv in items:
        try:
            pools.append(pool_from_resource(kv.value))
        except ValidationError as exc:
            bad.append(skipped(kv, reason(kv.value, exc), "left out of IPAM views"))
    return pools, bad


def read_reservations(ds: Datastore) -> tuple[Reservations, list[Unreadable]]:
    """Readable reserved ranges and the IPReservations that cannot be read (logged)."""
    items, _ = ds.list(keys.RESERVATIONS)
    nets: list[IPNetwork] = []
    bad: list[Unreadable] = []
    for kv in items:
        try:
            nets += reservations_from_resource(kv.value)
        except ValidationError as exc:
            bad.append(skipped(kv, reason(kv.value, exc),
                               "no address is handed out until it is repaired or deleted"))
    return Reservations(nets), bad


def usage(ds: Datastore) -> list[PoolUsage]:
    """Per readable pool: addresses in use, reserved and free; addresses of blocks that
    cannot be read are counted apart (``unknown``), never as free."""
    pools, _ = read_pools(ds)
    res, _ = read_reservations(ds)
    blocks, bad = scan_blocks(ds)
    out = []
    for pool in pools:
        inside = [b for b in blocks
                  if b.cidr.version == pool.version and b.cidr.subnet_of(pool.cidr)]  # type: ignore[arg-type]
        dark = [b.cidr for b in bad if b.cidr is not None and b.cidr.version == pool.version
                and b.cidr.subnet_of(pool.cidr)]  # type: ignore[arg-type]
        used = [ip for b in inside for ip in b.allocated_ips]
        reserved_used = sum(1 for ip in used if res.contains(ip))
        # reserved addresses inside unreadable blocks are already in ``unknown``
        reserved_dark = sum(res.count_in(c) for c in dark)
        out.append(PoolUsage(pool.cidr, pool.cidr.num_addresses, len(used),
                             res.count_in(pool.cidr) - reserved_used - reserved_dark,
                             len(inside), len(dark), sum(c.num_addresses for c in dark)))
    return out


def unreadable(ds: Datastore) -> list[Unreadable]:
    """What IPAM's views leave out: unreadable blocks, pools and reservations."""
    _, bad_blocks = scan_blocks(ds)
    _, bad_pools = read_pools(ds)
    _, bad_res = read_reservations(ds)
    return [b.doc for b in bad_blocks] + bad_pools + bad_res


@dataclass(frozen=True, slots=True)
class Holder:
    ip: IPAddress
    block: IPNetwork
    block_host: str | None
    handle: str
    namespace: str
    workload: str
    host: str
    sequence: int

    def to_json(self) -> dict[str, Any]:
        return {"ip": str(self.ip), "block": str(self.block), "blockHost": self.block_host,
                "handle": self.handle, "namespace": self.namespace,
                "workload": self.workload, "host": self.host, "sequence": self.sequence}


def who_holds(ds: Datastore, ip: str | IPAddress) -> Holder | None:
    """Who holds ``ip`` (None if nobody); UnreadableDocument if the block that
    would say cannot be read."""
    addr = ipaddress.ip_address(str(ip))
    items, _ = ds.list(keys.BLOCKS)
    readable, bad = _scan(items)
    for _, block in readable:
        if addr.version != block.cidr.version or addr not in block.cidr:
            continue
        ordinal = block.ordinal_of(addr)
        attrs = block.holder(ordinal)
        if attrs is None:
            return None
        return Holder(addr, block.cidr, affinity_host(block.affinity), attrs.handle,
                      attrs.namespace, attrs.workload, attrs.host, block.seqs[ordinal])
    for b in bad:
        if b.cidr is not None and addr.version == b.cidr.version and addr in b.cidr:
            raise UnreadableDocument(b.doc.key, b.doc.reason,
                                     f"who holds {addr} cannot be told until it is repaired")
    return None
