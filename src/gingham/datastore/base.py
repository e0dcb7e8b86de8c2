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

Transactions: ``txn(compares, puts, deletes)`` writes several keys at once,
all or nothing, if every compared key is still at the ``mod_revision`` the
caller read (0: still absent). It is what etcd's ``Txn`` offers, narrowed to
the one shape callers need, so that two documents that must agree (an IPAM
block and its handle) are never seen half written.
"""

from __future__ import annotations

import enum
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gingham.errors import ValidationError

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

    def __reduce__(self) -> tuple[type[Undecodable], tuple[str, str]]:
        # deepcopy and pickle (memory backend, process pools) rebuild it from
        # raw and reason; dict's default would call __init__ with no arguments.
        return (Undecodable, (self.raw, self.reason))


# Deeper than any gingham document by far (a policy is < 10 levels), shallow
# enough that no consumer's recursion (deepcopy, pydantic, json.dumps) can fail.
MAX_DEPTH = 100


def decode_value(data: bytes | str) -> JSON:
    """A stored value as a JSON object, or an :class:`Undecodable` saying why not.

    Never raises: every backend decodes each key with this, so a value some
    other program (or a fault) wrote costs that key only.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            shown = raw.decode("utf-8", "backslashreplace")
            return Undecodable(shown, f"not UTF-8 (byte {exc.start}: {raw[exc.start]:#04x})")
    else:
        text = data
    if not text:
        return Undecodable(text, "empty value, not a JSON object")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return Undecodable(text, f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})")
    except RecursionError:
        return Undecodable(text, f"JSON nested deeper than {MAX_DEPTH} levels")
    except ValueError as exc:  # e.g. an integer too long to convert
        return Undecodable(text, f"not JSON ({exc})")
    if not isinstance(value, dict):
        return Undecodable(text, f"a JSON {_json_type(value)}, not an object")
    # Counting brackets is C-fast and bounds the depth: only documents with
    # many of them are walked.
    if text.count("{") + text.count("[") > MAX_DEPTH and _too_deep(value):
        return Undecodable(text, f"JSON nested deeper than {MAX_DEPTH} levels")
    return value


def encode_value(value: JSON) -> str:
    """The stored text of ``value``; refuses what ``decode_value`` would not give back."""
    if not isinstance(value, dict):
        raise TypeError(f"datastore values are JSON objects, not {type(value).__name__}")
    if isinstance(value, Undecodable):
        # Writing it would store "{}" in place of bytes nobody has looked at.
        raise TypeError("an Undecodable value cannot be written back (put_raw writes bytes)")
    try:
        text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    except RecursionError:
        raise ValidationError(f"value nested deeper than {MAX_DEPTH} levels") from None
    if text.count("{") + text.count("[") > MAX_DEPTH and _too_deep(value):
        raise ValidationError(f"value nested deeper than {MAX_DEPTH} levels")
    return text


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _too_deep(value: object, depth: int = 1) -> bool:
    """Whether containers nest more than MAX_DEPTH levels below ``value``.

    Recursion stops at MAX_DEPTH + 1 frames, well inside any recursion limit,
    and costs half of what an explicit stack did (an IPAM block, with well over
    MAX_DEPTH brackets, is checked on every write and every read).
    """
    if depth > MAX_DEPTH:
        return True
    children = value.values() if isinstance(value, dict) else value
    for child in children:  # type: ignore[attr-defined]
        if isinstance(child, (dict, list)) and _too_deep(child, depth + 1):
            return True
    return False


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


# etcd refuses a transaction with more operations than --max-txn-ops (128 by
# default); every backend refuses the same, so code that works on one works on all.
MAX_TXN_KEYS = 128


@dataclass(frozen=True, slots=True)
class TxnResult:
    """What ``Datastore.txn`` did.

    On success ``revisions`` holds the new ``mod_revision`` of every key put
    (etcd gives all of them the one revision of the transaction; the embedded
    backends give each write its own) and ``revision`` the store revision
    after it. On failure nothing was written and ``current`` holds every
    compared key as it is now (None: absent), read atomically with the
    comparison, so a caller can retry without reading again.
    """

    succeeded: bool
    revision: int
    revisions: dict[str, int] = field(default_factory=dict)
    current: dict[str, KeyValue | None] = field(default_factory=dict)


def check_txn(
    compares: Mapping[str, int], puts: Mapping[str, JSON], deletes: Iterable[str]
) -> tuple[dict[str, str], list[str]]:
    """The encoded values of ``puts`` and the keys to delete; ValidationError if the
    transaction is one no backend may run (the same rules everywhere)."""
    gone = list(dict.fromkeys(deletes))
    both = sorted(set(puts) & set(gone))
    if both:
        raise ValidationError(f"a transaction cannot both put and delete {', '.join(both)}")
    bad = sorted(k for k, r in compares.items() if type(r) is not int or r < 0)
    if bad:
        raise ValidationError(
            f"a transaction compares {', '.join(bad)} with a revision that is no revision"
            " (a positive integer, or 0 for absent)"
        )
    if len(compares) > MAX_TXN_KEYS or len(puts) + len(gone) > MAX_TXN_KEYS:
        raise ValidationError(
            f"a transaction may compare and write at most {MAX_TXN_KEYS} keys each"
            f" (got {len(compares)} compared, {len(puts) + len(gone)} written)"
        )
    return {key: encode_value(value) for key, value in puts.items()}, gone


def landed(result: TxnResult, puts: Mapping[str, JSON], deletes: Iterable[str] = ()) -> bool:
    """Whether the transaction that gave ``result`` is in the store: it succeeded, or it
    failed but every key it writes was compared and holds what it writes now (an etcd
    request retried after it had committed: see ``Datastore.txn``)."""
    if result.succeeded:
        return True
    gone = list(deletes)
    if not puts and not gone:
        return False
    for key, value in puts.items():
        kv = result.current.get(key)
        if kv is None or kv.value != decode_value(encode_value(value)):
            return False
    return all(key in result.current and result.current[key] is None for key in gone)


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
    def put_raw(self, key: str, data: bytes) -> int:
        """Write ``data`` as the key's stored bytes, unconditionally; returns the revision.

        For fault injection, the chaos test and recovery tools only: nothing
        checks that ``data`` is a JSON object (readers get an Undecodable if
        not). An existing key keeps its create revision and loses its lease.
        """

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
    def txn(
        self,
        compares: Mapping[str, int],
        puts: Mapping[str, JSON] | None = None,
        deletes: Iterable[str] = (),
    ) -> TxnResult:
        """Write ``puts`` and delete ``deletes`` if every key in ``compares`` is at the
        given ``mod_revision`` (0: absent); otherwise write nothing.

        All writes or none, seen together by readers and watchers. Puts carry
        no lease; deleting an absent key is no write (and no event), as in
        etcd; keys neither compared nor written are not looked at. A key may
        not be both put and deleted, and at most ``MAX_TXN_KEYS`` keys may be
        compared and as many written (ValidationError, nothing written).

        As with ``update``, an etcd request that timed out may have committed
        although the retried one reports failure: ``current`` then holds
        exactly the values this call put, which a caller may take as success.
        """

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
