"""Leak check: find what nobody will ever give back, and release it safely.

A *leak* is an allocation whose host is gone (no Node resource and no
liveness key) or, for allocations with a namespace and a workload, whose
workload is gone (no WorkloadEndpoint in its namespace names it by name,
``spec.workload`` or ``spec.pod``). Allocations without a namespace (the
agent's tunnel address, manual ones) live as long as their host. Besides leaks, the check finds left-overs of crashed
claims (affinities with no block of their host behind them, pending claims
never confirmed) and empty blocks of gone hosts, which go back to the pool.

Nothing is reported on first sight: a finding must be seen by two
consecutive checks, the first at least ``grace`` seconds ago (an address is
allocated a moment before its WorkloadEndpoint is written). Sightings are kept
in ``keys.LEAKCHECK``. ``release_from_report`` re-verifies every item against
the current state before touching it, so an old report cannot free an address
that has since been handed out again.

Documents that cannot be read are reported as problems (key and reason), never
as findings, and they make the check more careful, not less: an unreadable
block hides who holds its addresses, so while there is one no handle is
reported as holding nothing; an unreadable WorkloadEndpoint may be the one
naming a workload, so no address in its namespace is reported as leaked for a
gone workload; with an unreadable pool no empty block is "outside every pool";
an unreadable Node keeps its host alive (its key exists) and its labels unknown.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gingham.datastore.base import Datastore, KeyValue, Undecodable
from gingham.errors import (
    AlreadyExists,
    IPAMError,
    NotFound,
    RevisionConflict,
    ValidationError,
)
from gingham.ipam import handles, keys
from gingham.ipam.block import Block, StaleSequence, affinity_host
from gingham.ipam.claims import parse_affinity
from gingham.ipam.pools import PoolSpec, node_labels_of, pool_from_resource
from gingham.ipam.retry import Backoff
from gingham.ipam.unreadable import (
    BadBlock,
    Unreadable,
    UnreadableDocument,
    read_block,
    reason,
    scan_blocks,
    skipped,
)
from gingham.timestamps import epoch, rfc3339

DEFAULT_GRACE = 60.0
KINDS = ("address", "affinity", "block", "handle")


def _time(value: Any, where: str) -> float:
    """A report's time: RFC 3339 as ``to_json`` writes it (a number from older reports)."""
    moment = epoch(value)
    if moment is None:
        raise ValidationError(f"not a time: {value!r}", where)
    return moment


