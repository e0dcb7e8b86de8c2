"""8 processes on 4 hosts allocate and release at random from a small pool, on
sqlite and on a real etcd. Afterwards no address is held twice, every released
address is free, and the counts add up; borrowing and exhaustion did happen.
The same while blocks in use are made unreadable for a moment, one after another."""

from __future__ import annotations

import json
import multiprocessing
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gingham.datastore import open_datastore
from gingham.datastore.keys import resource_key
from gingham.errors import RevisionConflict
from gingham.ipam import keys as ikeys
from gingham.ipam.block import Block, affinity_host
from tests.integration.ipam import stress_worker

pytestmark = pytest.mark.slow

WORKERS = 8
HOSTS = 4
MAX_HELD = 5  # handles per worker; up to 2 addresses each: demand > supply


def _setup(url: str, pool: str = "198.18.0.0/27") -> None:
    ds = open_datastore(url, create=True)
    try:
        ds.create(resource_key("IPPool", "stress"),
                  {"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                   "metadata": {"name": "stress"},
                   "spec": {"cidr": pool, "blockSize": 29}})  # blocks of 8
        ds.create(resource_key("IPReservation", "r"),
                  {"apiVersion": "projectcalico.org/v3", "kind": "IPReservation",
                   "metadata": {"name": "r"}, "spec": {"reservedCIDRs": ["198.18.0.13"]}})
        ds.create(ikeys.CONFIG_GLOBAL, {"maxBlocksPerHost": 2, "strictAffinity": False})
        for h in range(HOSTS):
            ds.create(resource_key("Node", f"host{h}"),
                      {"kind": "Node", "metadata": {"name": f"host{h}"}, "spec": {}})
    finally:
        ds.close()


def _run_workers(url: str, tmp: Path, ops: int,
                 meanwhile: Callable[[Any], None] | None = None) -> list[dict[str, Any]]:
    """Run the workers; ``meanwhile(met_unreadable)``, if given, runs beside them
    and they go on (past ``ops``) until it returns."""
    ctx = multiprocessing.get_context("spawn")
    procs = []
    met = ctx.Value("i", 0) if meanwhile else None
    stop = ctx.Event() if meanwhile else None
    for w in range(WORKERS):
        out = tmp / f"worker{w}.json"
        p = ctx.Process(target=stress_worker.run,
                        args=(url, f"host{w % HOSTS}", w, ops, MAX_HELD, str(out), met, stop))
        p.start()
        procs.append(p)
    try:
        if meanwhile is not None:
            try:
                meanwhile(met)
            finally:
                assert stop is not None
                stop.set()
        for p in procs:
            p.join(timeout=150)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    return [json.loads((tmp / f"worker{w}.json").read_text()) for w in range(WORKERS)]


@pytest.mark.timeout(240)
def test_no_address_is_ever_held_twice(store_url: str, tmp_path: Path) -> None:
    _setup(store_url)
    ops = 300 if store_url.startswith("sqlite") else 200
    logs = _run_workers(store_url, tmp_path, ops)
    stats = _verify(store_url, logs)
    # the scenario really exercised the hard paths
    assert stats["exhausted"] > 0, "the pool never ran out"
    assert stats["borrowed"] > 0, "no host ever borrowed"
    assert stats["allocs"] > 500


@pytest.mark.timeout(240)
def test_a_block_corrupted_mid_run_costs_its_range_only(store_url: str, tmp_path: Path) -> None:
    """While the workers run, blocks holding addresses are made unreadable (wrong
    shape, written with compare-and-swap so no worker's write is lost), each until a
    worker has met it, then restored.

    Nobody writes a corrupted block meanwhile (restoring it by compare-and-swap
    at the revision of the garbage succeeds), the workers only see releases that
    name the block fail, and afterwards no address was ever held twice.
    """
    _setup(store_url, pool="198.18.0.0/26")  # 8 blocks: room to go elsewhere
    shapes: list[dict[str, Any]] = [{"affinity": 5}, {"allocations": "x"}, {"seqs": []},
                                    {"unallocated": "broken"}]
    corrupted: list[str] = []

    def corrupt_some(met_unreadable: Any) -> None:
        ds = open_datastore(store_url)
        try:
            for shape in shapes:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    items = [kv for kv in ds.list(ikeys.BLOCKS)[0]
                             if kv.value.get("cidr") and Block.from_json(kv.value).allocated()]
                    if len(items) >= 3:
                        kv = items[len(corrupted) % len(items)]
                        try:
                            garbage_at = ds.update(kv.key, {**kv.value, **shape},
                                                   revision=kv.mod_revision)
                        except RevisionConflict:
                            continue
                        break
                    time.sleep(0.01)
                else:
                    raise AssertionError("no blocks to corrupt")
                corrupted.append(kv.key)
                # a holder of one of its addresses releases it soon (a worker
                # holds at most MAX_HELD handles); wait until someone has met it
                met_before = met_unreadable.value
                until = time.monotonic() + 30
                while met_unreadable.value == met_before and time.monotonic() < until:
                    time.sleep(0.02)
                # nobody wrote it while it was unreadable
                ds.update(kv.key, kv.value, revision=garbage_at)
        finally:
            ds.close()

    ops = 300 if store_url.startswith("sqlite") else 200
    logs = _run_workers(store_url, tmp_path, ops, corrupt_some)
    assert len(corrupted) == len(shapes)
    _verify(store_url, logs)
    assert sum(log["unreadable"] for log in logs) > 0, "no worker met an unreadable block"


