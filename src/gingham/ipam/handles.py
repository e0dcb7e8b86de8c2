"""Handle documents: per handle, how many addresses it holds in which block.

The count is raised *before* a block is written and lowered only once the
block write is known to have failed or the address is released, so a crash
can leave a count too high (harmless: release-by-handle visits the block
and finds nothing) but never too low (which would hide an allocation from
release-by-handle).
"""

from __future__ import annotations

import contextlib
from typing import Any

from gingham.datastore.base import Datastore
from gingham.errors import AlreadyExists, IPAMError, NotFound, RevisionConflict
from gingham.ipam import keys
from gingham.ipam.retry import Backoff


class HandleReleasing(IPAMError):
    """The handle is being released; no new addresses may be added to it."""


def _doc(handle: str, blocks: dict[str, int], releasing: bool = False) -> dict[str, Any]:
    return {"handle": handle, "blocks": blocks, "releasing": releasing}


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
        if kv.value.get("releasing") and delta > 0:
            raise HandleReleasing(f"handle {handle} is being released")
        blocks = {str(k): int(v) for k, v in (kv.value.get("blocks") or {}).items()}
        count = blocks.get(cidr, 0) + delta
        if count > 0:
            blocks[cidr] = count
        else:
            blocks.pop(cidr, None)
        try:
            if blocks:
                ds.update(key, _doc(handle, blocks, bool(kv.value.get("releasing"))),
                          revision=kv.mod_revision)
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
    """Flag the handle so no allocation joins it; its block CIDRs, or None if absent."""
    key = keys.handle_key(handle)

    def step() -> list[str] | None:
        kv = ds.get(key)
        if kv is None:
            return None
        blocks = {str(k): int(v) for k, v in (kv.value.get("blocks") or {}).items()}
        if not kv.value.get("releasing"):
            try:
                ds.update(key, _doc(handle, blocks, True), revision=kv.mod_revision)
            except NotFound:
                return None
        return sorted(blocks)

    return backoff.run(f"handle {handle}", step)


def drop(ds: Datastore, handle: str) -> None:
    with contextlib.suppress(NotFound):
        ds.delete(keys.handle_key(handle))
