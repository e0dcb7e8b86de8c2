"""Kubernetes NetworkPolicy verdicts straight from the Kubernetes API reference.

Independent of gingham: no conversion to Calico policy, no gingham selector
parser. The reference evaluator converts Kubernetes policies with the same
``k8s_policy_to_calico`` the agents use, so only a second, separate reading
can find a mistake in that conversion.

Semantics (kubernetes.io, "Network Policies" and the NetworkPolicy API):
- a policy selects the pods of its own namespace that match ``podSelector``;
- ``policyTypes`` absent: Ingress, plus Egress when there are egress rules;
- a pod selected by some policy of a direction is isolated in it: only what
  some such policy's rule allows passes; otherwise everything passes;
- a rule allows when any peer matches (no peers: every peer) and any port
  matches (no ports: every port);
- a ``podSelector`` peer: pods of the policy's namespace; a
  ``namespaceSelector`` peer: every pod of the matching namespaces; both:
  matching pods in matching namespaces; ``ipBlock``: the address is inside
  ``cidr`` and outside every ``except``;
- a port: ``protocol`` (default TCP) and a number, a range up to ``endPort``,
  or a name that the destination pod gives to that port and protocol.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    ip: str
    labels: Mapping[str, str]
    ports: tuple[tuple[str, str, int], ...]  # (name, protocol upper-case, number)

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def label_selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Every term holds; NotIn and DoesNotExist hold for an absent key; {} matches all."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[op]
        if not ok:
            return False
    return True


def _types(policy: Mapping[str, Any]) -> list[str]:
    spec = policy.get("spec", {})
    if "policyTypes" in spec:
        return list(spec["policyTypes"])
    return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def _selects(policy: Mapping[str, Any], pod: Pod) -> bool:
    return policy["metadata"]["namespace"] == pod.namespace and label_selector_matches(
        policy.get("spec", {}).get("podSelector", {}), pod.labels
    )


def _peer_matches(peer: Mapping[str, Any], policy_ns: str, pod: Pod,
                  ns_labels: Mapping[str, Mapping[str, str]]) -> bool:  # fmt: skip
    if "ipBlock" in peer:
        address = ipaddress.ip_address(pod.ip)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(e) for e in block.get("except", [])
        )
    if "namespaceSelector" in peer:
        labels = {**ns_labels.get(pod.namespace, {}),
                  "kubernetes.io/metadata.name": pod.namespace}  # fmt: skip
        if not label_selector_matches(peer["namespaceSelector"], labels):
            return False
    elif pod.namespace != policy_ns:
        return False
    return "podSelector" not in peer or label_selector_matches(peer["podSelector"], pod.labels)


def _port_matches(spec: Mapping[str, Any], protocol: str, port: int, dst: Pod) -> bool:
    if spec.get("protocol", "TCP") != protocol:
        return False
    value = spec.get("port")
    if value is None:
        return True
    if isinstance(value, int):
        end: int = spec.get("endPort", value)
        return value <= port <= end
    return any(name == value and proto == protocol and number == port
               for name, proto, number in dst.ports)  # fmt: skip


def _allowed(direction: str, at: Pod, peer: Pod, protocol: str, port: int, dst: Pod,
             policies: list[Mapping[str, Any]], ns_labels: Mapping[str, Mapping[str, str]],
             ) -> bool:  # fmt: skip
    kind = "Ingress" if direction == "ingress" else "Egress"
    peers_key = "from" if direction == "ingress" else "to"
    relevant = [p for p in policies if kind in _types(p) and _selects(p, at)]
    if not relevant:
        return True
    for policy in relevant:
        ns = policy["metadata"]["namespace"]
        for rule in policy.get("spec", {}).get(direction, []):
            peers = rule.get(peers_key, [])
            if peers and not any(_peer_matches(x, ns, peer, ns_labels) for x in peers):
                continue
            ports = rule.get("ports", [])
            if ports and not any(_port_matches(x, protocol, port, dst) for x in ports):
                continue
            return True
    return False


def allowed(src: Pod, dst: Pod, protocol: str, port: int, policies: list[Mapping[str, Any]],
            ns_labels: Mapping[str, Mapping[str, str]]) -> bool:  # fmt: skip
    """Egress allowed at ``src`` and ingress allowed at ``dst``; a pod reaches itself."""
    if src.ref == dst.ref:
        return True
    protocol = protocol.upper()
    return _allowed("egress", src, dst, protocol, port, dst, policies, ns_labels) and _allowed(
        "ingress", dst, src, protocol, port, dst, policies, ns_labels
    )
