"""Kubernetes kinds: ``networking.k8s.io/v1`` NetworkPolicy and ``v1`` Namespace.

Only the fields that carry meaning for networking are modelled; ``status``
and server-set metadata are accepted so that ``kubectl get -o yaml`` output loads.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Final, Literal

from pydantic import Field, PlainValidator, model_validator

from gingham.model.k8s_selector import LabelSelector, LabelSelectorRequirement
from gingham.model.meta import (
    Int,
    Model,
    ProblemList,
    Resource,
    Str,
    dump_hint,
)
from gingham.model.policy import COMPUTED
from gingham.model.values import CIDR
from gingham.names import K8S_NAMESPACE_NAME_LABEL as NAMESPACE_NAME_LABEL

K8S_NETWORKING_API: Final = "networking.k8s.io/v1"
K8S_CORE_API: Final = "v1"

K8sPolicyType = Literal["Ingress", "Egress"]


class IPBlock(Model):
    cidr: CIDR
    except_: tuple[CIDR, ...] = Field(default=(), alias="except")

    @model_validator(mode="after")
    def _inside(self) -> IPBlock:
        problems = ProblemList()
        outer = ipaddress.ip_network(self.cidr)
        for i, text in enumerate(self.except_):
            inner = ipaddress.ip_network(text)
            if inner.version != outer.version or not inner.subnet_of(outer):  # type: ignore[arg-type]
                problems.add(f"except[{i}]", f"{text} is not inside {self.cidr}")
            elif inner == outer:
                problems.add(f"except[{i}]", f"{text} excludes the whole block")
        problems.raise_if_any()
        return self


class NetworkPolicyPeer(Model):
    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> NetworkPolicyPeer:
        problems = ProblemList()
        if self.ip_block is not None and (self.pod_selector or self.namespace_selector):
            problems.add("ipBlock", "cannot be combined with podSelector or namespaceSelector")
        if self.ip_block is None and self.pod_selector is None and self.namespace_selector is None:
            problems.add("", "needs podSelector, namespaceSelector or ipBlock")
        problems.raise_if_any()
        return self


def check_k8s_port(value: Any) -> int | str:
    """A Kubernetes port: a number 1-65535 or an IANA service name (``http``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= 65535:
            raise ValueError(f"port {value} out of range 1-65535")
        return value
    if isinstance(value, str):
        if not _is_iana_name(value):
            raise ValueError(f"invalid named port {value!r}: 1-15 lower-case letters, "
                             "digits and '-', with a letter")
        return value
    raise ValueError(f"port must be a number or a name, got {dump_hint(value)}")


class NetworkPolicyPort(Model):
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    port: Annotated[int | str, PlainValidator(check_k8s_port)] | None = None
    end_port: Int | None = None

    @model_validator(mode="after")
    def _port(self) -> NetworkPolicyPort:
        problems = ProblemList()
        port = self.port
        if self.end_port is not None:
            if not isinstance(port, int):
                problems.add("endPort", "needs a numeric port")
            elif not port <= self.end_port <= 65535:
                problems.add("endPort", f"{self.end_port} must be between port {port} and 65535")
        problems.raise_if_any()
        return self


def _is_iana_name(name: str) -> bool:
    return (
        1 <= len(name) <= 15
        and all(c.islower() or c.isdigit() or c == "-" for c in name)
        and any(c.isalpha() for c in name)
        and not name.startswith("-")
        and not name.endswith("-")
        and "--" not in name
    )


class NetworkPolicyIngressRule(Model):
    from_: tuple[NetworkPolicyPeer, ...] = Field(default=(), alias="from")
    ports: tuple[NetworkPolicyPort, ...] = ()


class NetworkPolicyEgressRule(Model):
    to: tuple[NetworkPolicyPeer, ...] = ()
    ports: tuple[NetworkPolicyPort, ...] = ()


class KubernetesNetworkPolicySpec(Model):
    pod_selector: LabelSelector = Field(default_factory=LabelSelector)
    # Kubernetes' defaulting when absent: Ingress always, Egress if there are egress rules.
    policy_types: tuple[K8sPolicyType, ...] = Field(default=COMPUTED)
    ingress: tuple[NetworkPolicyIngressRule, ...] = ()
    egress: tuple[NetworkPolicyEgressRule, ...] = ()

    @model_validator(mode="after")
    def _types(self) -> KubernetesNetworkPolicySpec:
        if self.policy_types is None:
            types: tuple[K8sPolicyType, ...] = ("Ingress", "Egress") if self.egress else (
                "Ingress",)
            object.__setattr__(self, "policy_types", types)
        elif len(set(self.policy_types)) != len(self.policy_types):
            problems = ProblemList()
            problems.add("policyTypes", "a type is listed more than once")
            problems.raise_if_any()
        return self


class KubernetesNetworkPolicy(Resource):
    """``networking.k8s.io/v1`` NetworkPolicy; see ``k8s_policy_to_calico`` for its meaning."""

    NAMESPACED = True
    api_version: Literal["networking.k8s.io/v1"] = K8S_NETWORKING_API
    kind: Literal["NetworkPolicy"] = "NetworkPolicy"
    spec: KubernetesNetworkPolicySpec = Field(default_factory=KubernetesNetworkPolicySpec)

    @model_validator(mode="after")
    def _converts(self) -> KubernetesNetworkPolicy:
        # Agents enforce the converted Calico policy. Whatever the conversion refuses
        # (a selector past the parser's limits, a name too long once prefixed) must be
        # refused here, at apply time, rather than be found invalid by every agent.
        import pydantic

        from gingham.model.convert import k8s_policy_to_calico
        from gingham.model.translate import loc_to_path, problem_message

        try:
            k8s_policy_to_calico(self)
        except pydantic.ValidationError as exc:
            problems = ProblemList()
            for error in exc.errors():
                path = loc_to_path(error["loc"])
                problems.add(_CONVERTED_PATHS.get(path, path.split("[", 1)[0]),
                             f"as a Calico policy: {problem_message(error)}")
            problems.raise_if_any()
        return self


# Where a problem of the converted policy comes from in the Kubernetes one.
_CONVERTED_PATHS: Final = {"spec.selector": "spec.podSelector"}


class NamespaceSpec(Model):
    finalizers: tuple[Str, ...] = ()


class Namespace(Resource):
    """``v1`` Namespace. Carries ``kubernetes.io/metadata.name``, added when absent."""

    api_version: Literal["v1"] = K8S_CORE_API
    kind: Literal["Namespace"] = "Namespace"
    spec: NamespaceSpec | None = None
    status: dict[Str, Any] | None = None

    @model_validator(mode="after")
    def _name_label(self) -> Namespace:
        problems = ProblemList()
        name = self.metadata.name
        if len(name) > 63 or "." in name:
            problems.add("metadata.name", f"invalid namespace name {name!r}: a DNS label "
                                          "(no '.', at most 63 characters)")
        labels = self.metadata.labels
        if labels.get(NAMESPACE_NAME_LABEL, name) != name:
            problems.add(f"metadata.labels[{NAMESPACE_NAME_LABEL!r}]",
                         f"must equal the namespace name {name!r}")
        problems.raise_if_any()
        if NAMESPACE_NAME_LABEL not in labels:
            meta = self.metadata.model_copy(
                update={"labels": {**labels, NAMESPACE_NAME_LABEL: name}})
            object.__setattr__(self, "metadata", meta)
        return self


__all__ = [
    "K8S_CORE_API",
    "K8S_NETWORKING_API",
    "NAMESPACE_NAME_LABEL",
    "IPBlock",
    "K8sPolicyType",
    "KubernetesNetworkPolicy",
    "KubernetesNetworkPolicySpec",
    "LabelSelector",
    "LabelSelectorRequirement",
    "Namespace",
    "NamespaceSpec",
    "NetworkPolicyEgressRule",
    "NetworkPolicyIngressRule",
    "NetworkPolicyPeer",
    "NetworkPolicyPort",
]
