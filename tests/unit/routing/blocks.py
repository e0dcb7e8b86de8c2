"""IPAM blocks as routing reads them (``gingham.ipam.info.BlockInfo``), for tests."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import ip_address, ip_network
from typing import Any

from gingham.ipam.info import BlockInfo


def block(cidr: Any, host: str | None, borrowed: Iterable[tuple[Any, str]] = ()) -> BlockInfo:
    """A block affine to ``host`` whose only allocations are ``borrowed`` (address, holder)."""
    net = ip_network(cidr)
    held = tuple((ip_address(a), h) for a, h in borrowed)
    return BlockInfo(net, host, tuple(a for a, _ in held), held, net.num_addresses)
