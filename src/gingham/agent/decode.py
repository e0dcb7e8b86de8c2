"""Typed decode of what the agent reads: the only reader of datastore keys and documents.

    (key string, stored value)
          |  decode(key, value)
          v
    (ResourceKey | BlockKey, Resource | IPAMBlock | InvalidResource | None)  -> CalcGraph

Never raises on bad data: whatever is stored, the answer is a model resource,
an IPAM block (read by ``gingham.ipam.info``, IPAM's one block decoder), an
``InvalidResource`` saying why not, or None for an absent key. Keys the
calculation graph does not read (the cluster ID, IPAM bookkeeping, liveness)
decode to None and are not fed to it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Protocol

from gingham.calc.inputs import BlockKey, InputKey, IPAMBlock, ResourceKey
from gingham.calc.validity import InputValue
from gingham.datastore import keys
from gingham.datastore.base import Undecodable
from gingham.ipam import keys as ipam_keys
from gingham.model import InvalidResource, decode_document, kind_info


def decode_key(key: str) -> InputKey | None:
    """The typed key of a datastore key the graph reads; None for any other key.

    A key that would not be spelled back the same way (an empty segment, a
    block token that is not ``<address>-<length>``-shaped) is none of the
    graph's business: nothing valid can be stored under it.
    """
    typed: InputKey | None = None
    if key.startswith(keys.RESOURCES):
        parts = key[len(keys.RESOURCES):].split("/")
        if len(parts) == 2:
            typed = ResourceKey(parts[0], parts[1])
        elif len(parts) == 3:
            typed = ResourceKey(parts[0], parts[2], parts[1])
    elif key.startswith(ipam_keys.BLOCKS):
        typed = BlockKey(ipam_keys.token_cidr(key[len(ipam_keys.BLOCKS):]))
    if typed is None or datastore_key(typed) != key:
        return None
    return typed


def datastore_key(key: InputKey) -> str:
    """Where ``key`` is stored (what operators see in reports and status)."""
    if isinstance(key, BlockKey):
        return ipam_keys.block_key(key.cidr)
    return keys.resource_key(key.kind, key.name, key.namespace)


def decode_value(key: InputKey, value: object) -> InputValue | None:
    """What is stored under ``key``, typed; never raises on bad data."""
    if value is None:
        return None
    if isinstance(value, Undecodable):
        return InvalidResource(f"not a JSON object: {value.reason}")
    if not isinstance(value, Mapping):
        return InvalidResource(f"not a JSON object: a {type(value).__name__}")
    if isinstance(key, BlockKey):
        return _block(key, value)
    return _resource(key, value)


def decode(key: str, value: object) -> tuple[InputKey, InputValue | None] | None:
    """One datastore update for the graph, or None when the graph does not read ``key``."""
    typed = decode_key(key)
    if typed is None:
        return None
    return typed, decode_value(typed, value)


def decode_resource(key: str, value: Any) -> Any:
    """Model resource for a resource key, or ``InvalidResource``; the value itself for any
    other key (readers that follow only resources: ``policy explain``, tests)."""
    typed = decode_key(key) if key.startswith(keys.RESOURCES) else None
    if value is None or typed is None:
        if typed is None and key.startswith(keys.RESOURCES) and value is not None:
            return InvalidResource(f"no resource can be stored under {key}", _doc(value))
        return value
    return decode_value(typed, value)


def _resource(key: InputKey, value: Mapping[str, Any]) -> InputValue:
    """A valid document stored under another kind's, name's or namespace's key is invalid
    too: the graph takes identities from keys. Whether an invalid document counts as
    its last valid version, a quarantine or absent is the graph's decision
    (``calc/validity.py``)."""
    resource = decode_document(value)
    if isinstance(resource, InvalidResource):
        return resource
    info = kind_info(resource.kind, resource.api_version)
    meta = resource.metadata
    found = ResourceKey(info.name, meta.name, meta.namespace if info.namespaced else None)
    if found != key:
        return InvalidResource(
            f"a {info.name} named {meta.name!r} does not belong under {datastore_key(key)}",
            value)
    return resource


def _block(key: BlockKey, value: Mapping[str, Any]) -> InputValue:
    from gingham.ipam.info import block_info

    try:
        info = block_info(value)
    except Exception as exc:  # IPAM refuses it, whatever the reason: this key only
        return InvalidResource(f"not a readable IPAM block: {exc}", _doc(value))
    if str(info.cidr) != key.cidr:
        return InvalidResource(f"the block of {info.cidr}, not the one this key names",
                               _doc(value))
    return IPAMBlock(info, value)


def _doc(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) and not isinstance(value, Undecodable) else None


class StringMemory(Protocol):
    def save(self, key: str, document: Mapping[str, Any]) -> None: ...
    def recall(self, key: str) -> Mapping[str, Any] | None: ...
    def forget(self, key: str) -> None: ...
    def retain(self, keys: Collection[str]) -> None: ...


class KeyedMemory:
    """The graph's memory of last valid versions (typed keys) over one kept by
    datastore key (``last_valid.FileMemory``): the files a previous agent wrote
    stay readable."""

    def __init__(self, memory: StringMemory) -> None:
        self.memory = memory

    def save(self, key: InputKey, document: Mapping[str, Any]) -> None:
        self.memory.save(datastore_key(key), document)

    def recall(self, key: InputKey) -> Mapping[str, Any] | None:
        return self.memory.recall(datastore_key(key))

    def forget(self, key: InputKey) -> None:
        self.memory.forget(datastore_key(key))

    def retain(self, keys: Collection[str]) -> None:
        self.memory.retain(keys)
