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
    changed = to_dict(gnp)
    changed["spec"]["order"] = 7
    [edited] = load_manifests_from(changed)
    b = rs.apply(edited)
    assert int(b.metadata.resource_version or 0) > int(a.metadata.resource_version or 0)
    assert b.metadata.creation_timestamp == a.metadata.creation_timestamp
    assert b.metadata.uid == a.metadata.uid


def test_an_unchanged_apply_or_replace_writes_nothing(
    rs: ResourceStore, sqlite_store: Datastore
) -> None:
    gnp = load_manifests(MANIFESTS)[0]
    first = rs.apply_tracked(gnp)
    assert first.created and first.changed
    revision = sqlite_store.revision()
    again = rs.apply_tracked(gnp)
    assert not again.changed and again.before is not None
    assert again.resource.metadata.resource_version == first.resource.metadata.resource_version
    # As read back (server-set uid, creationTimestamp, resourceVersion): still unchanged.
    [read_back] = load_manifests_from(to_dict(rs.get("gnp", "allow-dns")))
    assert not rs.apply_tracked(read_back).changed
    assert not rs.replace_tracked(gnp).changed
    assert sqlite_store.revision() == revision  # no new revision: no watcher hears of it
    changed = to_dict(gnp)
    changed["metadata"]["labels"] = {"a": "b"}
    [labelled] = load_manifests_from(changed)
    assert rs.replace_tracked(labelled).changed
    assert sqlite_store.revision() == revision + 1


def test_apply_honours_a_resource_version(rs: ResourceStore, sqlite_store: Datastore) -> None:
    gnp = load_manifests(MANIFESTS)[0]
    read = to_dict(rs.apply(gnp))  # carries the resourceVersion read
    newer = dict(read, spec=dict(read["spec"], order=1))
    [newer_res] = load_manifests_from(newer)
    assert rs.apply(newer_res).spec.order == 1  # at the version read: written
    stale = dict(read, spec=dict(read["spec"], order=2))
    [stale_res] = load_manifests_from(stale)
    revision = sqlite_store.revision()
    with pytest.raises(RevisionConflict, match="allow-dns: the object has been modified"):
        rs.apply(stale_res)
    assert sqlite_store.revision() == revision
    assert rs.get("gnp", "allow-dns").spec.order == 1
    # An absent resource is created whatever version its manifest carries (an export
    # applied to another datastore), as calicoctl does.
    rs.delete("gnp", "allow-dns")
    assert rs.apply(stale_res).spec.order == 2


def test_dry_runs_check_and_write_nothing(rs: ResourceStore, sqlite_store: Datastore) -> None:
    gnp = load_manifests(MANIFESTS)[0]
    revision = sqlite_store.revision()
    assert rs.apply_tracked(gnp, dry_run=True).created
    assert rs.create(gnp, dry_run=True).spec.order == 100
    with pytest.raises(NotFound):
        rs.replace_tracked(gnp, dry_run=True)
    assert sqlite_store.revision() == revision
    stored = rs.create(gnp)
    revision = sqlite_store.revision()
    with pytest.raises(AlreadyExists):
        rs.create(gnp, dry_run=True)
    changed = dict(to_dict(stored), spec={"order": 3, "selector": "all()"})
    [edited] = load_manifests_from(changed)
    outcome = rs.replace_tracked(edited, dry_run=True)
    assert outcome.changed and outcome.resource.spec.order == 3
    with pytest.raises(RevisionConflict):
        rs.delete("gnp", "allow-dns", resource_version="99999", dry_run=True)
    assert rs.delete("gnp", "allow-dns", dry_run=True).metadata.name == "allow-dns"
    assert sqlite_store.revision() == revision
    assert rs.get("gnp", "allow-dns").spec.order == 100


def _set_order(order: int):  # type: ignore[no-untyped-def]
    def edit(doc: dict) -> dict:  # type: ignore[type-arg]
        doc["spec"]["order"] = order
        return doc

    return edit


def test_modify_edits_validates_and_compares_and_swaps(
    rs: ResourceStore, sqlite_store: Datastore
) -> None:
    gnp = load_manifests(MANIFESTS)[0]
    rs.create(gnp)
    done = rs.modify("gnp", "allow-dns", None, _set_order(5))
    assert done.changed and rs.get("gnp", "allow-dns").spec.order == 5
    revision = sqlite_store.revision()
    assert not rs.modify("gnp", "allow-dns", None, _set_order(5)).changed
    assert rs.modify("gnp", "allow-dns", None, _set_order(6), dry_run=True).changed
    assert sqlite_store.revision() == revision

    def bad(doc: dict) -> dict:  # type: ignore[type-arg]
        doc["spec"]["egress"][0]["protocol"] = "Carrier-Pigeon"
        return doc

    with pytest.raises(ValidationError, match=r"spec\.egress\[0\]\.protocol"):
        rs.modify("gnp", "allow-dns", None, bad)

    def rename(doc: dict) -> dict:  # type: ignore[type-arg]
        doc["metadata"]["name"] = "other"
        return doc

    with pytest.raises(ValidationError, match=r"metadata\.name: cannot be changed"):
        rs.modify("gnp", "allow-dns", None, rename)

    def pinned(doc: dict) -> dict:  # type: ignore[type-arg]
        doc["metadata"]["resourceVersion"] = "1"
        doc["spec"]["order"] = 9
        return doc

    with pytest.raises(RevisionConflict, match="the object has been modified"):
        rs.modify("gnp", "allow-dns", None, pinned)
    assert sqlite_store.revision() == revision
    with pytest.raises(NotFound):
        rs.modify("gnp", "nope", None, _set_order(1))


def test_modify_re_reads_and_re_edits_after_a_lost_race(sqlite_store: Datastore) -> None:
    from gingham.datastore.retry import Backoff

    from .racing import Racing

    ResourceStore(sqlite_store).create(load_manifests(MANIFESTS)[0])
    racing = Racing(sqlite_store, races=2)
    seen: list[int] = []

    def edit(doc: dict) -> dict:  # type: ignore[type-arg]
        seen.append(int(doc["metadata"]["resourceVersion"]))
        doc["spec"]["order"] = 42
        return doc

    rs = ResourceStore(racing, backoff=Backoff(lambda _: None))  # type: ignore[arg-type]
    assert rs.modify("gnp", "allow-dns", None, edit).changed
    assert len(seen) == 3 and seen[0] < seen[1] < seen[2]  # each attempt edits a new read
    assert ResourceStore(sqlite_store).get("gnp", "allow-dns").spec.order == 42
    racing.races = 10**6
    with pytest.raises(RevisionConflict, match="gave up after 5"):
        rs.modify("gnp", "allow-dns", None, _set_order(1))


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
