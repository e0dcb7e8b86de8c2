"""Cheap read-only views of IPAM state: blocks and their hosts, pool usage, holders.

``block_info(doc)`` turns one stored block document into a ``BlockInfo``, so a
watcher on ``keys.BLOCKS`` (the routing engine) can keep its own table current
from watch events without re-listing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gingham.datastore.base import Datastore
from gingham.ipam import keys
from gingham.ipam.block import Block, IPAddress, IPNetwork, affinity_host
from gingham.ipam.pools import Reservations, pool_from_resource, reservations_from_resource


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
    block = Block.from_json(doc)
    host = affinity_host(block.affinity)
    allocated = []
    borrowed = []
    for ordinal, attrs in block.allocated():
        ip = block.ip_of(ordinal)
        allocated.append(ip)
        if attrs.host and attrs.host != host:
            borrowed.append((ip, attrs.host))
    return BlockInfo(block.cidr, host, tuple(allocated), tuple(borrowed), block.size)


def list_blocks(ds: Datastore) -> list[BlockInfo]:
    items, _ = ds.list(keys.BLOCKS)
    infos = [block_info(kv.value) for kv in items]
    return sorted(infos, key=lambda b: (b.cidr.version, int(b.cidr.network_address)))


@dataclass(frozen=True, slots=True)
class PoolUsage:
    cidr: IPNetwork
    total: int
    in_use: int
    reserved: int  # reserved addresses not in use
    blocks: int

    @property
    def free(self) -> int:
        return self.total - self.in_use - self.reserved

    def to_json(self) -> dict[str, Any]:
        return {"cidr": str(self.cidr), "total": self.total, "inUse": self.in_use,
                "free": self.free, "reserved": self.reserved, "blocks": self.blocks}


def usage(ds: Datastore) -> list[PoolUsage]:
    pool_items, _ = ds.list(keys.POOLS)
    pools = [pool_from_resource(kv.value) for kv in pool_items]
    res_items, _ = ds.list(keys.RESERVATIONS)
    res = Reservations(n for kv in res_items for n in reservations_from_resource(kv.value))
    blocks = list_blocks(ds)
    out = []
    for pool in pools:
        inside = [b for b in blocks
                  if b.cidr.version == pool.version and b.cidr.subnet_of(pool.cidr)]  # type: ignore[arg-type]
        used = [ip for b in inside for ip in b.allocated_ips]
        reserved_used = sum(1 for ip in used if res.contains(ip))
        out.append(PoolUsage(pool.cidr, pool.cidr.num_addresses, len(used),
                             res.count_in(pool.cidr) - reserved_used, len(inside)))
    return out


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
    addr = ipaddress.ip_address(str(ip))
    items, _ = ds.list(keys.BLOCKS)
    for kv in items:
        block = Block.from_json(kv.value)
        if addr.version != block.cidr.version or addr not in block.cidr:
            continue
        ordinal = block.ordinal_of(addr)
        attrs = block.holder(ordinal)
        if attrs is None:
            return None
        return Holder(addr, block.cidr, affinity_host(block.affinity), attrs.handle,
                      attrs.namespace, attrs.workload, attrs.host, block.seqs[ordinal])
    return None
