"""One allocator process of the IPAM concurrency test (run with multiprocessing spawn).

It allocates and releases at random and logs every allocation and release it
made, with the block's sequence number, so the test can replay each address's
history afterwards and prove nobody was handed an address someone else held.
"""

from __future__ import annotations

import json
import random
import traceback
from pathlib import Path
from typing import Any


def run(url: str, host: str, worker: int, ops: int, max_held: int, out: str,
        met_unreadable: Any = None, stop: Any = None) -> None:
    """With ``met_unreadable`` (a shared counter) a release failing on an unreadable
    block (another process corrupts one for a while) is expected and counted there;
    what it could not release stays held and is released again later. With
    ``stop`` (an event) the worker goes on past ``ops`` until it is set, so the
    corrupting side decides how long the run lasts, not the machine's speed."""
    from gingham.datastore import open_datastore
    from gingham.errors import PoolExhausted
    from gingham.ipam import IPAM, Allocation, who_holds
    from gingham.ipam.unreadable import UnreadableDocument

    rng = random.Random(worker * 7919)
    log: dict[str, Any] = {"host": host, "worker": worker, "allocs": [], "releases": [],
                           "exhausted": 0, "errors": [], "held": [], "unreadable": 0,
                           "loose": []}
    held: dict[str, list[Allocation]] = {}
    ds = open_datastore(url)
    ipam = IPAM(ds, host, rng=rng, cache_ttl=5.0)
    n = 0
    done = 0
    try:
        while done < ops or (stop is not None and not stop.is_set()):
            done += 1
            if held and (len(held) >= max_held or rng.random() < 0.45):
                handle = rng.choice(sorted(held))
                allocs = held.pop(handle)
                try:
                    if rng.random() < 0.5:
                        freed = ipam.release_by_handle(handle)
                    else:
                        freed = ipam.release(allocs)
                except UnreadableDocument:
                    if met_unreadable is None:
                        raise
                    log["unreadable"] += 1
                    with met_unreadable.get_lock():
                        met_unreadable.value += 1
                    log["loose"].append(handle)  # its counts may now be too high
                    still = []
                    for a in allocs:
                        try:
                            holder = who_holds(ds, a.ip)
                        except UnreadableDocument:
                            still.append(a)
                            continue
                        if holder is not None and holder.sequence == a.sequence:
                            still.append(a)
                        else:
                            log["releases"].append([str(a.ip), a.sequence, handle])
                    if still:
                        held[handle] = still
                    continue
                if sorted(map(str, freed)) != sorted(str(a.ip) for a in allocs):
                    log["errors"].append(f"release of {handle} freed {freed}, held {allocs}")
                log["releases"] += [[str(a.ip), a.sequence, handle] for a in allocs]
                continue
            n += 1
            handle = f"w{worker}.{n}"
            try:
                got = ipam.allocate(handle, {"namespace": "stress", "workload": handle},
                                    num_v4=rng.choice((1, 1, 2)))
            except PoolExhausted:
                log["exhausted"] += 1
                continue
            held[handle] = got
            log["allocs"] += [[str(a.ip), str(a.block), a.sequence, handle] for a in got]
    except Exception:
        log["errors"].append(traceback.format_exc())
    finally:
        log["held"] = [[str(a.ip), a.sequence, h] for h, allocs in held.items() for a in allocs]
        ds.close()
        Path(out).write_text(json.dumps(log))


def claim_until_killed(url: str, prefix: str, ready: Any, seed: int) -> None:
    """Allocate as ever new hosts (each allocation claims a block) until SIGKILLed.

    Every datastore call is slowed by a random pause so that the kill lands
    between the steps of a claim or an allocation, not only between calls.
    """
    import time

    from gingham.datastore import open_datastore
    from gingham.ipam import IPAM

    rng = random.Random(seed)
    ds = open_datastore(url)
    for name in ("get", "list", "create", "update", "delete", "txn"):
        real = getattr(ds, name)

        def slow(*a: Any, _real: Any = real, **kw: Any) -> Any:
            time.sleep(rng.uniform(0, 0.004))
            result = _real(*a, **kw)
            time.sleep(rng.uniform(0, 0.004))
            return result

        setattr(ds, name, slow)
    ready.set()
    for i in range(10_000):
        host = f"{prefix}-{i % 6}"
        IPAM(ds, host, rng=rng, cache_ttl=0).allocate(
            f"{prefix}.{i}", {"namespace": "ns", "workload": f"{prefix}-{i}"},
            num_v4=rng.choice((1, 2)))
