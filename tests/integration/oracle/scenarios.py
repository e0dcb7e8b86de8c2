"""Random policy scenarios for the oracle test: labels, namespaces, tiers, policies.

A :class:`Scenario` is pure data. Addresses are not known when hypothesis
draws (IPAM hands them out when the lab starts), so nets name workloads as
``@ns/name`` and :func:`render` puts the real /32 in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from hypothesis import strategies as st

from tests.integration.oracle.selectors import (
    NAMESPACE_VOCAB,
    WORKLOAD_VOCAB,
    endpoint_selectors,
    namespace_selectors,
)

NAMESPACES = ("oa", "ob")
# (ref, host) - two namespaces spread over three hosts, so that every verdict
# is taken once on the same host and once across the fabric.
WORKLOADS: tuple[tuple[str, str], ...] = (
    ("oa/w1", "h1"),
    ("oa/w2", "h2"),
    ("oa/w3", "h3"),
    ("ob/w4", "h1"),
    ("ob/w5", "h2"),
    ("ob/w6", "h3"),
)
REFS = tuple(ref for ref, _ in WORKLOADS)
# What every workload serves; TCP 81 and UDP 80 are named differently on
# different workloads so that a named port resolves per destination; "http"
# on both TCP 80 and (some) UDP 80 checks that a named port keeps its protocol.
PROBES: tuple[tuple[str, int], ...] = (("tcp", 80), ("tcp", 81), ("udp", 80))
PORT_NAMES = ("http", "alt", "admin", "dns", "nope")
POOL = "198.18.0.0/16"
ELSEWHERE = "203.0.113.0/24"  # holds no workload
TIER = "ot"


def serve_for(ref: str) -> list[tuple[int, str, str]]:
    index = REFS.index(ref)
    alt = "alt" if index % 2 == 0 else "admin"
    dgram = "dns" if index % 3 == 0 else "http"
    return [(80, "tcp", "http"), (81, "tcp", alt), (80, "udp", dgram)]


@dataclass(frozen=True)
class Scenario:
    labels: Mapping[str, Mapping[str, str]]  # workload ref -> its labels (vocabulary keys)
    namespace_labels: Mapping[str, Mapping[str, str]]
    tier: dict[str, Any] | None = None
    policies: tuple[dict[str, Any], ...] = field(default=())
    netsets: tuple[dict[str, Any], ...] = field(default=())

    def manifests(self) -> list[dict[str, Any]]:
        """Namespaces, network sets, the tier, then the policies (placeholders unrendered)."""
        docs: list[dict[str, Any]] = [
            {"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": ns, "labels": dict(labels)}}
            for ns, labels in sorted(self.namespace_labels.items())
        ]  # fmt: skip
        docs.extend(self.netsets)
        if self.tier is not None:
            docs.append(self.tier)
        docs.extend(self.policies)
        return docs

    def to_yaml(self, ips: Mapping[str, str] | None = None) -> str:
        head = {"workloadLabels": {r: dict(v) for r, v in sorted(self.labels.items())}}
        docs = self.manifests() if ips is None else render(self.manifests(), ips)
        return yaml.safe_dump_all([head, *docs], sort_keys=False)


def render(value: Any, ips: Mapping[str, str]) -> Any:
    """Replace every ``@ns/name`` string by that workload's /32."""
    if isinstance(value, dict):
        return {k: render(v, ips) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, ips) for v in value]
    if isinstance(value, str) and value.startswith("@"):
        return f"{ips[value[1:]]}/32"
    return value


# ----------------------------------------------------------------- labels


def _label_sets(vocab: Mapping[str, tuple[str, ...]]) -> st.SearchStrategy[dict[str, str]]:
    keys = sorted(vocab)
    return st.tuples(*(st.sampled_from((None, *vocab[k])) for k in keys)).map(
        lambda values: {k: v for k, v in zip(keys, values, strict=True) if v is not None}
    )


workload_labels = st.tuples(*(_label_sets(WORKLOAD_VOCAB) for _ in REFS)).map(
    lambda sets: dict(zip(REFS, sets, strict=True))
)
namespace_labels = st.tuples(*(_label_sets(NAMESPACE_VOCAB) for _ in NAMESPACES)).map(
    lambda sets: dict(zip(NAMESPACES, sets, strict=True))
)

# ----------------------------------------------------------------- Calico rules

