"""What calicoctl and kubectl export loads as it is: list kinds, server-set metadata, status."""

from __future__ import annotations

import re

import pytest

from gingham.model import (
    GlobalNetworkPolicy,
    IPPool,
    KubernetesNetworkPolicy,
    ManifestError,
    Namespace,
    NetworkPolicy,
    dump_yaml,
    load_manifests,
    to_dict,
)

# `calicoctl get globalnetworkpolicies -o yaml`
CALICOCTL_GNPS = """\
apiVersion: projectcalico.org/v3
items:
- apiVersion: projectcalico.org/v3
  kind: GlobalNetworkPolicy
  metadata:
    creationTimestamp: "2024-05-01T10:00:00Z"
    name: allow-dns
    resourceVersion: "1203"
    uid: 5d2a54a4-6c57-4b7e-9d8c-1b4a3b8e6a10
  spec:
    egress:
    - action: Allow
      destination:
        ports: [53]
      protocol: UDP
    order: 100
    selector: all()
    types: [Egress]
- apiVersion: projectcalico.org/v3
  kind: GlobalNetworkPolicy
  metadata:
    name: deny-rest
    resourceVersion: "1204"
  spec:
    order: 1000
    selector: all()
kind: GlobalNetworkPolicyList
metadata:
  resourceVersion: "1210"
"""

# `kubectl get networkpolicies,namespaces -o yaml`
KUBECTL_EXPORT = """\
apiVersion: v1
items:
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata:
    annotations:
      kubectl.kubernetes.io/last-applied-configuration: |
        {"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"annotations":{},"name":"db","namespace":"shop"},"spec":{"podSelector":{"matchLabels":{"tier":"db"}}}}
    creationTimestamp: "2024-05-01T10:00:00Z"
    generation: 1
    managedFields:
    - apiVersion: networking.k8s.io/v1
      fieldsType: FieldsV1
      fieldsV1:
        f:spec:
          f:podSelector: {}
      manager: kubectl-client-side-apply
      operation: Update
      time: "2024-05-01T10:00:00Z"
    name: db
    namespace: shop
    resourceVersion: "88213"
    uid: 0b7d7f6e-3c1e-4a55-8b5e-0f8d2f1c9a77
  spec:
    ingress:
    - from:
      - podSelector:
          matchLabels:
            tier: back
      ports:
      - port: 5432
        protocol: TCP
    podSelector:
      matchLabels:
        tier: db
    policyTypes:
    - Ingress
  status: {}
- apiVersion: v1
  kind: Namespace
  metadata:
    creationTimestamp: "2024-05-01T09:00:00Z"
    labels:
      kubernetes.io/metadata.name: shop
    name: shop
    resourceVersion: "88100"
    uid: 9f0c2f4e-1111-4e0b-a2f5-6c1e2e3d4f50
  spec:
    finalizers:
    - kubernetes
  status:
    phase: Active
kind: List
metadata:
  resourceVersion: ""
"""


def test_calicoctl_list_export_loads_its_items() -> None:
    policies = load_manifests(CALICOCTL_GNPS)
    assert [type(p) for p in policies] == [GlobalNetworkPolicy, GlobalNetworkPolicy]
    assert [p.name for p in policies] == ["allow-dns", "deny-rest"]
    # The list's own resourceVersion describes the listing, not the items.
    assert [p.metadata.resource_version for p in policies] == ["1203", "1204"]


def test_kubectl_export_with_status_and_server_metadata_loads() -> None:
    policy, namespace = load_manifests(KUBECTL_EXPORT)
    assert isinstance(policy, KubernetesNetworkPolicy) and isinstance(namespace, Namespace)
    assert policy.metadata.generation == 1 and policy.metadata.managed_fields
    assert "status" not in to_dict(policy)  # an empty status is nothing to keep
    assert namespace.status == {"phase": "Active"}  # a Namespace has one
    assert load_manifests(dump_yaml([policy, namespace])) == [policy, namespace]


@pytest.mark.parametrize(("list_kind", "api", "item", "model"), [
    ("NetworkPolicyList", "projectcalico.org/v3",
     "metadata: {name: p, namespace: shop}\n    spec: {selector: all()}", NetworkPolicy),
    ("IPPoolList", "projectcalico.org/v3",
     "metadata: {name: pool}\n    spec: {cidr: 198.18.0.0/16}", IPPool),
    ("NetworkPolicyList", "networking.k8s.io/v1",
     "metadata: {name: p, namespace: shop}\n    spec: {podSelector: {}}",
     KubernetesNetworkPolicy),
])
def test_typed_list_items_may_leave_out_what_the_list_implies(
        list_kind: str, api: str, item: str, model: type) -> None:
    text = f"apiVersion: {api}\nkind: {list_kind}\nitems:\n  - {item}\n"
    [resource] = load_manifests(text)
    assert type(resource) is model


