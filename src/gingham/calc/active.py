"""Active-rules calculator: which policies and profiles this host needs.

A policy is *active* while its (already scoped) selector matches at least one
local endpoint; a profile is active while at least one local endpoint names
it. Only active policies and profiles reach the rule scanner and the
dataplane. Matching uses a :class:`~gingham.selector.SelectorIndex` of policy
selectors against local endpoints' labels, so an endpoint update evaluates
only the policies that could match it, and a policy update only the
endpoints that could.

The calculator tells a :class:`ActiveRulesListener` about every change; for a
policy that changes identity (its tier) while active, the new identity is
reported active before the old one inactive, so references shared by both
never drop to zero.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Protocol

from gingham.calc.inputs import ResourceKey
from gingham.calc.policies import PolicyDef
from gingham.calc.refcount import RefCounter
from gingham.selector import SelectorIndex

EndpointKey = Hashable


class ActiveRulesListener(Protocol):
    def policy_active(self, pdef: PolicyDef) -> None:
        """``pdef`` is active (newly, or its content changed while active)."""

    def policy_inactive(self, pdef: PolicyDef) -> None: ...

    def profile_active(self, name: str) -> None: ...

    def profile_inactive(self, name: str) -> None: ...

    def endpoint_changed(self, ep: EndpointKey) -> None:
        """The set of policies matching ``ep`` (or their content) may have changed."""


class ActiveRulesCalculator:
    def __init__(self, listener: ActiveRulesListener) -> None:
        self._listener = listener
        self._index: SelectorIndex[ResourceKey, EndpointKey] = SelectorIndex()
        self._policies: dict[ResourceKey, PolicyDef] = {}
        self._profile_refs: RefCounter[str] = RefCounter()
        self._endpoint_profiles: dict[EndpointKey, tuple[str, ...]] = {}

    # --- queries -------------------------------------------------------------

    def policies_for(self, ep: EndpointKey) -> list[PolicyDef]:
        return [self._policies[k] for k in self._index.selectors_matching(ep)]

    def profile_is_active(self, name: str) -> bool:
        return name in self._profile_refs

    def stats(self) -> dict[str, int]:
        return {
            "policies": len(self._policies),
            "active_policies": sum(1 for k in self._policies if self._index.items_matching(k)),
            "active_profiles": len(self._profile_refs),
            "active_index_items": self._index.item_count,
            "active_index_selectors": self._index.selector_count,
            "active_endpoint_profiles": len(self._endpoint_profiles),
        }

    # --- policies --------------------------------------------------------------

    def update_policy(self, key: ResourceKey, new: PolicyDef | None) -> None:
        """Set (None: remove) the policy stored under ``key``."""
        old = self._policies.get(key)
        if old == new:
            return
        old_matches = self._index.items_matching(key)
        if new is None:
            del self._policies[key]
            self._index.remove_selector(key)
        else:
            self._policies[key] = new
            self._index.update_selector(key, new.selector)
        new_matches = self._index.items_matching(key)
        if new is not None and new_matches:
            self._listener.policy_active(new)
        if old is not None and old_matches and (
            new is None or not new_matches or new.policy_id != old.policy_id
        ):
            self._listener.policy_inactive(old)
        for ep in old_matches | new_matches:
            self._listener.endpoint_changed(ep)

    # --- local endpoints ---------------------------------------------------------

    def update_endpoint(
        self, ep: EndpointKey, labels: Mapping[str, str] | None, profiles: tuple[str, ...] = ()
    ) -> None:
        """Set (labels None: remove) a local endpoint's labels and profiles."""
        listener = self._listener
        if labels is None:
            changes = self._index.remove_labels(ep)
        else:
            changes = self._index.update_labels(ep, labels)
        for change in changes:
            pkey = change.selector_id
            count = len(self._index.items_matching(pkey))
            if change.matched and count == 1:
                listener.policy_active(self._policies[pkey])
            elif not change.matched and count == 0:
                listener.policy_inactive(self._policies[pkey])
        new_profiles = tuple(dict.fromkeys(profiles)) if labels is not None else ()
        old_profiles = self._endpoint_profiles.get(ep, ())
        if new_profiles != old_profiles:
            # Take the new references before dropping the old ones.
            for name in new_profiles:
                if self._profile_refs.incref(name):
                    listener.profile_active(name)
            for name in old_profiles:
                if self._profile_refs.decref(name):
                    listener.profile_inactive(name)
            if new_profiles:
                self._endpoint_profiles[ep] = new_profiles
            else:
                self._endpoint_profiles.pop(ep, None)
        listener.endpoint_changed(ep)
