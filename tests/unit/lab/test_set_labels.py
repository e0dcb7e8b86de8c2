"""``lab workload label``: a lost race on the WorkloadEndpoint is retried through the
datastore's Backoff; a workload that keeps moving ends in a LabError."""

from __future__ import annotations

import pytest

from gingham.datastore import Datastore, keys
from gingham.errors import LabError
from gingham.lab import workloads

from ..datastore.racing import Racing

KEY = keys.resource_key("WorkloadEndpoint", "h1-k8s-web-eth0", "shop")


def _endpoint(ds: Datastore) -> None:
    ds.create(KEY, {"apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
                    "metadata": {"name": "h1-k8s-web-eth0", "namespace": "shop",
                                 "labels": {"app": "web", "old": "x"}},
                    "spec": {"workload": "web", "node": "h1"}})  # fmt: skip


def test_labels_change_after_lost_races(sqlite_store: Datastore) -> None:
    _endpoint(sqlite_store)
    slept: list[float] = []
    racing = Racing(sqlite_store, races=3)
    got = workloads.set_labels(racing, "shop/web", {"role": "db"}, ["old"], sleep=slept.append)
    assert got == {"app": "web", "role": "db"} and racing.lost == 3 and len(slept) == 2
    kv = sqlite_store.get(KEY)
    assert kv is not None and kv.value["metadata"]["labels"] == got


def test_a_workload_that_keeps_moving_is_a_lab_error(sqlite_store: Datastore) -> None:
    _endpoint(sqlite_store)
    racing = Racing(sqlite_store, races=10**6)
    with pytest.raises(LabError, match="too much contention"):
        workloads.set_labels(racing, "shop/web", {"role": "db"}, [], sleep=lambda _: None)
    assert racing.lost == 20


def test_no_endpoint_is_not_retried(sqlite_store: Datastore) -> None:
    racing = Racing(sqlite_store, races=10**6)
    with pytest.raises(LabError, match="no workload endpoint for shop/web"):
        workloads.set_labels(racing, "shop/web", {"role": "db"}, [], sleep=lambda _: None)
    assert racing.lost == 0
