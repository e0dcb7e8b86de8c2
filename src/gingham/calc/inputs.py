"""What the calculation graph is fed: typed keys and typed values.

The agent's decoder (``gingham.agent.decode``) is the only reader of datastore
keys and stored documents. It hands the graph

- a key: :class:`ResourceKey` (kind, name, namespace) or :class:`BlockKey`
  (the CIDR an IPAM block key names), never a storage path;
- a value: a model resource, an :class:`~gingham.model.InvalidResource` (the
  document does not validate, or is not the one its key names), ``None``
  (absent), or for a block an :class:`IPAMBlock` (decoded by
  ``gingham.ipam.info``, IPAM's one block decoder).

Nothing here knows how keys are spelled in a datastore.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any, ClassVar, Protocol

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


@dataclass(frozen=True, slots=True, order=True)
class ResourceKey:
    """A resource's identity. ``kind`` is the model's kind name (``KindInfo.name``);
    ``namespace`` is None for cluster-scoped kinds."""

    kind: str
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        scope = f"{self.namespace}/" if self.namespace is not None else ""
        return f"{self.kind}/{scope}{self.name}"


@dataclass(frozen=True, slots=True, order=True)
class BlockKey:
    """An IPAM block's identity: the CIDR its key names, as written there (it may
    not parse: the decoder then calls whatever is stored there invalid)."""

    cidr: str
    kind: ClassVar[str] = "IPAMBlock"

    @property
    def name(self) -> str:
        return self.cidr

    @property
    def namespace(self) -> None:
        return None

    def __str__(self) -> str:
        return f"{self.kind}/{self.cidr}"


InputKey = ResourceKey | BlockKey


class BlockView(Protocol):
    """What routing reads of an IPAM block (``gingham.ipam.info.BlockInfo`` has it)."""

    @property
    def cidr(self) -> IPNetwork: ...
    @property
    def host(self) -> str | None: ...
    @property
    def borrowed(self) -> tuple[tuple[IPAddress, str], ...]: ...


@dataclass(frozen=True, slots=True)
class IPAMBlock:
    """A readable IPAM block: what IPAM's decoder made of it and the stored document.

    The document is kept for one reason: should the block become unreadable,
    its last valid version is remembered past a restart as a document
    (``validity.LastValidMemory``), and read back through the same decoder.
    """

    info: BlockView
    document: Mapping[str, Any] = field(compare=False, repr=False)


def route_view(block: BlockView) -> tuple[Any, ...]:
    """The part of a block routing depends on. A block document changes on every
    allocation; its affinity and borrowed addresses hardly ever."""
    return (block.cidr, block.host, tuple(block.borrowed))
