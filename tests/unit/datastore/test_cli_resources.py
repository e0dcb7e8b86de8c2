"""``gingham apply|create|replace|delete|get|validate`` through click's CliRunner on sqlite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from gingham.cli.common import resolve_datastore_url
from gingham.cli.main import cli
from gingham.datastore import open_datastore
from gingham.datastore.etcd_process import free_ports
from gingham.model import load_manifests, to_dict
from gingham.names import DEFAULT_DATASTORE_URL as DEFAULT_DATASTORE

GOOD = """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: allow-dns}
spec:
  order: 100
  selector: all()
  egress: [{action: Allow, protocol: UDP, destination: {ports: [53]}}]
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: pool-v4}
spec: {cidr: 198.18.0.0/16, vxlanMode: CrossSubnet, natOutgoing: true}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  selector: app == 'web'
  ingress: [{action: Allow, protocol: TCP, destination: {ports: ["8000:8080"]}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: shop}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
"""

BAD_SECOND = """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: fine}
spec: {nets: [198.51.100.0/24]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: broken}
spec:
  ingress: [{action: Allow, protocol: TCP, destination: {ports: [70000]}}]
"""


@pytest.fixture
def run(sqlite_url: str):  # type: ignore[no-untyped-def]
    open_datastore(sqlite_url, create=True).close()  # as `gingham datastore init` would
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, url: str | None = None) -> Result:
        return runner.invoke(cli, ["--datastore", url or sqlite_url, *args], input=input)

    return invoke


def _meaning(doc: dict[str, Any]) -> dict[str, Any]:
    meta = {
        k: v
        for k, v in doc["metadata"].items()
        if k not in ("resourceVersion", "uid", "creationTimestamp")
    }
    return dict(doc, metadata=meta)


def test_apply_then_get_yaml_reads_back_equal(run) -> None:  # type: ignore[no-untyped-def]
    result = run("apply", "-f", "-", input=GOOD)
    assert result.exit_code == 0, result.output
    assert "Successfully applied 1 'GlobalNetworkPolicy' resource(s)" in result.output
    assert "Successfully applied 2 'NetworkPolicy' resource(s)" in result.output
    for original in load_manifests(GOOD):
        kind = "knp" if original.api_version.startswith("networking") else original.kind
        args = ["get", kind, original.metadata.name, "-o", "yaml"]
        if original.namespace:
            args += ["-n", original.namespace]
        result = run(*args)
        assert result.exit_code == 0, result.output
        [back] = load_manifests(result.output)
        assert _meaning(to_dict(back)) == _meaning(to_dict(original))
        assert back.metadata.resource_version


def test_get_table_and_kind_spellings(run) -> None:  # type: ignore[no-untyped-def]
    assert run("apply", "-f", "-", input=GOOD).exit_code == 0
    for spelling in ("gnp", "GlobalNetworkPolicy", "globalnetworkpolicies", "GNP"):
        result = run("get", spelling)
        assert result.exit_code == 0, result.output
        assert "allow-dns" in result.output and "NAME" in result.output
    wide = run("get", "ippool", "-o", "wide")
    assert "198.18.0.0/16" in wide.output and "CrossSubnet" in wide.output
    # Namespaced kinds: the default namespace unless -n or -A.
    assert "web" not in run("get", "np").output
    assert "web" in run("get", "np", "-n", "shop").output
    everywhere = run("get", "networkpolicy", "-A")
    assert "NAMESPACE" in everywhere.output and "shop" in everywhere.output
    assert "deny-all" in run("get", "netpol", "-A").output
    names = run("get", "knp", "-A", "-o", "name").output.split()
    assert names == ["networkpolicies.networking.k8s.io/shop/deny-all"]


def test_get_json(run) -> None:  # type: ignore[no-untyped-def]
    assert run("apply", "-f", "-", input=GOOD).exit_code == 0
    one = json.loads(run("get", "gnp", "allow-dns", "-o", "json").output)
    assert one["kind"] == "GlobalNetworkPolicy" and one["spec"]["order"] == 100
    many = json.loads(run("get", "gnp", "-o", "json").output)
    assert many["kind"] == "GlobalNetworkPolicyList"
    assert [i["metadata"]["name"] for i in many["items"]] == ["allow-dns"]


def test_get_missing_and_unknown_kind(run) -> None:  # type: ignore[no-untyped-def]
    result = run("get", "gnp", "nope")
    assert result.exit_code == 1
    assert "GlobalNetworkPolicy nope not found" in result.output
    result = run("get", "frobnicators")
    assert result.exit_code == 1
    assert "unknown resource type 'frobnicators'" in result.output
    assert "Traceback" not in result.output


def test_bad_document_writes_nothing(run) -> None:  # type: ignore[no-untyped-def]
    result = run("apply", "-f", "-", input=BAD_SECOND)
    assert result.exit_code == 1
    assert "doc 2 (GlobalNetworkPolicy broken)" in result.output
    assert "spec.ingress[0].destination.ports[0]" in result.output
    assert "nothing was written" in result.output
    assert "fine" not in run("get", "gns").output


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("kind: [unclosed", "invalid YAML"),
        ("apiVersion: projectcalico.org/v3\nkind: Nope\nmetadata: {name: a}\n", "unknown kind"),
        (
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: a}\n"
            "spec: {cidr: 198.18.0.0/33}\n",
            "spec.cidr",
        ),
        (
            "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: a}\n"
            "spec: {selector: 'a == '}\n",
            "spec.selector",
        ),
        (
            "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: a}\n"
            "spec: {bogus: 1}\n",
            "spec.bogus: unknown field",
        ),
        (
            "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: a}\n"
            "spec: {order: fast}\n",
            "spec.order",
        ),
    ],
)
def test_bad_input_is_named(run, text: str, expect: str) -> None:  # type: ignore[no-untyped-def]
    for command in ("validate", "apply"):
        result = run(command, "-f", "-", input=text)
        assert result.exit_code == 1, result.output
        assert expect in result.output
        assert "Traceback" not in result.output


def test_create_replace_semantics(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    assert run("create", "-f", str(path)).exit_code == 0
    again = run("create", "-f", str(path))
    assert again.exit_code == 1
    assert "GlobalNetworkPolicy allow-dns already exists" in again.output
    assert "nothing was written" in again.output
    assert run("replace", "-f", str(path)).exit_code == 0
    new = tmp_path / "new.yaml"
    new.write_text(GOOD.replace("allow-dns", "other"))
    missing = run("replace", "-f", str(new))
    assert missing.exit_code == 1
    assert "GlobalNetworkPolicy other not found" in missing.output
    assert "other" not in run("get", "gnp").output
    # replace with a stale resourceVersion loses the compare-and-swap
    current = run("get", "gnp", "allow-dns", "-o", "yaml").output
    assert run("apply", "-f", "-", input=GOOD.replace("order: 100", "order: 101")).exit_code == 0
    stale = run("replace", "-f", "-", input=current.replace("order: 100", "order: 102"))
    assert stale.exit_code == 1
    assert "resourceVersion" in stale.output


def test_delete(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    assert run("apply", "-f", str(path)).exit_code == 0
    result = run("delete", "gnp", "allow-dns")
    assert result.exit_code == 0, result.output
    assert "allow-dns" not in run("get", "gnp").output
    result = run("delete", "gnp", "allow-dns")
    assert result.exit_code == 1 and "not found" in result.output
    assert run("delete", "gnp", "allow-dns", "--ignore-not-found").exit_code == 0
    result = run("delete", "np", "web", "-n", "shop")
    assert result.exit_code == 0, result.output
    result = run("delete", "-f", str(path), "--ignore-not-found")
    assert result.exit_code == 0, result.output
    assert "pool-v4" not in run("get", "ippools").output
    assert "deny-all" not in run("get", "knp", "-A").output


def test_namespace_option(run) -> None:  # type: ignore[no-untyped-def]
    doc = GOOD.split("---")[2].replace("namespace: shop", "namespace: other")
    result = run("apply", "-n", "shop", "-f", "-", input=doc)
    assert result.exit_code == 1 and "differs from --namespace" in result.output
    no_ns = doc.replace(", namespace: other", "")
    assert run("apply", "-n", "shop", "-f", "-", input=no_ns).exit_code == 0
    assert "web" in run("get", "np", "-n", "shop").output


def test_validate_is_offline(run) -> None:  # type: ignore[no-untyped-def]
    (port,) = free_ports(1)
    result = run("validate", "-f", "-", input=GOOD, url=f"etcd://127.0.0.1:{port}")
    assert result.exit_code == 0, result.output
    assert "4 resource(s) valid" in result.output


def test_unreachable_datastore_is_one_line(run) -> None:  # type: ignore[no-untyped-def]
    (port,) = free_ports(1)
    url = f"etcd://127.0.0.1:{port}"
    result = run("get", "gnp", url=url)
    assert result.exit_code == 1
    assert result.output.startswith(f"error: cannot reach datastore {url}: ")
    assert result.output.count("\n") == 1
    result = run("apply", "-f", "-", input=GOOD, url=url)
    assert result.exit_code == 1
    assert result.output.startswith(f"error: cannot reach datastore {url}: ")


def test_missing_file(run) -> None:  # type: ignore[no-untyped-def]
    result = run("apply", "-f", "/nonexistent/x.yaml")
    assert result.exit_code != 0
    assert "Traceback" not in result.output


def test_datastore_resolution(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert resolve_datastore_url(None, env={}, run_dir=run_dir) == DEFAULT_DATASTORE
    (run_dir / "lab" / "l1").mkdir(parents=True)
    (run_dir / "current-lab").write_text("l1\n")
    (run_dir / "lab" / "l1" / "state.json").write_text(
        json.dumps({"datastore": "etcd://127.0.0.1:2379"})
    )
    assert resolve_datastore_url(None, env={}, run_dir=run_dir) == "etcd://127.0.0.1:2379"
    env = {"GINGHAM_DATASTORE": "sqlite:///x.db"}
    assert resolve_datastore_url(None, env=env, run_dir=run_dir) == "sqlite:///x.db"
    assert resolve_datastore_url("sqlite:///y.db", env=env, run_dir=run_dir) == "sqlite:///y.db"
    (run_dir / "lab" / "l1" / "state.json").write_text("{broken")
    assert resolve_datastore_url(None, env={}, run_dir=run_dir) == DEFAULT_DATASTORE


CORPUS = Path(__file__).resolve().parents[2] / "corpus"


@pytest.mark.parametrize(
    "path", sorted(CORPUS.glob("*/*.yaml")) if CORPUS.is_dir() else [], ids=lambda p: p.name
)
def test_corpus_round_trip(run, path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("apply", "-f", str(path))
    assert result.exit_code == 0, result.output
    for original in load_manifests(path.read_text()):
        name = "knp" if original.api_version.startswith("networking") else original.kind
        args = ["get", name, original.metadata.name, "-o", "yaml"]
        if original.namespace:
            args += ["-n", original.namespace]
        result = run(*args)
        assert result.exit_code == 0, result.output
        [back] = load_manifests(result.output)
        want = _meaning(to_dict(original))
        got = _meaning(to_dict(back))
        if not original.namespace:
            got["metadata"].pop("namespace", None)
        assert got == want


@pytest.mark.integration
@pytest.mark.etcd
def test_apply_and_get_on_etcd(run, etcd_store, etcd_server: str) -> None:  # type: ignore[no-untyped-def]
    result = run("apply", "-f", "-", input=GOOD, url=etcd_server)
    assert result.exit_code == 0, result.output
    result = run("get", "np", "-A", url=etcd_server)
    assert result.exit_code == 0 and "web" in result.output
    result = run("get", "gnp", "allow-dns", "-o", "yaml", url=etcd_server)
    [back] = load_manifests(result.output)
    assert back.spec.order == 100


def test_json_list_applies_back(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("apply", "-f", "-", input=GOOD).exit_code == 0
    exported = run("get", "np", "-A", "-o", "json").output
    other = tmp_path / "other.db"
    result = run("apply", "-f", "-", input=exported, url=f"sqlite://{other}")
    assert result.exit_code == 0, result.output
    assert "Successfully applied 1 'NetworkPolicy' resource(s)" in result.output
    assert "web" in run("get", "np", "-n", "shop", url=f"sqlite://{other}").output


@pytest.mark.parametrize(
    "args",
    [
        ("get", "gnp"),
        ("get", "gnp", "x", "-o", "yaml"),
        ("delete", "gnp", "x", "--ignore-not-found"),
        ("ipam", "show"),
    ],
)
def test_reads_on_a_mistyped_path_create_nothing(tmp_path: Path, args: tuple[str, ...]) -> None:
    typo = tmp_path / "gingam.db"
    result = CliRunner().invoke(cli, ["--datastore", f"sqlite://{typo}", *args])
    assert result.exit_code == 1, result.output
    assert f"no gingham datastore at sqlite://{typo}" in result.output
    assert "gingham datastore init" in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_apply_makes_the_datastore_with_a_cluster_id(tmp_path: Path) -> None:
    from gingham.datastore.cluster import read_cluster_id

    url = f"sqlite://{tmp_path / 'new' / 'g.db'}"
    result = CliRunner().invoke(cli, ["--datastore", url, "apply", "-f", "-"], input=GOOD)
    assert result.exit_code == 0, result.output
    with open_datastore(url) as ds:
        assert read_cluster_id(ds) is not None


UPLINK_ENDPOINT = """
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: h1-cni-sneaky-eth0, namespace: shop}
spec: {node: h1, orchestrator: cni, interfaceName: eth0, ipNetworks: [198.18.0.9/32]}
"""


def test_an_endpoint_naming_a_non_workload_interface_is_refused(run) -> None:  # type: ignore[no-untyped-def]
    # The host's uplink would otherwise be filtered as a workload (issue 12).
    result = run("apply", "-f", "-", input=UPLINK_ENDPOINT)
    assert result.exit_code == 1, result.output
    assert "spec.interfaceName 'eth0' is not a workload interface" in result.output
    assert "nothing was written" in result.output
    # The prefixes are the node's agent's: a FelixConfiguration may add one.
    felix = ("apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\n"
             "metadata: {name: node.h1}\nspec: {interfacePrefix: 'gh,eth'}\n---\n")
    result = run("apply", "-f", "-", input=felix + UPLINK_ENDPOINT)
    assert result.exit_code == 0, result.output
    ok = UPLINK_ENDPOINT.replace("h1-cni-sneaky-eth0", "h2-cni-ok-eth0").replace(
        "node: h1", "node: h2").replace("interfaceName: eth0", "interfaceName: gh0123456789a")
    assert run("apply", "-f", "-", input=ok).exit_code == 0
