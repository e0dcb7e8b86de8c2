"""IPAM configuration: strict affinity and the block limit, global or per host.

Stored under ``keys.CONFIG_GLOBAL`` and ``keys.host_config_key(host)`` as
``{"strictAffinity": bool, "maxBlocksPerHost": int}``; per-host fields win.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gingham.errors import ValidationError


@dataclass(frozen=True, slots=True)
class HostConfig:
    strict_affinity: bool = False
    max_blocks_per_host: int = 20

    @staticmethod
    def merged(*docs: Mapping[str, Any] | None) -> HostConfig:
        strict, max_blocks = False, 20
        for doc in docs:
            if not doc:
                continue
            if "strictAffinity" in doc:
                strict = bool(doc["strictAffinity"])
            if "maxBlocksPerHost" in doc:
                value = doc["maxBlocksPerHost"]
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ValidationError("must be a non-negative integer",
                                          "ipam config: maxBlocksPerHost")
                max_blocks = value
        return HostConfig(strict, max_blocks)
