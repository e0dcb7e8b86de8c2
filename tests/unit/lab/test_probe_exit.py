"""``gingham lab probe``: 0 reachable, 1 blocked, 2 error, so a script can tell
"blocked" from "could not probe" (the verdicts themselves: integration/e2e)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from gingham.cli.main import cli
from gingham.lab import state as labstate
from gingham.lab.state import HostState, LabState, WorkloadState


@pytest.fixture
def fake_lab() -> Iterator[str]:
    """A lab state file with two workloads, one without an address (no namespaces)."""
    name = f"t17probe{os.getpid()}"
    state = LabState(name=name, datastore="sqlite:///nowhere.db", datastore_kind="sqlite",
                     fabric={}, hosts=[HostState("h1", f"{name}-h1", "192.0.2.11", "192.0.2.0/24")],
                     workloads={"x/a": WorkloadState("x", "a", "h1", f"{name}-a", "c1",
                                                     ips=["198.18.0.2"]),
                                "x/b": WorkloadState("x", "b", "h1", f"{name}-b", "c2")})
    try:
        labstate.save(state)
        yield name
    finally:
        shutil.rmtree(labstate.lab_dir(name), ignore_errors=True)


def probe(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["lab", "probe", *args])
    return result.exit_code, result.output


def test_no_such_lab_is_an_error_not_blocked() -> None:
    code, out = probe("x/a", "x/b", "--port", "80", "--name", f"t17nolab{os.getpid()}")
    assert code == 2, out
    assert out.startswith("error: no lab named") and out.count("\n") == 1


def test_no_such_workload_and_no_address_are_errors(fake_lab: str) -> None:
    code, out = probe("x/a", "x/nope", "--port", "80", "--name", fake_lab)
    assert (code, out) == (2, f"error: lab {fake_lab} has no workload 'x/nope'\n")
    code, out = probe("x/a", "x/b", "--port", "80", "--name", fake_lab)
    assert (code, out) == (2, "error: workload x/b has no address to probe\n")


def test_bad_input_is_2_and_the_help_says_what_the_codes_mean() -> None:
    code, out = probe("x/a", "x/b", "--port", "0")
    assert code == 2, out
    out = CliRunner().invoke(cli, ["lab", "probe", "--help"]).output
    assert "0  reachable" in out and "1  blocked" in out and "2  error" in out
