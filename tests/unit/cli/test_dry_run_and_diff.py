"""``--dry-run`` on every writing verb, and ``gingham diff`` with kubectl's exit statuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.cli.store_cli import POLICIES, StoreCli, store_cli

NEW_POOL = """
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: pool-b}
spec: {cidr: 198.19.0.0/16}
"""


@pytest.fixture
def run(sqlite_url: str) -> StoreCli:
    return store_cli(sqlite_url)


@pytest.mark.parametrize(
    ("args", "input", "said"),
    [
        (("apply", "-f", "-"), NEW_POOL, "Successfully applied 1 'IPPool' resource(s) (dry run)"),
        (("apply", "-f", "-"), POLICIES.replace("order: 100", "order: 7"),
         "Successfully applied 2 'GlobalNetworkPolicy' resource(s) (1 unchanged) (dry run)"),
        (("create", "-f", "-"), NEW_POOL, "Successfully created 1 'IPPool' resource(s) (dry run)"),
        (("replace", "-f", "-"), POLICIES.replace("order: 100", "order: 7"),
         "Successfully replaced 2 'GlobalNetworkPolicy' resource(s) (1 unchanged) (dry run)"),
        (("delete", "gnp", "allow-dns"), None,
         "Successfully deleted 1 'GlobalNetworkPolicy' resource(s) (dry run)"),
        (("delete", "np", "-A", "-l", "app=web"), None,
         "Successfully deleted 2 'NetworkPolicy' resource(s) (dry run)"),
        (("delete", "-f", "-"), POLICIES,
         "Successfully deleted 4 'NetworkPolicy' resource(s) (dry run)"),
        (("patch", "gnp", "allow-dns", "-p", '{"spec": {"order": 1}}'), None,
         "globalnetworkpolicies/allow-dns patched (dry run)"),
        (("label", "gnp", "allow-dns", "a=b"), None,
         "globalnetworkpolicies/allow-dns labeled (dry run)"),
    ],
)  # fmt: skip
def test_a_dry_run_says_so_and_writes_nothing(
    run: StoreCli, args: tuple[str, ...], input: str | None, said: str
) -> None:
    keys, revision = run.keys(), run.revision()
    for flag in ("--dry-run", "--dry-run=server"):
        result = run(*args, flag, input=input)
        assert result.exit_code == 0, result.output
        assert said in result.stdout
        assert run.revision() == revision and run.keys() == keys
    # The same without the flag does write: the dry run was the difference.
    assert run(*args, input=input).exit_code == 0
    assert run.revision() > revision


@pytest.mark.parametrize(
    ("args", "input", "error"),
    [
        (("create", "-f", "-"), POLICIES, "GlobalNetworkPolicy allow-dns already exists"),
        (("replace", "-f", "-"), NEW_POOL, "IPPool pool-b not found"),
        (("apply", "-f", "-"), POLICIES.replace("{name: allow-dns,",
                                                "{name: allow-dns, resourceVersion: '1',"),
         "the object has been modified"),
        (("delete", "gnp", "nope"), None, "GlobalNetworkPolicy nope not found"),
        (("patch", "gnp", "allow-dns", "-p", '{"spec": {"order": "x"}}'), None, "spec.order"),
        (("label", "gnp", "allow-dns", "team=x"), None, "--overwrite is false"),
    ],
)  # fmt: skip
def test_a_dry_run_finds_what_the_write_would_refuse(
    run: StoreCli, args: tuple[str, ...], input: str | None, error: str
) -> None:
    revision = run.revision()
    result = run(*args, "--dry-run", input=input)
    assert result.exit_code == 1, result.output
    assert error in result.stderr
    assert run.revision() == revision


def test_dry_run_modes(run: StoreCli) -> None:
    result = run("apply", "-f", "-", "--dry-run=client", input=NEW_POOL)
    assert result.exit_code == 2 and "gingham validate" in result.output
    result = run("apply", "-f", "-", "--dry-run=none", input=NEW_POOL)
    assert result.exit_code == 0 and "(dry run)" not in result.stdout
    assert "pool-b" in run("get", "ippools").stdout


def test_a_dry_run_makes_no_datastore(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gingham.cli.main import cli

    url = f"sqlite://{tmp_path / 'new.db'}"
    result = CliRunner().invoke(cli, ["--datastore", url, "apply", "-f", "-", "--dry-run"],
                                input=NEW_POOL)  # fmt: skip
    assert result.exit_code == 1 and "no gingham datastore" in result.output
    assert list(tmp_path.iterdir()) == []


def test_diff_exit_statuses(run: StoreCli, tmp_path: Path) -> None:
    same = tmp_path / "same.yaml"
    same.write_text(POLICIES)
    result = run("diff", "-f", str(same))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""

    changed = tmp_path / "changed.yaml"
    changed.write_text(POLICIES.replace("order: 100", "order: 7") + "---" + NEW_POOL)
    revision = run.revision()
    result = run("diff", "-f", str(changed))
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert "--- stored/globalnetworkpolicies/allow-dns" in lines
    assert "+++ applied/globalnetworkpolicies/allow-dns" in lines
    assert "-  order: 100" in lines and "+  order: 7" in lines
    assert "--- /dev/null" in lines and "+++ applied/ippools/pool-b" in lines
    assert "+  cidr: 198.19.0.0/16" in lines
    assert "deny-log" not in result.stdout  # unchanged resources show nothing
    assert run.revision() == revision
    # After applying it, no differences are left.
    assert run("apply", "-f", str(changed)).exit_code == 0
    assert run("diff", "-f", str(changed)).exit_code == 0


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("kind: [unclosed", "invalid YAML"),
        (POLICIES.replace("{name: allow-dns,", "{name: allow-dns, resourceVersion: '1',")
         .replace("order: 100", "order: 3"), "the object has been modified"),
        (NEW_POOL.replace("198.19.0.0/16", "198.19.0.0/33"), "spec.cidr"),
    ],
)  # fmt: skip
def test_diff_errors_exit_2(run: StoreCli, text: str, error: str) -> None:
    result = run("diff", "-f", "-", input=text)
    assert result.exit_code == 2, result.output
    assert error in result.stderr
    assert run("diff", "-f", "/nonexistent.yaml").exit_code == 2
