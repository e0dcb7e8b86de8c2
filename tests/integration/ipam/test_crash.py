"""Hosts killed at random points of claiming blocks and allocating: after two
checks and a release from the report, nothing is half-claimed or held."""

from __future__ import annotations

import multiprocessing
import os
import random
import time

import pytest

from gingham.datastore import open_datastore
from gingham.datastore.keys import resource_key
from gingham.ipam import IPAM, HostConfig, check, list_blocks, release_from_report
from gingham.ipam import keys as ikeys
from gingham.ipam.block import Block, affinity_host
from tests.integration.ipam import stress_worker

pytestmark = pytest.mark.slow


@pytest.mark.timeout(200)
def test_killed_hosts_leave_nothing_behind(store_url: str) -> None:
    ds = open_datastore(store_url, create=True)
    try:
        ds.create(resource_key("IPPool", "crash"),
                  {"kind": "IPPool", "metadata": {"name": "crash"},
                   "spec": {"cidr": "198.18.0.0/24", "blockSize": 29}})
    finally:
        ds.close()
    ctx = multiprocessing.get_context("spawn")
    rng = random.Random(11)
    for round_ in range(int(os.environ.get("GINGHAM_CRASH_ROUNDS", "6"))):
        ready = ctx.Event()
        p = ctx.Process(target=stress_worker.claim_until_killed,
                        args=(store_url, f"dead{round_}", ready, round_))
        p.start()
        try:
            assert ready.wait(60), "worker did not start"
            time.sleep(rng.uniform(0.05, 0.4))
        finally:
            p.kill()
            p.join()

    ds = open_datastore(store_url)
    try:
        assert list_blocks(ds), "the workers never got to claim anything"
        t = time.time()  # pending claims carry wall-clock times
        check(ds, now=t, grace=0.0)
        report = check(ds, now=t + 1, grace=0.0)
        assert report.problems == ()
        release_from_report(ds, report)
        # a second pass picks up blocks that the first emptied
        check(ds, now=t + 2, grace=0.0)
        report = check(ds, now=t + 3, grace=0.0)
        release_from_report(ds, report)
        left = [kv.key for kv in ds.list(ikeys.IPAM)[0] if kv.key != ikeys.LEAKCHECK]
        assert left == [], left

        # and the pool is whole: a live host can claim all of it
        ipam = IPAM(ds, "live", cache_ttl=0, config=HostConfig(max_blocks_per_host=32))
        assert len(ipam.allocate("all", num_v4=256)) == 256
        for kv in ds.list(ikeys.BLOCKS)[0]:
            block = Block.from_json(kv.value)
            assert affinity_host(block.affinity) == "live" and block.problems() == []
    finally:
        ds.close()
