"""The README tour, run as written: its commands in order against a real lab, and every
matrix it shows checked against the one measured.

The commands come from README.md (between ``<!-- tour`` and ``<!-- /tour -->``,
tests/fixtures/markdown.py), so the README and this test cannot drift: a
changed example manifest, a renamed flag or a step that stops changing a
verdict fails here. Two departures, both for isolation: ``lab up`` and
``lab down`` get ``--name`` (a lab of this test's own, never an operator's
``default``), and the machine's current lab is put back afterwards. The other
commands find the lab as a reader's would, as the current lab; if another lab
becomes current meanwhile the test says so instead of touching it.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.markdown import TourStep, tour_steps

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Agents apply a change within a second or so; a loaded machine may take longer.
SETTLE = 30.0


@pytest.fixture
def tour_lab() -> Iterator[str]:
    """A lab name of this test's own; the lab is removed and the machine's current lab
    put back afterwards, also when the tour fails half-way."""
    from gingham.lab import lab as labmod
    from gingham.lab import state as labstate

    name = f"tour{os.getpid() % 100000}"
    previous = labstate.current_name()
    labmod.down(name)  # a crashed earlier run with the same pid
    try:
        yield name
    finally:
        labmod.down(name)
        if previous and previous != name and labstate.current_name() in (None, name) \
                and (labstate.lab_dir(previous) / "state.json").exists():  # fmt: skip
            labstate.set_current(previous)


def _argv(step: TourStep, lab: str) -> list[str]:
    argv = list(step.argv)
    if argv[:3] in (["gingham", "lab", "up"], ["gingham", "lab", "down"]):
        argv += ["--name", lab]
    return [str(BIN / "gingham"), *argv[1:]]


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    # The tour uses the lab it starts, as a newcomer's shell would: no datastore, no
    # context, no config file of whoever runs the tests.
    env.pop("GINGHAM_DATASTORE", None)
    env.pop("GINGHAM_CONTEXT", None)
    env["GINGHAM_CONFIG"] = str(ROOT / ".no-such-dir" / "config.yaml")
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _same(shown: str, got: str) -> bool:
    def lines(text: str) -> list[str]:
        return [line.rstrip() for line in text.strip("\n").splitlines()]

    return lines(shown) == lines(got)


def test_the_tour_is_the_readme(tour_lab: str) -> None:
    from gingham.lab import state as labstate

    steps = tour_steps((ROOT / "README.md").read_text())
    shown = [s for s in steps if s.expected is not None]
    # The tour's promise: a verdict changes at every step it shows a matrix for.
    assert len(shown) >= 4
    for before, after in itertools.pairwise(shown):
        assert not _same(before.expected or "", after.expected or ""), (
            f"README.md:{after.line}: the matrix after `{after.command.strip()}` shows no "
            f"change from the one at line {before.line}"
        )
    for step in steps:
        if step.argv[0] == "export" and all(a.startswith("PATH=") for a in step.argv[1:]):
            continue  # this test's PATH has the venv already
        assert step.argv[0] == "gingham", f"README.md:{step.line}: the tour runs gingham only"
        if step.argv[:3] != ["gingham", "lab", "up"]:
            # The tour relies on the current lab; someone else's `lab up` would take it over.
            assert labstate.current_name() == tour_lab, (
                f"README.md:{step.line}: lab {labstate.current_name()!r} became the current "
                f"lab while the tour ran in {tour_lab!r}; run again"
            )
        argv = _argv(step, tour_lab)
        got = _run(argv)
        assert got.returncode == 0, (
            f"README.md:{step.line}: `{step.command.strip()}` exited {got.returncode}:\n"
            f"{got.stdout}{got.stderr}"
        )
        if step.expected is None:
            continue
        # The matrix of a change settles once every agent has applied it.
        deadline = time.monotonic() + SETTLE
        while not _same(step.expected, got.stdout) and time.monotonic() < deadline:
            time.sleep(0.5)
            got = _run(argv)
        assert _same(step.expected, got.stdout), (
            f"README.md:{step.line}: `{step.command.strip()}` shows\n{step.expected}\n"
            f"but measured\n{got.stdout}{got.stderr}"
        )
