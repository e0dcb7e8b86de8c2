"""IP address management: pools, blocks with host affinity, handles, CAS allocation.

    >>> from gingham.ipam import IPAM
    >>> ipam = IPAM(ds, host="node-1")
    >>> ipam.auto_assign("net.container", {"namespace": "ns", "workload": "w"})
    [IPv4Interface('198.18.0.0/32')]

Only the standard library and ``gingham.datastore.base`` are imported here:
the CNI plugin imports this on every ADD. Key layout: ``gingham.ipam.keys``.
"""

from __future__ import annotations

from gingham.ipam.allocator import IPAM, Allocation, HostConfig
from gingham.ipam.block import Attributes, Block, StaleSequence
from gingham.ipam.info import (
    BlockInfo,
    Holder,
    PoolUsage,
    block_info,
    list_blocks,
    usage,
    who_holds,
)
from gingham.ipam.leaks import Leak, LeakReport, ReleaseOutcome, check, release_from_report
from gingham.ipam.pools import PoolSpec, pool_from_model, pool_from_resource

__all__ = [
    "IPAM",
    "Allocation",
    "Attributes",
    "Block",
    "BlockInfo",
    "Holder",
    "HostConfig",
    "Leak",
    "LeakReport",
    "PoolSpec",
    "PoolUsage",
    "ReleaseOutcome",
    "StaleSequence",
    "block_info",
    "check",
    "list_blocks",
    "pool_from_model",
    "pool_from_resource",
    "release_from_report",
    "usage",
    "who_holds",
]
