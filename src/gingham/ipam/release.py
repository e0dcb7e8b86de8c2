"""Giving addresses back: by address (checked by sequence number) or by handle.

A release writes the block and the lowered counts of the handles it freed
addresses of in one datastore transaction, compare-and-swap on every one of
them, retried with the IPAM's backoff when it loses a race. So a handle's
counts never disagree with its blocks, whatever crashes when.

``release_by_handle`` does the same for all of a handle's blocks at once and
deletes the handle in the same transaction: an allocation joining the handle
meanwhile changes the handle's document, so the transaction fails and is
retried with it. Where that cannot be one transaction (a handle document or
a block that cannot be read, more blocks than a transaction holds) the
release takes the step-by-step path: flag the handle as releasing (no new
addresses join it), release block by block, then drop the handle.

Unreadable documents (``gingham.ipam.unreadable``): addresses in a block that
cannot be read are left alone (the others are released, then
UnreadableDocument names the block); a handle document that cannot be read is
never written over (its counts are not lowered; too high is harmless).
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from gingham.datastore.base import JSON, MAX_TXN_KEYS, KeyValue, landed
from gingham.errors import NotFound, RevisionConflict
from gingham.ipam import handles, keys
from gingham.ipam.block import IPAddress, IPNetwork
from gingham.ipam.unreadable import UnreadableDocument, read_block, scan_blocks

if TYPE_CHECKING:
    from gingham.ipam.allocator import IPAM


def release_ips(ipam: IPAM, ips: Iterable[str | IPAddress],
                seqs: Mapping[IPAddress, int], handle: str | None) -> list[IPAddress]:
    """See ``IPAM.release_ips``."""
    by_block: dict[IPNetwork, list[IPAddress]] = {}
    unreadable: list[UnreadableDocument] = []
    for raw in ips:
        addr = ipaddress.ip_address(str(raw))
        try:
            cidr = ipam.find_block(addr)
        except UnreadableDocument as exc:
            unreadable.append(exc)
            continue
        if cidr is not None:
            by_block.setdefault(cidr, []).append(addr)
    released: list[IPAddress] = []
    for cidr, addrs in by_block.items():
        try:
            released += _release_in_block(ipam, cidr, addrs, seqs, handle)
        except UnreadableDocument as exc:
            unreadable.append(exc)
    if unreadable:
        raise_unreadable(unreadable, released)
    return released


def _release_in_block(ipam: IPAM, cidr: IPNetwork, addrs: list[IPAddress],
                      seqs: Mapping[IPAddress, int], handle: str | None) -> list[IPAddress]:
    ds, key = ipam.ds, keys.block_key(cidr)
    apart: dict[str, int] = {}  # handles too many to lower in the block's transaction

    def step() -> list[IPAddress]:
        apart.clear()
        kv = ds.get(key)
        if kv is None:
            return []
        block = read_block(kv)
        freed: dict[str, int] = {}
        out: list[IPAddress] = []
        for a in addrs:
            held = block.release(block.ordinal_of(a), seqs.get(a), handle)
            if held is not None:
                freed[held.handle] = freed.get(held.handle, 0) + 1
                out.append(a)
        if not freed:
            return []
        compares, puts, deletes = {key: kv.mod_revision}, {key: block.to_json()}, []
        if len(freed) >= MAX_TXN_KEYS:
            # Counts lowered after the block is written: too high meanwhile, never too low.
            apart.update(freed)
        else:
            for h, n in freed.items():
                change = handles.lowered(ds.get(keys.handle_key(h)), {str(cidr): n})
                if change is None:
                    continue  # gone, or unreadable and kept as it is
                compares[change.key] = change.revision
                if change.doc is None:
                    deletes.append(change.key)
                else:
                    puts[change.key] = change.doc
        if not landed(ds.txn(compares, puts, deletes), puts, deletes):
            raise RevisionConflict(key)
        return out

    try:
        out = ipam.backoff.run(f"block {cidr}", step)
    finally:
        ipam.forget_block(key)
    for h, n in apart.items():
        handles.add(ds, ipam.backoff, h, str(cidr), -n)
    return out


def release_by_handle(ipam: IPAM, handle: str) -> list[IPAddress]:
    """See ``IPAM.release_by_handle``."""
    hkey = keys.handle_key(handle)
    touched: list[str] = []

    def step() -> list[IPAddress] | None:
        """Everything in one transaction; None when that cannot be (the slow path)."""
        hkv = ipam.ds.get(hkey)
        if hkv is None:
            return []
        try:
            doc = handles.parse(hkv)
        except UnreadableDocument:
            return None
        if len(doc.blocks) >= MAX_TXN_KEYS:
            return None
        compares: dict[str, int] = {hkey: hkv.mod_revision}
        puts: dict[str, JSON] = {}
        out: list[IPAddress] = []
        for text in sorted(doc.blocks):
            key = keys.block_key(ipaddress.ip_network(text))
            touched.append(key)
            kv = ipam.ds.get(key)
            if kv is None:
                continue
            try:
                block = read_block(kv)
            except UnreadableDocument:
                return None
            ordinals = block.release_handle(handle)
            if ordinals:
                compares[key] = kv.mod_revision
                puts[key] = block.to_json()
                out += [block.ip_of(o) for o in ordinals]
        if not landed(ipam.ds.txn(compares, puts, [hkey]), puts, [hkey]):
            raise RevisionConflict(hkey)
        return out

    try:
        done = ipam.backoff.run(f"handle {handle}", step)
    finally:
        for key in touched:
            ipam.forget_block(key)
    if done is not None:
        return done
    return _release_by_handle_in_steps(ipam, handle)


def _release_by_handle_in_steps(ipam: IPAM, handle: str) -> list[IPAddress]:
    ds = ipam.ds
    try:
        cidrs = handles.mark_releasing(ds, ipam.backoff, handle)
        damaged: KeyValue | None = None
    except UnreadableDocument as exc:
        damaged = ds.get(exc.key)
        cidrs = None if damaged is None else _blocks_holding(ipam, handle)
    if cidrs is None:
        return []
    out: list[IPAddress] = []
    unreadable: list[UnreadableDocument] = []
    if damaged is not None:
        # The handle's document would have named the blocks; without it, any
        # unreadable block may hold some of its addresses.
        unreadable += [UnreadableDocument(bad.doc.key, bad.doc.reason)
                       for bad in scan_blocks(ds.list(keys.BLOCKS)[0])[1]]
    for text in cidrs:
        key = keys.block_key(ipaddress.ip_network(text))

        def step(key: str = key) -> list[IPAddress]:
            kv = ds.get(key)
            if kv is None:
                return []
            block = read_block(kv)
            ordinals = block.release_handle(handle)
            if ordinals:
                try:
                    ds.update(key, block.to_json(), revision=kv.mod_revision)
                except NotFound:
                    raise RevisionConflict(key) from None
            return [block.ip_of(o) for o in ordinals]

        try:
            out += ipam.backoff.run(f"block {text}", step)
        except UnreadableDocument as exc:
            unreadable.append(exc)
        finally:
            ipam.forget_block(key)
    if unreadable:
        raise_unreadable(unreadable, out, f"handle {handle} is kept")
    if damaged is None:
        handles.drop(ds, handle)
    else:
        # Only the document read above: a writer that repaired it since keeps it.
        with contextlib.suppress(NotFound, RevisionConflict):
            ds.delete(damaged.key, revision=damaged.mod_revision)
    return out


def held_by(ipam: IPAM, handle: str) -> list[IPAddress]:
    """See ``IPAM.held_by``."""
    hkv = ipam.ds.get(keys.handle_key(handle))
    if hkv is None:
        return []
    try:
        cidrs = sorted(handles.parse(hkv).blocks)
    except UnreadableDocument:
        cidrs = _blocks_holding(ipam, handle)
    out: list[IPAddress] = []
    for text in cidrs:
        kv = ipam.ds.get(keys.block_key(ipaddress.ip_network(text)))
        if kv is not None:
            block = read_block(kv)
            out += [block.ip_of(o) for o, held in block.allocated() if held.handle == handle]
    return out


def _blocks_holding(ipam: IPAM, handle: str) -> list[str]:
    """CIDRs of the readable blocks holding an address of ``handle``."""
    readable, _ = scan_blocks(ipam.ds.list(keys.BLOCKS)[0])
    return sorted(str(b.cidr) for _, b in readable
                  if any(a.handle == handle for _, a in b.allocated()))


def raise_unreadable(errors: list[UnreadableDocument], released: list[IPAddress],
                     kept: str = "") -> None:
    """Raise the first error, noting the other unreadable blocks and what was released."""
    first = errors[0]
    others = sorted({e.key for e in errors[1:]} - {first.key})
    if others:
        first.add_note(f"also unreadable: {', '.join(others)}")
    first.add_note(f"released meanwhile: {', '.join(str(a) for a in released) or 'nothing'}"
                   + (f"; {kept}" if kept else ""))
    raise first
