"""Tables into a pipe: header then rows, no rule line (scripts do `| tail -n +2 | awk`)."""

from __future__ import annotations

import io
from pathlib import Path

from click.testing import CliRunner
from rich.console import Console

from gingham.cli.common import print_table
from gingham.cli.main import cli

POLICY = """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: alpha}
spec: {selector: all(), types: [Ingress]}
"""


def test_get_into_a_pipe_prints_header_and_rows_only(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/ds.db"
    runner = CliRunner()
    assert runner.invoke(cli, ["--datastore", url, "apply", "-f", "-"], input=POLICY).exit_code == 0
    got = runner.invoke(cli, ["--datastore", url, "get", "globalnetworkpolicies"])
    assert got.exit_code == 0, got.output
    lines = got.output.splitlines()
    assert lines[0].split()[0] == "NAME"
    assert [ln.split()[0] for ln in lines[1:]] == ["alpha"]
    assert "─" not in got.output


def _narrow(terminal: bool, width: int = 30) -> Console:
    return Console(file=io.StringIO(), width=width, force_terminal=terminal, color_system=None,
                   highlight=False)


LONG_NAME = "very-long-workload-name-here"
LONG_NS = "production-frontend"
WHY = "denied by the default tier end because nothing matched"


def test_names_never_wrap_in_a_narrow_terminal() -> None:
    console = _narrow(terminal=True)
    print_table(["NAMESPACE", "NAME", "WHY"], [[LONG_NS, LONG_NAME, WHY], ["a", "b", None]],
                console=console)
    lines = console.file.getvalue().splitlines()
    # the line runs past the 30 columns rather than cutting or folding a name
    first = [ln for ln in lines if ln.startswith(LONG_NS)]
    assert first and first[0].split()[:2] == [LONG_NS, LONG_NAME]
    assert "…" not in console.file.getvalue()
    # the other long cell wraps at word boundaries, every word whole
    why_column = first[0].index("denied")
    wrapped = [ln[why_column:].strip() for ln in lines[lines.index(first[0]):]
               if ln[:why_column].strip() in ("", f"{LONG_NS}   {LONG_NAME}")]
    wrapped = [w for w in wrapped if w]
    assert len(wrapped) > 1 and " ".join(wrapped) == WHY


def test_into_a_pipe_nothing_wraps() -> None:
    console = _narrow(terminal=False)
    print_table(["NAMESPACE", "NAME", "WHY"], [[LONG_NS, LONG_NAME, WHY]], console=console)
    lines = console.file.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[1].split() == [LONG_NS, LONG_NAME, *WHY.split()]


def test_a_wide_terminal_shows_the_table_as_before() -> None:
    console = _narrow(terminal=True, width=200)
    print_table(["NAMESPACE", "NAME", "WHY"], [[LONG_NS, LONG_NAME, WHY]], console=console)
    lines = console.file.getvalue().splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "WHY"] and set(lines[1]) == {"─"}
    assert lines[2].split() == [LONG_NS, LONG_NAME, *WHY.split()]
