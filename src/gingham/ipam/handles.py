"""Handle documents: per handle, how many addresses it holds in which block.

An allocation writes the block and its handle's raised count in one
datastore transaction, and a release the block and the lowered count, so
the two agree. Where they are written apart (the fallback paths: a handle
in more blocks than a transaction holds, the leak check) the count is
raised *before* a block is written and lowered only once the block write is
known to have failed or the address is released, so a crash can leave a
count too high (harmless: release-by-handle visits the block and finds
nothing) but never too low (which would hide an allocation from
release-by-handle).

A handle document that cannot be read is never written over (its counts may
be the only record of which blocks hold the handle's addresses): adding to
it fails with ``UnreadableDocument``; lowering a count in it is skipped (too
high is harmless); release-by-handle falls back to scanning every block.
"""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass
from typing import Any

from gingham.datastore.base import Datastore, KeyValue, Undecodable
from gingham.errors import AlreadyExists, IPAMError, NotFound, RevisionConflict
from gingham.ipam import keys
from gingham.ipam.retry import Backoff
from gingham.ipam.unreadable import UnreadableDocument, reason, skipped


class HandleReleasing(IPAMError):
    """The handle is being released; no new addresses may be added to it."""


def _doc(handle: str, blocks: dict[str, int], releasing: bool = False) -> dict[str, Any]:
    return {"handle": handle, "blocks": blocks, "releasing": releasing}


@dataclass(frozen=True, slots=True)
class HandleDoc:
    handle: str
    blocks: dict[str, int]  # block CIDR -> addresses the handle holds there (at least)
    releasing: bool


def _why_malformed(kv: KeyValue) -> str:
    doc = kv.value
    handle = kv.key[len(keys.HANDLES):]
    if isinstance(doc, Undecodable) or not isinstance(doc, dict):
        return reason(doc)
    if doc.get("handle") != handle:
        return f"handle field is {doc.get('handle')!r}, not the key's {handle!r}"
    blocks = doc.get("blocks")
    if not isinstance(blocks, dict):
        return "blocks must be an object"
    for cidr, count in blocks.items():
        try:
            ipaddress.ip_network(cidr)
        except ValueError:
            return f"blocks: {cidr!r} is not a CIDR"
        if type(count) is not int or count <= 0:
            return f"blocks[{cidr!r}] must be a positive integer"
    if type(doc.get("releasing", False)) is not bool:
        return "releasing must be true or false"
    return ""


def parse(kv: KeyValue) -> HandleDoc:
    """The handle document at ``kv``; UnreadableDocument naming the key if malformed."""
    why = _why_malformed(kv)
    if why:
        skipped(kv, why, "the handle takes no new addresses and its counts stay as they "
                "are until it is repaired")
        raise UnreadableDocument(kv.key, why)
    return HandleDoc(kv.value["handle"], dict(kv.value["blocks"]),
                     bool(kv.value.get("releasing", False)))


def raised(kv: KeyValue | None, handle: str, cidr: str, n: int) -> dict[str, Any]:
    """The document of ``handle`` (now ``kv``, None if absent) holding ``n`` more
    addresses in block ``cidr``. UnreadableDocument if ``kv`` cannot be read (it
    is never written over), HandleReleasing if the handle is being released."""
    if kv is None:
        return _doc(handle, {cidr: n})
    doc = parse(kv)
    if doc.releasing:
        raise HandleReleasing(f"handle {handle} is being released")
    blocks = dict(doc.blocks)
    blocks[cidr] = blocks.get(cidr, 0) + n
    return _doc(handle, blocks)


@dataclass(frozen=True, slots=True)
class Lowered:
    """The write that lowers a handle's counts: at ``revision``, ``doc`` (None: delete)."""

    key: str
    revision: int
    doc: dict[str, Any] | None


def lowered(kv: KeyValue | None, freed: dict[str, int]) -> Lowered | None:
    """How to lower the counts of the handle at ``kv`` by ``freed`` (block CIDR ->
    addresses); None when nothing is to be written: the handle is gone, or its
    document cannot be read (it is kept, and a count too high is harmless)."""
    if kv is None:
        return None
    try:
        doc = parse(kv)
    except UnreadableDocument:
        return None
    blocks = dict(doc.blocks)
    for cidr, n in freed.items():
        count = blocks.get(cidr, 0) - n
        if count > 0:
            blocks[cidr] = count
        else:
            blocks.pop(cidr, None)
    return Lowered(kv.key, kv.mod_revision,
                   _doc(doc.handle, blocks, doc.releasing) if blocks else None)


def add(ds: Datastore, backoff: Backoff, handle: str, cidr: str, delta: int) -> None:
    """Change the count of ``handle`` in block ``cidr`` by ``delta``; drop the doc at zero."""
    if delta == 0:
        return
    key = keys.handle_key(handle)

    def step() -> None:
        kv = ds.get(key)
        if kv is None:
            if delta < 0:
                return  # already gone: nothing left to lower
            try:
                ds.create(key, _doc(handle, {cidr: delta}))
            except AlreadyExists:
                raise RevisionConflict(key) from None
            return
        try:
            doc = parse(kv)
        except UnreadableDocument:
            if delta < 0:
                return  # a count left too high is harmless; the document is kept
            raise
        if doc.releasing and delta > 0:
            raise HandleReleasing(f"handle {handle} is being released")
        blocks = dict(doc.blocks)
        count = blocks.get(cidr, 0) + delta
        if count > 0:
            blocks[cidr] = count
        else:
            blocks.pop(cidr, None)
        try:
            if blocks:
                ds.update(key, _doc(handle, blocks, doc.releasing), revision=kv.mod_revision)
            else:
                ds.delete(key, revision=kv.mod_revision)
        except NotFound:
            raise RevisionConflict(key) from None

    if delta > 0:
        # Fresh handles are the common case (one per container): try create first.
        try:
            ds.create(key, _doc(handle, {cidr: delta}))
            return
        except AlreadyExists:
            pass
    backoff.run(f"handle {handle}", step)


def mark_releasing(ds: Datastore, backoff: Backoff, handle: str) -> list[str] | None:
    """Flag the handle so no allocation joins it; its block CIDRs, or None if absent.

    UnreadableDocument if the handle document is malformed (it is left as it is).
    """
    key = keys.handle_key(handle)

    def step() -> list[str] | None:
        kv = ds.get(key)
        if kv is None:
            return None
        doc = parse(kv)
        if not doc.releasing:
            try:
                ds.update(key, _doc(handle, doc.blocks, True), revision=kv.mod_revision)
            except NotFound:
                return None
        return sorted(doc.blocks)

    return backoff.run(f"handle {handle}", step)


def drop(ds: Datastore, handle: str) -> None:
    with contextlib.suppress(NotFound):
        ds.delete(keys.handle_key(handle))
