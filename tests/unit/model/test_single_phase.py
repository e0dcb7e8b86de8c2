"""One validation phase: type errors and the semantic problems of the fields that did
parse are listed together, so fixing one does not reveal the next."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import model_validator

from gingham.model import ManifestError, load_manifests
from gingham.model.meta import Model, ProblemList

from .helpers import doc, problems


def gnp(**spec: Any) -> dict[str, Any]:
    return doc("GlobalNetworkPolicy", spec, name="p")


def test_types_and_semantics_of_every_level_are_listed_together() -> None:
    found = problems(gnp(
        selector="app == 'x",  # a bad selector
        doNotTrack=True, preDNAT=True, applyOnForward=True,  # a spec-level conflict
        ingress=[
            {"action": "Allow", "destination": {"ports": [80]}},  # ports without protocol
            {"action": 7},  # a wrong type in another rule
        ],
    ))
    assert found == {
        "spec.selector": "invalid selector \"app == 'x\": unterminated string at position 7",
        "spec.ingress[0].destination.ports": "ports need protocol TCP, UDP or SCTP",
        "spec.ingress[1].action": "Input should be 'Allow', 'Deny', 'Log' or 'Pass', "
                                  "got int 7",
        "spec.preDNAT": "doNotTrack and preDNAT cannot both be true",
    }


def test_a_bad_selector_in_one_rule_and_a_wrong_type_in_another() -> None:
    found = problems(gnp(
        types=["Ingress", "Ingress"],
        ingress=[
            {"action": "Allow", "source": {"selector": "a = 'b'"}},
            {"action": "Deny", "protocol": {"tcp": True}},
        ],
    ))
    assert set(found) == {"spec.ingress[0].source.selector", "spec.ingress[1].protocol",
                          "spec.types[1]"}
    assert "'=='" in found["spec.ingress[0].source.selector"]
    assert found["spec.types[1]"] == "'Ingress' listed more than once"


def test_a_type_error_and_a_semantic_problem_in_the_same_rule() -> None:
    found = problems(gnp(ingress=[{
        "action": "Allow",
        "icmp": {"type": "echo"},  # a wrong type
        "destination": {"ports": [443]},  # and, apart from it, ports without protocol
    }]))
    assert set(found) == {"spec.ingress[0].icmp.type", "spec.ingress[0].destination.ports"}


def test_a_check_that_needs_a_failed_field_is_skipped_not_guessed() -> None:
    """With the protocol unreadable, whether the ports need one cannot be known."""
    found = problems(gnp(ingress=[{"action": "Allow", "protocol": ["TCP"],
                                   "destination": {"ports": [80]}}]))
    assert list(found) == ["spec.ingress[0].protocol"]


def test_unknown_fields_no_longer_hide_semantic_problems() -> None:
    found = problems(gnp(selecter="all()", doNotTrack=True))
    assert found == {
        "spec.selecter": "unknown field; did you mean 'selector'?",
        "spec.applyOnForward": "must be true when doNotTrack or preDNAT is true",
    }


def test_resource_level_checks_run_beside_spec_type_errors() -> None:
    found = problems(doc("Tier", {"order": "first"}, name="gingham-quarantine"))
    assert set(found) == {"metadata.name", "spec.order"}
    assert "reserved" in found["metadata.name"]


@pytest.mark.parametrize(("kind", "spec", "expected"), [
    ("IPPool", {"cidr": "198.18.0.0/16", "blockSize": "26", "allowedUses": ["Workload"] * 2},
     {"spec.blockSize", "spec.allowedUses"}),
    ("BGPPeer", {"peerIP": "192.0.2.1", "peerSelector": "all()", "asNumber": 64512,
                 "ttlSecurity": "1"},
     {"spec.peerSelector", "spec.ttlSecurity"}),
    ("FelixConfiguration", {"vxlanVNI": 99999999, "healthPort": "9099"},
     {"spec.vxlanVNI", "spec.healthPort"}),
    ("HostEndpoint", {"node": ["h1"], "interfaceName": "this-name-is-far-too-long"},
     {"spec.node", "spec.interfaceName"}),
])
def test_other_kinds(kind: str, spec: dict[str, Any], expected: set[str]) -> None:
    assert set(problems(doc(kind, spec, name="default"))) == expected


def test_every_document_of_a_file_is_checked_in_one_phase() -> None:
    text = """\
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: a}
spec: {doNotTrack: true, order: high}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: b}
spec: {cidr: 198.18.0.0/16, allowedUses: [LoadBalancer, Workload], disabled: "no"}
"""
    with pytest.raises(ManifestError) as info:
        load_manifests(text)
    assert [(p.location, p.path) for p in info.value.problems] == [
        ("doc 1 (GlobalNetworkPolicy a)", "spec.order"),
        ("doc 1 (GlobalNetworkPolicy a)", "spec.applyOnForward"),
        ("doc 2 (IPPool b)", "spec.disabled"),
        ("doc 2 (IPPool b)", "spec.allowedUses"),
    ]


class _Buggy(Model):
    value: int = 0

    @model_validator(mode="after")
    def _check(self) -> _Buggy:
        problems = ProblemList()
        with problems.part():
            getattr(self, "no_such_field")  # noqa: B009 - a bug: the attribute never exists
        problems.raise_if_any()
        return self


def test_a_bug_in_a_check_is_not_taken_for_a_failed_field() -> None:
    """Only while checking a partial model is an AttributeError a failed field's."""
    with pytest.raises(AttributeError):
        _Buggy.model_validate({"value": 1})
