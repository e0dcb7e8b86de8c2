"""An unknown field names the closest field that model has at that path."""

from __future__ import annotations

from typing import Any

import pytest

from gingham.model import GlobalNetworkPolicy, IPPool, salvage_document
from gingham.model.translate import allowed_fields
from gingham.suggest import closest, did_you_mean

from .helpers import API, doc, problems

K8S = "networking.k8s.io/v1"


def _with(document: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {**document, **top}


CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("spec field", doc("GlobalNetworkPolicy", {"selecter": "all()"}),
     "spec.selecter", "unknown field; did you mean 'selector'?"),
    ("top-level field", _with(doc("Tier"), spce={}), "spce",
     "unknown field; did you mean 'spec'?"),
    ("metadata field", _with(doc("Tier"), metadata={"name": "t", "lables": {}}),
     "metadata.lables", "unknown field; did you mean 'labels'?"),
    ("inside a rule, inside a list", doc("GlobalNetworkPolicy", {"ingress": [
        {"action": "Allow"}, {"action": "Allow", "destination": {"notPort": [80]}}]}),
     "spec.ingress[1].destination.notPort", "unknown field; did you mean 'notPorts'?"),
    ("case only", doc("IPPool", {"cidr": "198.18.0.0/16", "blocksize": 26}),
     "spec.blocksize", "unknown field; did you mean 'blockSize'?"),
    ("acronym", doc("BGPPeer", {"peerIp": "192.0.2.1", "asNumber": 64512}),
     "spec.peerIp", "unknown field; did you mean 'peerIP'?"),
    ("Kubernetes policy", doc("NetworkPolicy", {"podSelecter": {}}, namespace="shop", api=K8S),
     "spec.podSelecter", "unknown field; did you mean 'podSelector'?"),
    ("Python keyword field", doc("NetworkPolicy", {"ingress": [{"form": []}]},
                                 namespace="shop", api=K8S),
     "spec.ingress[0].form", "unknown field; did you mean 'from'?"),
    ("nothing close", doc("GlobalNetworkPolicy", {"zzzzzz": 1}), "spec.zzzzzz", "unknown field"),
    ("a Calico feature gingham has not", doc("FelixConfiguration", {"bpfEnabledd": True},
                                             name="default"),
     "spec.bpfEnabledd", "unknown field: the eBPF dataplane is not supported by gingham: "
                         "it programs nftables (table inet gingham); remove the field"),
]


@pytest.mark.parametrize(("what", "document", "path", "message"), CASES,
                         ids=[c[0] for c in CASES])
def test_unknown_field_message(what: str, document: dict[str, Any], path: str,
                               message: str) -> None:
    assert problems(document)[path] == message


def test_allowed_fields_walks_models_lists_and_optionals() -> None:
    assert allowed_fields(GlobalNetworkPolicy, ()) == ["apiVersion", "kind", "metadata", "spec"]
    assert "notICMP" in allowed_fields(GlobalNetworkPolicy, ("spec", "egress", 3))
    assert "notSelector" in allowed_fields(GlobalNetworkPolicy,
                                           ("spec", "egress", 0, "source"))
    assert "blockSize" in allowed_fields(IPPool, ("spec",))
    assert allowed_fields(GlobalNetworkPolicy, ("spec", "order")) == []  # not a model


def test_salvage_still_drops_unknown_fields_with_a_guess() -> None:
    found = salvage_document({"apiVersion": API, "kind": "IPPool", "metadata": {"name": "p"},
                              "spec": {"cidr": "198.18.0.0/16", "blocksize": 26}})
    assert found is not None and found[1] == ["spec.blocksize"]


def test_closest() -> None:
    assert closest("selecter", ["selector", "order", "tier"]) == "selector"
    assert closest("PEERIP", ["peerIP", "peerSelector"]) == "peerIP"
    assert closest("xyz", ["selector"]) is None
    assert closest("selector", []) is None
    assert did_you_mean("tyeps", ["types", "tier"]) == "; did you mean 'types'?"
    assert did_you_mean("types", ["types"]) == ""
    assert did_you_mean("q", ["types"]) == ""
