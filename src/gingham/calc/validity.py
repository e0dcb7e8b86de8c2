"""Invalid is never wider than valid: what a reader uses when a stored document is bad.

A document in the datastore may stop validating at any time: a newer gingham
wrote a field this one does not know, a buggy client wrote the wrong shape, an
attacker wrote garbage. Treating it as absent would open the firewall (the
pods a policy isolated accept everything; a Deny rule's network set empties),
so the graph's inputs pass through this filter first:

    (key, Resource | IPAMBlock | InvalidResource | None)
          |
          v
    ValidityFilter.update  ->  [(key, effective value | None), ...]  -> graph handlers
          |
          +--> reports(): every key whose stored document is invalid, and what was done

Rules (docs/RELIABILITY.md, "bad data and hostile input"):
- An endpoint, network set, namespace, FelixConfiguration, Node, IPPool or BGP
  resource written by a newer version is read without the fields this version
  does not know (reported): a newer agent's Node must still give its
  addresses, or every route to that host would go. Not when a field its last
  valid version had is gone beside them (the unknown ones may now say what it
  said: a network set's nets): that is invalid like any other document.
- A key whose document stops validating keeps its last valid version in force,
  whatever its kind (IPAM blocks too): no change reaches the graph.
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
restarted agent enforces what the one before it did; it is read back through
the same decoder that reads the datastore (``decode``), so a remembered
version is held to the same rules as a stored one.

Keys are typed (``calc.inputs``): the filter never sees a storage path.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from gingham.calc.inputs import BlockKey, InputKey, IPAMBlock, ResourceKey
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
from gingham.model.meta import check_namespace_name, check_resource_name
from gingham.names import KNP_PREFIX
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
     "FelixConfiguration", "Node", "IPPool", "BGPConfiguration", "BGPPeer"}
)

Outcome = Literal[
    "unknown fields ignored", "last valid kept", "quarantined", "policies quarantined", "ignored"
]


@dataclass(frozen=True, slots=True)
class InvalidReport:
    """One stored document that does not validate, and what readers do about it."""

    key: InputKey
    kind: str
    name: str
    namespace: str | None
    reason: str
    outcome: Outcome


Change = tuple[InputKey, Any]  # (key, effective resource or None)
Value = Resource | IPAMBlock
# What the agent's decoder hands the graph for a key (None: absent).
InputValue = Value | InvalidResource
# How a remembered document is read back: the agent's decoder (model resources,
# IPAM blocks); without one, resources through the model and no blocks.
Decode = Callable[[InputKey, Mapping[str, Any]], Any]


class LastValidMemory(Protocol):
    """Where last valid versions of invalid keys outlive the process (the agent's run dir).

    Without it, a restarted agent would meet a document that went bad as "never
    seen valid": absent for a network set, whose Deny rules would then open.
    Only keys that are invalid now are kept, so it stays small.
    """

    def save(self, key: InputKey, document: Mapping[str, Any]) -> None: ...
    def recall(self, key: InputKey) -> Mapping[str, Any] | None: ...
    def forget(self, key: InputKey) -> None: ...


class DictMemory:
    """A ``LastValidMemory`` in a dict: for tests, and a process that must not write files."""

    def __init__(self) -> None:
        self.saved: dict[InputKey, Mapping[str, Any]] = {}

    def save(self, key: InputKey, document: Mapping[str, Any]) -> None:
        self.saved[key] = document

    def recall(self, key: InputKey) -> Mapping[str, Any] | None:
        return self.saved.get(key)

    def forget(self, key: InputKey) -> None:
        self.saved.pop(key, None)


class ValidityFilter:
    def __init__(
        self, memory: LastValidMemory | None = None, decode: Decode | None = None
    ) -> None:
        self._memory: LastValidMemory = memory if memory is not None else DictMemory()
        self._decode: Decode = decode if decode is not None else decode_with_model
        self._valid: dict[InputKey, Value] = {}  # the version in force, by key
        self._saved: set[InputKey] = set()  # keys whose last valid version is in memory
        self._policy_tier: dict[InputKey, str] = {}
        self._tier_members: dict[str, set[ResourceKey]] = {}
        self._bad_tiers: set[str] = set()  # tiers present but never seen valid
        self._invalid: dict[InputKey, InvalidReport] = {}

    # --- input ---------------------------------------------------------------

    def update(self, key: InputKey, value: Any) -> list[Change]:
        """The effective changes one stored value makes (often just ``[(key, value)]``)."""
        if value is None:
            return self._absent(key)
        if not _usable(key, value):  # a decoding mix-up upstream: not usable either
            if not isinstance(value, InvalidResource):
                value = InvalidResource(f"not a resource: {type(value).__name__}")
            return self._invalid_value(key, value)
        return self._valid_value(key, value)

    def rejected(self, key: InputKey, previous: Value | None, problem: InvalidResource
                 ) -> list[Change]:
        """A value the model accepted but the graph could not use: a bug, handled as invalid.

        ``previous`` is what :meth:`last_valid` said before the failed update; the
        graph's own state still holds it.
        """
        if previous is not None:
            self._keep(key, previous)
        else:
            self._valid.pop(key, None)
            self._untrack_policy(key)
        return self._invalid_value(key, problem)

    def last_valid(self, key: InputKey) -> Value | None:
        return self._valid.get(key)

    # --- output ----------------------------------------------------------------

    def reports(self) -> Mapping[InputKey, InvalidReport]:
        return self._invalid

    def stats(self) -> dict[str, int]:
        return {
            "validity_keys": len(self._valid),
            "validity_saved": len(self._saved),
            "validity_bad_tiers": len(self._bad_tiers),
            "invalid_resources": len(self._invalid),
        }

    # --- the three cases ---------------------------------------------------------

    def _absent(self, key: InputKey) -> list[Change]:
        self._valid.pop(key, None)
        self._invalid.pop(key, None)
        self._untrack_policy(key)
        self._unsave(key)
        changes: list[Change] = [(key, None)]
        if key.kind == "Tier" and key.name in self._bad_tiers:
            self._bad_tiers.discard(key.name)
            changes += self._reemit_tier(key.name)
        return changes

    def _valid_value(self, key: InputKey, value: Value) -> list[Change]:
        self._unsave(key)
        self._invalid.pop(key, None)
        self._keep(key, value)
        return self._emit(key, value)

    def _emit(self, key: InputKey, value: Value) -> list[Change]:
        """The changes a newly kept ``value`` makes."""
        if key.kind in POLICY_KINDS:
            assert isinstance(value, Resource)
            return [(key, self._effective_policy(key, value))]
        changes: list[Change] = [(key, value)]
        if key.kind == "Tier" and key.name in self._bad_tiers:
            self._bad_tiers.discard(key.name)
            changes += self._reemit_tier(key.name)
        return changes

    def _invalid_value(self, key: InputKey, value: InvalidResource) -> list[Change]:
        kind, name, namespace = key.kind, key.name, key.namespace

        def report(outcome: Outcome) -> None:
            old = self._invalid.get(key)
            new = InvalidReport(key, kind, name, namespace, value.reason, outcome)
            if old != new:
                log.warning("invalid %s (%s): %s", key, outcome, value.reason)
            self._invalid[key] = new

        kept = self._valid.get(key)
        salvaged = self._salvage(key, value)
        if salvaged is not None:  # a newer writer's document: what this version knows of it
            resource, dropped = salvaged
            before = kept if kept is not None else self._recall(key)
            gone = [] if before is None else _fields_gone(before, resource)
            unknown = f"fields this version does not know: {', '.join(dropped)}"
            if not gone:
                self._unsave(key)
                self._keep(key, resource)
                value = InvalidResource(unknown)
                report("unknown fields ignored")
                return self._emit(key, resource)
            # Known fields gone beside unknown ones: what they said may now be said by
            # fields this version cannot read (a network set's nets: a Deny's set would
            # empty). The last valid version stays, as for any other invalid document.
            value = InvalidResource(f"{unknown}; without fields the last valid version had: "
                                    f"{', '.join(gone)}", value.document)
        if kept is not None:
            report("last valid kept")
            if key not in self._saved:
                self._save(key, kept)
            return []
        recalled = self._recall(key)
        if recalled is not None:  # went bad before this process started
            report("last valid kept")
            self._keep(key, recalled)
            self._saved.add(key)
            return self._emit(key, recalled)
        if kind in POLICY_KINDS:
            report("quarantined")
            return [(key, quarantine_from_document(kind, namespace, name, value.document))]
        if kind == "Tier":
            report("policies quarantined")
            changes: list[Change] = [(key, None)]
            if name not in self._bad_tiers:
                self._bad_tiers.add(name)
                changes += self._reemit_tier(name)
            return changes
        report("ignored")
        return [(key, None)]

    # --- the memory of last valid versions ---------------------------------------

    def _save(self, key: InputKey, value: Value) -> None:
        try:
            document = value.document if isinstance(value, IPAMBlock) else to_dict(value)
            self._memory.save(key, document)
        except Exception:  # losing the memory costs only what a restart would cost
            log.exception("cannot remember the last valid version of %s", key)
            return
        self._saved.add(key)

    def _unsave(self, key: InputKey) -> None:
        if key in self._saved or key in self._invalid:
            self._saved.discard(key)
            try:
                self._memory.forget(key)
            except Exception:
                log.exception("cannot forget the last valid version of %s", key)

    @staticmethod
    def _salvage(key: InputKey, value: InvalidResource) -> tuple[Resource, list[str]] | None:
        if key.kind not in SALVAGEABLE or value.document is None:
            return None
        salvaged = salvage_document(value.document)
        if salvaged is None or not salvaged[1] or not _belongs(salvaged[0], key):
            return None
        return salvaged

    def _recall(self, key: InputKey) -> Value | None:
        try:
            document = self._memory.recall(key)
        except Exception:
            log.exception("cannot recall the last valid version of %s", key)
            return None
        if document is None:
            return None
        try:
            value = self._decode(key, document)
        except Exception:  # whatever the decoder does with it, this key costs only itself
            log.exception("cannot read the remembered version of %s", key)
            return None
        if not _usable(key, value):  # saved by a version that read it otherwise
            reason = value.reason if isinstance(value, InvalidResource) else type(value).__name__
            log.warning("the remembered version of %s no longer validates: %s", key, reason)
            return None
        return value  # type: ignore[no-any-return]

    def _keep(self, key: InputKey, value: Value) -> None:
        self._valid[key] = value
        if key.kind in POLICY_KINDS:
            assert isinstance(key, ResourceKey) and isinstance(value, Resource)
            self._track_policy(key, value)

    # --- tiers ---------------------------------------------------------------------

    def _track_policy(self, key: ResourceKey, value: Resource) -> None:
        self._untrack_policy(key)
        tier = _tier_of(value)
        self._policy_tier[key] = tier
        self._tier_members.setdefault(tier, set()).add(key)

    def _untrack_policy(self, key: InputKey) -> None:
        tier = self._policy_tier.pop(key, None)
        if tier is not None:
            members = self._tier_members[tier]
            members.discard(key)
            if not members:
                del self._tier_members[tier]

    def _effective_policy(self, key: InputKey, value: Resource) -> Resource:
        if self._policy_tier.get(key) in self._bad_tiers:
            return quarantine_from_policy(value)
        return value

    def _reemit_tier(self, tier: str) -> list[Change]:
        return [
            (key, self._effective_policy(key, self._valid[key]))  # type: ignore[arg-type]
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


def _fields_gone(before: Value, after: Resource) -> list[str]:
    """The paths (through mappings) set in ``before`` and absent from ``after``."""
    if not isinstance(before, Resource):
        return []
    gone: list[str] = []

    def walk(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str) -> None:
        for name, value in old.items():
            path = f"{prefix}{name}"
            if name not in new:
                gone.append(path)
            elif isinstance(value, Mapping) and isinstance(new[name], Mapping):
                walk(value, new[name], path + ".")

    walk(to_dict(before), to_dict(after), "")
    return gone


def _belongs(resource: Resource, key: InputKey) -> bool:
    """Whether ``resource`` is the one ``key`` names."""
    meta = resource.metadata
    return (meta.name, meta.namespace) == (key.name, key.namespace) and (
        kind_info(resource.kind, resource.api_version).name == key.kind
    )


def _usable(key: InputKey, value: Any) -> bool:
    """Whether ``value`` is a valid value of the kind ``key`` names."""
    if isinstance(key, BlockKey):
        return isinstance(value, IPAMBlock)
    return isinstance(value, Resource)


def decode_with_model(key: InputKey, document: Mapping[str, Any]) -> Any:
    """A remembered document read through the model: a resource that belongs under
    ``key``, else ``InvalidResource`` (blocks need IPAM's decoder: the agent's)."""
    if isinstance(key, BlockKey):
        return InvalidResource("no IPAM block decoder here")
    resource = decode_document(document)
    if isinstance(resource, InvalidResource):
        return resource
    if not _belongs(resource, key):
        return InvalidResource(f"a {resource.kind} named {resource.metadata.name!r} is not "
                               f"the resource {key}", document)
    return resource


def _tier_of(value: Resource) -> str:
    if isinstance(value, KubernetesNetworkPolicy):
        return "default"
    return str(getattr(value.spec, "tier", None) or "default")  # type: ignore[attr-defined]