_ENDPOINT_SEL = endpoint_selectors(NAMESPACES)
_NAMESPACE_SEL = namespace_selectors(NAMESPACES)
_NETS = st.sampled_from((*tuple(f"@{r}" for r in REFS), POOL, ELSEWHERE))
_WORKLOAD_NETS = st.sampled_from(tuple(f"@{r}" for r in REFS))
_DST_PORTS = st.sampled_from((80, 81, 82, "80:81", "81:90", *PORT_NAMES))
# Probes leave from an ephemeral port: source ports here never cover it.
_SRC_PORTS = st.sampled_from((80, 81, "http", "1:1023"))


def _maybe(strategy: st.SearchStrategy[Any], chance: float) -> st.SearchStrategy[Any]:
    """``strategy`` with roughly ``chance``, else None (weights out of 20)."""
    yes = max(1, round(chance * 20))
    return st.sampled_from([True] * yes + [False] * (20 - yes)).flatmap(
        lambda on: strategy if on else st.none()
    )


@st.composite
def calico_entity(draw: st.DrawFn, *, with_ports: bool, source: bool) -> dict[str, Any]:
    entity: dict[str, Any] = {}
    sel = draw(_maybe(_ENDPOINT_SEL, 0.45))
    if sel is not None:
        entity["selector"] = sel.text
    not_sel = draw(_maybe(_ENDPOINT_SEL, 0.2))
    if not_sel is not None:
        entity["notSelector"] = not_sel.text
    ns_sel = draw(_maybe(_NAMESPACE_SEL, 0.2))
    if ns_sel is not None:
        entity["namespaceSelector"] = ns_sel.text
    nets = draw(_maybe(st.lists(_NETS, min_size=1, max_size=3, unique=True), 0.2))
    if nets is not None:
        entity["nets"] = nets
    not_nets = draw(_maybe(st.lists(_WORKLOAD_NETS, min_size=1, max_size=2, unique=True), 0.2))
    if not_nets is not None:
        entity["notNets"] = not_nets
    if with_ports:
        ports_strategy = _SRC_PORTS if source else _DST_PORTS
        chance = 0.1 if source else 0.5
        ports = draw(_maybe(st.lists(ports_strategy, min_size=1, max_size=2, unique=True),
                            chance))
        if ports is not None:
            entity["ports"] = ports
        not_ports = draw(_maybe(st.lists(ports_strategy, min_size=1, max_size=2, unique=True),
                                chance / 2))
        if not_ports is not None:
            entity["notPorts"] = not_ports
    return entity


_ACTIONS = st.sampled_from(("Allow",) * 4 + ("Deny",) * 2 + ("Pass", "Log"))
_PROTOCOLS = st.sampled_from((None, None, "TCP", "TCP", "UDP", 6, 17))


@st.composite
def calico_rule(draw: st.DrawFn) -> dict[str, Any]:
    rule: dict[str, Any] = {"action": draw(_ACTIONS)}
    protocol = draw(_PROTOCOLS)
    if protocol is not None:
        rule["protocol"] = protocol
    if draw(st.integers(0, 9)) == 0:
        rule["notProtocol"] = draw(st.sampled_from(("TCP", "UDP")))
    # A third of the rules name no peers, only protocol and ports: rules that
    # match much make the order of policies and tiers decide more verdicts.
    bare = draw(st.integers(0, 2)) == 0
    for side in ("source", "destination"):
        if bare and side == "source":
            continue
        if bare:
            entity = {}
            if protocol is not None:
                ports = draw(st.lists(_DST_PORTS, max_size=2, unique=True))
                if ports:
                    entity["ports"] = ports
        else:
            entity = draw(calico_entity(with_ports=protocol is not None,
                                        source=side == "source"))  # fmt: skip
        if entity:
            rule[side] = entity
    return rule


_ORDERS = st.sampled_from((None, None, 1, 10, 100, 1000, 1000.5))
_TYPES = st.sampled_from((None, None, ["Ingress"], ["Egress"], ["Ingress", "Egress"]))


