"""Oracle test (DESIGN.md section 7): random policy sets, where the reference
evaluator's answer must be what the dataplane does to real packets.

Each case applies a few policies, compares, relabels one pod and compares
again. The cases come from a seeded generator, so a failure names its seed and
prints the manifests; rerun one with ``-k "seed_<n>"``.
"""

from __future__ import annotations

import os
import random
import time

import pytest

from tests.conformance.conftest import DEADLINE, Cluster
from tests.conformance.reach import diff

pytestmark = pytest.mark.integration

SEEDS = range(int(os.environ.get("GINGHAM_ORACLE_SEEDS", "10")))
SELECTORS = ["all()", "pod == 'a'", "app == 'web'", "pod in {'a', 'c'}", "!has(app)",
             "pod != 'b'"]
NS_SELECTORS = ["ns == 'y'", "ns in {'x', 'z'}", "all()", "ns != 'x'"]
PORTS = {"TCP": [[80], [81], ["80:81"], ["serve-80-tcp"], []],
         "UDP": [[80], [81], ["serve-81-udp"], []]}


def _entity(rng: random.Random, ips: dict[str, str]) -> str:
    kind = rng.choice(["none", "selector", "ns", "both", "not", "nets", "set"])
    if kind == "set":
        return "{namespaceSelector: global(), selector: \"role == 'r1'\"}"
    if kind == "selector":
        return f"{{selector: \"{rng.choice(SELECTORS)}\"}}"
    if kind == "ns":
        return f"{{namespaceSelector: \"{rng.choice(NS_SELECTORS)}\"}}"
    if kind == "both":
        return (f"{{namespaceSelector: \"{rng.choice(NS_SELECTORS)}\", "
                f"selector: \"{rng.choice(SELECTORS)}\"}}")
    if kind == "not":
        return f"{{namespaceSelector: all(), notSelector: \"{rng.choice(SELECTORS)}\"}}"
    if kind == "nets":
        picks = rng.sample(sorted(ips), 2)
        return f"{{nets: [{ips[picks[0]]}/32, {ips[picks[1]]}/32]}}"
    return "{}"


def _rule(rng: random.Random, ips: dict[str, str], direction: str) -> str:
    action = rng.choices(["Allow", "Deny", "Pass", "Log"], weights=[5, 3, 1, 1])[0]
    lines = [f"  - action: {action}"]
    protocol = rng.choice([None, "TCP", "UDP"])
    peer = "source" if direction == "ingress" else "destination"
    if protocol:
        lines.append(f"    protocol: {protocol}")
        ports = rng.choice(PORTS[protocol])
        if ports:
            lines.append(f"    destination: {{ports: {ports!r}}}".replace("'", '"'))
            if peer == "destination":
                peer = ""  # keep the one destination key
    if peer:
        lines.append(f"    {peer}: {_entity(rng, ips)}")
    return "\n".join(lines)


def _policy(rng: random.Random, ips: dict[str, str], i: int, tier: str | None) -> str:
    types = rng.choice([["Ingress"], ["Egress"], ["Ingress", "Egress"]])
    body = [f"  selector: \"{rng.choice(SELECTORS)}\"", f"  types: {types}"]
    order = rng.choice([None, 10, 20, 30])
    if order is not None:
        body.append(f"  order: {order}")
    if tier:
        body.append(f"  tier: {tier}")
    for direction in ("ingress", "egress"):
        if direction.capitalize() in types:
            body.append(f"  {direction}:")
            body += [_rule(rng, ips, direction) for _ in range(rng.randint(0, 3))]
            if body[-1] == f"  {direction}:":
                body[-1] = f"  {direction}: []"
    spec = "\n".join(body)
    if tier or rng.random() < 0.3:
        name = f"{tier}.g{i}" if tier else f"g{i}"
        return (f"apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n"
                f"metadata: {{name: {name}}}\nspec:\n{spec}\n---\n")
    ns = rng.choice(["x", "y", "z"])
    return (f"apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\n"
            f"metadata: {{name: p{i}, namespace: {ns}}}\nspec:\n{spec}\n---\n")


K8S_LABELS = ["{}", "{pod: a}", "{app: web}", "{pod: c}"]
K8S_EXPR = ["{key: pod, operator: In, values: [a, b]}", "{key: app, operator: DoesNotExist}",
            "{key: pod, operator: NotIn, values: [c]}", "{key: app, operator: Exists}"]


