"""The datastore contract every backend implements.

Values are JSON objects (``dict``). Every stored key has a ``mod_revision``;
the store as a whole has a monotonically increasing revision, bumped by every
write, exactly as etcd v3 does. Writes are compare-and-swap on the key's
``mod_revision``; there are no locks held across calls.

Watching: ``list(prefix)`` returns the items and the store revision ``R`` at
which they were read; ``watch(prefix, start_revision=R + 1)`` then delivers
every later change in revision order. If ``start_revision`` is older than
the oldest revision the backend still holds (compaction), ``next_batch``
raises :class:`~gingham.errors.ResyncRequired`: never a silent gap.

Leases: ``grant_lease(ttl)`` returns an id; keys written with that lease are
deleted (with DELETE events) when the lease expires or is revoked.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]


class Undecodable(dict[str, Any]):
    """A stored value that is not a JSON object (bad bytes, not JSON, a list...).

    Backends decode every key on its own and hand such a value on as this
    empty mapping instead of raising, so one bad key costs that key only
    (never a whole list or watch). It is a ``JSON`` so every consumer that
    validates documents refuses it as it would any malformed one; code that
    wants to say more checks ``isinstance(value, Undecodable)`` and reads
    ``raw`` (the stored text, undecodable bytes replaced) and ``reason``.
    """

    __slots__ = ("raw", "reason")

    def __init__(self, raw: str, reason: str) -> None:
        super().__init__()
        self.raw = raw
        self.reason = reason

    def __repr__(self) -> str:
        return f"Undecodable({self.reason!r})"

    def __eq__(self, other: object) -> bool:
        # Two bad values are the same only if their bytes are: an empty dict is not one.
        if not isinstance(other, Undecodable):
            return False
        return (self.raw, self.reason) == (other.raw, other.reason)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None


def no_datastore_message(url: str, why: str) -> str:
    """What NoDatastore says: where, why, and how to make one (``url`` already redacted)."""
    return (
        f"no gingham datastore at {url} ({why}); make one with"
        f" `gingham datastore init --datastore {url}` (or `gingham apply`)"
    )


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: JSON
    mod_revision: int
    create_revision: int
    lease: int = 0


class EventType(enum.Enum):
    PUT = "PUT"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: EventType
    key: str
    value: JSON | None  # None for DELETE
    revision: int  # the store revision of this change


class Watch(ABC):
    """A stream of changes under one prefix. Not thread-safe; one consumer."""

    @abstractmethod
    def next_batch(self, timeout: float) -> list[WatchEvent]:
        """Events in revision order; ``[]`` when ``timeout`` seconds pass with none.

        Raises ResyncRequired after compaction, Unavailable when the backend is gone.
        """

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Datastore(ABC):
    """One backend. ``url`` is how an operator names it in messages (no secrets)."""

    url: str

    @abstractmethod
    def get(self, key: str) -> KeyValue | None: ...

    @abstractmethod
    def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Items under ``prefix`` sorted by key, and the store revision they were read at."""

    @abstractmethod
    def create(self, key: str, value: JSON, *, lease: int = 0) -> int:
        """Write a new key; AlreadyExists if present. Returns the new revision."""

    @abstractmethod
    def update(self, key: str, value: JSON, *, revision: int, lease: int = 0) -> int:
        """Replace if ``mod_revision == revision``; RevisionConflict otherwise, NotFound if absent."""

    @abstractmethod
    def delete(self, key: str, *, revision: int | None = None) -> int:
        """Delete (if ``revision`` is given, only at that mod_revision). NotFound if absent."""

    @abstractmethod
    def watch(self, prefix: str, *, start_revision: int) -> Watch: ...

    @abstractmethod
    def revision(self) -> int:
        """The current store revision."""

    @abstractmethod
    def grant_lease(self, ttl: int) -> int: ...

    @abstractmethod
    def keepalive(self, lease: int) -> None:
        """Refresh a lease; NotFound if it already expired."""

    @abstractmethod
    def revoke_lease(self, lease: int) -> None: ...

    @abstractmethod
    def compact(self, revision: int) -> None:
        """Forget history before ``revision`` (watches from older revisions must resync)."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Datastore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
