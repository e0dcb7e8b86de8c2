"""What the plugin accepts from a network configuration: network names, GC's valid
attachments, datastore credentials, and the shape of stored endpoints it trusts."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from gingham.cni import endpoints, netconf, plugin, protocol
from gingham.cni.host import DirectHost
from gingham.cni.protocol import PluginError
from gingham.datastore.base import Undecodable
from gingham.datastore.url import parse_url

ENV = {"CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0", "CNI_NETNS": "/proc/self/ns/net"}
# Characters that break naive URL handling: the path, fragment, query and userinfo separators.
NASTY_PASSWORD = "p/a#s?s@w:o&r=d+%20 x"


def _conf(**extra: Any) -> dict[str, Any]:
    return {"cniVersion": "1.1.0", "name": "blue", "type": "gingham",
            "datastore": "sqlite:///nonexistent/gingham.db", "nodename": "h1",
            "ipam": {"type": "gingham-ipam"}} | extra  # fmt: skip


@pytest.fixture(autouse=True)
def _forget_secrets() -> Any:
    yield
    protocol._secrets.clear()


# -- network names --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../x", "", ".x", "-x", "_x", "a/b", "a b", "é", "a;b", "x\n"])
@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK", "GC", "STATUS"])
def test_a_network_name_outside_the_cni_grammar_is_refused(name: str, command: str) -> None:
    with pytest.raises(PluginError) as info:
        netconf.parse(command, _conf(name=name), ENV)
    assert info.value.code == 7
    assert "name" in info.value.msg


@pytest.mark.parametrize("name", [None, 5, ["blue"]])
def test_a_network_name_that_is_not_a_string_is_refused(name: object) -> None:
    with pytest.raises(PluginError) as info:
        netconf.parse("ADD", _conf(name=name), ENV)
    assert info.value.code == 7


@pytest.mark.parametrize("name", ["blue", "Blue.net_2-a", "k8s-pod-network", "0"])
def test_cni_network_names_are_accepted(name: str) -> None:
    assert netconf.parse("ADD", _conf(name=name), ENV).network == name


# -- GC's valid attachments -------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "missing",
        None,
        "c1",
        {"containerID": "c1", "ifname": "eth0"},
        ["c1"],
        [{"containerID": "c1"}],
        [{"ifname": "eth0"}],
        [{"containerID": "c1", "ifname": 5}],
        [{"containerID": "", "ifname": "eth0"}],
        [{"containerID": "c1", "ifname": "eth0"}, None],
    ],
)
def test_gc_refuses_anything_but_a_list_of_attachment_objects(value: object) -> None:
    conf = _conf() if value == "missing" else _conf(**{"cni.dev/valid-attachments": value})
    with pytest.raises(PluginError) as info:
        plugin.valid_attachments(conf)
    assert info.value.code == 7
    assert "cni.dev/valid-attachments" in info.value.msg


def test_gc_reads_the_valid_attachments() -> None:
    conf = _conf(**{"cni.dev/valid-attachments": [
        {"containerID": "c1", "ifname": "eth0"}, {"containerID": "c2", "ifname": "net1"}]})  # fmt: skip
    assert plugin.valid_attachments(conf) == {("c1", "eth0"), ("c2", "net1")}
    assert plugin.valid_attachments(_conf(**{"cni.dev/valid-attachments": []})) == set()


class _NoDatastore(DirectHost):
    """A host whose datastore must not be opened."""

    def session(self, inv: object) -> Any:
        raise AssertionError("the datastore was opened")


def test_gc_is_refused_before_the_datastore_is_opened() -> None:
    with pytest.raises(PluginError) as info:
        plugin.dispatch("GC", _conf(), {}, ipam_only=False, host=_NoDatastore())
    assert info.value.code == 7


# -- stored endpoints as DEL and GC read them -------------------------------------------


def _endpoint() -> dict[str, Any]:
    return {"apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
            "metadata": {"name": "h1-cni-w-eth0", "namespace": "ns", "labels": {"a": "b"},
                         "annotations": {plugin.NETWORK_ANNOTATION: "blue"}},
            "spec": {"node": "h1", "containerID": "c1", "workload": "w", "endpoint": "eth0",
                     "interfaceName": "gh0123456789a", "ipNetworks": ["198.18.0.1/32"]}}  # fmt: skip


def test_an_endpoint_as_add_writes_it_is_well_formed() -> None:
    assert plugin.endpoint_problem(_endpoint()) is None


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: Undecodable("{oops", "not JSON"), "not decodable"),
        (lambda d: ["a"], "not a JSON object"),
        (lambda d: d | {"kind": "NetworkPolicy"}, "kind"),
        (lambda d: d | {"spec": "oops"}, "spec"),
        (lambda d: d | {"metadata": None}, "metadata"),
        (lambda d: d | {"metadata": d["metadata"] | {"namespace": 5}}, "metadata.namespace"),
        (lambda d: d | {"metadata": d["metadata"] | {"annotations": {"x": 1}}}, "annotations"),
        (lambda d: d | {"metadata": d["metadata"] | {"labels": "a=b"}}, "labels"),
        (lambda d: d | {"spec": d["spec"] | {"interfaceName": 5}}, "interfaceName"),
        (lambda d: d | {"spec": d["spec"] | {"containerID": ["c1"]}}, "containerID"),
        (lambda d: d | {"spec": d["spec"] | {"node": {"h": 1}}}, "node"),
        (lambda d: d | {"spec": d["spec"] | {"ipNetworks": "198.18.0.1/32"}}, "ipNetworks"),
    ],
)
def test_malformed_endpoints_are_named_as_such(mutate: Any, reason: str) -> None:
    problem = plugin.endpoint_problem(mutate(_endpoint()))
    assert problem is not None and reason in problem


def test_endpoints_record_their_network() -> None:
    inv = netconf.parse("ADD", _conf(), ENV)
    doc = endpoints.endpoint_doc(inv, "ghabc", "02:00:00:00:00:01", ["198.18.0.1/32"])
    assert doc["metadata"]["annotations"] == {plugin.NETWORK_ANNOTATION: "blue"}
    assert plugin.endpoint_problem(doc) is None


# -- datastore credentials --------------------------------------------------------------


def _meaning(url: str) -> tuple[object, ...]:
    p = parse_url(url)
    return p.scheme, p.hosts, dict(p.options), p.user, p.password


@pytest.mark.parametrize(
    "url",
    [
        "etcd://10.0.0.1:2379,10.0.0.2:2379?user=gingham&password=p%2Fa%23s%3Fs%40w&timeout=3",
        "etcds://gingham:s3cret@host:2379?cacert=/etc/ca.pem&cert=/c.pem&key=/k.pem",
        "etcd://gingham:p/a#s?s@w@h1:2379,h2:2379?timeout=3",
        "etcd://host:2379?password=only",
        "etcd+unix:///run/etcd/sock:2379?user=u&password=p+w",
    ],
)
def test_split_and_join_credentials_keep_the_urls_meaning(url: str) -> None:
    public, creds = netconf.split_credentials(url)
    assert "password" not in public and creds["password"] not in public
    back = netconf.join_credentials(public, creds, "test")
    assert _meaning(back) == _meaning(url)


def test_a_sqlite_url_has_no_credentials() -> None:
    url = "sqlite:///var/lib/gingham/a@b.db?history=10"
    assert netconf.split_credentials(url) == (url, {})


def _creds_file(tmp_path: Path, doc: object, mode: int = 0o600) -> str:
    path = tmp_path / "10-blue.credentials"
    path.write_text(json.dumps(doc))
    os.chmod(path, mode)
    return str(path)


def test_the_plugin_puts_the_credentials_back_into_the_url(tmp_path: Path) -> None:
    path = _creds_file(tmp_path, {"user": "gingham", "password": NASTY_PASSWORD})
    conf = _conf(datastore="etcd://h:2379?timeout=3", datastoreCredentials=path)
    inv = netconf.parse("DEL", conf, ENV)
    parsed = parse_url(inv.datastore)
    assert (parsed.user, parsed.password, parsed.option("timeout")) == ("gingham", NASTY_PASSWORD, "3")
    assert NASTY_PASSWORD not in repr(inv)
    assert "***" in protocol.scrub(f"cannot reach {inv.datastore}")
    assert NASTY_PASSWORD not in protocol.scrub(f"x {NASTY_PASSWORD} y")


@pytest.mark.parametrize(
    ("doc", "mode", "words"),
    [
        ({"password": "x"}, 0o644, "chmod 600"),
        ({"password": "x"}, 0o640, "chmod 600"),
        ({"password": "x", "token": "y"}, 0o600, "unknown field 'token'"),
        ({"password": 5}, 0o600, "password"),
        (["x"], 0o600, "JSON object"),
    ],
)
def test_bad_credentials_files_are_refused(
    tmp_path: Path, doc: object, mode: int, words: str
) -> None:
    conf = _conf(datastore="etcd://h:2379", datastoreCredentials=_creds_file(tmp_path, doc, mode))
    with pytest.raises(PluginError) as info:
        netconf.parse("DEL", conf, ENV)
    assert info.value.code == 7 and words in info.value.msg
    assert "datastoreCredentials" in info.value.msg


def test_credentials_file_paths_must_be_absolute_existing_and_not_links(tmp_path: Path) -> None:
    real = _creds_file(tmp_path, {"password": "x"})
    link = tmp_path / "link"
    link.symlink_to(real)
    for path, words in (("rel/creds", "absolute"), (str(tmp_path / "none"), "cannot open"),
                        (str(link), "cannot open"), (5, "file path")):  # fmt: skip
        with pytest.raises(PluginError) as info:
            netconf.parse("DEL", _conf(datastore="etcd://h:2379", datastoreCredentials=path), ENV)
        assert info.value.code == 7 and words in info.value.msg, (path, info.value.msg)


def test_credentials_twice_or_for_sqlite_are_refused(tmp_path: Path) -> None:
    path = _creds_file(tmp_path, {"password": "x"})
    for url, words in (("etcd://u:y@h:2379", "both"), ("etcd://h:2379?password=y", "both"),
                       ("sqlite:///x.db", "takes none")):  # fmt: skip
        with pytest.raises(PluginError) as info:
            netconf.parse("DEL", _conf(datastore=url, datastoreCredentials=path), ENV)
        assert info.value.code == 7 and words in info.value.msg


def test_a_password_in_the_url_itself_is_scrubbed_too() -> None:
    netconf.parse("DEL", _conf(datastore="etcd://u:hunter2%2Fx@h:2379"), ENV)
    assert protocol.scrub("etcd://u:hunter2%2Fx@h and hunter2/x") == "etcd://u:***@h and ***"


@pytest.mark.parametrize(
    ("where", "value"),
    [("CNI_CONTAINERID", "c1\n"), ("CNI_IFNAME", "eth0\n"), ("K8S_POD_NAME", "web\n"),
     ("K8S_POD_NAMESPACE", "ns\n")],
)  # fmt: skip
def test_a_trailing_newline_does_not_slip_past_a_name_check(where: str, value: str) -> None:
    env = dict(ENV)
    if where.startswith("K8S"):
        env["CNI_ARGS"] = f"{where}={value}"
    else:
        env[where] = value
    with pytest.raises(PluginError):
        netconf.parse("ADD", _conf(), env)


def test_gc_as_another_plugins_ipam_releases_nothing() -> None:
    conf = _conf(**{"cni.dev/valid-attachments": []})
    assert plugin.dispatch("GC", conf, {}, ipam_only=True, host=_NoDatastore()) is None
    with pytest.raises(PluginError):
        plugin.dispatch("GC", _conf(), {}, ipam_only=True, host=_NoDatastore())
