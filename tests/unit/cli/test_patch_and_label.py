"""``gingham patch`` and ``gingham label`` in kubectl's manner, on sqlite through CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.cli.store_cli import StoreCli, store_cli


@pytest.fixture
def run(sqlite_url: str) -> StoreCli:
    return store_cli(sqlite_url)


def _get(run: StoreCli, *args: str) -> dict:  # type: ignore[type-arg]
    result = run("get", *args, "-o", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_merge_patch_is_the_default(run: StoreCli) -> None:
    result = run("patch", "gnp", "allow-dns", "-p", '{"spec": {"order": 50}}')
    assert result.exit_code == 0, result.output
    assert result.stdout == "globalnetworkpolicies/allow-dns patched\n"
    got = _get(run, "gnp", "allow-dns")
    assert got["spec"]["order"] == 50
    assert got["spec"]["egress"][0]["protocol"] == "UDP"  # the rest is kept
    # YAML works too, null removes, and the TYPE/NAME form names the resource.
    result = run("patch", "globalnetworkpolicies/allow-dns", "-p",
                 "metadata: {labels: {team: null, owner: me}}")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _get(run, "gnp", "allow-dns")["metadata"]["labels"] == {"owner": "me"}


def test_json_patch(run: StoreCli, tmp_path: Path) -> None:
    ops = [
        {"op": "test", "path": "/spec/selector", "value": "app == 'web'"},
        {"op": "add", "path": "/spec/ingress/-", "value": {"action": "Deny"}},
        {"op": "replace", "path": "/metadata/labels/app", "value": "frontend"},
    ]
    patch = tmp_path / "ops.json"
    patch.write_text(json.dumps(ops))
    result = run("patch", "np", "web", "-n", "shop", "--type", "json", "--patch-file", str(patch))
    assert result.exit_code == 0, result.output
    assert result.stdout == "networkpolicies/shop/web patched\n"
    got = _get(run, "np", "web", "-n", "shop")
    assert [r["action"] for r in got["spec"]["ingress"]] == ["Allow", "Deny"]
    assert got["metadata"]["labels"] == {"app": "frontend"}
    assert _get(run, "np", "web", "-n", "blog")["metadata"]["labels"] == {"app": "web"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-p", '{"spec": {"order": "soon"}}'), "GlobalNetworkPolicy allow-dns: spec.order"),
        (("-p", '{"spec": {"egres": []}}'), "spec.egres: unknown field"),
        (("--type", "json", "-p", '[{"op": "remove", "path": "/spec/nope"}]'),
         "patch operation 1 (remove /spec/nope): /spec/nope does not exist"),
        (("-p", '{"metadata": {"name": "other"}}'), "metadata.name: cannot be changed"),
        (("-p", '{"metadata": {"resourceVersion": "1"}, "spec": {"order": 1}}'),
         "the object has been modified"),
        (("-p", "[1, 2]"), "a merge patch is an object"),
        (("-p", "{not: [closed"), "--patch"),
    ],
)  # fmt: skip
def test_a_bad_patch_writes_nothing(run: StoreCli, args: tuple[str, ...], message: str) -> None:
    revision = run.revision()
    result = run("patch", "gnp", "allow-dns", *args)
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert run.revision() == revision


def test_a_patch_that_changes_nothing_writes_nothing(run: StoreCli) -> None:
    revision = run.revision()
    result = run("patch", "gnp", "allow-dns", "-p", '{"spec": {"order": 100}}')
    assert result.exit_code == 0, result.output
    assert result.stdout == "globalnetworkpolicies/allow-dns patched (no change)\n"
    assert run.revision() == revision


def test_patch_of_a_missing_resource(run: StoreCli) -> None:
    result = run("patch", "gnp", "nope", "-p", "{}")
    assert result.exit_code == 1 and "GlobalNetworkPolicy nope not found" in result.stderr
    assert run("patch", "gnp", "allow-dns").exit_code == 1  # no patch given


def test_label_sets_and_removes(run: StoreCli) -> None:
    result = run("label", "gnp", "allow-dns", "owner=me", "team-")
    assert result.exit_code == 0, result.output
    assert result.stdout == "globalnetworkpolicies/allow-dns labeled\n"
    assert _get(run, "gnp", "allow-dns")["metadata"]["labels"] == {"owner": "me"}
    # Removing a label that is not there is fine, and writes nothing.
    revision = run.revision()
    result = run("label", "gnp", "allow-dns", "team-")
    assert result.exit_code == 0, result.output
    assert result.stdout == "globalnetworkpolicies/allow-dns not labeled\n"
    assert run.revision() == revision
    # The last label removed: no labels left (and none added as an empty mapping).
    assert run("label", "gnp", "allow-dns", "owner-").exit_code == 0
    assert "labels" not in _get(run, "gnp", "allow-dns")["metadata"]


def test_changing_a_value_needs_overwrite(run: StoreCli) -> None:
    revision = run.revision()
    result = run("label", "np", "web", "-n", "shop", "app=shop", "extra=1")
    assert result.exit_code == 1, result.output
    assert "'app' already has a value (web), and --overwrite is false" in result.stderr
    assert "nothing was written" in result.stderr
    assert run.revision() == revision
    # The same value again needs no --overwrite.
    assert run("label", "np", "web", "-n", "shop", "app=web").exit_code == 0
    assert run.revision() == revision
    result = run("label", "networkpolicies/shop/web", "app=shop", "--overwrite")
    assert result.exit_code == 0, result.output
    assert _get(run, "np", "web", "-n", "shop")["metadata"]["labels"] == {"app": "shop"}


def test_label_several_resources_all_or_nothing(run: StoreCli) -> None:
    revision = run.revision()
    # deny-log has tier=edge: refused, so allow-dns is not labelled either.
    result = run("label", "gnp", "allow-dns", "deny-log", "tier=core")
    assert result.exit_code == 1 and "deny-log" in result.stderr
    assert run.revision() == revision
    result = run("label", "gnp", "allow-dns", "deny-log", "tier=core", "--overwrite")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "globalnetworkpolicies/allow-dns labeled",
        "globalnetworkpolicies/deny-log labeled",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("gnp", "allow-dns", "_bad=x"), "invalid label key '_bad'"),
        (("gnp", "allow-dns", "ok=" + "v" * 64), "invalid label value"),
        (("gnp", "allow-dns", "a=1", "a-"), "'a' is both set and removed"),
        (("gnp", "allow-dns", "a=1", "a=2"), "'a' is given twice"),
        (("gnp", "a=1"), "give a NAME after gnp"),
        (("gnp", "allow-dns"), "at least one key=value or key-"),
        (("gnp", "nope", "a=1"), "GlobalNetworkPolicy nope not found"),
    ],
)
def test_bad_label_arguments(run: StoreCli, args: tuple[str, ...], message: str) -> None:
    revision = run.revision()
    result = run("label", *args)
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert run.revision() == revision
