"""A dict-backed Datastore for fast property tests of the IPAM (no watches, no leases)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping

from gingham.datastore.base import (
    JSON,
    Datastore,
    KeyValue,
    TxnResult,
    Watch,
    check_txn,
    decode_value,
)
from gingham.errors import AlreadyExists, NotFound, RevisionConflict


class MemStore(Datastore):
    url = "mem://"

    def __init__(self) -> None:
        self.rev = 0
        self.data: dict[str, KeyValue] = {}

    def get(self, key: str) -> KeyValue | None:
        kv = self.data.get(key)
        return None if kv is None else KeyValue(kv.key, copy.deepcopy(kv.value),
                                                kv.mod_revision, kv.create_revision)

    def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        items = [self.get(k) for k in sorted(self.data) if k.startswith(prefix)]
        return [kv for kv in items if kv is not None], self.rev

    def _put(self, key: str, value: JSON, create: int) -> int:
        self.rev += 1
        self.data[key] = KeyValue(key, copy.deepcopy(value), self.rev, create or self.rev)
        return self.rev

    def put_raw(self, key: str, data: bytes) -> int:
        kv = self.data.get(key)
        return self._put(key, decode_value(data), kv.create_revision if kv else 0)

    def create(self, key: str, value: JSON, *, lease: int = 0) -> int:
        if key in self.data:
            raise AlreadyExists(key)
        return self._put(key, value, 0)

    def update(self, key: str, value: JSON, *, revision: int, lease: int = 0) -> int:
        kv = self.data.get(key)
        if kv is None:
            raise NotFound(key)
        if kv.mod_revision != revision:
            raise RevisionConflict(key)
        return self._put(key, value, kv.create_revision)

    def delete(self, key: str, *, revision: int | None = None) -> int:
        kv = self.data.get(key)
        if kv is None:
            raise NotFound(key)
        if revision is not None and kv.mod_revision != revision:
            raise RevisionConflict(key)
        del self.data[key]
        self.rev += 1
        return self.rev

    def txn(self, compares: Mapping[str, int], puts: Mapping[str, JSON] | None = None,
            deletes: Iterable[str] = ()) -> TxnResult:
        texts, gone = check_txn(compares, puts or {}, deletes)
        now = {key: self.data.get(key) for key in compares}
        if any((kv.mod_revision if kv else 0) != compares[key] for key, kv in now.items()):
            return TxnResult(False, self.rev, current={k: self.get(k) for k in compares})
        revisions = {}
        for key, text in texts.items():
            kv = self.data.get(key)
            revisions[key] = self._put(key, decode_value(text), kv.create_revision if kv else 0)
        for key in gone:
            if self.data.pop(key, None) is not None:
                self.rev += 1
        return TxnResult(True, self.rev, revisions=revisions)

    def watch(self, prefix: str, *, start_revision: int) -> Watch:
        raise NotImplementedError

    def revision(self) -> int:
        return self.rev

    def grant_lease(self, ttl: int) -> int:
        raise NotImplementedError

    def keepalive(self, lease: int) -> None:
        raise NotImplementedError

    def revoke_lease(self, lease: int) -> None:
        raise NotImplementedError

    def compact(self, revision: int) -> None:
        pass

    def close(self) -> None:
        pass
