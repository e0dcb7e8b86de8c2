"""IPAM configuration: strict affinity and the block limit, global or per host.

Stored under ``keys.CONFIG_GLOBAL`` and ``keys.host_config_key(host)`` as
``{"strictAffinity": bool, "maxBlocksPerHost": int}``; per-host fields win.

A document or field that cannot be read never stops allocation; each field
falls back to its safe side:

* ``strictAffinity`` unreadable (the field, or the whole document that might
  set it) -> strict, unless a layer above sets it readably. Borrowing where
  strict affinity is wanted hands out an address whose block routes to another
  host (the workload is silently unreachable); not borrowing fails with a
  clear ``PoolExhausted``. Neither hands an address out twice: every
  allocation is a compare-and-swap on the block either way.
* ``maxBlocksPerHost`` unreadable -> the value of the layer below (global, then
  the default 20). The limit only decides when a host claims another block
  instead of borrowing; any value keeps each address handed out once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gingham.datastore.base import KeyValue, Undecodable
from gingham.ipam.unreadable import Unreadable, reason, skipped

DEFAULT_MAX_BLOCKS = 20


@dataclass(frozen=True, slots=True)
class HostConfig:
    strict_affinity: bool = False
    max_blocks_per_host: int = DEFAULT_MAX_BLOCKS

    @staticmethod
    def resolve(layers: Iterable[KeyValue | None]) -> tuple[HostConfig, list[Unreadable]]:
        """The configuration from stored layers (lowest precedence first; None for an
        absent one) and what could not be read in them (logged once)."""
        strict, strict_unknown = False, False
        max_blocks = DEFAULT_MAX_BLOCKS
        bad: list[Unreadable] = []
        for kv in layers:
            if kv is None:
                continue
            doc = kv.value
            if isinstance(doc, Undecodable) or not isinstance(doc, dict):
                strict_unknown = True
                bad.append(skipped(kv, reason(doc), "strictAffinity is taken as true and "
                                   f"maxBlocksPerHost as {max_blocks} until it is repaired"))
                continue
            if "strictAffinity" in doc:
                value = doc["strictAffinity"]
                if type(value) is bool:
                    strict, strict_unknown = value, False
                else:
                    strict_unknown = True
                    bad.append(skipped(kv, f"strictAffinity is {value!r}, not true or false",
                                       "strictAffinity is taken as true until it is repaired"))
            if "maxBlocksPerHost" in doc:
                value = doc["maxBlocksPerHost"]
                if type(value) is int and value >= 0:
                    max_blocks = value
                else:
                    bad.append(skipped(kv, f"maxBlocksPerHost is {value!r}, not a "
                                       "non-negative integer", f"maxBlocksPerHost is taken as "
                                       f"{max_blocks} until it is repaired"))
        return HostConfig(strict or strict_unknown, max_blocks), bad
