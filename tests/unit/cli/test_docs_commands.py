"""Every ``gingham ...`` line in README.md and the docs names a real command and real flags.

Commands are read from shell code blocks and from inline code spans that start
with ``gingham ``; ``text`` blocks are output and skipped (see
tests/fixtures/markdown.py). A renamed or removed command or flag fails here
with the file and line to fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.markdown import doc_commands, shell_commands
from tests.unit.cli.clitree import resolve

ROOT = Path(__file__).resolve().parents[3]
DOCS = sorted([ROOT / "README.md", ROOT / "examples" / "README.md",
               *(ROOT / "docs").glob("*.md")])  # fmt: skip


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_documented_command_exists(doc: Path) -> None:
    problems = []
    for command in doc_commands(doc.read_text()):
        _, found = resolve(command.argv)
        problems += [f"{doc.relative_to(ROOT)}:{command.line}: {p}  ({command.source})"
                     for p in found]  # fmt: skip
    assert not problems, "\n".join(problems)


def test_the_readme_and_operations_guide_are_read() -> None:
    # The reader finds commands where they are: a parser that finds none checks nothing.
    readme = doc_commands((ROOT / "README.md").read_text())
    operations = doc_commands((ROOT / "docs" / "OPERATIONS.md").read_text())
    assert len(readme) >= 15 and len(operations) >= 20
    assert any(c.argv[:3] == ["gingham", "lab", "matrix"] for c in readme)


def test_the_checker_finds_what_does_not_exist() -> None:
    assert resolve(["gingham", "get", "gnp", "-o", "yaml"]) == ("get", [])
    assert resolve(["gingham", "--datastore", "sqlite:///x.db", "lab", "up", "--hosts", "3"]) \
        == ("lab up", [])
    assert resolve(["gingham", "lab", "exec", "h1", "--", "ip", "--brief", "link"])[1] == []
    assert resolve(["gingham", "frobnicate"])[1] == ["gingham: no command 'frobnicate'"]
    assert resolve(["gingham", "lab", "upp"])[1] == ["gingham lab: no command 'upp'"]
    assert resolve(["gingham", "node", "run", "--node", "h1"])[1] \
        == ["gingham node run: no option --node"]
    assert resolve(["gingham", "get", "gnp", "-Z"])[1] == ["gingham get: no option -Z"]


def test_commands_are_found_inside_shell() -> None:
    found = shell_commands(
        'eval "$(gingham lab env)"; source <(gingham completion bash) && '
        "gingham get knp -o name | xargs gingham delete -n shop  # gingham nope\n"
        "GINGHAM_DATASTORE=sqlite:///x gingham get gnp \\\n  -o yaml > gnp.yaml"
    )
    assert found == [
        ["gingham", "lab", "env"],
        ["gingham", "completion", "bash"],
        ["gingham", "get", "knp", "-o", "name"],
        ["gingham", "delete", "-n", "shop"],
        ["gingham", "get", "gnp", "-o", "yaml"],
    ]
    shown = doc_commands("Run `gingham lab\nstatus`:\n\n```text\ngingham nope\n```\n")
    assert [c.argv for c in shown] == [["gingham", "lab", "status"]]
