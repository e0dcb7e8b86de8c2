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
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gingham.datastore.base import Datastore, KeyValue
from gingham.errors import (
    AlreadyExists,
    NotFound,
    RevisionConflict,
    ValidationError,
)
from gingham.ipam import keys
from gingham.ipam.block import Block, StaleSequence, affinity_host
from gingham.ipam.pools import PoolSpec, pool_from_resource
from gingham.ipam.retry import Backoff

DEFAULT_GRACE = 60.0
KINDS = ("address", "affinity", "block", "handle")


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
        return {"kind": self.kind, "reason": self.reason, "firstSeen": self.first_seen,
                "cidr": self.cidr, "ip": self.ip, "handle": self.handle,
                "sequence": self.sequence, "namespace": self.namespace,
                "workload": self.workload, "host": self.host}

    @staticmethod
    def from_json(doc: Any, where: str) -> Leak:
        if not isinstance(doc, dict) or doc.get("kind") not in KINDS:
            raise ValidationError("expected a finding with kind " + "|".join(KINDS), where)
        try:
            return Leak(kind=doc["kind"], reason=str(doc.get("reason", "")),
                        first_seen=float(doc.get("firstSeen", 0)), cidr=str(doc["cidr"]),
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
        return {"checkedAt": self.checked_at, "grace": self.grace,
                "leaks": [x.to_json() for x in self.leaks], "pending": self.pending,
                "problems": list(self.problems)}

    @staticmethod
    def from_json(doc: Any) -> LeakReport:
        if not isinstance(doc, dict) or not isinstance(doc.get("leaks"), list):
            raise ValidationError("not a leak report (no leaks list)", "report")
        return LeakReport(
            checked_at=float(doc.get("checkedAt", 0)), grace=float(doc.get("grace", 0)),
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
    blocks: list[KeyValue]
    affinities: list[KeyValue]
    handles: list[KeyValue]
    live_hosts: set[str]
    workloads: set[tuple[str, str]]
    pools: list[PoolSpec]
    node_labels: dict[str, dict[str, str]]  # hosts with a Node resource

    @staticmethod
    def read(ds: Datastore) -> _World:
        blocks, _ = ds.list(keys.BLOCKS)
        affinities, _ = ds.list(keys.AFFINITY)
        handle_docs, _ = ds.list(keys.HANDLES)
        nodes, _ = ds.list(keys.NODES)
        alive, _ = ds.list(keys.LIVENESS)
        hosts = {kv.key[len(keys.NODES):] for kv in nodes}
        labels = {kv.key[len(keys.NODES):]:
                  {str(k): str(v) for k, v in
                   ((kv.value.get("metadata") or {}).get("labels") or {}).items()}
                  for kv in nodes}
        pool_items, _ = ds.list(keys.POOLS)
        pools = []
        for kv in pool_items:
            with contextlib.suppress(ValidationError):  # a broken pool protects its blocks
                pools.append(pool_from_resource(kv.value))
        hosts |= {kv.key[len(keys.LIVENESS):] for kv in alive}
        weps, _ = ds.list(keys.WORKLOADS)
        workloads: set[tuple[str, str]] = set()
        for kv in weps:
            meta = kv.value.get("metadata") or {}
            spec = kv.value.get("spec") or {}
            ns = str(meta.get("namespace") or kv.key[len(keys.WORKLOADS):].partition("/")[0])
            for name in (meta.get("name"), spec.get("workload"), spec.get("pod")):
                if name:
                    workloads.add((ns, str(name)))
        return _World(blocks, affinities, handle_docs, hosts, workloads, pools, labels)

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
            return "empty block outside every pool"
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
        if namespace and workload and (namespace, workload) not in self.workloads:
            return f"workload {namespace}/{workload} is gone"
        return ""


def _findings(world: _World, now: float, grace: float) -> tuple[list[Leak], list[str]]:
    found: list[Leak] = []
    problems: list[str] = []
    block_owner: dict[str, str | None] = {}
    holding: set[str] = set()  # handles that hold at least one address
    for kv in world.blocks:
        block = Block.from_json(kv.value)
        cidr = str(block.cidr)
        owner = affinity_host(block.affinity)
        block_owner[cidr] = owner
        problems += block.problems()
        for ordinal, a in block.allocated():
            holding.add(a.handle)
            reason = world.address_reason(a.namespace, a.workload, a.host or (owner or ""))
            if reason:
                found.append(Leak("address", reason, now, cidr, str(block.ip_of(ordinal)),
                                  a.handle, block.seqs.get(ordinal, 0), a.namespace,
                                  a.workload, a.host))
        why = world.empty_block_reason(block)
        if why:
            found.append(Leak("block", why, now, cidr, host=owner or ""))
    for kv in world.affinities:
        host, cidr = keys.parse_affinity_key(kv.key)
        state = kv.value.get("state")
        if cidr not in block_owner:
            if state == "confirmed" or now - float(kv.value.get("since", 0)) >= grace:
                found.append(Leak("affinity", f"{state} claim with no block", now, cidr,
                                  host=host))
        elif block_owner[cidr] != host:
            found.append(Leak("affinity", f"{state} claim on a block of "
                              f"{block_owner[cidr] or 'no host'}", now, cidr, host=host))
    for kv in world.handles:
        handle = kv.key[len(keys.HANDLES):]
        if handle not in holding:
            counted = sum(int(v) for v in (kv.value.get("blocks") or {}).values())
            found.append(Leak("handle", f"handle counts {counted} address(es) but holds none",
                              now, "", handle=handle, sequence=kv.mod_revision))
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
        seen = (kv.value.get("seen") or {}) if kv else {}
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
        except (StaleSequence, RevisionConflict, NotFound) as exc:
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
        if any(a.handle == leak.handle for kv in world.blocks
               for _, a in Block.from_json(kv.value).allocated()):
            return "the handle holds addresses again"
        ds.delete(keys.handle_key(leak.handle), revision=hkv.mod_revision)
        return True
    if leak.kind == "affinity":
        akey = keys.affinity_key(leak.host, leak.cidr)
        kv = ds.get(akey)
        if kv is None:
            return "already gone"
        bkv = ds.get(bkey)
        owner = affinity_host(bkv.value.get("affinity")) if bkv else None
        if bkv is not None and owner == leak.host:
            return "the claim is now backed by its block"
        ds.delete(akey, revision=kv.mod_revision)
        return True
    kv = ds.get(bkey)
    if kv is None:
        return "already gone"
    block = Block.from_json(kv.value)
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
    from gingham.ipam import handles

    bkey = keys.block_key(leak.cidr)
    kv = ds.get(bkey)
    if kv is None:
        return "block is gone"
    block = Block.from_json(kv.value)
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
