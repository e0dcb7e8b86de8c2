"""A shell script written by a kubectl user works unchanged (issue 17).

Runs the installed ``gingham`` executable through ``bash -c`` against a
temporary sqlite datastore: ``get -o name | xargs delete``, ``-l``, ``label``,
``patch`` and ``-o json | jq``. No lab, no root. Each test's datastore is a
file in its own temporary directory, removed with it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gingham.names import DATASTORE_ENV

MANIFESTS = """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: allow-dns, labels: {team: net}}
spec:
  order: 100
  selector: all()
  egress: [{action: Allow, protocol: UDP, destination: {ports: [53]}}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: deny-log, labels: {team: sec}}
spec: {order: 900, selector: all(), types: [Ingress]}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {selector: app == 'web', ingress: [{action: Allow}]}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {selector: app == 'db'}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: web, namespace: blog, labels: {app: web}}
spec: {selector: app == 'web'}
"""


class Shell:
    """``bash -c`` with the venv's ``gingham`` first on PATH and the datastore in the
    environment, as an operator's shell has it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        gingham = Path(sys.executable).with_name("gingham")
        assert gingham.exists(), f"no gingham executable next to {sys.executable}"
        self.env = dict(os.environ)
        self.env["PATH"] = f"{gingham.parent}{os.pathsep}{self.env.get('PATH', '')}"
        self.env[DATASTORE_ENV] = f"sqlite://{directory / 'gingham.db'}"

    def __call__(self, script: str) -> str:
        done = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + script],
            cwd=self.directory, env=self.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done.stdout


@pytest.fixture
def sh(tmp_path: Path) -> Shell:
    shell = Shell(tmp_path)
    (tmp_path / "policies.yaml").write_text(MANIFESTS)
    shell("gingham datastore init >/dev/null && gingham apply -f policies.yaml >/dev/null")
    return shell


def test_get_o_name_piped_to_xargs_delete(sh: Shell) -> None:
    out = sh("""
        gingham get gnp -o name | xargs gingham delete
        echo "gnp left: $(gingham get gnp -o name | wc -l)"
        gingham get np -n shop -o name | xargs gingham delete -n shop
        gingham get np -A -o name
    """)
    assert "Successfully deleted 2 'GlobalNetworkPolicy' resource(s)" in out
    assert "gnp left: 0" in out
    assert "Successfully deleted 2 'NetworkPolicy' resource(s)" in out
    assert out.rstrip().endswith("networkpolicies/blog/web")
    out = sh("gingham get np -A -o name | xargs gingham delete; gingham get np -A -o name | wc -l")
    assert out.split()[-1] == "0"


def test_selectors_label_and_patch(sh: Shell) -> None:
    out = sh("""
        gingham get np -A -l app=web -o name
        gingham label gnp allow-dns owner=me
        gingham label gnp allow-dns team=core || echo "refused without --overwrite"
        gingham label gnp allow-dns team=core --overwrite
        gingham get gnp -l 'team in (core),owner' -o name
        gingham patch gnp allow-dns -p '{"spec":{"order":50}}'
        gingham patch gnp allow-dns --type json -p '[{"op":"replace","path":"/spec/order","value":60}]'
        gingham delete np -A -l 'app == "web"'
        gingham get np -A -o name
    """)
    lines = out.splitlines()
    assert lines[:2] == ["networkpolicies/blog/web", "networkpolicies/shop/web"]
    assert "globalnetworkpolicies/allow-dns labeled" in lines
    assert "refused without --overwrite" in lines
    assert lines.count("globalnetworkpolicies/allow-dns") == 1  # matched by the -l
    assert lines.count("globalnetworkpolicies/allow-dns patched") == 2
    assert lines[-1] == "networkpolicies/shop/db"


def test_o_json_into_jq(sh: Shell) -> None:
    if shutil.which("jq") is None:
        pytest.fail("jq is not installed: .ci/install-deps installs it")
    out = sh("""
        gingham get gnp -o json | jq -r '.kind, (.items[] | "\\(.metadata.name) \\(.spec.order)")'
        gingham get gnp allow-dns -o json | jq -r '.metadata.labels.team'
        gingham get np -A -o json | jq -r '.items[] | .metadata.namespace + "/" + .metadata.name'
        # Edit with jq and apply back: the resourceVersion guards the write.
        gingham get gnp deny-log -o json | jq '.spec.order = 901' | gingham apply -f -
        gingham get gnp deny-log -o json | jq '.spec.order'
    """)
    lines = out.splitlines()
    assert lines[:3] == ["GlobalNetworkPolicyList", "allow-dns 100", "deny-log 900"]
    assert lines[3] == "net"
    assert lines[4:7] == ["blog/web", "shop/db", "shop/web"]
    assert lines[-1] == "901"