def test_errors_inside_items_name_the_document_and_the_item() -> None:
    text = CALICOCTL_GNPS.replace("order: 1000", "order: last")
    with pytest.raises(ManifestError) as info:
        load_manifests("apiVersion: v1\nkind: List\nitems: []\n---\n" + text)
    [problem] = info.value.problems
    assert (problem.location, problem.path) == ("doc 2 item 2 (GlobalNetworkPolicy deny-rest)",
                                                "spec.order")
    assert str(problem).startswith("doc 2 item 2 (GlobalNetworkPolicy deny-rest): spec.order: ")


def test_an_item_of_another_kind_is_named() -> None:
    text = CALICOCTL_GNPS.replace("kind: GlobalNetworkPolicy\n  metadata:\n    name: deny-rest",
                                  "kind: NetworkPolicy\n  metadata:\n    name: deny-rest")
    with pytest.raises(ManifestError) as info:
        load_manifests(text)
    [problem] = info.value.problems
    assert (problem.location, problem.path) == ("doc 1 item 2 (NetworkPolicy deny-rest)", "kind")
    assert problem.message == ("a GlobalNetworkPolicyList holds only GlobalNetworkPolicy "
                               "(projectcalico.org/v3) items, not NetworkPolicy "
                               "(projectcalico.org/v3)")


def test_an_item_of_another_api_group_is_named() -> None:
    text = ("apiVersion: projectcalico.org/v3\nkind: NetworkPolicyList\nitems:\n"
            "- {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy,"
            " metadata: {name: p, namespace: shop}}\n")
    with pytest.raises(ManifestError, match=re.escape("not NetworkPolicy (networking.k8s.io/v1)")):
        load_manifests(text)


@pytest.mark.parametrize(("text", "path", "message"), [
    ("kind: List\nitems: {a: 1}\n", "items", "must be a list, got dict"),
    ("kind: List\nitmes: []\n", "itmes", "unknown field; did you mean 'items'?"),
    ("kind: List\nmetadata: [1]\nitems: []\n", "metadata", "must be a mapping"),
    ("apiVersion: projectcalico.org/v3\nkind: IPPoolList\nitems: []\nspec: {}\n", "spec",
     "unknown field"),
])
def test_list_shape_problems(text: str, path: str, message: str) -> None:
    with pytest.raises(ManifestError) as info:
        load_manifests(text)
    [problem] = info.value.problems
    assert (problem.path, problem.message) == (path, message)
    assert problem.location.startswith("doc 1 (")


def test_empty_lists_and_unknown_list_kinds() -> None:
    assert load_manifests("apiVersion: v1\nkind: List\nitems: []\nmetadata: {}\n") == []
    assert load_manifests("apiVersion: projectcalico.org/v3\nkind: TierList\nitems:\n") == []
    with pytest.raises(ManifestError, match="unknown kind 'PodList'"):
        load_manifests("apiVersion: v1\nkind: PodList\nitems: []\n")


def test_a_status_with_content_is_refused_by_name_with_the_other_problems() -> None:
    text = """\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: pool}
spec: {cidr: 198.18.0.0/16, blockSize: huge}
status: {allocated: 12}
"""
    with pytest.raises(ManifestError) as info:
        load_manifests(text)
    assert {(p.path, p.message) for p in info.value.problems} == {
        ("status", "status is written by the system, not by manifests; remove it"),
        ("spec.blockSize", "Input should be a valid integer, got str 'huge'"),
    }


@pytest.mark.parametrize("status", ["{}", "null", "{phase: Active}"])
def test_namespace_status_and_empty_status(status: str) -> None:
    ns = f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: shop}}\nstatus: {status}\n"
    pool = f"apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: p}}\n" \
           f"spec: {{cidr: 198.18.0.0/16}}\nstatus: {status}\n"
    assert load_manifests(ns)
    if status == "{phase: Active}":
        with pytest.raises(ManifestError, match="status is written by the system"):
            load_manifests(pool)
    else:
        assert load_manifests(pool)


def test_server_set_metadata_of_a_deleted_object_loads() -> None:
    text = """\
apiVersion: projectcalico.org/v3
kind: Tier
metadata:
  name: t
  deletionTimestamp: "2024-05-01T10:00:00Z"
  deletionGracePeriodSeconds: 0
  finalizers: [example.com/keep]
"""
    [tier] = load_manifests(text)
    assert tier.metadata.deletion_grace_period_seconds == 0
