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


def run(url: str, host: str, worker: int, ops: int, max_held: int, out: str) -> None:
    from gingham.datastore import open_datastore
    from gingham.errors import PoolExhausted
    from gingham.ipam import IPAM, Allocation

    rng = random.Random(worker * 7919)
    log: dict[str, Any] = {"host": host, "worker": worker, "allocs": [], "releases": [],
                           "exhausted": 0, "errors": [], "held": []}
    held: dict[str, list[Allocation]] = {}
    ds = open_datastore(url)
    ipam = IPAM(ds, host, rng=rng, cache_ttl=5.0)
    n = 0
    try:
        for _ in range(ops):
            if held and (len(held) >= max_held or rng.random() < 0.45):
                handle = rng.choice(sorted(held))
                allocs = held.pop(handle)
                if rng.random() < 0.5:
                    freed = ipam.release_by_handle(handle)
                else:
                    freed = ipam.release(allocs)
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
