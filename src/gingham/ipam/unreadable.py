"""IPAM documents that cannot be read: one bad value costs that key only.

Any IPAM document may hold garbage: bytes that are not JSON (the backends hand
those on as :class:`~gingham.datastore.base.Undecodable`), JSON of the wrong
shape, a block that breaks its own invariants, or a document of another kind.
The rules every reader here follows:

* a loop over many documents skips the one it cannot read, logs it (once per
  key and revision: the agent and a long-running check would otherwise repeat
  it on every pass) and carries on;
* nothing is ever allocated inside an unreadable block's CIDR: the CIDR comes
  from the key, so the block still occupies its range when blocks are claimed,
  and creating a block at that key fails (the key exists). An unreadable
  document is never written over: the addresses it records may be in use;
* an operation aimed at one unreadable document (assign or release in that
  block) fails with :class:`UnreadableDocument` naming the key, nothing else.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from gingham.datastore.base import KeyValue, Undecodable
from gingham.errors import IPAMError, ValidationError
from gingham.ipam import keys
from gingham.ipam.block import MAX_BLOCK_ADDRESSES, Block, IPNetwork

log = logging.getLogger("gingham.ipam")

# Bounds the memory of what was already logged in a long-lived agent.
_MAX_REMEMBERED = 4096
_logged: dict[tuple[str, int, str], None] = {}


class UnreadableDocument(IPAMError):
    """An IPAM document (or a resource IPAM relies on) that cannot be read."""

    def __init__(self, key: str, reason: str, consequence: str = "") -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key} is unreadable ({reason})"
                         + (f"; {consequence}" if consequence else ""))


@dataclass(frozen=True, slots=True)
class Unreadable:
    """One document a reader skipped: where, at which revision, and why."""

    key: str
    revision: int
    reason: str

    def describe(self) -> str:
        return f"{self.key} is unreadable ({self.reason})"

    def to_json(self) -> dict[str, object]:
        return {"key": self.key, "revision": self.revision, "reason": self.reason}


def reason(value: object, exc: Exception | None = None) -> str:
    """Why ``value`` cannot be read: the backend's reason for undecodable bytes,
    else the validation error."""
    if isinstance(value, Undecodable):
        return value.reason
    if exc is not None:
        return str(exc)
    return "not a JSON object"


def skipped(kv: KeyValue, why: str, consequence: str) -> Unreadable:
    """Record (and log, once per key and revision) that ``kv`` was skipped."""
    bad = Unreadable(kv.key, kv.mod_revision, why)
    warn_once((kv.key, kv.mod_revision, why),
              f"IPAM: skipping {kv.key}: unreadable ({why}); {consequence}")
    return bad


def warn_once(ident: tuple[str, int, str], message: str) -> None:
    """Log ``message`` unless ``ident`` (key, revision, reason) was logged already."""
    if ident in _logged:
        return
    if len(_logged) >= _MAX_REMEMBERED:
        _logged.clear()
    _logged[ident] = None
    log.warning("%s", message)


def block_cidr_of_key(key: str) -> IPNetwork | None:
    """The range a block key covers, whatever its document holds (None if the
    key names no CIDR at all: no block of ours can live there).

    Host bits are dropped rather than refused: an odd key still occupies the
    range it names, which is the safe reading for claims. A range larger than
    any block can be is no block (none was ever allocated from it): taking it
    as occupied would let one key such as ``0.0.0.0-0`` stop every claim.
    """
    token = key[len(keys.BLOCKS):]
    if "/" in token:
        return None
    try:
        net = ipaddress.ip_network(keys.token_cidr(token), strict=False)
    except ValueError:
        return None
    return net if net.num_addresses <= MAX_BLOCK_ADDRESSES else None


def read_block(kv: KeyValue) -> Block:
    """The block stored at ``kv``; UnreadableDocument naming the key if malformed.

    The document must be for the block its key names: a block written under
    another block's key is refused (writing it back would put one CIDR's
    allocations at another CIDR's key).
    """
    try:
        block = Block.from_json(kv.value)
    except ValidationError as exc:
        why = reason(kv.value, exc)
        skipped(kv, why, "no address in its range is handed out or released until it is "
                "repaired")
        raise UnreadableDocument(kv.key, why, "its addresses are left alone") from None
    expected = keys.block_key(block.cidr)
    if kv.key != expected:
        why = f"a document for block {block.cidr} (key {expected})"
        skipped(kv, why, "no address in its range is handed out or released until it is "
                "repaired")
        raise UnreadableDocument(kv.key, why, "its addresses are left alone")
    return block


@dataclass(frozen=True, slots=True)
class BadBlock:
    """A block key whose document cannot be read, and the range its key covers."""

    doc: Unreadable
    cidr: IPNetwork | None


def scan_blocks(items: Iterable[KeyValue]) -> tuple[list[tuple[KeyValue, Block]], list[BadBlock]]:
    """Split listed block keys into readable blocks and unreadable ones."""
    good: list[tuple[KeyValue, Block]] = []
    bad: list[BadBlock] = []
    for kv in items:
        try:
            good.append((kv, read_block(kv)))
        except UnreadableDocument as exc:
            bad.append(BadBlock(Unreadable(kv.key, kv.mod_revision, exc.reason),
                                block_cidr_of_key(kv.key)))
    return good, bad


__all__ = ["BadBlock", "Unreadable", "UnreadableDocument", "block_cidr_of_key", "read_block",
           "reason", "scan_blocks", "skipped", "warn_once"]
