"""Datastore backends behind one contract (see ``base.py``).

``open_datastore(url)`` picks the backend from the URL scheme:

- ``sqlite:///abs/path.db`` (``?history=N`` keeps N revisions of watch history)
- ``etcd://host:port[,host:port...]``, ``etcds://...?cacert=&cert=&key=``,
  ``...?user=U&password=P`` (or ``U:P@host``), ``...?timeout=SECONDS``,
  ``etcd+unix:///abs/dir/NAME:2379[,...]`` (``url.py`` parses them all, and
  is the one place that knows where a password sits)
- ``memory://[NAME]``: in-process, for tests (``memory.py``)

Backends are imported only when used: the CNI plugin must not pay for httpx
when it talks to sqlite.
"""

from __future__ import annotations

from gingham.datastore.base import (
    JSON,
    Datastore,
    EventType,
    KeyValue,
    Undecodable,
    Watch,
    WatchEvent,
)
from gingham.datastore.url import DatastoreURL, parse_url, redact_url
from gingham.errors import ValidationError

__all__ = [
    "JSON",
    "Datastore",
    "EventType",
    "KeyValue",
    "Undecodable",
    "Watch",
    "WatchEvent",
    "open_datastore",
    "redact_url",
]

def open_datastore(url: str, *, create: bool = False) -> Datastore:
    """Open the datastore at ``url``; ``create`` makes one (and its cluster ID) if missing.

    Only commands meant to make a datastore pass ``create=True`` (see
    ``cluster.py``); reads, agents and the CNI plugin never do. Without it, a
    missing sqlite file (or a memory store nobody made) raises NoDatastore; a
    file that is not a gingham datastore is refused either way. An etcd URL
    names a server, which exists or is Unavailable: the cluster ID tells the
    agent whether anything was ever set up there.
    """
    ds = _open(url, create)
    if create:
        from gingham.datastore.cluster import ensure_cluster_id

        try:
            ensure_cluster_id(ds)
        except BaseException:
            ds.close()
            raise
    return ds


def _open(url: str, create: bool) -> Datastore:
    parsed = parse_url(url)
    if parsed.scheme == "sqlite":
        from gingham.datastore.sqlite import DEFAULT_HISTORY, SqliteDatastore

        return SqliteDatastore(
            parsed.path, create=create, history=_history(parsed) or DEFAULT_HISTORY
        )
    if parsed.scheme == "memory":
        from gingham.datastore.memory import MemoryDatastore

        return MemoryDatastore(parsed.path, create=create, history=_history(parsed))
    from gingham.datastore.etcd import EtcdDatastore

    etcd: Datastore = EtcdDatastore.from_parsed(parsed)
    return etcd


def _history(parsed: DatastoreURL) -> int | None:
    text = parsed.option("history")
    if text is None:
        return None
    try:
        history = int(text)
    except ValueError:
        history = 0
    if history <= 0:
        raise ValidationError(
            f"history must be a positive integer, got {text!r}", location="datastore URL"
        )
    return history
