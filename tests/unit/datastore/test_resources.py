"""ResourceStore: typed CRUD over the datastore (sqlite; the contract suite covers etcd)."""

from __future__ import annotations

import pytest

from gingham.datastore import Datastore, keys
from gingham.datastore.resources import ResourceStore
from gingham.errors import AlreadyExists, NotFound, RevisionConflict, ValidationError
from gingham.model import load_manifests, to_dict

MANIFESTS = """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: allow-dns}
spec:
  order: 100
  selector: all()
  egress:
    - action: Allow
      protocol: UDP
      destination: {ports: [53]}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  selector: app == 'web'
  ingress: [{action: Allow, protocol: TCP, destination: {ports: [80]}}]
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: db}
spec:
  selector: app == 'db'
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: a}}
"""


@pytest.fixture
def rs(sqlite_store: Datastore) -> ResourceStore:
    return ResourceStore(sqlite_store, now=lambda: "2026-01-01T00:00:00Z", new_uid=lambda: "u-1")


def test_create_get_list_and_keys(rs: ResourceStore, sqlite_store: Datastore) -> None:
    gnp, np_shop, np_default, knp, ns = load_manifests(MANIFESTS)
    for r in (gnp, np_shop, np_default, knp, ns):
        stored = rs.create(r)
        assert stored.metadata.resource_version is not None
    assert sqlite_store.get(keys.resource_key("GlobalNetworkPolicy", "allow-dns")) is not None
    assert sqlite_store.get(keys.resource_key("NetworkPolicy", "web", "shop")) is not None
    assert sqlite_store.get(keys.resource_key("NetworkPolicy", "db", "default")) is not None
    assert sqlite_store.get(keys.resource_key("KubernetesNetworkPolicy", "web", "shop")) is not None
    assert sqlite_store.get(keys.resource_key("Namespace", "shop")) is not None

    got = rs.get("gnp", "allow-dns")
    assert got.spec == gnp.spec
    assert got.metadata.uid == "u-1"
    assert got.metadata.creation_timestamp == "2026-01-01T00:00:00Z"
    kv = sqlite_store.get(keys.resource_key("GlobalNetworkPolicy", "allow-dns"))
    assert kv is not None
    assert got.metadata.resource_version == str(kv.mod_revision)
    assert "resourceVersion" not in kv.value["metadata"]

    # Calico's and Kubernetes' NetworkPolicy do not mix.
    assert [r.metadata.name for r in rs.list("networkpolicies", "shop")] == ["web"]
    assert [r.kind for r in rs.list("knp", "shop")] == ["NetworkPolicy"]
    assert [r.api_version for r in rs.list("knp", "shop")] == ["networking.k8s.io/v1"]
    assert [r.metadata.name for r in rs.list("np", "default")] == ["db"]
    everywhere = rs.list("NetworkPolicy")
    assert [(r.namespace, r.metadata.name) for r in everywhere] == [
        ("default", "db"),
        ("shop", "web"),
    ]
    assert [r.metadata.name for r in rs.list("namespace")] == ["shop"]


def test_create_twice_fails(rs: ResourceStore) -> None:
    gnp = load_manifests(MANIFESTS)[0]
    rs.create(gnp)
    with pytest.raises(AlreadyExists, match="GlobalNetworkPolicy allow-dns"):
        rs.create(gnp)


def test_replace_and_resource_version(rs: ResourceStore) -> None:
    gnp = load_manifests(MANIFESTS)[0]
    with pytest.raises(NotFound):
        rs.replace(gnp)
    first = rs.create(gnp)
    changed = to_dict(first)
    changed["spec"]["order"] = 5
    [edited] = load_manifests_from(changed)
    second = rs.replace(edited)  # carries first's resourceVersion: CAS succeeds
    assert second.spec.order == 5
    assert second.metadata.uid == first.metadata.uid
    stale = dict(changed, spec=dict(changed["spec"], order=6))
    [stale_res] = load_manifests_from(stale)  # still first's resourceVersion
    with pytest.raises(RevisionConflict):
        rs.replace(stale_res)
    assert rs.get("gnp", "allow-dns").spec.order == 5
    # Without a resourceVersion the latest write wins.
    no_version = dict(stale, metadata={"name": "allow-dns"})
    [latest] = load_manifests_from(no_version)
    assert rs.replace(latest).spec.order == 6


def load_manifests_from(doc: dict) -> list:  # type: ignore[type-arg]
    import json

    return load_manifests(json.dumps(doc))


def test_apply_creates_then_updates(rs: ResourceStore) -> None:
    gnp = load_manifests(MANIFESTS)[0]
    a = rs.apply(gnp)
    b = rs.apply(gnp)
    assert int(b.metadata.resource_version or 0) > int(a.metadata.resource_version or 0)
    assert b.metadata.creation_timestamp == a.metadata.creation_timestamp


def test_delete(rs: ResourceStore) -> None:
    np_shop = load_manifests(MANIFESTS)[1]
    stored = rs.create(np_shop)
    with pytest.raises(NotFound):
        rs.delete("np", "web")  # default namespace: not there
    with pytest.raises(RevisionConflict):
        rs.delete("np", "web", "shop", resource_version="99999")
    gone = rs.delete("np", "web", "shop", resource_version=stored.metadata.resource_version)
    assert gone.metadata.name == "web"
    with pytest.raises(NotFound):
        rs.get("np", "web", "shop")


def test_bad_names(rs: ResourceStore) -> None:
    with pytest.raises(ValidationError, match="unknown resource type"):
        rs.list("nosuchkind")
    with pytest.raises(ValidationError, match="cluster-scoped"):
        rs.get("gnp", "x", "shop")


def test_stored_garbage_is_reported_with_its_key(
    rs: ResourceStore, sqlite_store: Datastore
) -> None:
    key = keys.resource_key("GlobalNetworkPolicy", "junk")
    sqlite_store.create(key, {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy"})
    with pytest.raises(ValidationError, match=key):
        rs.list("gnp")


def test_invalid_stored_values_are_read_and_deleted(rs: ResourceStore, sqlite_store: Datastore) -> None:
    from gingham.datastore.resources import InvalidStoredResource

    key = keys.resource_key("NetworkPolicy", "bad", "shop")
    sqlite_store.put_raw(key, b"{not json")
    with pytest.raises(ValidationError, match="does not decode: not JSON"):
        rs.get("np", "bad", "shop")
    found = rs.get_any("np", "bad", "shop")
    assert isinstance(found, InvalidStoredResource)
    assert (found.key, found.name, found.namespace, found.raw) == (key, "bad", "shop", "{not json")
    assert found.kind == "NetworkPolicy"
    # A document with metadata of the wrong shape is invalid, not a crash.
    sqlite_store.put_raw(
        keys.resource_key("NetworkPolicy", "odd", "shop"),
        b'{"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy", "metadata": [1]}',
    )
    listed = rs.list_any("np", "shop")
    assert [type(r).__name__ for r in listed] == ["InvalidStoredResource"] * 2
    gone = rs.delete("np", "bad", "shop")
    assert isinstance(gone, InvalidStoredResource) and sqlite_store.get(key) is None
