"""Everything policy depends on, as one immutable snapshot of model resources.

The reference evaluator (:mod:`gingham.policy.explain`) works on a
:class:`World`: the policies, tiers, profiles, namespaces, network sets and
endpoints the datastore holds at one moment. ``World.build`` is pure (a list
of model resources in, a snapshot out); ``load_world`` is the I/O edge that
reads them from a datastore.

Endpoints are flattened into :class:`Item`: an address owner with the labels
its selectors see. Those labels follow Calico: the labels of the endpoint's
profiles (``labelsToApply``; earlier profiles win), then its own labels, then
the implicit ones (``projectcalico.org/namespace``, ``…/orchestrator``,
``…/serviceaccount`` and ``pcsa.projectcalico.org/name``), which nothing can
override.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from gingham.model import (
    QUARANTINE_TIER,
    GlobalNetworkPolicy,
    GlobalNetworkSet,
    HostEndpoint,
    KubernetesNetworkPolicy,
    Namespace,
    NetworkPolicy,
    NetworkSet,
    Profile,
    Resource,
    Tier,
    WorkloadEndpoint,
    k8s_policy_to_calico,
    namespace_to_profile,
    protocol_number,
)
from gingham.names import (
    NAME_LABEL,
    NAMESPACE_LABEL,
    NAMESPACE_PROFILE_PREFIX,
    ORCHESTRATOR_LABEL,
    SERVICE_ACCOUNT_LABEL,
    SERVICE_ACCOUNT_NAME_LABEL,
)

DEFAULT_TIER: Final = "default"
DEFAULT_TIER_ORDER: Final = 1_000_000.0

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
Policy = NetworkPolicy | GlobalNetworkPolicy

POLICY_KINDS: Final = (
    "NetworkPolicy",
    "GlobalNetworkPolicy",
    "KubernetesNetworkPolicy",
)
WORLD_KINDS: Final = (
    *POLICY_KINDS,
    "Tier",
    "Profile",
    "Namespace",
    "NetworkSet",
    "GlobalNetworkSet",
    "WorkloadEndpoint",
    "HostEndpoint",
)


@dataclass(frozen=True, slots=True)
class NamedPort:
    name: str
    protocol: int
    port: int


@dataclass(frozen=True, slots=True)
class Item:
    """Something that owns addresses and can be selected: a workload endpoint,
    a host endpoint or a (global) network set."""

    kind: str
    namespace: str | None
    name: str
    nets: tuple[Net, ...]
    labels: Mapping[str, str]
    profiles: tuple[str, ...] = ()
    ports: tuple[NamedPort, ...] = ()
    service_account: str | None = None
    host: str | None = None
    interface: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def owns(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address in net for net in self.nets)


@dataclass(frozen=True, slots=True)
class TierView:
    name: str
    order: float | None
    default_action: str  # "Deny" | "Pass"


@dataclass(frozen=True)
class World:
    """A snapshot: every policy (Kubernetes ones already converted), tier,
    profile (namespaces already converted), namespace and item."""

    policies: tuple[Policy, ...] = ()
    tiers: Mapping[str, TierView] = field(default_factory=dict)
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    items: tuple[Item, ...] = ()
    # Look-ups repeated for every pair of a matrix; the snapshot never changes.
    _owners: dict[Any, list[Item]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(cls, resources: Iterable[Resource]) -> World:
        policies: list[Policy] = []
        tiers: dict[str, TierView] = {}
        profiles: dict[str, Profile] = {}
        ns_profiles: dict[str, Profile] = {}
        namespaces: dict[str, dict[str, str]] = {}
        endpoints: list[Resource] = []
        for res in resources:
            if isinstance(res, KubernetesNetworkPolicy):
                policies.append(k8s_policy_to_calico(res))
            elif isinstance(res, NetworkPolicy | GlobalNetworkPolicy):
                policies.append(res)
            elif isinstance(res, Tier):
                tiers[res.metadata.name] = TierView(
                    res.metadata.name,
                    None if res.spec.order is None else float(res.spec.order),
                    res.spec.default_action,
                )
            elif isinstance(res, Profile):
                profiles[res.metadata.name] = res
            elif isinstance(res, Namespace):
                labels = dict(res.metadata.labels)
                labels[NAME_LABEL] = res.metadata.name
                namespaces[res.metadata.name] = labels
                prof = namespace_to_profile(res)
                ns_profiles[prof.metadata.name] = prof
            elif isinstance(res, WorkloadEndpoint | HostEndpoint | NetworkSet | GlobalNetworkSet):
                endpoints.append(res)
        # A Namespace's profile wins over a Profile resource of the same name.
        profiles.update(ns_profiles)
        if DEFAULT_TIER not in tiers:
            tiers[DEFAULT_TIER] = TierView(DEFAULT_TIER, DEFAULT_TIER_ORDER, "Deny")
        items = tuple(_item(res, profiles) for res in endpoints)
        return cls(tuple(policies), tiers, profiles, namespaces, items)

    # -- look-ups --------------------------------------------------------------

    def tier(self, name: str) -> TierView:
        if name == QUARANTINE_TIER:  # before every other tier (gingham.calc.validity)
            return TierView(name, float("-inf"), "Deny")
        # A policy in a tier that does not exist still applies: last, denying.
        return self.tiers.get(name) or TierView(name, None, "Deny")

    def workload(self, ref: str) -> Item | None:
        """The workload endpoint ``NAMESPACE/NAME`` (NAME is the workload, as the lab names it)."""
        for item in self.items:
            if item.kind == "WorkloadEndpoint" and item.ref == ref:
                return item
        return None

    def workloads(self) -> list[Item]:
        return sorted((i for i in self.items if i.kind == "WorkloadEndpoint"),
                      key=lambda i: i.ref)

    def by_interface(self, ifname: str) -> Item | None:
        for item in self.items:
            if item.interface == ifname:
                return item
        return None

    def owners(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[Item]:
        found = self._owners.get(address)
        if found is None:
            found = self._owners[address] = [item for item in self.items if item.owns(address)]
        return found

    def ns_labels(self, namespace: str) -> Mapping[str, str]:
        return self.namespace_labels.get(namespace, {})


def _nets(values: Iterable[Any]) -> tuple[Net, ...]:
    return tuple(ipaddress.ip_network(str(v), strict=False) for v in values)


def _ports(values: Iterable[Any]) -> tuple[NamedPort, ...]:
    return tuple(NamedPort(str(p.name), protocol_number(p.protocol), int(p.port)) for p in values)


def _labels(
    own: Mapping[str, str],
    parents: Iterable[str],
    implicit: Mapping[str, str],
    profiles: Mapping[str, Profile],
) -> dict[str, str]:
    labels: dict[str, str] = {}
    for parent in reversed(list(parents)):
        prof = profiles.get(parent)
        if prof is not None:
            labels.update(prof.spec.labels_to_apply)
    labels.update(own)
    labels.update(implicit)
    return labels


def _item(res: Resource, profiles: Mapping[str, Profile]) -> Item:
    own = dict(res.metadata.labels)
    if isinstance(res, WorkloadEndpoint):
        spec = res.spec
        ns = res.metadata.namespace or "default"
        implicit = {NAMESPACE_LABEL: ns}
        if spec.orchestrator:
            implicit[ORCHESTRATOR_LABEL] = spec.orchestrator
        if spec.service_account_name:
            implicit[SERVICE_ACCOUNT_LABEL] = spec.service_account_name
            implicit[SERVICE_ACCOUNT_NAME_LABEL] = spec.service_account_name
        listed = tuple(spec.profiles)
        parents = tuple(dict.fromkeys((*listed, NAMESPACE_PROFILE_PREFIX + ns)))
        return Item(
            kind="WorkloadEndpoint",
            namespace=ns,
            name=spec.workload or res.metadata.name,
            nets=_nets(spec.ip_networks),
            labels=_labels(own, parents, implicit, profiles),
            profiles=listed,
            ports=_ports(spec.ports),
            service_account=spec.service_account_name,
            host=spec.node,
            interface=spec.interface_name,
        )
    if isinstance(res, HostEndpoint):
        listed = tuple(res.spec.profiles)
        return Item(
            kind="HostEndpoint",
            namespace=None,
            name=res.metadata.name,
            nets=_nets(res.spec.expected_ips),
            labels=_labels(own, listed, {}, profiles),
            profiles=listed,
            ports=_ports(res.spec.ports),
            host=res.spec.node,
        )
    if isinstance(res, NetworkSet):
        ns = res.metadata.namespace or "default"
        return Item(
            kind="NetworkSet",
            namespace=ns,
            name=res.metadata.name,
            nets=_nets(res.spec.nets),
            labels=_labels(own, (NAMESPACE_PROFILE_PREFIX + ns,), {NAMESPACE_LABEL: ns}, profiles),
        )
    assert isinstance(res, GlobalNetworkSet)
    return Item(
        kind="GlobalNetworkSet",
        namespace=None,
        name=res.metadata.name,
        nets=_nets(res.spec.nets),
        labels=own,
    )


def load_world(datastore: Any) -> World:
    """Read every resource policy depends on from ``datastore`` (a backend or a URL).

    Stored documents that do not validate count as an agent that has just
    started counts them (``gingham.calc.validity``): a policy or tier is
    quarantined, anything else is absent. An agent that saw a valid version
    before keeps that one instead, which this reader cannot know.
    """
    from gingham.agent.decode import decode
    from gingham.calc.validity import ValidityFilter
    from gingham.datastore import keys, open_datastore

    own = isinstance(datastore, str)
    ds = open_datastore(datastore) if own else datastore
    try:
        validity = ValidityFilter()
        effective: dict[Any, Any] = {}
        for kind in WORLD_KINDS:
            items, _ = ds.list(keys.resource_prefix(kind))
            for kv in items:
                typed = decode(kv.key, kv.value)
                if typed is None:
                    continue
                for key, resource in validity.update(*typed):
                    effective[key] = resource
        return World.build(r for r in effective.values() if r is not None)
    finally:
        if own:
            ds.close()