@dataclass(frozen=True, slots=True)
class Leak:
    """One finding. ``kind``: ``address`` | ``affinity`` | ``block`` | ``handle``.

    For a handle, ``sequence`` carries the handle document's mod_revision: a
    document that changed since the check is not the one that was found.
    """

    kind: str
    reason: str
    first_seen: float
    cidr: str  # the block
    ip: str = ""
    handle: str = ""
    sequence: int = 0
    namespace: str = ""
    workload: str = ""
    host: str = ""

    @property
    def ident(self) -> str:
        if self.kind == "address":
            return f"address:{self.ip}:{self.handle}:{self.sequence}"
        if self.kind == "affinity":
            return f"affinity:{self.host}:{self.cidr}"
        if self.kind == "handle":
            return f"handle:{self.handle}:{self.sequence}"
        return f"block:{self.cidr}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "reason": self.reason, "firstSeen": rfc3339(self.first_seen),
                "cidr": self.cidr, "ip": self.ip, "handle": self.handle,
                "sequence": self.sequence, "namespace": self.namespace,
                "workload": self.workload, "host": self.host}

    @staticmethod
    def from_json(doc: Any, where: str) -> Leak:
        if not isinstance(doc, dict) or doc.get("kind") not in KINDS:
            raise ValidationError("expected a finding with kind " + "|".join(KINDS), where)
        try:
            return Leak(kind=doc["kind"], reason=str(doc.get("reason", "")),
                        first_seen=_time(doc.get("firstSeen", 0), f"{where}.firstSeen"),
                        cidr=str(doc["cidr"]),
                        ip=str(doc.get("ip", "")), handle=str(doc.get("handle", "")),
                        sequence=int(doc.get("sequence", 0)),
                        namespace=str(doc.get("namespace", "")),
                        workload=str(doc.get("workload", "")), host=str(doc.get("host", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"bad finding: {exc}", where) from exc


@dataclass(frozen=True, slots=True)
class LeakReport:
    checked_at: float
    grace: float
    leaks: tuple[Leak, ...]
    pending: int  # findings seen for the first time or still inside the grace period
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"checkedAt": rfc3339(self.checked_at), "grace": self.grace,
                "leaks": [x.to_json() for x in self.leaks], "pending": self.pending,
                "problems": list(self.problems)}

    @staticmethod
    def from_json(doc: Any) -> LeakReport:
        if not isinstance(doc, dict) or not isinstance(doc.get("leaks"), list):
            raise ValidationError("not a leak report (no leaks list)", "report")
        return LeakReport(
            checked_at=_time(doc.get("checkedAt", 0), "report.checkedAt"),
            grace=float(doc.get("grace", 0)),
            leaks=tuple(Leak.from_json(x, f"report.leaks[{i}]")
                        for i, x in enumerate(doc["leaks"])),
            pending=int(doc.get("pending", 0)),
            problems=tuple(str(p) for p in doc.get("problems", [])))


@dataclass(slots=True)
class ReleaseOutcome:
    released: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"released": self.released, "skipped": self.skipped}


# -- the facts a check looks at ---------------------------------------------


@dataclass(slots=True)
class _World:
    blocks: list[tuple[KeyValue, Block]]  # readable ones
    bad_blocks: list[BadBlock]
    affinities: list[KeyValue]
    handles: list[KeyValue]
    live_hosts: set[str]
    workloads: set[tuple[str, str]]
    pools: list[PoolSpec]
    node_labels: dict[str, dict[str, str]]  # hosts with a readable Node resource
    # namespaces with a WorkloadEndpoint that cannot be read ("*": one without
    # a namespace in its key, so any)
    uncertain_namespaces: set[str] = field(default_factory=set)
    pools_unreadable: bool = False
    unreadable: list[Unreadable] = field(default_factory=list)  # besides blocks

    @staticmethod
    def read(ds: Datastore) -> _World:
        block_items, _ = ds.list(keys.BLOCKS)
        blocks, bad_blocks = scan_blocks(block_items)
        affinities, _ = ds.list(keys.AFFINITY)
        handle_docs, _ = ds.list(keys.HANDLES)
        nodes, _ = ds.list(keys.NODES)
        alive, _ = ds.list(keys.LIVENESS)
        unreadable: list[Unreadable] = []
        # A Node's key alone keeps its host alive, readable or not.
        hosts = {kv.key[len(keys.NODES):] for kv in nodes}
        labels: dict[str, dict[str, str]] = {}
        for kv in nodes:
            node_labels, why = node_labels_of(kv.value)
            if node_labels is None:
                unreadable.append(skipped(kv, why, "its host counts as alive; its labels "
                                          "as unknown"))
            else:
                labels[kv.key[len(keys.NODES):]] = node_labels
        pool_items, _ = ds.list(keys.POOLS)
        pools = []
        for kv in pool_items:
            try:
                pools.append(pool_from_resource(kv.value))
            except ValidationError as exc:
                unreadable.append(skipped(kv, reason(kv.value, exc),
                                          "no empty block is taken as outside every pool"))
        hosts |= {kv.key[len(keys.LIVENESS):] for kv in alive}
        weps, _ = ds.list(keys.WORKLOADS)
        workloads: set[tuple[str, str]] = set()
        uncertain: set[str] = set()
        for kv in weps:
            key_ns, sep, _ = kv.key[len(keys.WORKLOADS):].partition("/")
            named = _workload_names(kv.value)
            if isinstance(named, str):
                unreadable.append(skipped(kv, named, "no address in its namespace is "
                                          "reported as leaked for a gone workload"))
                uncertain.add(key_ns if sep else "*")
                continue
            ns, names = named
            ns = ns or key_ns
            workloads |= {(ns, name) for name in names}
        return _World(blocks, bad_blocks, affinities, handle_docs, hosts, workloads, pools,
                      labels, uncertain, len(pools) < len(pool_items), unreadable)

    def host_gone(self, host: str) -> bool:
        return bool(host) and host not in self.live_hosts

    def empty_block_reason(self, block: Block) -> str:
        """Why an empty block should go back to its pool ("" when it stays)."""
        if not block.is_empty():
            return ""
        owner = affinity_host(block.affinity)
        if owner is None:
            return "empty block without a host"
        if self.host_gone(owner):
            return f"empty block; host {owner} is gone"
        pool = next((p for p in self.pools if p.version == block.cidr.version
                     and block.cidr.subnet_of(p.cidr)), None)  # type: ignore[arg-type]
        if pool is None:
            # it may lie in the pool that cannot be read
            return "" if self.pools_unreadable else "empty block outside every pool"
        labels = self.node_labels.get(owner)
        if labels is not None:
            try:
                matches = pool.matches_node(labels)
            except ValidationError:
                return ""
            if not matches:
                return f"empty block; host {owner} no longer matches the nodeSelector " \
                       f"of pool {pool.name or pool.cidr}"
        return ""

    def address_reason(self, namespace: str, workload: str, host: str) -> str:
        if self.host_gone(host):
            return f"host {host} is gone"
        # Only namespaced allocations belong to a WorkloadEndpoint; others (the
        # agent's VXLAN tunnel address, manual ones) live as long as their host.
        if namespace and workload and (namespace, workload) not in self.workloads \
                and namespace not in self.uncertain_namespaces \
                and "*" not in self.uncertain_namespaces:
            return f"workload {namespace}/{workload} is gone"
        return ""


