"""``get``/``delete`` in kubectl's habits: ``-o name`` round trips, ``-l``, list kinds, ``-f DIR``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gingham.model import load_manifests, load_yaml_documents
from tests.unit.cli.store_cli import POLICIES, StoreCli, store_cli


@pytest.fixture
def run(sqlite_url: str) -> StoreCli:
    return store_cli(sqlite_url)


def _names(run: StoreCli, *args: str) -> list[str]:
    result = run("get", *args, "-o", "name")
    assert result.exit_code == 0, result.output
    return result.stdout.split()


# --- -o name round trip ------------------------------------------------------------


def test_get_o_name_output_is_accepted_by_get_and_delete(run: StoreCli) -> None:
    gnps = _names(run, "gnp")
    assert gnps == ["globalnetworkpolicies/allow-dns", "globalnetworkpolicies/deny-log"]
    back = run("get", *gnps, "-o", "name")
    assert back.exit_code == 0, back.output
    assert back.stdout.split() == gnps
    result = run("delete", *gnps)  # as `get gnp -o name | xargs gingham delete`
    assert result.exit_code == 0, result.output
    assert "Successfully deleted 2 'GlobalNetworkPolicy' resource(s)" in result.stdout
    assert _names(run, "gnp") == []


def test_namespaced_names_round_trip_with_n_and_all_namespaces(run: StoreCli) -> None:
    shop = _names(run, "np", "-n", "shop")
    assert shop == ["networkpolicies/shop/db", "networkpolicies/shop/web"]
    assert run("get", *shop, "-n", "shop", "-o", "name").stdout.split() == shop
    result = run("delete", "-n", "shop", *shop)  # `... | xargs gingham delete -n shop`
    assert result.exit_code == 0, result.output
    assert _names(run, "np", "-A") == ["networkpolicies/blog/web"]
    everywhere = _names(run, "np", "-A") + _names(run, "knp", "-A")
    assert everywhere[1] == "networkpolicies.networking.k8s.io/shop/deny-all"
    result = run("delete", *everywhere)  # `get -A -o name | xargs gingham delete`, two kinds
    assert result.exit_code == 0, result.output
    assert _names(run, "np", "-A") == [] and _names(run, "knp", "-A") == []


@pytest.mark.parametrize(
    "arg",
    [
        "gnp/allow-dns",
        "GlobalNetworkPolicy/allow-dns",
        "globalnetworkpolicy.projectcalico.org/allow-dns",
        "globalnetworkpolicies.projectcalico.org/allow-dns",
    ],
)
def test_any_spelling_of_the_type(run: StoreCli, arg: str) -> None:
    result = run("get", arg, "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metadata"]["name"] == "allow-dns"


def test_kubectl_group_spellings_pick_the_right_network_policy(run: StoreCli) -> None:
    k8s = run("get", "networkpolicy.networking.k8s.io/shop/deny-all", "-o", "json")
    assert json.loads(k8s.stdout)["apiVersion"] == "networking.k8s.io/v1"
    calico = run("get", "networkpolicy.projectcalico.org/web", "-n", "shop", "-o", "json")
    assert json.loads(calico.stdout)["apiVersion"] == "projectcalico.org/v3"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("networkpolicies/shop/web", "-n", "blog"), "differs from --namespace 'blog'"),
        (("globalnetworkpolicies/x/allow-dns",), "GlobalNetworkPolicy is cluster-scoped"),
        (("gnp", "globalnetworkpolicies/allow-dns"), "not both"),
        (("frobs/x",), "unknown resource type 'frobs'"),
        (("networkpolicies/web", "-A"), "networkpolicies/NAMESPACE/web"),
    ],
)
def test_bad_names(run: StoreCli, args: tuple[str, ...], error: str) -> None:
    for verb in ("get", "delete"):
        result = run(verb, *args)
        assert result.exit_code == 1, result.output
        assert error in result.stderr
    assert len(_names(run, "np", "-A")) == 3


# --- -l ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (("gnp", "-l", "team=net"), ["allow-dns"]),
        (("gnp", "-l", "team==sec,tier"), ["deny-log"]),
        (("gnp", "-l", "team!=net"), ["deny-log"]),
        (("gnp", "-l", "team in (net, sec)"), ["allow-dns", "deny-log"]),
        (("gnp", "-l", "team notin (net)"), ["deny-log"]),
        (("gnp", "-l", "!tier"), ["allow-dns"]),
        (("gnp", "-l", "team == 'sec' && has(tier)"), ["deny-log"]),  # a Calico selector
        (("np", "-l", "app=web"), []),  # the default namespace
        (("np", "-n", "shop", "-l", "app=web"), ["shop/web"]),
        (("np", "-A", "-l", "app=web"), ["blog/web", "shop/web"]),
        (("np", "-A", "--selector", "tier"), ["shop/db"]),
    ],
)
def test_get_with_a_selector(run: StoreCli, args: tuple[str, ...], names: list[str]) -> None:
    got = [n.split("/", 1)[1] for n in _names(run, *args)]
    assert got == names


def test_delete_with_a_selector(run: StoreCli) -> None:
    result = run("delete", "np", "-A", "-l", "app=web")
    assert result.exit_code == 0, result.output
    assert "Successfully deleted 2 'NetworkPolicy' resource(s)" in result.stdout
    assert _names(run, "np", "-A") == ["networkpolicies/shop/db"]
    assert _names(run, "knp", "-A") == ["networkpolicies.networking.k8s.io/shop/deny-all"]
    result = run("delete", "gnp", "-l", "team=nobody")
    assert result.exit_code == 0 and "No resources found" in result.stderr
    assert len(_names(run, "gnp")) == 2


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("gnp", "-l", "team in (net"), "-l 'team in (net': not a selector: expected ')'"),
        (("gnp", "-l", "team == 'x' &&"), "(as a Calico selector) at position 14"),
        (("gnp", "allow-dns", "-l", "a=b"), "not both"),
    ],
)
def test_bad_selector_uses(run: StoreCli, args: tuple[str, ...], error: str) -> None:
    revision = run.revision()
    for verb in ("get", "delete"):
        result = run(verb, *args)
        assert result.exit_code == 1, result.output
        assert error in result.stderr
    assert run.revision() == revision


# --- list kinds ----------------------------------------------------------------------


def _items(doc: dict) -> list[str]:  # type: ignore[type-arg]
    # Each item is a manifest by itself.
    return [load_manifests(json.dumps(item))[0].metadata.name for item in doc["items"]]


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_lists_carry_a_list_kind_and_the_store_revision(run: StoreCli, output: str) -> None:
    def get(*args: str) -> dict:  # type: ignore[type-arg]
        result = run("get", *args, "-o", output)
        assert result.exit_code == 0, result.output
        docs = load_yaml_documents(result.stdout)  # JSON is YAML too
        assert len(docs) == 1
        return docs[0]  # type: ignore[no-any-return]

    revision = run.revision()
    doc = get("gnp")
    assert (doc["apiVersion"], doc["kind"]) == ("projectcalico.org/v3", "GlobalNetworkPolicyList")
    assert doc["metadata"] == {"resourceVersion": str(revision)}
    assert _items(doc) == ["allow-dns", "deny-log"]
    k8s = get("knp", "-A")
    assert (k8s["apiVersion"], k8s["kind"]) == ("networking.k8s.io/v1", "NetworkPolicyList")
    assert get("ippools")["items"] == []  # an empty list is still a list
    two = get("gnp", "allow-dns", "deny-log")  # several names: a list
    assert two["kind"] == "GlobalNetworkPolicyList" and _items(two) == ["allow-dns", "deny-log"]
    one = get("gnp", "allow-dns")  # one name: the resource itself
    assert one["kind"] == "GlobalNetworkPolicy" and one["metadata"]["name"] == "allow-dns"
    mixed = get("gnps/allow-dns", "networkpolicies/shop/web")
    assert (mixed["apiVersion"], mixed["kind"]) == ("v1", "List")
    assert _items(mixed) == ["allow-dns", "web"]


def test_a_list_keeps_invalid_stored_values_visible(run: StoreCli) -> None:
    from gingham.datastore import keys, open_datastore

    key = keys.resource_key("GlobalNetworkPolicy", "broken")
    with open_datastore(run.url) as ds:
        ds.put_raw(key, b"{not json")
    doc = json.loads(run("get", "gnp", "-o", "json").stdout)
    assert doc["kind"] == "GlobalNetworkPolicyList" and _items(doc) == ["allow-dns", "deny-log"]
    assert [b["key"] for b in doc["invalid"]] == [key]
    result = run("get", "gnp", "-o", "yaml")
    assert result.exit_code == 0 and key in result.stderr
    [listed] = load_yaml_documents(result.stdout)
    assert _items(listed) == ["allow-dns", "deny-log"]
    assert f"# {key}: invalid, shown as stored" in result.stdout
    assert "#   {not json" in result.stdout


# --- -f DIR, -R ----------------------------------------------------------------------------


def _tree(tmp_path: Path) -> Path:
    docs = POLICIES.split("---")
    top = tmp_path / "manifests"
    (top / "sub" / "deeper").mkdir(parents=True)
    (top / "b.yml").write_text(docs[1])
    (top / "a.yaml").write_text(docs[0])
    (top / "README.md").write_text("not a manifest\n")
    (top / "sub" / "c.json").write_text(json.dumps(load_yaml_documents(docs[2])[0]))
    (top / "sub" / "deeper" / "d.yaml").write_text(docs[3])
    return top


@pytest.fixture
def empty(tmp_path: Path) -> StoreCli:
    return store_cli(f"sqlite://{tmp_path / 'empty.db'}", manifests=None)


def test_f_dir_reads_its_manifests_and_r_descends(empty: StoreCli, tmp_path: Path) -> None:
    top = _tree(tmp_path)
    result = empty("validate", "-f", str(top))
    assert result.exit_code == 0, result.output
    assert "2 resource(s) valid" in result.stdout  # a.yaml, b.yml; not README.md nor sub/
    assert "4 resource(s) valid" in empty("validate", "-f", str(top), "-R").stdout
    result = empty("apply", "-f", str(top), "-R")
    assert result.exit_code == 0, result.output
    assert _names(empty, "gnp") == ["globalnetworkpolicies/allow-dns",
                                    "globalnetworkpolicies/deny-log"]  # fmt: skip
    assert _names(empty, "np", "-A") == ["networkpolicies/shop/db", "networkpolicies/shop/web"]
    assert empty("diff", "-f", str(top), "--recursive").exit_code == 0
    assert empty("create", "-f", str(top), "-R", "--dry-run").exit_code == 1  # all exist
    assert empty("replace", "-f", str(top), "-R").exit_code == 0
    result = empty("delete", "-f", str(top))
    assert result.exit_code == 0, result.output
    assert _names(empty, "gnp") == [] and len(_names(empty, "np", "-A")) == 2


def test_f_dir_with_a_bad_file_writes_nothing(
    empty: StoreCli, tmp_path: Path
) -> None:
    top = _tree(tmp_path)
    (top / "sub" / "zz.yaml").write_text("kind: [unclosed\n")
    keys, revision = empty.keys(), empty.revision()
    result = empty("apply", "-f", str(top), "-R")
    assert result.exit_code == 1
    assert f"{top / 'sub' / 'zz.yaml'}: doc 1" in result.stderr
    assert "nothing was written" in result.stderr
    assert empty.keys() == keys and empty.revision() == revision
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    result = empty("apply", "-f", str(nothing))
    assert result.exit_code == 1 and "no *.yaml, *.yml, *.json files in it" in result.stderr
