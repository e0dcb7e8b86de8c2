"""IP address management: pools, blocks with host affinity, handles, CAS allocation.

    >>> from gingham.ipam import IPAM
    >>> ipam = IPAM(ds, host="node-1")
    >>> ipam.auto_assign("net.container", {"namespace": "ns", "workload": "w"})
    [IPv4Interface('198.18.0.0/32')]

Only the standard library and ``gingham.datastore.base`` are imported here:
the CNI plugin imports this on every ADD. Key layout: ``gingham.ipam.keys``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gingham.ipam.allocator import IPAM, Allocation
from gingham.ipam.block import Attributes, Block, StaleSequence
from gingham.ipam.config import HostConfig
from gingham.ipam.pools import PoolSpec, pool_from_model, pool_from_resource

if TYPE_CHECKING:
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

# Read views and the leak check are not on the CNI path: imported on first use.
_LAZY = {
    **dict.fromkeys(["BlockInfo", "Holder", "PoolUsage", "block_info", "list_blocks", "usage",
                     "who_holds"], "gingham.ipam.info"),
    **dict.fromkeys(["Leak", "LeakReport", "ReleaseOutcome", "check", "release_from_report"],
                    "gingham.ipam.leaks"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gingham.ipam' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