def _workload_names(doc: Any) -> tuple[str, list[str]] | str:
    """(namespace or "", names a workload goes by) of a stored WorkloadEndpoint, or
    why it cannot be read."""
    if isinstance(doc, Undecodable):
        return doc.reason
    if not isinstance(doc, dict):
        return "not a JSON object"
    meta, spec = doc.get("metadata"), doc.get("spec")
    if not isinstance(meta, dict):
        return "metadata must be an object"
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        return "spec must be an object"
    fields = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
              "spec.workload": spec.get("workload"), "spec.pod": spec.get("pod")}
    for name, value in fields.items():
        if value is not None and not isinstance(value, str):
            return f"{name} must be a string"
    names = [v for k, v in fields.items() if k != "metadata.namespace" and v]
    return fields["metadata.namespace"] or "", names


def _findings(world: _World, now: float, grace: float) -> tuple[list[Leak], list[str]]:
    found: list[Leak] = []
    problems = [b.doc.describe() for b in world.bad_blocks]
    problems += [u.describe() for u in world.unreadable]
    block_owner: dict[str, str | None] = {}
    unknown_owner = {str(b.cidr) for b in world.bad_blocks if b.cidr is not None}
    holding: set[str] = set()  # handles that hold at least one address
    for _kv, block in world.blocks:
        cidr = str(block.cidr)
        owner = affinity_host(block.affinity)
        block_owner[cidr] = owner
        for ordinal, a in block.allocated():
            holding.add(a.handle)
            gone = world.address_reason(a.namespace, a.workload, a.host or (owner or ""))
            if gone:
                found.append(Leak("address", gone, now, cidr, str(block.ip_of(ordinal)),
                                  a.handle, block.seqs.get(ordinal, 0), a.namespace,
                                  a.workload, a.host))
        why = world.empty_block_reason(block)
        if why:
            found.append(Leak("block", why, now, cidr, host=owner or ""))
    for kv in world.affinities:
        host, cidr = keys.parse_affinity_key(kv.key)
        try:
            cidr = str(ipaddress.ip_network(cidr))
        except ValueError:
            problems.append(f"{kv.key} is unreadable (the key names no block CIDR)")
            continue
        affinity = parse_affinity(kv)
        if affinity.why:
            problems.append(skipped(kv, affinity.why, "left alone").describe())
            continue
        state = affinity.state
        if cidr in unknown_owner:
            continue  # whose block it is cannot be told
        if cidr not in block_owner:
            if state == "confirmed" or now - affinity.since >= grace:
                found.append(Leak("affinity", f"{state} claim with no block", now, cidr,
                                  host=host))
        elif block_owner[cidr] != host:
            found.append(Leak("affinity", f"{state} claim on a block of "
                              f"{block_owner[cidr] or 'no host'}", now, cidr, host=host))
    for kv in world.handles:
        try:
            doc = handles.parse(kv)
        except UnreadableDocument as exc:
            problems.append(f"{exc.key} is unreadable ({exc.reason})")
            continue
        # With a block unreadable, "holds none" cannot be told: its addresses may
        # be there, and dropping the handle would hide them from release-by-handle.
        if doc.handle not in holding and not world.bad_blocks:
            counted = sum(doc.blocks.values())
            found.append(Leak("handle", f"handle counts {counted} address(es) but holds none",
                              now, "", handle=doc.handle, sequence=kv.mod_revision))
    return found, problems


