"""docs/CLI.md is generated from the commands and never stale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from gingham.cli import docgen
from gingham.cli.examples import examples_for
from tests.unit.cli.clitree import all_paths

CLI_MD = Path(__file__).resolve().parents[3] / "docs" / "CLI.md"


def test_cli_reference_is_current() -> None:
    assert CLI_MD.read_text() == docgen.render(), (
        "docs/CLI.md is stale: run make docs (python -m gingham.cli.docgen > docs/CLI.md)"
    )


def test_module_prints_the_reference() -> None:
    out = subprocess.run([sys.executable, "-m", "gingham.cli.docgen"], capture_output=True,
                         text=True, check=True, env={"COLUMNS": "40", "PATH": "/usr/bin"})  # fmt: skip
    assert out.stdout == docgen.render()


def test_every_command_flag_exit_code_and_example_is_in_it() -> None:
    text = docgen.render()
    for path, command, ctx in docgen.walk():
        title = f"## gingham {path}".rstrip()
        assert f"\n{title}\n" in text, title
        section = text.split(f"\n{title}\n", 1)[1].split("\n## ", 1)[0]
        assert f"Usage: gingham {path}".rstrip() in section
        for param in command.get_params(ctx):
            if isinstance(param, click.Option) and not param.hidden:
                for opt in (*param.opts, *param.secondary_opts):
                    assert f"`{opt}`" in section, (path, opt)
        for code, meaning in docgen.exit_codes(path):
            assert f"| {code} | {meaning.replace('|', chr(92) + '|')} |" in section, (path, code)
        for _what, line in examples_for(path):
            assert f"\n{line}\n" in section, (path, line)
    assert {p for p, _, _ in docgen.walk()} == all_paths()


def test_answers_have_their_own_exit_codes() -> None:
    explain = dict(docgen.exit_codes("policy explain"))
    assert explain[1].startswith("the connection is denied") and explain[2].startswith("error")
    probe = dict(docgen.exit_codes("lab probe"))
    assert probe[1].startswith("blocked") and probe[2].startswith("error")
    diff = dict(docgen.exit_codes("diff"))
    assert diff[0].startswith("no differences") and diff[1].startswith("differences")
    assert dict(docgen.exit_codes("apply"))[2].startswith("usage error")


def test_choices_defaults_and_environment_are_shown() -> None:
    text = docgen.render()
    assert "| `-o`, `--output` | `table`, `wide`, `yaml`, `json`, `name` (any case) | `table` |" \
        in text
    assert "| `--hosts` | INTEGER RANGE (1<=x<=200) | `3` |" in text
    assert "(environment: `GINGHAM_LOG_FORMAT`)" in text
    assert "| `--agent`, `--no-agent` | flag | `--agent` |" in text
