"""Invalid is never wider than valid: what a reader uses when a stored document is bad.

A document in the datastore may stop validating at any time: a newer gingham
wrote a field this one does not know, a buggy client wrote the wrong shape, an
attacker wrote garbage. Treating it as absent would open the firewall (the
pods a policy isolated accept everything; a Deny rule's network set empties),
so the graph's inputs pass through this filter first:

    (key, Resource | InvalidResource | None)
          |
          v
    ValidityFilter.update  ->  [(key, effective Resource | None), ...]  -> graph handlers
          |
          +--> reports(): every key whose stored document is invalid, and what was done

Rules (docs/RELIABILITY.md, "bad data and hostile input"):
- An endpoint, network set, namespace or FelixConfiguration written by a newer
  version is read without the fields this version does not know (reported).
- A key whose document stops validating keeps its last valid version in force,
  whatever its kind: no change reaches the graph.
- A policy never seen valid becomes a *quarantine policy*: Deny, for every
  packet, in a tier evaluated before every other, for the endpoints the policy
  could select (its selector where it is readable; otherwise every endpoint of
  its namespace, or every endpoint for a global policy), in the directions its
  types name (both where they are unreadable). Nothing can be wider than that,
  whatever the real policy said.
- A Tier never seen valid quarantines every policy in it: with its order and
  default action unknown, any guess could let an earlier Allow through.
- Any other kind never seen valid is absent.
- A deletion (None) removes the key whatever state it was in.

The filter holds a reference to the version in force of every key (the graph
holds the same objects). When a key goes bad, its last valid version is also
written to a ``LastValidMemory`` that outlives the process, so that a
restarted agent enforces what the one before it did.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from gingham.errors import GinghamError
from gingham.model import (
    QUARANTINE_TIER,
    GlobalNetworkPolicy,
    InvalidResource,
    KubernetesNetworkPolicy,
    NetworkPolicy,
    Resource,
    decode_document,
    k8s_policy_to_calico,
    kind_info,
    label_selector_to_calico,
    salvage_document,
    to_dict,
)
from gingham.model.convert import KNP_PREFIX
from gingham.model.meta import check_namespace_name, check_resource_name
from gingham.selector import parse

log = logging.getLogger(__name__)

POLICY_KINDS: Final = frozenset(
    {"NetworkPolicy", "GlobalNetworkPolicy", "KubernetesNetworkPolicy"}
)
BOTH: Final = ("Ingress", "Egress")
# Kinds whose documents from a newer writer are read without the fields this
# version does not know. Never a policy, a tier or a profile: ignoring a field
# of a rule could widen it.
SALVAGEABLE: Final = frozenset(
    {"WorkloadEndpoint", "HostEndpoint", "NetworkSet", "GlobalNetworkSet", "Namespace",
     "FelixConfiguration"}
)

Outcome = Literal[
    "unknown fields ignored", "last valid kept", "quarantined", "policies quarantined", "ignored"
]


@dataclass(frozen=True, slots=True)
class InvalidReport:
    """One stored document that does not validate, and what readers do about it."""

    key: str
    kind: str
    name: str
    namespace: str | None
    reason: str
    outcome: Outcome


Change = tuple[str, Any]  # (key, effective resource or None)


class LastValidMemory(Protocol):
    """Where last valid versions of invalid keys outlive the process (the agent's run dir).

    Without it, a restarted agent would meet a document that went bad as "never
    seen valid": absent for a network set, whose Deny rules would then open.
    Only keys that are invalid now are kept, so it stays small.
    """

    def save(self, key: str, document: Mapping[str, Any]) -> None: ...
    def recall(self, key: str) -> Mapping[str, Any] | None: ...
    def forget(self, key: str) -> None: ...


class DictMemory:
    """A ``LastValidMemory`` in a dict: for tests, and a process that must not write files."""

    def __init__(self) -> None:
        self.saved: dict[str, Mapping[str, Any]] = {}

    def save(self, key: str, document: Mapping[str, Any]) -> None:
        self.saved[key] = document

    def recall(self, key: str) -> Mapping[str, Any] | None:
        return self.saved.get(key)

    def forget(self, key: str) -> None:
        self.saved.pop(key, None)


class ValidityFilter:
    def __init__(self, memory: LastValidMemory | None = None) -> None:
        self._memory: LastValidMemory = memory if memory is not None else DictMemory()
        self._valid: dict[str, Resource] = {}  # the version in force, by key
        self._saved: set[str] = set()  # keys whose last valid version is in memory
        self._policy_tier: dict[str, str] = {}
        self._tier_members: dict[str, set[str]] = {}
        self._bad_tiers: set[str] = set()  # tiers present but never seen valid
        self._invalid: dict[str, InvalidReport] = {}

    # --- input ---------------------------------------------------------------

    def update(
        self, key: str, kind: str, namespace: str | None, name: str, value: Any
    ) -> list[Change]:
        """The effective changes one stored value makes (often just ``[(key, value)]``)."""
        if value is None:
            return self._absent(key, kind, name)
        if not isinstance(value, Resource):  # a decoding mix-up upstream: not usable either
            if not isinstance(value, InvalidResource):
                value = InvalidResource(f"not a resource: {type(value).__name__}")
            return self._invalid_value(key, kind, namespace, name, value)
        return self._valid_value(key, kind, name, value)

    def rejected(
        self,
        key: str,
        kind: str,
        namespace: str | None,
        name: str,
        previous: Resource | None,
        problem: InvalidResource,
    ) -> list[Change]:
        """A value the model accepted but the graph could not use: a bug, handled as invalid.

        ``previous`` is what :meth:`last_valid` said before the failed update; the
        graph's own state still holds it.
        """
        if previous is not None:
            self._keep(key, kind, previous)
        else:
            self._valid.pop(key, None)
            self._untrack_policy(key)
        return self._invalid_value(key, kind, namespace, name, problem)

    def last_valid(self, key: str) -> Resource | None:
        return self._valid.get(key)

    # --- output ----------------------------------------------------------------

    def reports(self) -> Mapping[str, InvalidReport]:
        return self._invalid

    def stats(self) -> dict[str, int]:
        return {
            "validity_keys": len(self._valid),
            "validity_saved": len(self._saved),
            "validity_bad_tiers": len(self._bad_tiers),
            "invalid_resources": len(self._invalid),
        }

    # --- the three cases ---------------------------------------------------------

    def _absent(self, key: str, kind: str, name: str) -> list[Change]:
        self._valid.pop(key, None)
        self._invalid.pop(key, None)
        self._untrack_policy(key)
        self._unsave(key)
        changes: list[Change] = [(key, None)]
        if kind == "Tier" and name in self._bad_tiers:
            self._bad_tiers.discard(name)
            changes += self._reemit_tier(name)
        return changes

    def _valid_value(self, key: str, kind: str, name: str, value: Resource) -> list[Change]:
        self._unsave(key)
        self._invalid.pop(key, None)
        self._keep(key, kind, value)
        return self._emit(key, kind, name, value)

    def _emit(self, key: str, kind: str, name: str, value: Resource) -> list[Change]:
        """The changes a newly kept ``value`` makes."""
        if kind in POLICY_KINDS:
            return [(key, self._effective_policy(key, value))]
        changes: list[Change] = [(key, value)]
        if kind == "Tier" and name in self._bad_tiers:
            self._bad_tiers.discard(name)
            changes += self._reemit_tier(name)
        return changes

    def _invalid_value(
        self, key: str, kind: str, namespace: str | None, name: str, value: InvalidResource
    ) -> list[Change]:
        def report(outcome: Outcome) -> None:
            old = self._invalid.get(key)
            new = InvalidReport(key, kind, name, namespace, value.reason, outcome)
            if old != new:
                log.warning("invalid %s (%s): %s", key, outcome, value.reason)
            self._invalid[key] = new

        salvaged = self._salvage(kind, namespace, name, value)
        if salvaged is not None:  # a newer writer's document: what this version knows of it
            resource, dropped = salvaged
            self._unsave(key)
            self._keep(key, kind, resource)
            value = InvalidResource(f"fields this version does not know: {', '.join(dropped)}")
            report("unknown fields ignored")
            return self._emit(key, kind, name, resource)
        kept = self._valid.get(key)
        if kept is not None:
            report("last valid kept")
            if key not in self._saved:
                self._save(key, kept)
            return []
        recalled = self._recall(key, kind, namespace, name)
        if recalled is not None:  # went bad before this process started
            report("last valid kept")
            self._keep(key, kind, recalled)
            self._saved.add(key)
            return self._emit(key, kind, name, recalled)
        if kind in POLICY_KINDS:
            report("quarantined")
            return [(key, quarantine_from_document(kind, namespace, name, value.document))]
        if kind == "Tier":
            report("policies quarantined")
            changes = [(key, None)]
            if name not in self._bad_tiers:
                self._bad_tiers.add(name)
                changes += self._reemit_tier(name)
            return changes
        report("ignored")
        return [(key, None)]

    # --- the memory of last valid versions ---------------------------------------

    def _save(self, key: str, value: Resource) -> None:
        try:
            self._memory.save(key, to_dict(value))
        except Exception:  # losing the memory costs only what a restart would cost
            log.exception("cannot remember the last valid version of %s", key)
            return
        self._saved.add(key)

    def _unsave(self, key: str) -> None:
        if key in self._saved or key in self._invalid:
            self._saved.discard(key)
            try:
                self._memory.forget(key)
            except Exception:
                log.exception("cannot forget the last valid version of %s", key)

    @staticmethod
    def _salvage(
        kind: str, namespace: str | None, name: str, value: InvalidResource
    ) -> tuple[Resource, list[str]] | None:
        if kind not in SALVAGEABLE or value.document is None:
            return None
        salvaged = salvage_document(value.document)
        if salvaged is None or not salvaged[1] or not _belongs(salvaged[0], kind, namespace, name):
            return None
        return salvaged

    def _recall(self, key: str, kind: str, namespace: str | None, name: str) -> Resource | None:
        try:
            document = self._memory.recall(key)
        except Exception:
            log.exception("cannot recall the last valid version of %s", key)
            return None
        if document is None:
            return None
        resource = decode_document(document)
        if isinstance(resource, InvalidResource):  # saved by a version that read it otherwise
            log.warning("the remembered version of %s no longer validates: %s", key,
                        resource.reason)
            return None
        return resource if _belongs(resource, kind, namespace, name) else None

    def _keep(self, key: str, kind: str, value: Resource) -> None:
        self._valid[key] = value
        if kind in POLICY_KINDS:
            self._track_policy(key, value)

    # --- tiers ---------------------------------------------------------------------

    def _track_policy(self, key: str, value: Resource) -> None:
        self._untrack_policy(key)
        tier = _tier_of(value)
        self._policy_tier[key] = tier
        self._tier_members.setdefault(tier, set()).add(key)

    def _untrack_policy(self, key: str) -> None:
        tier = self._policy_tier.pop(key, None)
        if tier is not None:
            members = self._tier_members[tier]
            members.discard(key)
            if not members:
                del self._tier_members[tier]

    def _effective_policy(self, key: str, value: Resource) -> Resource:
        if self._policy_tier.get(key) in self._bad_tiers:
            return quarantine_from_policy(value)
        return value

    def _reemit_tier(self, tier: str) -> list[Change]:
        return [
            (key, self._effective_policy(key, self._valid[key]))
            for key in sorted(self._tier_members.get(tier, ()))
        ]


# --- quarantine policies ----------------------------------------------------------


def quarantine_policy(
    namespace: str | None,
    name: str,
    selector: str = "all()",
    types: tuple[str, ...] = BOTH,
    namespace_selector: str | None = None,
) -> Resource:
    """Deny everything, before every tier, for what ``selector`` selects, in ``types``."""
    spec: dict[str, Any] = {
        "selector": selector,
        "types": list(types),
        "ingress": [{"action": "Deny"}] if "Ingress" in types else [],
        "egress": [{"action": "Deny"}] if "Egress" in types else [],
    }
    # Names come from keys anyone could write: one no valid policy could have is
    # replaced by a digest, so that it cannot reach a rule comment or a log as is.
    meta: dict[str, Any] = {"name": _valid_or_digest(name, check_resource_name)}
    model: type[Resource]
    if namespace is None:
        model = GlobalNetworkPolicy
        if namespace_selector:
            spec["namespaceSelector"] = namespace_selector
    else:
        model = NetworkPolicy
        meta["namespace"] = _valid_or_digest(namespace, check_namespace_name)
    resource = model.model_validate({"metadata": meta, "spec": spec})
    # The quarantine tier is refused by validation (nobody may write it): set it after.
    quarantined_spec = resource.spec.model_copy(update={"tier": QUARANTINE_TIER})
    return resource.model_copy(update={"spec": quarantined_spec})


def quarantine_from_policy(value: Resource) -> Resource:
    """The quarantine version of a valid policy (its tier is not usable)."""
    if isinstance(value, KubernetesNetworkPolicy):
        value = k8s_policy_to_calico(value)
    spec: Any = value.spec  # type: ignore[attr-defined]
    meta = value.metadata
    return quarantine_policy(
        meta.namespace,
        meta.name,
        spec.selector or "all()",
        tuple(spec.types) or BOTH,
        getattr(spec, "namespace_selector", None),
    )


def quarantine_from_document(
    kind: str, namespace: str | None, name: str, document: Mapping[str, Any] | None
) -> Resource:
    """A quarantine policy from whatever is readable of a policy that never validated.

    Each unreadable part is dropped, which only widens what the quarantine
    selects: for a rule that denies everything, selecting more is the safe side.
    """
    spec = document.get("spec") if isinstance(document, Mapping) else None
    if not isinstance(spec, Mapping):
        spec = {}
    if kind == "KubernetesNetworkPolicy":
        return quarantine_policy(
            namespace or "default",
            KNP_PREFIX + name,
            _k8s_selector(spec.get("podSelector")),
            _types(spec.get("policyTypes")),
        )
    scoped = namespace if kind == "NetworkPolicy" else None
    return quarantine_policy(
        scoped,
        name,
        _selector(spec.get("selector")),
        _types(spec.get("types")),
        None if scoped else _optional_selector(spec.get("namespaceSelector")),
    )


def _valid_or_digest(name: str, check: Callable[[str], str]) -> str:
    try:
        return check(name)
    except ValueError:
        digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()
        return "invalid-" + digest[:16]


def _types(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not value:
        return BOTH
    names = {str(v).capitalize() for v in value if isinstance(v, str)}
    if len(names) != len(value) or not names <= set(BOTH):
        return BOTH
    return tuple(t for t in BOTH if t in names)


def _readable(expr: Any) -> bool:
    if not isinstance(expr, str):
        return False
    try:
        parse(expr)
    except (GinghamError, RecursionError, ValueError):
        return False
    return True


def _selector(value: Any) -> str:
    if isinstance(value, str) and not value.strip():
        return "all()"
    return value if _readable(value) else "all()"


def _optional_selector(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() and _readable(value) else None


def _k8s_selector(value: Any) -> str:
    if value is None:
        return "all()"
    try:
        expr = label_selector_to_calico(value)
    except Exception:  # any malformed shape: select the whole namespace
        return "all()"
    return expr if _readable(expr) else "all()"


def _belongs(resource: Resource, kind: str, namespace: str | None, name: str) -> bool:
    """Whether ``resource`` is the one a key of ``kind``/``namespace``/``name`` names."""
    meta = resource.metadata
    return (meta.name, meta.namespace) == (name, namespace) and (
        kind_info(resource.kind, resource.api_version).name == kind
    )


def _tier_of(value: Resource) -> str:
    if isinstance(value, KubernetesNetworkPolicy):
        return "default"
    return str(getattr(value.spec, "tier", None) or "default")  # type: ignore[attr-defined]
