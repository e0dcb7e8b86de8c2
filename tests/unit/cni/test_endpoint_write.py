"""The plugin's WorkloadEndpoint write is compare-and-swap through the datastore's
Backoff: lost races are retried, and a key that never settles is ERR_TRY_AGAIN."""

from __future__ import annotations

import pytest

from gingham.cni import plugin
from gingham.cni.protocol import ERR_TRY_AGAIN, PluginError
from gingham.datastore import Datastore, keys

from ..datastore.racing import Racing

KEY = keys.resource_key("WorkloadEndpoint", "h1-cni-c1-eth0", "ns")
DOC = {"apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
       "metadata": {"name": "h1-cni-c1-eth0", "namespace": "ns"}, "spec": {"node": "h1"}}


@pytest.mark.parametrize("existing", [False, True])
def test_written_after_lost_races(sqlite_store: Datastore, existing: bool) -> None:
    if existing:
        sqlite_store.create(KEY, {"left": "over"})
    slept: list[float] = []
    racing = Racing(sqlite_store, races=4)
    plugin._write_endpoint(racing, KEY, DOC, sleep=slept.append)
    kv = sqlite_store.get(KEY)
    assert kv is not None and kv.value == DOC
    assert racing.lost == 4 and len(slept) == 3


def test_a_key_that_never_settles_is_try_again(sqlite_store: Datastore) -> None:
    racing = Racing(sqlite_store, races=10**6)
    with pytest.raises(PluginError) as err:
        plugin._write_endpoint(racing, KEY, DOC, sleep=lambda _: None)
    assert err.value.code == ERR_TRY_AGAIN and "too much contention" in err.value.msg
    assert racing.lost == plugin.ENDPOINT_WRITE_ATTEMPTS
