"""``policy explain`` reads invalid stored documents the way a starting agent does."""

from __future__ import annotations

import uuid

from gingham.datastore import keys, open_datastore
from gingham.datastore.resources import ResourceStore
from gingham.model import QUARANTINE_TIER, load_manifests
from gingham.policy.explain import explain
from gingham.policy.world import load_world
from tests.unit.policy.test_explain import NAMESPACES, PODS


def test_a_policy_that_never_validated_is_quarantined_not_absent() -> None:
    ds = open_datastore(f"memory://explain-invalid-{uuid.uuid4()}", create=True)
    try:
        store = ResourceStore(ds)
        for resource in load_manifests(NAMESPACES + PODS):
            store.apply(resource)
        assert explain(load_world(ds), "x/a", "y/b", 80).allowed
        # A newer writer's policy, isolating y's web pods: this version cannot read it.
        ds.create(keys.resource_key("NetworkPolicy", "iso", "y"), {
            "apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
            "metadata": {"name": "iso", "namespace": "y"},
            "spec": {"selector": "app == 'web'", "types": ["Ingress"], "quantumRules": []}})
        verdict = explain(load_world(ds), "x/a", "y/b", 80)
        assert not verdict.allowed
        assert verdict.ingress.tier == QUARANTINE_TIER
        assert explain(load_world(ds), "x/a", "y/a", 80).allowed  # not selected
    finally:
        ds.close()
