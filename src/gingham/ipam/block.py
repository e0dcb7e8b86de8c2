"""One allocation block: a pure, in-memory allocator with a JSON form.

A block is a power-of-two CIDR cut out of a pool. Each address has an
*ordinal* (its offset in the block). The block keeps two views that must
always agree:

* ``allocations[ordinal]`` -- ``None`` when free, else an index into
  ``attributes`` (who holds it);
* ``unallocated`` -- the free ordinals, in the order they will be handed out.
  New blocks hand out low ordinals first; released ordinals go to the *end*,
  so an address just given back is reused as late as possible.

Every allocation stamps the address with the block's next ``sequence``
number. A release that names an expected sequence number is refused if the
address has been released and handed out again in between (a stale release
must never free someone else's address).

Nothing here does I/O; the datastore shell (``gingham.ipam.allocator``)
reads a block, changes it here and writes it back with compare-and-swap.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from gingham.errors import AddressInUse, IPAMError, ValidationError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Blocks larger than this would make the JSON document unwieldy.
MAX_BLOCK_ADDRESSES = 4096


class StaleSequence(IPAMError):
    """A release named a sequence number the address no longer carries."""


class Attributes(NamedTuple):
    """Who holds an address: the handle and free-form secondary attributes.

    A NamedTuple rather than a frozen dataclass: blocks carry dozens of these
    and are parsed on every allocation.
    """

    handle: str
    namespace: str = ""
    workload: str = ""
    host: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "handle": self.handle,
            "secondary": {"namespace": self.namespace, "workload": self.workload,
                          "host": self.host},
        }

    @staticmethod
    def from_json(doc: Any, where: str) -> Attributes:
        if not isinstance(doc, dict) or not isinstance(doc.get("handle"), str) \
                or not doc["handle"]:
            raise ValidationError("expected {handle, secondary} with a non-empty handle", where)
        sec = doc.get("secondary")
        if sec is None:
            sec = {}
        if not isinstance(sec, dict):
            raise ValidationError("secondary must be an object", where + ".secondary")
        for name in ("namespace", "workload", "host"):
            if not isinstance(sec.get(name, ""), str):
                raise ValidationError("must be a string", f"{where}.secondary.{name}")
        return Attributes(handle=doc["handle"], namespace=sec.get("namespace", ""),
                          workload=sec.get("workload", ""), host=sec.get("host", ""))


def _fast_attributes(doc: dict[str, Any]) -> Attributes:
    handle = doc["handle"]
    sec = doc["secondary"]
    namespace, workload, host = sec["namespace"], sec["workload"], sec["host"]
    # Anything but what to_json writes goes to the slow path, which names the field.
    if type(handle) is not str or not handle or type(namespace) is not str \
            or type(workload) is not str or type(host) is not str:
        raise TypeError("attributes")
    return Attributes(handle, namespace, workload, host)


def host_affinity(host: str) -> str:
    return f"host:{host}"


def affinity_host(affinity: str | None) -> str | None:
    if affinity and affinity.startswith("host:"):
        return affinity[len("host:"):]
    return None


@dataclass(slots=True)
class Block:
    cidr: IPNetwork
    affinity: str | None = None
    allocations: list[int | None] = field(default_factory=list)
    unallocated: list[int] = field(default_factory=list)
    attributes: list[Attributes] = field(default_factory=list)
    sequence: int = 0
    seqs: dict[int, int] = field(default_factory=dict)
    deleted: bool = False

    # -- construction -------------------------------------------------------

    @staticmethod
    def new(cidr: IPNetwork | str, affinity: str | None = None,
            first_sequence: int = 0) -> Block:
        net = ipaddress.ip_network(cidr) if isinstance(cidr, str) else cidr
        size = net.num_addresses
        if size > MAX_BLOCK_ADDRESSES:
            raise ValidationError(f"block {net} has {size} addresses, more than "
                                  f"{MAX_BLOCK_ADDRESSES}", "blockSize")
        return Block(cidr=net, affinity=affinity, allocations=[None] * size,
                     unallocated=list(range(size)), sequence=first_sequence)

    def copy(self) -> Block:
        return Block(self.cidr, self.affinity, list(self.allocations), list(self.unallocated),
                     list(self.attributes), self.sequence, dict(self.seqs), self.deleted)

    @property
    def size(self) -> int:
        return len(self.allocations)

    # -- addresses ----------------------------------------------------------

    def ordinal_of(self, ip: IPAddress) -> int:
        if ip not in self.cidr:
            raise IPAMError(f"{ip} is not in block {self.cidr}")
        return int(ip) - int(self.cidr.network_address)

    def ip_of(self, ordinal: int) -> IPAddress:
        return ipaddress.ip_address(int(self.cidr.network_address) + ordinal)

    def holder(self, ordinal: int) -> Attributes | None:
        idx = self.allocations[ordinal]
        return None if idx is None else self.attributes[idx]

    @property
    def used(self) -> int:
        return self.size - len(self.unallocated)

    def is_empty(self) -> bool:
        return len(self.unallocated) == self.size

    def allocated(self) -> Iterable[tuple[int, Attributes]]:
        for ordinal, idx in enumerate(self.allocations):
            if idx is not None:
                yield ordinal, self.attributes[idx]

    # -- allocation ---------------------------------------------------------

    def _attr_index(self, attrs: Attributes) -> int:
        for i, existing in enumerate(self.attributes):
            if existing == attrs:
                return i
        self.attributes.append(attrs)
        return len(self.attributes) - 1

    def _take(self, ordinal: int, attrs: Attributes) -> None:
        self.allocations[ordinal] = self._attr_index(attrs)
        self.sequence += 1
        self.seqs[ordinal] = self.sequence

    def assign(self, count: int, attrs: Attributes,
               skip: Callable[[int], bool] = lambda _o: False) -> list[int]:
        """Take up to ``count`` free ordinals (in free-list order) not ``skip``-ped."""
        taken: list[int] = []
        keep: list[int] = []
        for ordinal in self.unallocated:
            if len(taken) < count and not skip(ordinal):
                taken.append(ordinal)
            else:
                keep.append(ordinal)
        self.unallocated = keep
        for ordinal in taken:
            self._take(ordinal, attrs)
        return taken

    def assign_ordinal(self, ordinal: int, attrs: Attributes) -> None:
        if not 0 <= ordinal < self.size:
            raise IPAMError(f"ordinal {ordinal} outside block {self.cidr}")
        if self.allocations[ordinal] is not None:
            held = self.attributes[self.allocations[ordinal]]  # type: ignore[index]
            raise AddressInUse(f"{self.ip_of(ordinal)} is already held by handle {held.handle}")
        self.unallocated.remove(ordinal)
        self._take(ordinal, attrs)

    def free_count(self, skip: Callable[[int], bool] = lambda _o: False) -> int:
        return sum(1 for o in self.unallocated if not skip(o))

    # -- release ------------------------------------------------------------

    def release(self, ordinal: int, expected_seq: int | None = None,
                expected_handle: str | None = None) -> Attributes | None:
        """Free one ordinal; returns who held it, or None if it was already free."""
        idx = self.allocations[ordinal]
        if idx is None:
            return None
        held = self.attributes[idx]
        if expected_seq is not None and self.seqs.get(ordinal) != expected_seq:
            raise StaleSequence(
                f"{self.ip_of(ordinal)}: release names sequence {expected_seq} but the "
                f"address carries {self.seqs.get(ordinal)}; it was re-allocated")
        if expected_handle is not None and held.handle != expected_handle:
            raise StaleSequence(
                f"{self.ip_of(ordinal)} is held by handle {held.handle}, not {expected_handle}")
        self.allocations[ordinal] = None
        self.seqs.pop(ordinal, None)
        self.unallocated.append(ordinal)
        self._compact_attributes()
        return held

    def release_handle(self, handle: str) -> list[int]:
        ordinals = [o for o, a in self.allocated() if a.handle == handle]
        for o in ordinals:
            self.release(o)
        return ordinals

    def _compact_attributes(self) -> None:
        """Drop attribute entries no allocation refers to, renumbering the rest."""
        in_use = sorted({i for i in self.allocations if i is not None})
        if len(in_use) == len(self.attributes):
            return
        remap = {old: new for new, old in enumerate(in_use)}
        self.attributes = [self.attributes[i] for i in in_use]
        self.allocations = [None if i is None else remap[i] for i in self.allocations]

    # -- checking -----------------------------------------------------------

    def problems(self) -> list[str]:
        """Every way this block breaks its own invariants (empty when sound).

        A block with any of these is not used (``from_json`` refuses it): each
        one could hand an address out twice (a free ordinal that is also
        allocated or listed twice, one outside the block) or let a stale
        release free the wrong holder (sequence numbers out of step).
        """
        out: list[str] = []
        size = self.cidr.num_addresses
        if len(self.allocations) != size:
            out.append(f"{self.cidr}: {len(self.allocations)} allocation slots for "
                       f"{size} addresses")
            return out  # every check below indexes by ordinal
        free = set(self.unallocated)
        if len(free) != len(self.unallocated):
            out.append(f"{self.cidr}: duplicate ordinals in the free list")
        if any(not 0 <= o < size for o in free):
            out.append(f"{self.cidr}: free list has ordinals outside the block")
        for ordinal, idx in enumerate(self.allocations):
            if idx is None:
                if ordinal not in free:
                    out.append(f"{self.cidr}: ordinal {ordinal} neither allocated nor free")
                continue
            if ordinal in free:
                out.append(f"{self.cidr}: ordinal {ordinal} allocated and free")
            if not 0 <= idx < len(self.attributes):
                out.append(f"{self.cidr}: ordinal {ordinal} has attribute index {idx}")
            if ordinal not in self.seqs:
                out.append(f"{self.cidr}: ordinal {ordinal} has no sequence number")
        if any(not 0 <= o < size for o in self.seqs):
            out.append(f"{self.cidr}: sequence numbers for ordinals outside the block")
        elif any(self.allocations[o] is None for o in self.seqs):
            out.append(f"{self.cidr}: sequence numbers kept for free ordinals")
        if self.sequence < 0 or any(not 0 < s <= self.sequence for s in self.seqs.values()):
            out.append(f"{self.cidr}: a sequence number ahead of the block's counter "
                       "or not positive")
        return out

    # -- JSON ---------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "cidr": str(self.cidr),
            "affinity": self.affinity,
            "allocations": list(self.allocations),
            "unallocated": list(self.unallocated),
            "attributes": [a.to_json() for a in self.attributes],
            "sequence": self.sequence,
            "seqs": {str(k): v for k, v in self.seqs.items()},
            "deleted": self.deleted,
        }

    @staticmethod
    def from_json(doc: Any) -> Block:
        """A block from its stored form; ValidationError naming the field if it is
        malformed in any way, its invariants included (see ``problems``)."""
        where = "block"
        if not isinstance(doc, dict):
            raise ValidationError("a block must be a JSON object", where)
        try:
            cidr = ipaddress.ip_network(doc["cidr"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"bad or missing cidr: {exc}", f"{where}.cidr") from exc
        where = f"block {cidr}"
        if cidr.num_addresses > MAX_BLOCK_ADDRESSES:
            raise ValidationError(f"{cidr.num_addresses} addresses, more than "
                                  f"{MAX_BLOCK_ADDRESSES}", f"{where}.cidr")
        allocations = doc.get("allocations")
        if not isinstance(allocations, list) or len(allocations) != cidr.num_addresses:
            raise ValidationError("allocations must list one entry per address",
                                  f"{where}.allocations")
        if not all(a is None or type(a) is int for a in allocations):
            i = next(i for i, a in enumerate(allocations) if a is not None and type(a) is not int)
            raise ValidationError("expected an integer or null", f"{where}.allocations[{i}]")
        unallocated = doc.get("unallocated")
        if not isinstance(unallocated, list) or not all(type(o) is int for o in unallocated):
            raise ValidationError("must be a list of ordinals", f"{where}.unallocated")
        attrs_doc = doc.get("attributes", [])
        if not isinstance(attrs_doc, list):
            raise ValidationError("must be a list", f"{where}.attributes")
        try:  # fast path; on any surprise the slow path names the bad entry
            attributes = [_fast_attributes(a) for a in attrs_doc]
        except (AttributeError, KeyError, TypeError, IndexError):
            attributes = [Attributes.from_json(a, f"{where}.attributes[{i}]")
                          for i, a in enumerate(attrs_doc)]
        seqs_doc = doc.get("seqs", {})
        if not isinstance(seqs_doc, dict):
            raise ValidationError("must be an object", f"{where}.seqs")
        seqs: dict[int, int] = {}
        for k, v in seqs_doc.items():
            if not k.isdecimal() or not k.isascii() or type(v) is not int:
                raise ValidationError("expected ordinal: integer", f"{where}.seqs[{k!r}]")
            seqs[int(k)] = v
        sequence = doc.get("sequence", 0)
        if type(sequence) is not int:
            raise ValidationError("must be an integer", f"{where}.sequence")
        affinity = doc.get("affinity")
        if affinity is not None and not isinstance(affinity, str):
            raise ValidationError("must be a string or null", f"{where}.affinity")
        deleted = doc.get("deleted", False)
        if type(deleted) is not bool:
            raise ValidationError("must be true or false", f"{where}.deleted")
        block = Block(cidr=cidr, affinity=affinity, allocations=list(allocations),
                      unallocated=list(unallocated), attributes=attributes,
                      sequence=sequence, seqs=seqs, deleted=deleted)
        problems = block.problems()
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ValidationError(problems[0].removeprefix(f"{cidr}: ") + more, where)
        return block