def _k8s_peer(rng: random.Random, ips: dict[str, str]) -> str:
    kind = rng.choice(["pod", "ns", "both", "block", "expr"])
    if kind == "pod":
        return f"{{podSelector: {{matchLabels: {rng.choice(K8S_LABELS)}}}}}"
    if kind == "ns":
        return f"{{namespaceSelector: {{matchLabels: {rng.choice(['{}', '{ns: y}', '{ns: z}'])}}}}}"
    if kind == "both":
        return (f"{{namespaceSelector: {{matchLabels: {rng.choice(['{}', '{ns: x}'])}}}, "
                f"podSelector: {{matchLabels: {rng.choice(K8S_LABELS)}}}}}")
    if kind == "expr":
        return f"{{podSelector: {{matchExpressions: [{rng.choice(K8S_EXPR)}]}}}}"
    drop = ips[rng.choice(sorted(ips))]
    return f"{{ipBlock: {{cidr: 198.18.0.0/15, except: [{drop}/32]}}}}"


def _k8s_policy(rng: random.Random, ips: dict[str, str], i: int) -> str:
    types = rng.choice([["Ingress"], ["Egress"], ["Ingress", "Egress"]])
    lines = [f"  podSelector: {{matchLabels: {rng.choice(K8S_LABELS)}}}", f"  policyTypes: {types}"]
    for direction, peers in (("ingress", "from"), ("egress", "to")):
        if direction.capitalize() not in types or rng.random() < 0.2:
            continue
        lines.append(f"  {direction}:")
        for _ in range(rng.randint(1, 2)):
            lines.append(f"  - {peers}: [{_k8s_peer(rng, ips)}]")
            port = rng.choice([None, "{port: 80}", "{port: serve-81-udp, protocol: UDP}",
                               "{protocol: TCP, port: 79, endPort: 80}", "{protocol: UDP}"])
            if port:
                lines.append(f"    ports: [{port}]")
    ns = rng.choice(["x", "y", "z"])
    return (f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
            f"metadata: {{name: k{i}, namespace: {ns}}}\nspec:\n" + "\n".join(lines) + "\n---\n")


def generate(seed: int, ips: dict[str, str]) -> str:
    rng = random.Random(seed)
    members = rng.sample(sorted(ips), 2)
    text = (f"apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\n"
            f"metadata: {{name: r1, labels: {{role: r1}}}}\n"
            f"spec: {{nets: [{ips[members[0]]}/32, {ips[members[1]]}/32]}}\n---\n")
    tier = None
    if rng.random() < 0.5:
        tier = "t1"
        text += (f"apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {{name: t1}}\n"
                 f"spec: {{order: 50, defaultAction: {rng.choice(['Deny', 'Pass'])}}}\n---\n")
    for i in range(rng.randint(1, 3)):
        if rng.random() < 0.35:
            text += _k8s_policy(rng, ips, i)
        else:
            text += _policy(rng, ips, i, tier if tier and rng.random() < 0.5 else None)
    return text


@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed_{s}" for s in SEEDS])
def test_dataplane_does_what_the_model_says(k8s: Cluster, seed: int) -> None:
    text = generate(seed, k8s.ips)
    rng = random.Random(seed + 1000)
    relabel = (rng.choice(sorted(k8s.ips)), rng.choice(RELABELS))
    ns_relabel = (rng.choice(["x", "y", "z"]), {"ns": rng.choice(["x", "y", "z", "w"])})
    try:
        k8s.apply(text)
        _agree(k8s, seed, text)
        # then a pod's labels change, moving it in or out of selectors ...
        k8s.set_pod_labels(*relabel)
        text += f"(after relabelling {relabel[0]} to {relabel[1]})\n"
        _agree(k8s, seed, text)
        # ... and a namespace's
        k8s.set_namespace_labels(*ns_relabel)
        _agree(k8s, seed, f"{text}(after relabelling namespace {ns_relabel[0]} to "
                          f"{ns_relabel[1]})\n")
    finally:
        k8s.delete_applied()
        k8s.restore_pods()
        k8s.restore_namespaces()
    k8s.baseline()


RELABELS = [{"pod": "a"}, {"pod": "b", "app": "web"}, {"pod": "c", "app": "web"}, {}]


def _agree(k8s: Cluster, seed: int, text: str) -> None:
    for port, protocol in ((80, "tcp"), (81, "udp")):
        want = k8s.explain(port, protocol)
        deadline = time.monotonic() + DEADLINE
        while (got := k8s.measure(port, protocol)) != want:
            if time.monotonic() > deadline:
                raise AssertionError(f"seed {seed}, {protocol}/{port}: the dataplane and "
                                     f"policy explain disagree\n{text}\n" + diff(want, got))
            time.sleep(0.05)