def check(ds: Datastore, now: float | None = None, grace: float = DEFAULT_GRACE,
          sleep: Callable[[float], None] = time.sleep) -> LeakReport:
    """Look for leaks; report those also seen by the previous check ``grace`` ago."""
    now = time.time() if now is None else now
    found, problems = _findings(_World.read(ds), now, grace)
    backoff = Backoff(sleep=sleep, rng=random.Random())
    confirmed: list[Leak] = []
    pending = 0

    def step() -> None:
        nonlocal pending
        confirmed.clear()
        pending = 0
        kv = ds.get(keys.LEAKCHECK)
        seen = _sightings(kv)
        new_seen: dict[str, float] = {}
        for leak in found:
            first = float(seen.get(leak.ident, now))
            new_seen[leak.ident] = first
            if leak.ident in seen and now - first >= grace:
                confirmed.append(Leak(**{**_fields(leak), "first_seen": first}))
            else:
                pending += 1
        doc = {"checkedAt": now, "seen": new_seen}
        try:
            if kv is None:
                ds.create(keys.LEAKCHECK, doc)
            else:
                ds.update(keys.LEAKCHECK, doc, revision=kv.mod_revision)
        except (AlreadyExists, NotFound):
            raise RevisionConflict(keys.LEAKCHECK) from None

    backoff.run("leak check", step)
    return LeakReport(now, grace, tuple(confirmed), pending, tuple(problems))


def _sightings(kv: KeyValue | None) -> dict[str, float]:
    """Earlier sightings; none if the document cannot be read (logged). Starting
    over only delays findings by one grace period, so the check then replaces it."""
    if kv is None:
        return {}
    seen = kv.value.get("seen") if isinstance(kv.value, dict) else None
    if isinstance(seen, dict) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in seen.values()):
        return {str(k): float(v) for k, v in seen.items()}
    skipped(kv, reason(kv.value, None) if isinstance(kv.value, Undecodable)
            else "seen must map findings to times", "sightings start over")
    return {}


def _fields(leak: Leak) -> dict[str, Any]:
    return {name: getattr(leak, name) for name in Leak.__slots__}


# -- release ----------------------------------------------------------------


