"""``gingham policy explain`` against a sqlite datastore (no kernel involved)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gingham.cli.main import cli
from gingham.datastore import open_datastore
from gingham.datastore.resources import ResourceStore
from gingham.model import load_manifests
from tests.unit.policy.test_explain import NAMESPACES, PODS, np


@pytest.fixture
def url(tmp_path: Path) -> str:
    u = f"sqlite://{tmp_path}/gingham.db"
    ds = open_datastore(u, create=True)
    try:
        store = ResourceStore(ds)
        for res in load_manifests(NAMESPACES + PODS + "---\n" + np(
                "web", "x", "  selector: pod == 'a'\n  ingress:\n  - action: Log\n"
                            "  - action: Allow\n    protocol: TCP\n    destination: {ports: [80]}")):
            store.apply(res)
    finally:
        ds.close()
    return u


def run(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--datastore", url, *args])
    return result.exit_code, result.output


def test_explain_allowed_and_denied(url: str) -> None:
    code, out = run(url, "policy", "explain", "y/a", "x/a", "--port", "80", "--trace")
    assert code == 0, out
    assert out.splitlines()[0] == "y/a -> x/a tcp/80: ALLOWED"
    assert "ingress rule 1 of policy default/x/web in tier default: Allow" in out
    assert "logged by policy:default/x/web:i0" in out
    assert "- tier default / default/x/web / rule 0: Log" in out
    code, out = run(url, "policy", "explain", "y/a", "x/a", "--port", "81", "-o", "json")
    assert code == 1
    data = json.loads(out)
    assert data["allowed"] is False
    assert data["ingress"]["decidedBy"] == "tier-default"
    assert data["egress"]["reason"] == "no policy selects y/a: profile kns.y allows (egress rule 0)"


def test_explain_errors_are_one_line(url: str) -> None:
    code, out = run(url, "policy", "explain", "y/a", "x/nope", "--port", "80")
    assert code == 2 and "no workload endpoint 'x/nope'" in out
    assert out.count("\n") == 1
    code, out = run(url, "policy", "explain", "y/a", "x/a")
    assert code == 2 and "--port is required for tcp" in out


@pytest.mark.parametrize("datastore", ["sqlite:///nonexistent/gingham.db", "etcd://127.0.0.1:1",
                                       "bogus://x"])
def test_explain_exit_status_2_is_an_error_never_a_verdict(datastore: str) -> None:
    """0 allowed, 1 denied, 2 error: a script tells "denied" from "could not tell"."""
    code, out = run(datastore, "policy", "explain", "y/a", "x/a", "--port", "80")
    assert code == 2, out
    assert out.startswith("error: ") and out.count("\n") == 1 and "Traceback" not in out


def test_explain_help_documents_the_exit_status() -> None:
    out = CliRunner().invoke(cli, ["policy", "explain", "--help"]).output
    assert "0  the connection is allowed" in out and "1  it is denied" in out
    assert "2  error" in out


def test_matrix_from_the_model(url: str) -> None:
    code, out = run(url, "policy", "matrix", "--port", "81", "-n", "x", "-n", "y", "-o", "json")
    assert code == 0, out
    cells = json.loads(out)["matrix"]
    assert sorted(cells) == ["x/a", "x/b", "y/a", "y/b"]
    assert cells["y/a"]["x/a"] is False and cells["x/a"]["y/a"] is True
    code, out = run(url, "policy", "matrix", "--port", "80")
    assert code == 0, out
    assert out.splitlines()[0].startswith("tcp/80 by policy")
    assert out.splitlines()[2].split() == ["x/a", ".", ".", ".", "."]
