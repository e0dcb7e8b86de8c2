"""Kubernetes -> Calico: NetworkPolicy to a Calico NetworkPolicy, Namespace to a Profile.

The translation follows Calico's own: the policy becomes ``knp.default.<name>``
in tier ``default`` with order 1000; every (peer, protocol) pair of a
Kubernetes rule becomes one Allow rule. Namespace selectors in rules select
namespaces by their own labels (Calico v3 semantics); the namespace profile
also applies them to endpoints prefixed ``pcns.``, which is what
``selector_for_namespace_labels`` matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from gingham.model.k8s_selector import LabelSelector
from gingham.model.policy import NetworkPolicy, Profile
from gingham.names import (
    KNP_PREFIX,
    NAME_LABEL,
    NAMESPACE_LABEL_PREFIX,
    NAMESPACE_PROFILE_PREFIX,
    ORCHESTRATOR_LABEL,
)

if TYPE_CHECKING:
    from gingham.model.k8s import (
        KubernetesNetworkPolicy,
        Namespace,
        NetworkPolicyPeer,
        NetworkPolicyPort,
    )

KNP_ORDER: Final = 1000.0


def quote(value: str) -> str:
    """A selector string literal: single quotes unless the value holds one."""
    return f'"{value}"' if "'" in value else f"'{value}'"


def label_selector_to_calico(selector: LabelSelector | Mapping[str, Any],
                             prefix: str = "") -> str:
    """``{matchLabels, matchExpressions}`` as a Calico selector; empty -> ``all()``.

    Kubernetes' NotIn matches when the label is absent, and so does Calico's ``not in``.
    """
    sel = selector if isinstance(selector, LabelSelector) else LabelSelector.model_validate(
        selector)
    terms = [f"{prefix}{key} == {quote(value)}" for key, value in sel.match_labels.items()]
    for req in sel.match_expressions:
        key = prefix + req.key
        values = ", ".join(quote(v) for v in req.values)
        if req.operator == "In":
            terms.append(f"{key} in {{ {values} }}")
        elif req.operator == "NotIn":
            terms.append(f"{key} not in {{ {values} }}")
        elif req.operator == "Exists":
            terms.append(f"has({key})")
        else:
            terms.append(f"!has({key})")
    return " && ".join(terms) if terms else "all()"


def selector_for_namespace_labels(selector: LabelSelector | Mapping[str, Any]) -> str:
    """A selector over endpoints' ``pcns.``-prefixed copies of their namespace's labels."""
    return label_selector_to_calico(selector, NAMESPACE_LABEL_PREFIX)




def _peer_entity(peer: NetworkPolicyPeer | None) -> dict[str, Any]:
    if peer is None:
        return {}
    if peer.ip_block is not None:
        entity: dict[str, Any] = {"nets": [peer.ip_block.cidr]}
        if peer.ip_block.except_:
            entity["notNets"] = list(peer.ip_block.except_)
        return entity
    # A Kubernetes peer means pods: never a NetworkSet or host endpoint whose labels
    # happen to match (Calico adds an orchestrator clause for the same reason).
    # Every workload endpoint carries the implicit orchestrator label.
    pods = f"has({ORCHESTRATOR_LABEL})"
    entity = {"selector": pods}
    if peer.pod_selector is not None:
        selector = label_selector_to_calico(peer.pod_selector)
        entity["selector"] = pods if selector == "all()" else f"({selector}) && {pods}"
    if peer.namespace_selector is not None:
        entity["namespaceSelector"] = label_selector_to_calico(peer.namespace_selector)
    return entity


def _port_groups(ports: Iterable[NetworkPolicyPort]) -> list[tuple[str | None, list[Any]]]:
    """(protocol, ports) per rule to emit, protocols in first-seen order.

    An empty port list means every port: a protocol named once without a port
    opens all of its ports, whatever its other entries say.
    """
    groups: dict[str, list[Any] | None] = {}
    for port in ports:
        if port.port is None:
            groups[port.protocol] = None
            continue
        value: Any = port.port
        if port.end_port is not None and port.end_port != port.port:
            value = f"{port.port}:{port.end_port}"
        current = groups.setdefault(port.protocol, [])
        if current is not None:
            current.append(value)
    out: list[tuple[str | None, list[Any]]] = [(p, v or []) for p, v in groups.items()]
    return out or [(None, [])]


def _rules(peers: tuple[NetworkPolicyPeer, ...], ports: tuple[NetworkPolicyPort, ...],
           ingress: bool) -> list[dict[str, Any]]:
    rules = []
    for peer in peers or (None,):
        entity = _peer_entity(peer)
        for protocol, values in _port_groups(ports):
            rule: dict[str, Any] = {"action": "Allow"}
            if protocol is not None:
                rule["protocol"] = protocol
            destination = {} if ingress else dict(entity)
            if values:
                destination["ports"] = values
            if ingress and entity:
                rule["source"] = entity
            if destination:
                rule["destination"] = destination
            rules.append(rule)
    return rules


def k8s_policy_to_calico(knp: KubernetesNetworkPolicy) -> NetworkPolicy:
    """The Calico NetworkPolicy that means what ``knp`` means."""
    spec = knp.spec
    types = list(spec.policy_types)
    ingress: list[dict[str, Any]] = []
    egress: list[dict[str, Any]] = []
    if "Ingress" in types:
        for in_rule in spec.ingress:
            ingress += _rules(in_rule.from_, in_rule.ports, ingress=True)
    if "Egress" in types:
        for out_rule in spec.egress:
            egress += _rules(out_rule.to, out_rule.ports, ingress=False)
    return NetworkPolicy.model_validate({
        "metadata": {
            "name": KNP_PREFIX + knp.metadata.name,
            "namespace": knp.metadata.namespace or "default",
        },
        "spec": {
            "tier": "default",
            "order": KNP_ORDER,
            "selector": label_selector_to_calico(spec.pod_selector),
            "types": types,
            "ingress": ingress,
            "egress": egress,
        },
    })


def namespace_to_profile(ns: Namespace) -> Profile:
    """Profile ``kns.<name>``: allows everything and gives endpoints the namespace's labels."""
    name = ns.metadata.name
    labels = {NAMESPACE_LABEL_PREFIX + key: value for key, value in ns.metadata.labels.items()}
    labels[NAMESPACE_LABEL_PREFIX + NAME_LABEL] = name
    return Profile.model_validate({
        "metadata": {"name": NAMESPACE_PROFILE_PREFIX + name},
        "spec": {
            "ingress": [{"action": "Allow"}],
            "egress": [{"action": "Allow"}],
            "labelsToApply": labels,
        },
    })
