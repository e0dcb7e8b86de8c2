"""Re-applying what is stored writes nothing; ``apply`` honours metadata.resourceVersion."""

from __future__ import annotations

import json

import pytest

from tests.unit.cli.store_cli import POLICIES, StoreCli, store_cli


@pytest.fixture
def run(sqlite_url: str) -> StoreCli:
    return store_cli(sqlite_url)


def test_reapplying_unchanged_manifests_bumps_no_revision(run: StoreCli) -> None:
    revision = run.revision()
    result = run("apply", "-f", "-", input=POLICIES)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Successfully applied 2 'GlobalNetworkPolicy' resource(s) (2 unchanged)",
        "Successfully applied 4 'NetworkPolicy' resource(s) (4 unchanged)",
    ]
    assert run.revision() == revision
    # What get prints (server-set uid, creationTimestamp, resourceVersion) is unchanged too.
    exported = run("get", "gnp", "allow-dns", "-o", "yaml").stdout
    for verb in ("apply", "replace"):
        result = run(verb, "-f", "-", input=exported)
        assert result.exit_code == 0, result.output
        assert "(1 unchanged)" in result.stdout
    assert run.revision() == revision
    # One change among unchanged ones: one write.
    result = run("apply", "-f", "-", input=POLICIES.replace("order: 900", "order: 901"))
    assert "Successfully applied 2 'GlobalNetworkPolicy' resource(s) (1 unchanged)" in result.stdout
    assert run.revision() == revision + 1


def test_apply_refuses_a_stale_resource_version(run: StoreCli) -> None:
    read = json.loads(run("get", "gnp", "allow-dns", "-o", "json").stdout)
    assert run("patch", "gnp", "allow-dns", "-p", '{"spec": {"order": 5}}').exit_code == 0
    revision = run.revision()
    read["spec"]["order"] = 6  # an edit of the old read
    fresh = POLICIES.split("---")[2]  # another resource in the same input
    result = run("apply", "-f", "-", input=json.dumps(read) + "\n---\n" + fresh.replace(
        "app == 'web'", "app == 'www'"))  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "GlobalNetworkPolicy allow-dns: the object has been modified" in result.stderr
    assert f"not {read['metadata']['resourceVersion']})" in result.stderr
    assert "nothing was written" in result.stderr
    assert run.revision() == revision
    # At the current version it goes through.
    current = json.loads(run("get", "gnp", "allow-dns", "-o", "json").stdout)
    current["spec"]["order"] = 6
    result = run("apply", "-f", "-", input=json.dumps(current))
    assert result.exit_code == 0, result.output
    assert json.loads(run("get", "gnp", "allow-dns", "-o", "json").stdout)["spec"]["order"] == 6


def test_apply_with_a_resource_version_creates_what_is_absent(run: StoreCli) -> None:
    exported = run("get", "gnp", "deny-log", "-o", "yaml").stdout
    assert run("delete", "gnp", "deny-log").exit_code == 0
    result = run("apply", "-f", "-", input=exported)  # as calicoctl: an export re-creates
    assert result.exit_code == 0, result.output
    assert "deny-log" in run("get", "gnp").stdout
