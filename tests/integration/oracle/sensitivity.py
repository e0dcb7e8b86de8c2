"""How much do the generated scenarios exercise each feature of the policy semantics?

A feature matters in a scenario when taking it out changes the oracle's
verdicts (for example: strip every ``notNets`` and some cell flips). A kernel
bug confined to that feature can only show in such scenarios, so the rate at
which a feature matters bounds the chance that N random examples catch it:
about ``1 - (1 - rate) ** N``.

Pure: endpoints are built in memory as the CNI plugin writes them; no lab.
Run ``python -m tests.integration.oracle.sensitivity [N]`` to print the rates.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings

from gingham.model import parse_resource
from gingham.policy.explain import matrix
from gingham.policy.world import World
from tests.integration.oracle.scenarios import (
    PROBES,
    REFS,
    WORKLOADS,
    Scenario,
    cases,
    render,
    serve_for,
)

IPS = {ref: f"198.18.{i}.{i + 1}" for i, ref in enumerate(REFS)}
Verdicts = list[dict[str, dict[str, bool]]]


def endpoints(labels: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    out = []
    for ref, host in WORKLOADS:
        ns, name = ref.split("/")
        out.append({
            "apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
            "metadata": {"name": f"{host}-k8s-{name}-eth0", "namespace": ns,
                         "labels": dict(labels[ref])},
            "spec": {"workload": name, "node": host, "orchestrator": "k8s",
                     "ipNetworks": [IPS[ref] + "/32"], "profiles": [f"kns.{ns}"],
                     "ports": [{"name": n, "protocol": p.upper(), "port": port}
                               for port, p, n in serve_for(ref) if n]},
        })  # fmt: skip
    return out


def verdicts(scenario: Scenario) -> Verdicts:
    docs = endpoints({r: dict(v) for r, v in scenario.labels.items()})
    docs += render(scenario.manifests(), IPS)
    world = World.build([parse_resource(d) for d in docs])
    return [matrix(world, list(REFS), port, p) for p, port in PROBES]


# ----------------------------------------------------------------- taking features out


def _rules(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    return [r for d in ("ingress", "egress") for r in spec.get(d, []) if "action" in r]


def _entities(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [r[s] for r in _rules(doc) for s in ("source", "destination") if s in r]


def _strip_entity_field(field: str) -> Callable[[dict[str, Any]], None]:
    def strip(doc: dict[str, Any]) -> None:
        for entity in _entities(doc):
            entity.pop(field, None)
    return strip


def _replace_action(old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def replace(doc: dict[str, Any]) -> None:
        for rule in _rules(doc):
            if rule["action"] == old:
                rule["action"] = new
    return replace


def _no_order(doc: dict[str, Any]) -> None:
    if doc["kind"] in ("GlobalNetworkPolicy", "Tier") or (
        doc["kind"] == "NetworkPolicy" and doc["apiVersion"] != "networking.k8s.io/v1"
    ):
        doc["spec"].pop("order", None)


def _tier_deny(doc: dict[str, Any]) -> None:
    if doc["kind"] == "Tier":
        doc["spec"]["defaultAction"] = "Deny"


def _k8s_peers_all(doc: dict[str, Any]) -> None:
    if doc["apiVersion"] == "networking.k8s.io/v1":
        for direction, key in (("ingress", "from"), ("egress", "to")):
            for rule in doc["spec"].get(direction, []):
                rule.pop(key, None)


def _k8s_ports_all(doc: dict[str, Any]) -> None:
    if doc["apiVersion"] == "networking.k8s.io/v1":
        for direction in ("ingress", "egress"):
            for rule in doc["spec"].get(direction, []):
                rule.pop("ports", None)


def _no_netsets(scenario: Scenario) -> Scenario:
    return Scenario(scenario.labels, scenario.namespace_labels, scenario.tier,
                    scenario.policies, ())  # fmt: skip


def _no_namespace_labels(scenario: Scenario) -> Scenario:
    return Scenario(scenario.labels, {ns: {} for ns in scenario.namespace_labels},
                    scenario.tier, scenario.policies, scenario.netsets)  # fmt: skip


def _per_doc(change: Callable[[dict[str, Any]], None]) -> Callable[[Scenario], Scenario]:
    def apply(scenario: Scenario) -> Scenario:
        policies = tuple(copy.deepcopy(p) for p in scenario.policies)
        tier = copy.deepcopy(scenario.tier)
        for doc in (*policies, *([tier] if tier else [])):
            change(doc)
        return Scenario(scenario.labels, scenario.namespace_labels, tier, policies,
                        scenario.netsets)  # fmt: skip
    return apply


FEATURES: dict[str, Callable[[Scenario], Scenario]] = {
    "selector": _per_doc(_strip_entity_field("selector")),
    "notSelector": _per_doc(_strip_entity_field("notSelector")),
    "namespaceSelector": _per_doc(_strip_entity_field("namespaceSelector")),
    "nets": _per_doc(_strip_entity_field("nets")),
    "notNets": _per_doc(_strip_entity_field("notNets")),
    "ports": _per_doc(_strip_entity_field("ports")),
    "notPorts": _per_doc(_strip_entity_field("notPorts")),
    "Deny": _per_doc(_replace_action("Deny", "Allow")),
    # Pass ends the tier; as Log, evaluation would go on inside it.
    "Pass": _per_doc(_replace_action("Pass", "Log")),
    "Log": _per_doc(_replace_action("Log", "Allow")),
    "order": _per_doc(_no_order),
    "tier defaultAction Pass": _per_doc(_tier_deny),
    "k8s peers": _per_doc(_k8s_peers_all),
    "k8s ports": _per_doc(_k8s_ports_all),
    "network sets": _no_netsets,
    "namespace labels": _no_namespace_labels,
}


def rates(n: int) -> dict[str, float]:
    """Per feature, the share of ``n`` derandomized cases in which it matters."""
    found: list[tuple[Scenario, Scenario | None]] = []

    @settings(max_examples=n, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(cases())
    def collect(case: tuple[Scenario, Scenario | None]) -> None:
        found.append(case)

    collect()
    counts = dict.fromkeys(FEATURES, 0)
    for first, then in found:
        phases = [s for s in (first, then) if s is not None]
        base = [verdicts(s) for s in phases]
        for name, take_out in FEATURES.items():
            if [verdicts(take_out(s)) for s in phases] != base:
                counts[name] += 1
    return {name: count / len(found) for name, count in counts.items()}


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    for name, rate in sorted(rates(n).items(), key=lambda kv: kv[1]):
        print(f"{name:26} {rate:6.1%}   P(caught in 20 examples) ~ {1 - (1 - rate) ** 20:.0%}")
