"""``lab up --backend``: the datastore kind without clashing with the global ``--datastore URL``
(the old ``lab up --datastore sqlite|etcd`` still works, with a note)."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner, Result

from gingham.cli.main import cli
from gingham.lab import lab as labmod
from gingham.lab.state import LabState


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """lab.up recorded instead of run (the lab itself: integration tests)."""
    seen: list[dict[str, Any]] = []

    def up(name: str, hosts: int, datastore: str, subnets: int, **kwargs: Any) -> LabState:
        seen.append({"name": name, "backend": datastore})
        return LabState(name=name, datastore=f"{datastore}:///x", datastore_kind=datastore,
                        fabric={})

    monkeypatch.setattr(labmod, "up", up)
    return seen


def up(*args: str) -> Result:
    return CliRunner().invoke(cli, [*args])


def test_backend_flag(calls: list[dict[str, Any]]) -> None:
    assert up("lab", "up", "--name", "t17", "--backend", "etcd").exit_code == 0
    assert up("lab", "up", "--name", "t17").exit_code == 0
    assert [c["backend"] for c in calls] == ["etcd", "sqlite"]


def test_old_datastore_flag_still_works_with_a_note(calls: list[dict[str, Any]]) -> None:
    got = up("lab", "up", "--name", "t17", "--datastore", "etcd")
    assert got.exit_code == 0, got.output
    assert calls[-1]["backend"] == "etcd"
    assert got.stderr.startswith("note: lab up --datastore etcd is deprecated (--datastore is "
                                 "the global datastore URL); use --backend etcd\n")
    assert "--datastore" not in up("lab", "up", "--help").output
    got = up("lab", "up", "--datastore", "etcd", "--backend", "sqlite")
    assert got.exit_code == 2 and "disagree" in got.output
    assert len(calls) == 1


def test_the_global_datastore_url_is_refused_not_ignored(calls: list[dict[str, Any]]) -> None:
    got = up("--datastore", "sqlite:///tmp/x.db", "lab", "up", "--name", "t17")
    assert got.exit_code == 2 and "a lab makes its own datastore" in got.output
    assert calls == []
