"""`gingham --version`, `gingham version` and `-h` as kubectl and calicoctl users type them."""

from __future__ import annotations

import json

from click.testing import CliRunner

from gingham import __version__
from gingham.cli.main import cli


def test_version_flag_and_command() -> None:
    runner = CliRunner()
    got = runner.invoke(cli, ["--version"])
    assert got.exit_code == 0 and got.output == f"gingham {__version__}\n"
    got = runner.invoke(cli, ["version"])
    assert got.exit_code == 0 and got.output.startswith(f"gingham {__version__} (python ")
    got = runner.invoke(cli, ["version", "-o", "json"])
    assert got.exit_code == 0 and json.loads(got.output)["version"] == __version__


def test_dash_h_is_help_everywhere() -> None:
    runner = CliRunner()
    for argv in (["-h"], ["get", "-h"], ["lab", "up", "-h"], ["ipam", "show", "-h"]):
        got = runner.invoke(cli, argv)
        assert got.exit_code == 0, (argv, got.output)
        assert got.output.startswith("Usage: "), argv
        assert got.output == runner.invoke(cli, [*argv[:-1], "--help"]).output