@st.composite
def calico_policy(draw: st.DrawFn, name: str, tiers: tuple[str, ...]) -> dict[str, Any]:
    global_ = draw(st.booleans())
    spec: dict[str, Any] = {"selector": draw(_ENDPOINT_SEL).text}
    tier = draw(st.sampled_from(tiers))
    if tier != "default" or draw(st.booleans()):
        spec["tier"] = tier
    order = draw(_ORDERS)
    if order is not None:
        spec["order"] = order
    types = draw(_TYPES)
    if types is not None:
        spec["types"] = types
    for direction in ("ingress", "egress"):
        at_least: int = draw(st.integers(0, 1))
        rules: list[dict[str, Any]] = draw(st.lists(calico_rule(), min_size=at_least,
                                                    max_size=3))  # fmt: skip
        catch_all: bool = draw(st.booleans())
        if rules and catch_all:
            # A catch-all after specific rules: then every condition of those
            # rules decides verdicts, instead of mostly matching nothing.
            first = rules[0]["action"]
            last = "Deny" if first == "Allow" else "Allow" if first == "Deny" else None
            rules.append({"action": last or draw(st.sampled_from(("Allow", "Deny", "Pass")))})
        if rules:
            spec[direction] = rules
    metadata: dict[str, Any] = {"name": name}
    if global_:
        ns_sel = draw(_maybe(_NAMESPACE_SEL, 0.4))
        if ns_sel is not None:
            spec["namespaceSelector"] = ns_sel.text
    else:
        metadata["namespace"] = draw(st.sampled_from(NAMESPACES))
    return {
        "apiVersion": "projectcalico.org/v3",
        "kind": "GlobalNetworkPolicy" if global_ else "NetworkPolicy",
        "metadata": metadata,
        "spec": spec,
    }


# ----------------------------------------------------------------- Kubernetes


