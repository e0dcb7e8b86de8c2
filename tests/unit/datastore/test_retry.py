"""The one compare-and-swap retry loop (datastore/retry.py) and the resource store's
writes through it, against real lost races on sqlite."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import pytest

from gingham.datastore import Datastore, keys
from gingham.datastore.resources import ResourceStore
from gingham.datastore.retry import MAX_ATTEMPTS, Backoff
from gingham.errors import IPAMError, NotFound, RevisionConflict
from gingham.ipam.retry import Backoff as IPAMBackoff
from gingham.model import load_manifests, to_dict

from .racing import Racing

GNP = """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: allow-dns}
spec: {order: 100, selector: all()}
"""


def _losing(times: int) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def step() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise RevisionConflict("lost")
        return "won"

    return calls, step


def test_first_retry_is_at_once_then_jittered_waits_grow_to_the_cap() -> None:
    slept: list[float] = []
    b = Backoff(slept.append, rng=random.Random(7), base=0.001, cap=0.004)
    calls, step = _losing(6)
    assert b.run("x", step) == "won"
    assert len(calls) == 7
    assert len(slept) == 5  # six losses; the first retried at once
    for n, pause in enumerate(slept, start=1):
        assert 0 <= pause <= min(0.004, 0.001 * 2**n)
    assert len(set(slept)) == len(slept)  # jitter: no two losers wait alike


def test_gives_up_after_its_attempts_without_a_last_pointless_wait() -> None:
    slept: list[float] = []
    calls, step = _losing(10**6)
    with pytest.raises(RevisionConflict, match=r"^thing: gave up after 5 compare-and-swap"):
        Backoff(slept.append, attempts=5).run("thing", step)
    assert len(calls) == 5 and len(slept) == 3
    assert Backoff(slept.append).attempts == MAX_ATTEMPTS


def test_any_other_error_ends_the_loop_at_once() -> None:
    calls: list[int] = []

    def step() -> None:
        calls.append(1)
        raise NotFound("gone for good")

    with pytest.raises(NotFound):
        Backoff(lambda _: None).run("x", step)
    assert calls == [1]


def test_callers_choose_the_error_they_give_up_with() -> None:
    _, step = _losing(10**6)
    with pytest.raises(IPAMError, match="gave up after 3"):
        IPAMBackoff(lambda _: None, attempts=3).run("block", step)
    _, step = _losing(10**6)
    with pytest.raises(ValueError, match="mine: block: gave up"):
        Backoff(lambda _: None, attempts=2,
                gives_up=lambda m: ValueError(f"mine: {m}")).run("block", step)  # fmt: skip


# -- the resource store's writes ------------------------------------------------------


def _store(ds: Datastore, races: int, attempts: int = MAX_ATTEMPTS) -> tuple[ResourceStore,
                                                                           Racing, list[float]]:
    slept: list[float] = []
    racing = Racing(ds, races)
    rs = ResourceStore(racing, now=lambda: "2026-01-01T00:00:00Z",
                       backoff=Backoff(slept.append, attempts=attempts))  # fmt: skip
    return rs, racing, slept


def test_apply_wins_after_lost_races(sqlite_store: Datastore) -> None:
    rs, racing, slept = _store(sqlite_store, races=4)
    [gnp] = load_manifests(GNP)
    stored = rs.apply(gnp)
    assert racing.lost == 4 and len(slept) == 3
    kv = sqlite_store.get(keys.resource_key("GlobalNetworkPolicy", "allow-dns"))
    assert kv is not None and "rival" not in kv.value  # the last write is ours, whole
    assert stored.spec.order == 100


def test_apply_gives_up_with_a_conflict_naming_the_resource(sqlite_store: Datastore) -> None:
    rs, racing, _ = _store(sqlite_store, races=10**6, attempts=6)
    [gnp] = load_manifests(GNP)
    with pytest.raises(RevisionConflict, match=r"allow-dns.*gave up after 6"):
        rs.apply(gnp)
    assert racing.lost == 6


def test_replace_and_delete_without_a_version_retry(sqlite_store: Datastore) -> None:
    [gnp] = load_manifests(GNP)
    ResourceStore(sqlite_store).create(gnp)
    rs, racing, _ = _store(sqlite_store, races=3)
    changed = to_dict(gnp)
    changed["spec"]["order"] = 7
    [edited] = load_manifests(json.dumps(changed))
    assert rs.replace(edited).spec.order == 7 and racing.lost == 3
    racing.races = 2
    gone = rs.delete("gnp", "allow-dns")
    assert gone.metadata.name == "allow-dns" and racing.lost == 5
    assert sqlite_store.get(keys.resource_key("GlobalNetworkPolicy", "allow-dns")) is None


def test_a_named_resource_version_is_one_attempt(sqlite_store: Datastore) -> None:
    [gnp] = load_manifests(GNP)
    first = to_dict(ResourceStore(sqlite_store).create(gnp))
    first["spec"]["order"] = 7  # a change (an unchanged replace writes nothing, so races nobody)
    [edited] = load_manifests(json.dumps(first))
    rs, racing, slept = _store(sqlite_store, races=1)
    with pytest.raises(RevisionConflict):
        rs.replace(edited)  # carries its resourceVersion: a lost race is the caller's to see
    assert racing.lost == 1 and slept == []
    racing.races = 1
    current = rs.get("gnp", "allow-dns")
    with pytest.raises(RevisionConflict):
        rs.delete("gnp", "allow-dns", resource_version=current.metadata.resource_version)
    assert racing.lost == 2
    assert sqlite_store.get(keys.resource_key("GlobalNetworkPolicy", "allow-dns")) is not None
