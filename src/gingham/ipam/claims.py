"""Claiming a block for a host (a crash at any point leaves nothing owned twice).

1. create ``affinity/<host>/<cidr>`` as ``pending``;
2. create ``blocks/<cidr>`` with ``affinity: host:<host>`` -- creation is the
   arbiter: of two hosts racing for one CIDR exactly one create succeeds, and
   the loser deletes its pending affinity;
3. update the affinity to ``confirmed``.

A pending affinity with no block of its host behind it, older than the grace
period, is garbage that the leak check reports and ``release_from_report``
removes; a block whose affinity is still pending is used by its host as it is.

The block is the truth; an affinity document is bookkeeping. One that cannot
be read is still a claim by its key (counted against the host's limit) and is
replaced by a confirmed one when its host claims that block again. A block
that cannot be read is never claimed over: its key exists, so the create in
step 2 fails, and its range counts as taken when looking for overlaps.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from gingham.datastore.base import Datastore, KeyValue, Undecodable
from gingham.errors import AlreadyExists, NotFound, RevisionConflict
from gingham.ipam import keys
from gingham.ipam.block import Block, IPNetwork, host_affinity
from gingham.ipam.retry import Backoff
from gingham.ipam.unreadable import UnreadableDocument, block_cidr_of_key, read_block, reason

# New blocks start their sequence counter at (store revision + 1) << SEQUENCE_SHIFT.
SEQUENCE_SHIFT = 16


def claim(ds: Datastore, backoff: Backoff, host: str, cidr: IPNetwork, now: float,
          seen_absent_at: int | None = None) -> tuple[Block | None, int] | None:
    """Claim ``cidr`` for ``host``. None if another host owns it; else the new
    block and its revision (``(None, 0)`` when the block was ours already).

    ``seen_absent_at``: a store revision at which the block did not exist
    (read afresh when not given). It seeds the new block's sequence numbers
    above every number an earlier incarnation of this block can have used,
    so a release naming an old sequence number is refused, never mistaken
    for the new holder's: each block write bumps the store revision by one
    and a block's counter by at most its size (<= 2**12), so an earlier
    incarnation's counter stays below ``(revision + 1) << 16``. (Only a whole
    claim, use and leak-collection cycle of the same block by another host
    inside this claim's few milliseconds could break that; the leak check's
    grace period rules it out.)
    """
    if seen_absent_at is None:
        seen_absent_at = ds.revision()
    akey = keys.affinity_key(host, cidr)
    bkey = keys.block_key(cidr)
    made_affinity = True
    try:
        ds.create(akey, {"state": "pending", "since": now})
    except AlreadyExists:
        made_affinity = False  # our own left-over claim; carry on with it
    block = Block.new(cidr, host_affinity(host),
                      first_sequence=(seen_absent_at + 1) << SEQUENCE_SHIFT)
    result: tuple[Block | None, int]
    try:
        rev = ds.create(bkey, block.to_json())
        if overlapped(ds, cidr, rev):
            with contextlib.suppress(NotFound, RevisionConflict):
                ds.delete(bkey, revision=rev)
            drop_affinity(ds, akey)
            return None
        result = (block, rev)
    except AlreadyExists:
        kv = ds.get(bkey)
        try:
            owner = None if kv is None else read_block(kv).affinity
        except UnreadableDocument:
            # Whose it is cannot be told; a claim this host already had on it
            # stays (the block may be ours), one made just now goes.
            if made_affinity:
                drop_affinity(ds, akey)
            return None
        if owner != host_affinity(host):
            drop_affinity(ds, akey)
            return None
        result = (None, 0)
    confirm(ds, backoff, akey, now)
    return result


def overlapped(ds: Datastore, cidr: IPNetwork, created: int) -> bool:
    """Did an overlapping block of another size get created before ours?

    Keys only arbitrate blocks of one size. Two hosts racing with different
    block sizes (a pool's blockSize changed under them, or pools overlap)
    could both create a block; the one created later yields. The block was
    created a moment ago and is empty, so deleting it strands nothing.
    """
    items, _ = ds.list(keys.BLOCKS)
    for kv in items:
        other = block_cidr_of_key(kv.key)  # an unreadable block occupies its range too
        if other is not None and other != cidr and other.version == cidr.version \
                and other.overlaps(cidr) and kv.create_revision < created:
            return True
    return False


def drop_affinity(ds: Datastore, akey: str) -> None:
    with contextlib.suppress(NotFound):
        ds.delete(akey)


def confirm(ds: Datastore, backoff: Backoff, akey: str, now: float) -> None:
    """Mark the affinity confirmed (re-creating it if a cleaner removed it meanwhile)."""
    doc = {"state": "confirmed", "since": now}

    def step() -> None:
        kv = ds.get(akey)
        if kv is None:
            try:
                ds.create(akey, doc)
            except AlreadyExists:
                raise RevisionConflict(akey) from None
        elif parse_affinity(kv).state != "confirmed":
            try:
                ds.update(akey, doc, revision=kv.mod_revision)
            except NotFound:
                raise RevisionConflict(akey) from None

    backoff.run(f"affinity {akey}", step)


@dataclass(frozen=True, slots=True)
class Affinity:
    """An affinity document: ``state`` is "" when it cannot be read (``why`` says why)."""

    state: str
    since: float
    why: str = ""


def parse_affinity(kv: KeyValue) -> Affinity:
    doc = kv.value
    if isinstance(doc, Undecodable) or not isinstance(doc, dict):
        return Affinity("", 0.0, reason(doc))
    state, since = doc.get("state"), doc.get("since")
    if state not in ("pending", "confirmed"):
        return Affinity("", 0.0, f"state is {state!r}, not pending or confirmed")
    if not isinstance(since, int | float) or isinstance(since, bool):
        return Affinity("", 0.0, f"since is {since!r}, not a time")
    return Affinity(str(state), float(since))
