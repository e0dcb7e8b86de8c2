"""The datastore's identity: a cluster ID written once, when a datastore is made.

A datastore exists for gingham once ``/gingham/v1/cluster`` holds
``{"clusterID": "<uuid>", "createdAt": "<RFC 3339>"}``. Only the commands that
mean to make one write it (``gingham datastore init``, ``apply``/``create``,
``lab up``: ``open_datastore(url, create=True)``). Agents remember the ID
their dataplane was programmed for and refuse to reprogram a host for a
datastore without one, or with another (an empty or replaced datastore would
otherwise look like "delete everything").
"""

from __future__ import annotations

import uuid

from gingham.datastore import keys
from gingham.datastore.base import Datastore, Undecodable
from gingham.errors import AlreadyExists
from gingham.timestamps import rfc3339

FIELD = "clusterID"


def cluster_id_of(value: object) -> str | None:
    """The ID in a stored cluster document; None if it is missing or malformed."""
    if not isinstance(value, dict) or isinstance(value, Undecodable):
        return None
    cid = value.get(FIELD)
    return cid if isinstance(cid, str) and cid else None


def read_cluster_id(ds: Datastore) -> str | None:
    kv = ds.get(keys.CLUSTER)
    return None if kv is None else cluster_id_of(kv.value)


def ensure_cluster_id(ds: Datastore) -> str:
    """The datastore's cluster ID, written first if it has none (idempotent, CAS)."""
    existing = read_cluster_id(ds)
    if existing is not None:
        return existing
    doc = {
        FIELD: str(uuid.uuid4()),
        "createdAt": rfc3339(precision="seconds"),
    }
    try:
        ds.create(keys.CLUSTER, doc)
    except AlreadyExists:
        # Another initialiser won; theirs is the ID (a malformed one stays for an operator).
        found = read_cluster_id(ds)
        if found is None:
            raise
        return found
    return str(doc[FIELD])