def _verify(url: str, logs: list[dict[str, Any]]) -> dict[str, int]:
    """Replay what the workers did against the final store; the counts it saw."""
    errors = [e for log in logs for e in log["errors"]]
    assert errors == [], errors[0]

    ds = open_datastore(url)
    try:
        blocks = {str(b.cidr): b for b in
                  (Block.from_json(kv.value) for kv in ds.list(ikeys.BLOCKS)[0])}
        handle_docs = {kv.key[len(ikeys.HANDLES):]: kv.value
                       for kv in ds.list(ikeys.HANDLES)[0]}
    finally:
        ds.close()

    # every block is internally sound
    for b in blocks.values():
        assert b.problems() == []

    # replay each address's history in sequence order: an allocation may only
    # follow the release of the previous one
    allocs: dict[str, list[tuple[int, str]]] = defaultdict(list)
    released: set[tuple[str, int]] = set()
    seen_seq: set[tuple[str, int]] = set()
    borrowed = 0
    for log in logs:
        for ip, block, seq, handle in log["allocs"]:
            assert (block, seq) not in seen_seq, f"sequence {seq} of {block} issued twice"
            seen_seq.add((block, seq))
            allocs[ip].append((seq, handle))
            if affinity_host(blocks[block].affinity) != log["host"]:
                borrowed += 1
        released |= {(ip, seq) for ip, seq, _ in log["releases"]}
    for ip, history in allocs.items():
        history.sort()
        for seq, handle in history[:-1]:  # every allocation but the last one
            assert (ip, seq) in released, \
                f"{ip} handed out again while {handle} (seq {seq}) still held it"
    assert "198.18.0.13" not in allocs, "a reserved address was handed out"

    # what the workers hold is exactly what the blocks say is allocated
    held = [(ip, seq, h) for log in logs for ip, seq, h in log["held"]]
    assert len({ip for ip, _, _ in held}) == len(held), "an address is held twice"
    in_store = {}
    for b in blocks.values():
        for ordinal, attrs in b.allocated():
            in_store[str(b.ip_of(ordinal))] = (b.seqs[ordinal], attrs.handle)
    assert in_store == {ip: (seq, h) for ip, seq, h in held}

    # counts add up; every released address not handed out again is free
    total_allocs = sum(len(log["allocs"]) for log in logs)
    total_releases = sum(len(log["releases"]) for log in logs)
    assert total_allocs - total_releases == len(held)
    last = {ip: max(h)[0] for ip, h in allocs.items()}
    for ip, seq in released:
        if last[ip] == seq:
            assert ip not in in_store, f"{ip} was released but is still allocated"

    # handle documents match the blocks exactly; a handle whose release met an
    # unreadable block may count more (never less)
    per_handle: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for b in blocks.values():
        for _, attrs in b.allocated():
            per_handle[attrs.handle][str(b.cidr)] += 1
    loose = {h for log in logs for h in log.get("loose", [])}
    for h in set(per_handle) | set(handle_docs):
        counted = handle_docs.get(h, {}).get("blocks", {})
        for cidr, n in per_handle.get(h, {}).items():
            assert counted.get(cidr, 0) >= n, (h, cidr, counted, n)
        if h not in loose:
            assert counted == dict(per_handle.get(h, {})), (h, counted)
    return {"exhausted": sum(log["exhausted"] for log in logs), "borrowed": borrowed,
            "allocs": total_allocs}
