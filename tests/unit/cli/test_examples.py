"""Every command has examples, in its help, and every example names real commands and flags."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from gingham.cli.examples import ALIASES, EXAMPLES, examples_for
from gingham.cli.main import cli
from tests.fixtures.markdown import shell_commands
from tests.unit.cli.clitree import all_paths, resolve

# Commands other parts of issue 17 are adding; their examples are written already.
# Empty this set when they are merged: then their examples are checked like the rest.
PENDING: set[str] = set()


def test_every_command_has_examples() -> None:
    missing = sorted(p or "(gingham itself)" for p in all_paths() if not examples_for(p))
    assert not missing, f"commands without examples in gingham/cli/examples.py: {missing}"


def test_examples_are_only_for_commands_that_exist() -> None:
    paths = all_paths()
    unknown = sorted((set(EXAMPLES) | set(ALIASES)) - paths - PENDING)
    assert not unknown, f"examples for commands that do not exist: {unknown}"
    arrived = sorted(PENDING & paths)
    assert not arrived, f"these exist now: remove them from PENDING so their examples are checked: {arrived}"


@pytest.mark.parametrize("path", sorted(set(EXAMPLES) - PENDING))
def test_examples_name_real_commands_and_flags(path: str) -> None:
    problems = []
    for what, line in EXAMPLES[path]:
        commands = shell_commands(line)
        reached = [resolve(argv)[0] for argv in commands]
        problems += [f"{line}: {p}" for argv in commands for p in resolve(argv)[1]]
        # Each example shows the command it is filed under (or one under a group's path).
        if not any(r == path or r.startswith(f"{path} ") or not path for r in reached):
            problems.append(f"{line}: does not run gingham {path}")
        assert what and not what.endswith("."), f"{path}: {what!r}: a short phrase, no full stop"
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", sorted(p for p in (set(EXAMPLES) | set(ALIASES)) - PENDING if p))
def test_help_ends_with_the_examples_unwrapped(path: str) -> None:
    got = CliRunner().invoke(cli, [*path.split(), "-h"], terminal_width=60)
    assert got.exit_code == 0, got.output
    help_text = got.output
    assert "Examples:" in help_text
    for what, line in examples_for(path):
        # Not rewrapped even in a narrow terminal: each line can be copied whole.
        assert f"    {line}\n" in help_text, line
        assert f"    # {what}\n" in help_text, what
    assert help_text.rindex("Examples:") > help_text.index("Options:")


def test_the_root_help_has_examples() -> None:
    got = CliRunner().invoke(cli, ["-h"])
    assert got.exit_code == 0 and "Examples:" in got.output
    assert EXAMPLES[""][0][1] in got.output
