"""The CLI when stored data is bad, and when a write fails half-way (issue 12, item 9).

Runs on sqlite and on etcd (``store_url``): values are planted with ``put_raw``
as another program, a fault or a newer writer would leave them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from gingham.cli.main import cli
from gingham.datastore import Datastore, Undecodable, keys
from gingham.errors import Unavailable
from gingham.model import load_manifests

GNP = """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: NAME}
spec: {order: ORDER, selector: all(), types: [Ingress]}
"""


def gnp(name: str, order: int = 10) -> str:
    return GNP.replace("NAME", name).replace("ORDER", str(order))


Run = Callable[..., Result]


@pytest.fixture
def run(store: Datastore, store_url: str) -> Run:
    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, ["--datastore", store_url, *args], input=input)

    return invoke


def _key(name: str) -> str:
    return keys.resource_key("GlobalNetworkPolicy", name)


def _plant(store: Datastore) -> None:
    """Three stored policies: good, not JSON at all, JSON that does not validate."""
    store.put_raw(_key("a-good"), json.dumps(load_manifests_dict(gnp("a-good"))).encode())
    store.put_raw(_key("b-garbage"), b"\x00not json {")
    store.put_raw(
        _key("c-invalid"),
        json.dumps({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
                    "metadata": {"name": "c-invalid"}, "spec": "oops"}).encode(),
    )  # fmt: skip


def load_manifests_dict(text: str) -> dict[str, Any]:
    from gingham.model import to_dict

    [resource] = load_manifests(text)
    return to_dict(resource)


def test_get_lists_everything_and_shows_bad_values_as_stored(store: Datastore, run: Run) -> None:
    _plant(store)
    table = run("get", "gnp")
    assert table.exit_code == 0, table.output
    assert "a-good" in table.stdout
    assert f"{_key('b-garbage')} (invalid, shown as stored):" in table.stdout
    assert "\\x00not json {" in table.stdout  # a control character, escaped for the terminal
    assert "\x00" not in table.stdout
    assert '"spec": "oops"' in table.stdout
    for name, reason in (("b-garbage", "does not decode: not JSON"), ("c-invalid", "spec")):
        warning = [line for line in table.stderr.splitlines() if _key(name) in line]
        assert len(warning) == 1 and warning[0].startswith("warning: ")
        assert reason in warning[0]
        assert f"gingham delete globalnetworkpolicies {name}" in warning[0]

    names = run("get", "gnp", "-o", "name")
    assert names.stdout.split() == [
        "globalnetworkpolicies/a-good",
        "globalnetworkpolicies/b-garbage",
        "globalnetworkpolicies/c-invalid",
    ]

    listing = json.loads(run("get", "gnp", "-o", "json").stdout)
    assert [i["metadata"]["name"] for i in listing["items"]] == ["a-good"]
    assert [b["key"] for b in listing["invalid"]] == [_key("b-garbage"), _key("c-invalid")]
    assert listing["invalid"][0]["raw"] == "\x00not json {"

    # YAML output stays loadable: the bad ones are comments.
    yaml_out = run("get", "gnp", "-o", "yaml")
    assert yaml_out.exit_code == 0
    assert [r.metadata.name for r in load_manifests(yaml_out.stdout)] == ["a-good"]
    assert "#   \\x00not json {" in yaml_out.stdout


def test_get_by_name_of_a_bad_value(store: Datastore, run: Run) -> None:
    _plant(store)
    result = run("get", "gnp", "b-garbage", "-o", "json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["key"] == _key("b-garbage") and shown["raw"] == "\x00not json {"
    assert shown["reason"].startswith("stored value does not decode: not JSON")
    assert "not JSON" in result.stderr and _key("b-garbage") in result.stderr
    both = run("get", "gnp", "a-good", "c-invalid")
    assert both.exit_code == 0
    assert "a-good" in both.stdout and '"spec": "oops"' in both.stdout


def test_delete_of_a_bad_value_succeeds(store: Datastore, run: Run) -> None:
    _plant(store)
    result = run("delete", "gnp", "b-garbage", "c-invalid")
    assert result.exit_code == 0, result.output
    assert "Successfully deleted 2 'GlobalNetworkPolicy' resource(s)" in result.stdout
    assert f"note: {_key('b-garbage')} held an invalid value" in result.stderr
    assert store.get(_key("b-garbage")) is None and store.get(_key("c-invalid")) is None
    assert store.get(_key("a-good")) is not None
    assert run("get", "gnp").stderr == ""


def test_apply_over_a_bad_value_repairs_it(store: Datastore, run: Run) -> None:
    _plant(store)
    result = run("apply", "-f", "-", input=gnp("b-garbage", 5))
    assert result.exit_code == 0, result.output
    kv = store.get(_key("b-garbage"))
    assert kv is not None and kv.value["spec"]["order"] == 5
    assert kv.value["metadata"]["uid"]  # a fresh identity, not garbage carried over


def test_create_with_a_name_twice_writes_nothing(store: Datastore, run: Run) -> None:
    text = gnp("one") + "---" + gnp("two") + "---" + gnp("one", 99)
    result = run("create", "-f", "-", input=text)
    assert result.exit_code == 1
    assert "<stdin>: resource 3: GlobalNetworkPolicy one is already named by <stdin>: resource 1" in (
        result.stderr
    )
    assert "nothing was written" in result.stderr
    assert store.list(keys.resource_prefix("GlobalNetworkPolicy"))[0] == []


class FailingWrites:
    """A datastore whose Nth resource write (create/update) fails as an outage would."""

    def __init__(self, inner: Datastore, fail_at: int) -> None:
        self._inner = inner
        self._writes = 0
        self._fail_at = fail_at

    def _count(self, key: str) -> None:
        if key.startswith(keys.RESOURCES):
            self._writes += 1
            if self._writes == self._fail_at:
                raise Unavailable(f"injected: write {self._writes} of {key} failed")

    def create(self, key: str, value: Any, **kw: Any) -> int:
        self._count(key)
        return self._inner.create(key, value, **kw)

    def update(self, key: str, value: Any, **kw: Any) -> int:
        self._count(key)
        return self._inner.update(key, value, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture
def failing_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], None]]:
    import gingham.datastore as datastore

    real = datastore.open_datastore

    def arm(n: int) -> None:
        monkeypatch.setattr(
            datastore, "open_datastore", lambda *a, **kw: FailingWrites(real(*a, **kw), n)
        )

    yield arm


def _state(store: Datastore) -> dict[str, Any]:
    items, _ = store.list(keys.RESOURCES)
    return {kv.key: (kv.value, kv.create_revision) for kv in items}


@pytest.mark.parametrize("verb", ["create", "apply", "replace"])
def test_a_write_failing_half_way_is_undone(
    store: Datastore, run: Run, failing_at: Callable[[int], None], verb: str
) -> None:
    if verb != "create":
        # Existing resources to overwrite: one good, one whose stored value is garbage.
        assert run("apply", "-f", "-", input=gnp("one", 1) + "---" + gnp("two", 2)).exit_code == 0
        if verb == "apply":
            store.put_raw(_key("two"), b"garbage before")
    before = _state(store)
    text = gnp("one", 11) + "---" + gnp("two", 22) + "---" + gnp("three", 33)
    if verb == "replace":
        assert run("apply", "-f", "-", input=gnp("three", 3)).exit_code == 0
        before = _state(store)
    failing_at(3)
    result = run(verb, "-f", "-", input=text)
    assert result.exit_code == 1, result.output
    assert "injected: write 3" in result.stderr
    assert "nothing was written (the 2 written were undone)" in result.stderr
    assert "Successfully" not in result.stdout
    after = _state(store)
    assert after.keys() == before.keys()
    for key, (value, created) in before.items():
        assert after[key][1] == created, key  # updated back, not deleted and re-made
        if isinstance(value, Undecodable):
            assert isinstance(after[key][0], Undecodable) and after[key][0].raw == value.raw
        else:
            assert after[key][0] == value, key


def test_apply_of_one_name_twice_undoes_to_the_first_state(
    store: Datastore, run: Run, failing_at: Callable[[int], None]
) -> None:
    assert run("apply", "-f", "-", input=gnp("one", 1)).exit_code == 0
    before = _state(store)
    failing_at(3)
    result = run("apply", "-f", "-", input=gnp("one", 2) + "---" + gnp("one", 3) + "---" + gnp("x"))
    assert result.exit_code == 1, result.output
    assert "were undone" in result.stderr
    assert _state(store) == before
