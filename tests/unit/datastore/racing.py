"""A datastore on which another writer wins the first races.

``Racing(ds, races=n)`` passes every call through to a real backend, but
before each of the first ``n`` writes (create, update, delete) another writer
changes the same key first: it creates the key when it is absent (storing
``rival``), else writes the value it holds again (a new revision). The real backend then refuses the caller's compare-and-swap
exactly as it would in a real race (AlreadyExists, or RevisionConflict on the
moved revision). ``rival`` is what the other writer stores.
"""

from __future__ import annotations

from typing import Any

from gingham.datastore.base import JSON, Datastore


class Racing:
    def __init__(self, ds: Datastore, races: int,
                 rival: JSON | None = None) -> None:  # fmt: skip
        self.ds = ds
        self.races = races
        self.lost = 0  # writes of the caller that met a rival's write
        self.rival: JSON = rival if rival is not None else {"rival": True}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ds, name)

    def _race(self, key: str) -> None:
        if self.races <= 0:
            return
        self.races -= 1
        self.lost += 1
        kv = self.ds.get(key)
        if kv is None:
            self.ds.create(key, self.rival)
        else:
            self.ds.update(key, kv.value, revision=kv.mod_revision)

    def create(self, key: str, value: JSON, *, lease: int = 0) -> int:
        self._race(key)
        return self.ds.create(key, value, lease=lease)

    def update(self, key: str, value: JSON, *, revision: int, lease: int = 0) -> int:
        self._race(key)
        return self.ds.update(key, value, revision=revision, lease=lease)

    def delete(self, key: str, *, revision: int | None = None) -> int:
        self._race(key)
        return self.ds.delete(key, revision=revision)