@st.composite
def label_selector(draw: st.DrawFn, vocab: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    """``{matchLabels, matchExpressions}``; often empty (everything)."""
    keys = sorted(vocab)
    out: dict[str, Any] = {}
    for key in draw(st.lists(st.sampled_from(keys), max_size=1, unique=True)):
        out.setdefault("matchLabels", {})[key] = draw(st.sampled_from(vocab[key]))
    exprs = []
    for key in draw(st.lists(st.sampled_from(keys), max_size=2, unique=True)):
        op = draw(st.sampled_from(("In", "NotIn", "Exists", "DoesNotExist")))
        expr: dict[str, Any] = {"key": key, "operator": op}
        if op in ("In", "NotIn"):
            expr["values"] = sorted(draw(st.sets(st.sampled_from(vocab[key]), min_size=1)))
        exprs.append(expr)
    if exprs:
        out["matchExpressions"] = exprs
    return out


_K8S_NS_VOCAB = {**NAMESPACE_VOCAB, "kubernetes.io/metadata.name": NAMESPACES}


@st.composite
def k8s_peer(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(("pod", "pod", "namespace", "both", "ipBlock", "ipBlock")))
    if kind == "ipBlock":
        cidr = draw(st.sampled_from((POOL, POOL, POOL, *(f"@{r}" for r in REFS))))
        block: dict[str, Any] = {"cidr": cidr}
        if cidr == POOL and draw(st.integers(0, 2)) > 0:
            block["except"] = draw(st.lists(_WORKLOAD_NETS, min_size=1, max_size=2, unique=True))
        return {"ipBlock": block}
    peer: dict[str, Any] = {}
    if kind in ("pod", "both"):
        peer["podSelector"] = draw(label_selector(WORKLOAD_VOCAB))
    if kind in ("namespace", "both"):
        peer["namespaceSelector"] = draw(label_selector(_K8S_NS_VOCAB))
    return peer


@st.composite
def k8s_port(draw: st.DrawFn) -> dict[str, Any]:
    port: dict[str, Any] = {}
    protocol = draw(st.sampled_from((None, "TCP", "UDP")))
    if protocol is not None:
        port["protocol"] = protocol
    number = draw(st.sampled_from((None, 80, 81, "http", "alt", "admin", "dns")))
    if number is not None:
        port["port"] = number
        if number == 80 and draw(st.integers(0, 2)) > 0:
            port["endPort"] = 81
    return port


@st.composite
def k8s_rule(draw: st.DrawFn, peers_key: str) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    peers = draw(st.lists(k8s_peer(), max_size=2))
    if peers:
        rule[peers_key] = peers
    ports = draw(st.lists(k8s_port(), max_size=2))
    if ports:
        rule["ports"] = ports
    return rule


@st.composite
def k8s_policy(draw: st.DrawFn, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": draw(label_selector(WORKLOAD_VOCAB))}
    types = draw(_TYPES)
    if types is not None:
        spec["policyTypes"] = types
    ingress = draw(st.lists(k8s_rule("from"), max_size=2))
    egress = draw(st.lists(k8s_rule("to"), max_size=2))
    if ingress:
        spec["ingress"] = ingress
    if egress:
        spec["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": draw(st.sampled_from(NAMESPACES))},
        "spec": spec,
    }


# ----------------------------------------------------------------- scenarios


@st.composite
def tier(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {"defaultAction": draw(st.sampled_from(("Deny", "Pass")))}
    order = draw(st.sampled_from((None, 50, 2_000_000)))
    if order is not None:
        spec["order"] = order
    return {"apiVersion": "projectcalico.org/v3", "kind": "Tier",
            "metadata": {"name": TIER}, "spec": spec}  # fmt: skip


@st.composite
def netset(draw: st.DrawFn, namespace: str | None) -> dict[str, Any]:
    """A (Global)NetworkSet holding workload addresses: selectors that match its
    labels match those addresses, whatever the workloads' own labels."""
    metadata: dict[str, Any] = {"name": "gns" if namespace is None else "ns1",
                                "labels": draw(_label_sets(WORKLOAD_VOCAB))}  # fmt: skip
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "projectcalico.org/v3",
        "kind": "GlobalNetworkSet" if namespace is None else "NetworkSet",
        "metadata": metadata,
        "spec": {"nets": draw(st.lists(_WORKLOAD_NETS, min_size=1, max_size=2, unique=True))},
    }


@st.composite
def netsets(draw: st.DrawFn) -> tuple[dict[str, Any], ...]:
    out = []
    if draw(st.booleans()):
        out.append(draw(netset(None)))
    if draw(st.booleans()):
        out.append(draw(netset(draw(st.sampled_from(NAMESPACES)))))
    return tuple(out)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    the_tier = draw(st.one_of(st.none(), tier()))
    tiers = ("default",) if the_tier is None else ("default", TIER)
    policies = []
    for i in range(draw(st.integers(1, 4))):
        if draw(st.integers(0, 2)) == 0:
            policies.append(draw(k8s_policy(f"k{i}")))
        else:
            policies.append(draw(calico_policy(f"p{i}", tiers)))
    return Scenario(
        labels=draw(workload_labels),
        namespace_labels=draw(namespace_labels),
        tier=the_tier,
        policies=tuple(policies),
        netsets=draw(netsets()),
    )


@st.composite
def changes(draw: st.DrawFn, first: Scenario) -> Scenario:
    """What a second phase writes over ``first``: some workloads relabelled, new
    namespace labels, some policies, the tier and the network sets rewritten
    under the same names, so that the agents update in place."""
    labels = {ref: draw(st.one_of(st.just(dict(old)), _label_sets(WORKLOAD_VOCAB)))
              for ref, old in first.labels.items()}  # fmt: skip
    the_tier = first.tier
    if the_tier is not None and draw(st.booleans()):
        the_tier = draw(tier())
    tiers = ("default",) if the_tier is None else ("default", TIER)
    policies = []
    for old in first.policies:
        if draw(st.booleans()):
            policies.append(old)
            continue
        if old["apiVersion"] == "networking.k8s.io/v1":
            new = draw(k8s_policy(old["metadata"]["name"]))
        else:
            new = draw(calico_policy(old["metadata"]["name"], tiers))
            new["kind"] = old["kind"]
            if old["kind"] == "NetworkPolicy":
                new["spec"].pop("namespaceSelector", None)
        new["metadata"] = dict(old["metadata"])
        policies.append(new)
    sets = []
    for old in first.netsets:
        new = draw(netset(old["metadata"].get("namespace")))
        sets.append(draw(st.sampled_from((old, new))))
    return Scenario(
        labels=labels,
        namespace_labels=draw(namespace_labels),
        tier=the_tier,
        policies=tuple(policies),
        netsets=tuple(sets),
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[Scenario, Scenario | None]:
    """A scenario and, usually, changes made once its verdicts were checked."""
    first = draw(scenarios())
    then = draw(st.one_of(st.none(), changes(first), changes(first)))
    return first, then


# ----------------------------------------------------------------- a found disagreement

# A Kubernetes podSelector peer selects pods of the policy's namespace
# (kubernetes.io NetworkPolicy API: "selects particular Pods in the same
# namespace as the NetworkPolicy"). A Calico NetworkSet is no pod: its labels
# must not let another namespace's pod in. Calico's conversion keeps network
# sets out of Kubernetes selectors (it adds projectcalico.org/orchestrator ==
# 'k8s'). gingham's k8s_policy_to_calico once did not, and calc and the
# reference evaluator both treated the set's addresses as selected pods.
K8S_POD_PEER = {
    "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
    "metadata": {"name": "k0", "namespace": "oa"},
    "spec": {"podSelector": {},
             "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]},
}  # fmt: skip
NETSET_WITH_OTHER_NAMESPACE_POD = {
    "apiVersion": "projectcalico.org/v3", "kind": "NetworkSet",
    "metadata": {"name": "ns1", "namespace": "oa", "labels": {"app": "web"}},
    "spec": {"nets": ["@ob/w5"]},
}  # fmt: skip
