"""Tables into a pipe: header then rows, no rule line (scripts do `| tail -n +2 | awk`)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

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
