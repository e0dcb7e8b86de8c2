"""Datastore backends behind one contract (see ``base.py``).

``open_datastore(url)`` picks the backend from the URL scheme:

- ``sqlite:///abs/path.db`` (``?history=N`` keeps N revisions of watch history)
- ``etcd://host:port[,host:port...]``, ``etcds://...?cacert=&cert=&key=``,
  ``...?user=U&password=P`` (or ``U:P@host``), ``...?timeout=SECONDS``,
  ``etcd+unix:///abs/dir/NAME:2379[,...]``
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

DEFAULT_URL = "sqlite:///var/lib/gingham/gingham.db"


def redact_url(url: str) -> str:
    """The URL without credentials, fit for messages."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    if not parts.query and "@" not in parts.netloc:
        return url
    query = parse_qs(parts.query, keep_blank_values=True)
    for secret in ("password", "key"):
        if secret in query:
            query[secret] = ["***"]
    netloc = parts.netloc.rsplit("@", 1)[-1]
    q = "&".join(f"{k}={v}" for k, vs in query.items() for v in vs)
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{q}" if q else "")


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
    scheme, sep, _ = url.partition(":")
    if not sep:
        raise ValidationError(f"not a datastore URL: {url!r} (want sqlite:///path or etcd://...)")
    scheme = scheme.lower()
    if scheme == "sqlite":
        # urllib costs milliseconds the CNI plugin's start-up can do without.
        from urllib.parse import parse_qs, urlsplit

        from gingham.datastore.sqlite import DEFAULT_HISTORY, SqliteDatastore

        parts = urlsplit(url)
        path = parts.path if not parts.netloc else parts.netloc + parts.path
        if not path:
            raise ValidationError(f"sqlite URL without a path: {url!r}")
        opts = parse_qs(parts.query)
        history = DEFAULT_HISTORY
        if "history" in opts:
            try:
                history = int(opts["history"][-1])
            except ValueError:
                raise ValidationError(
                    f"history must be an integer in {url!r}", location="datastore URL"
                ) from None
        return SqliteDatastore(path, create=create, history=history)
    if scheme == "memory":
        from urllib.parse import parse_qs

        from gingham.datastore.memory import MemoryDatastore

        name, _, query = url.partition("://")[2].partition("?")
        opts = parse_qs(query)
        try:
            keep = int(opts["history"][-1]) if "history" in opts else None
        except ValueError:
            raise ValidationError(
                f"history must be an integer in {url!r}", location="datastore URL"
            ) from None
        return MemoryDatastore(name, create=create, history=keep)
    if scheme in ("etcd", "etcds", "etcd+unix", "http", "https"):
        from gingham.datastore.etcd import EtcdDatastore

        etcd: Datastore = EtcdDatastore.from_url(url)
        return etcd
    raise ValidationError(
        f"unknown datastore scheme {scheme!r} in {redact_url(url)!r}"
        " (want sqlite, etcd, etcds, etcd+unix or memory)"
    )