def release_from_report(ds: Datastore, report: LeakReport,
                        sleep: Callable[[float], None] = time.sleep) -> ReleaseOutcome:
    """Release what the report names, each item re-verified against the store now."""
    out = ReleaseOutcome()
    backoff = Backoff(sleep=sleep, rng=random.Random())
    # addresses first: that may empty blocks and handles
    order = {"address": 0, "handle": 1, "affinity": 2, "block": 3}
    # Facts about hosts and workloads are read once, now (not at report time);
    # each block, affinity and handle is re-read and written with CAS.
    world = _World.read(ds)
    for leak in sorted(report.leaks, key=lambda x: order[x.kind]):
        try:
            done = _release_one(ds, backoff, world, leak)
        except (StaleSequence, RevisionConflict, NotFound, UnreadableDocument) as exc:
            out.skipped.append(f"{leak.ident}: {exc}")
            continue
        except (IPAMError, ValueError) as exc:  # a report naming what no block has
            out.skipped.append(f"{leak.ident}: {exc}")
            continue
        (out.released if done is True else out.skipped).append(
            leak.ident if done is True else f"{leak.ident}: {done}")
    return out


def _release_one(ds: Datastore, backoff: Backoff, world: _World, leak: Leak) -> bool | str:
    bkey = keys.block_key(leak.cidr)
    if leak.kind == "address":
        return _release_address(ds, backoff, world, leak)
    if leak.kind == "handle":
        hkv = ds.get(keys.handle_key(leak.handle))
        if hkv is None:
            return "already gone"
        if hkv.mod_revision != leak.sequence:
            return "the handle changed since the check"
        if world.bad_blocks:
            return "a block cannot be read: the handle may hold addresses there"
        if any(a.handle == leak.handle for _, block in world.blocks
               for _, a in block.allocated()):
            return "the handle holds addresses again"
        ds.delete(keys.handle_key(leak.handle), revision=hkv.mod_revision)
        return True
    if leak.kind == "affinity":
        akey = keys.affinity_key(leak.host, leak.cidr)
        kv = ds.get(akey)
        if kv is None:
            return "already gone"
        if parse_affinity(kv).why:
            return "the claim cannot be read now; left alone"
        bkv = ds.get(bkey)
        owner = affinity_host(read_block(bkv).affinity) if bkv else None
        if bkv is not None and owner == leak.host:
            return "the claim is now backed by its block"
        ds.delete(akey, revision=kv.mod_revision)
        return True
    kv = ds.get(bkey)
    if kv is None:
        return "already gone"
    block = read_block(kv)
    owner = affinity_host(block.affinity)
    if not block.is_empty():
        return "block is in use again"
    if not world.empty_block_reason(block):
        return "the block's host may keep it again"
    ds.delete(bkey, revision=kv.mod_revision)  # CAS: still empty at this revision
    if owner is not None:
        with contextlib.suppress(NotFound):
            ds.delete(keys.affinity_key(owner, block.cidr))
    return True


def _release_address(ds: Datastore, backoff: Backoff, world: _World, leak: Leak) -> bool | str:
    bkey = keys.block_key(leak.cidr)
    kv = ds.get(bkey)
    if kv is None:
        return "block is gone"
    block = read_block(kv)
    ordinal = block.ordinal_of(ipaddress.ip_address(leak.ip))
    held = block.holder(ordinal)
    if held is None:
        return "already free"
    if held.handle != leak.handle or block.seqs.get(ordinal) != leak.sequence:
        return "re-allocated since the check"
    if not world.address_reason(held.namespace, held.workload,
                                held.host or (affinity_host(block.affinity) or "")):
        return "its workload and host exist again"
    block.release(ordinal, leak.sequence, leak.handle)
    try:
        ds.update(bkey, block.to_json(), revision=kv.mod_revision)
    except NotFound:
        return "block is gone"
    handles.add(ds, backoff, leak.handle, str(block.cidr), -1)
    return True


__all__ = ["DEFAULT_GRACE", "Leak", "LeakReport", "ReleaseOutcome", "check",
           "release_from_report"]
