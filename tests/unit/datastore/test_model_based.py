"""Random operation sequences against each backend, checked against a plain dict.

Every operation's outcome (revision or error) must match the model's, and a
watch from the first revision must replay exactly the successful writes.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gingham.datastore import Datastore, EventType
from gingham.errors import AlreadyExists, NotFound, RevisionConflict
from tests.fixtures.datastore import ALL_BACKENDS, backend_url


@pytest.fixture(params=ALL_BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Here the ``store`` fixture covers the in-process memory backend too."""
    yield from backend_url(request, tmp_path)


KEYS = ["a", "b", "c/d"]
_run = itertools.count()

ops = st.lists(
    st.tuples(
        st.sampled_from(
            ["create", "update", "update_stale", "delete", "delete_at", "delete_stale"]
        ),
        st.sampled_from(KEYS),
        st.integers(0, 9),
    ),
    max_size=25,
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(sequence=ops)
def test_operations_match_a_dict(store: Datastore, sequence: list[tuple[str, str, int]]) -> None:
    prefix = f"/mb/{next(_run)}/"
    model: dict[str, tuple[int, int, int]] = {}  # key -> (value, create rev, mod rev)
    expected_events: list[tuple[EventType, str, int | None]] = []
    start = store.revision() + 1
    for op, short, value in sequence:
        key = prefix + short
        present = key in model
        mod = model[key][2] if present else 0
        try:
            if op == "create":
                rev = store.create(key, {"v": value})
                assert not present
                model[key] = (value, rev, rev)
                expected_events.append((EventType.PUT, key, value))
            elif op in ("update", "update_stale"):
                wanted = mod if op == "update" else mod + 1000
                rev = store.update(key, {"v": value}, revision=wanted)
                assert present and op == "update"
                model[key] = (value, model[key][1], rev)
                expected_events.append((EventType.PUT, key, value))
            else:
                wanted_del = {"delete": None, "delete_at": mod, "delete_stale": mod + 1000}[op]
                store.delete(key, revision=wanted_del)
                assert present and op != "delete_stale"
                del model[key]
                expected_events.append((EventType.DELETE, key, None))
        except AlreadyExists:
            assert op == "create" and present
        except NotFound:
            assert not present and op != "create"
        except RevisionConflict:
            assert present and op in ("update_stale", "delete_stale")
        for k in KEYS:
            kv = store.get(prefix + k)
            if prefix + k in model:
                v, created, modified = model[prefix + k]
                assert kv is not None
                assert (kv.value, kv.create_revision, kv.mod_revision) == (
                    {"v": v},
                    created,
                    modified,
                )
            else:
                assert kv is None
    items, _ = store.list(prefix)
    assert [kv.key for kv in items] == sorted(model)
    events = []
    with store.watch(prefix, start_revision=start) as watch:
        deadline = time.monotonic() + 10
        while len(events) < len(expected_events) and time.monotonic() < deadline:
            events.extend(watch.next_batch(0.1))
        events.extend(watch.next_batch(0.05))
    got = [(e.type, e.key, e.value["v"] if e.value else None) for e in events]
    assert got == expected_events
