"""BGP settings in the model: per-node BGPConfiguration, communities, password files."""

from __future__ import annotations

import pytest

from gingham.model import BGPConfiguration, BGPPeer
from gingham.model.network import community_problem

from .helpers import doc, ok, problems


def bgp(name: str, **spec: object) -> dict[str, object]:
    return doc("BGPConfiguration", dict(spec), name=name)


def test_a_per_node_configuration_sets_only_what_calico_lets_it() -> None:
    node = ok(bgp("node.h1", listenPort=1790, logSeverityScreen="Debug",
                  communities=[{"name": "rack", "value": "64512:7"}],
                  prefixAdvertisements=[{"cidr": "198.18.0.0/16", "communities": ["rack"]}]))
    assert isinstance(node, BGPConfiguration) and node.node_name == "h1"
    assert ok(bgp("default")).node_name is None  # type: ignore[attr-defined]
    found = problems(bgp("node.h1", asNumber=65000, nodeToNodeMeshEnabled=False,
                         serviceClusterIPs=[{"cidr": "198.19.0.0/16"}]))
    assert set(found) == {"spec.asNumber", "spec.nodeToNodeMeshEnabled", "spec.serviceClusterIPs"}
    assert all("set this in the one named default" in m for m in found.values())
    # No other name is read, so none is accepted.
    for name in ("global", "nodes.h1"):
        assert "named default" in problems(bgp(name))["metadata.name"]


@pytest.mark.parametrize(("value", "problem"), [
    ("64512:100", None),
    ("65535:65535", None),
    ("4294967295:1:2", None),
    ("65536:1", "at most 65535"),
    ("1:2:4294967296", "at most 4294967295"),
    ("64512", "aa:nn or aa:nn:mm"),
    ("a:b", "aa:nn or aa:nn:mm"),
    ("1:2:3:4", "aa:nn or aa:nn:mm"),
    ("\uff11:2", "aa:nn or aa:nn:mm"),  # a full-width digit is not one BIRD reads
])
def test_community_values(value: str, problem: str | None) -> None:
    got = community_problem(value)
    assert (got is None) if problem is None else (got is not None and problem in got)


def test_prefix_advertisements_name_communities_of_their_own_resource() -> None:
    conf = ok(bgp("default",
                  communities=[{"name": "big", "value": "64512:300:100"},
                               {"name": "std", "value": "64512:120"}],
                  prefixAdvertisements=[{"cidr": "198.18.0.0/16",
                                         "communities": ["big", "64512:9", "std", "big"]}]))
    assert isinstance(conf, BGPConfiguration)
    ad = conf.spec.prefix_advertisements[0]
    assert conf.spec.community_values(ad.communities) == ("64512:300:100", "64512:9",
                                                          "64512:120")
    found = problems(bgp("default", communities=[{"name": "a", "value": "1:1"},
                                                 {"name": "a", "value": "1:2"}],
                         prefixAdvertisements=[{"cidr": "198.18.0.0/16",
                                                "communities": ["missing"]}]))
    assert "defined twice" in found["spec.communities[1].name"]
    assert "neither a community value" in found["spec.prefixAdvertisements[0].communities[0]"]
    assert "aa:nn" in problems(bgp("default", communities=[{"name": "x", "value": "1"}]))[
        "spec.communities[0].value"]


def test_a_peer_password_comes_from_a_file() -> None:
    peer = ok(doc("BGPPeer", {"peerIP": "192.0.2.1", "asNumber": 64513,
                              "password": {"file": "/etc/gingham/tor.pass"}}))
    assert isinstance(peer, BGPPeer) and peer.spec.password is not None
    assert peer.spec.password.file == "/etc/gingham/tor.pass"

    def password(value: object) -> dict[str, str]:
        return problems(doc("BGPPeer", {"peerIP": "192.0.2.1", "asNumber": 64513,
                                        "password": value}))

    assert "absolute path" in password({"file": "tor.pass"})["spec.password.file"]
    assert "needs file" in password({})["spec.password"]
    refused = password({"secretKeyRef": {"name": "s", "key": "k"}})["spec.password.secretKeyRef"]
    assert "no secret store" in refused and "use file" in refused
