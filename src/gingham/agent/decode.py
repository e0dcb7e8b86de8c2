"""Typed decode of what the agent reads: a datastore key and its stored value.

Never raises on bad data: whatever is stored, the answer is a model resource,
an ``InvalidResource`` saying why not, or the value itself for keys that are
not resources (IPAM blocks, the cluster ID).
"""

from __future__ import annotations

from typing import Any

from gingham.datastore import keys
from gingham.datastore.base import Undecodable
from gingham.model import InvalidResource, decode_document, kind_info


def decode_resource(key: str, value: Any) -> Any:
    """Model resource for a resource key, or ``InvalidResource``; never raises on bad data.

    A valid document stored under another kind's, name's or namespace's key is
    invalid too: the graph takes identities from keys and names from documents.
    Whether an invalid document counts as its last valid version, a quarantine
    or absent is the calculation graph's decision (``calc/validity.py``).
    """
    if value is None or not key.startswith(keys.RESOURCES):
        return value
    if isinstance(value, Undecodable):
        return InvalidResource(f"not a JSON object: {value.reason}")
    resource = decode_document(value)
    if isinstance(resource, InvalidResource):
        return resource
    info = kind_info(resource.kind, resource.api_version)
    meta = resource.metadata
    expected = keys.resource_key(info.name, meta.name, meta.namespace if info.namespaced else None)
    if expected != key:
        return InvalidResource(f"a {info.name} named {meta.name!r} does not belong under {key}",
                               value)
    return resource
