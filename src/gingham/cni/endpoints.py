"""The WorkloadEndpoint of a CNI attachment: its name, key and document, and how DEL
and GC read a stored one.

A stored endpoint that is malformed is never trusted (``read_endpoint`` says
why not); the check is plain Python, so DEL and GC stay clear of pydantic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gingham.cni.documents import EndpointDoc, EndpointPort, EndpointSpec, NamespaceDoc
from gingham.cni.netconf import Invocation
from gingham.datastore import keys
from gingham.datastore.base import Undecodable
from gingham.names import K8S_NAMESPACE_NAME_LABEL, NAMESPACE_PROFILE_PREFIX

# Which CNI network an endpoint was attached for: GC's scope.
NETWORK_ANNOTATION = "cni.gingham.dev/network"


def endpoint_name(node: str, orchestrator: str, workload: str, endpoint: str) -> str:
    """Calico's composite WorkloadEndpoint name: parts joined by '-', their own '-' doubled."""
    return "-".join(part.replace("-", "--") for part in (node, orchestrator, workload, endpoint))


def endpoint_key(inv: Invocation) -> str:
    name = endpoint_name(inv.node, inv.orchestrator, inv.workload, inv.ifname)
    return keys.resource_key("WorkloadEndpoint", name, inv.namespace)


def namespace_key(namespace: str) -> str:
    return keys.resource_key("Namespace", namespace)


def namespace_doc(namespace: str) -> NamespaceDoc:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {K8S_NAMESPACE_NAME_LABEL: namespace}}}


def endpoint_doc(inv: Invocation, host_if: str, mac: str, cidrs: list[str]) -> EndpointDoc:
    spec: EndpointSpec = {
        "orchestrator": inv.orchestrator,
        "workload": inv.workload,
        "node": inv.node,
        "containerID": inv.container_id,
        "pod": inv.workload,
        "endpoint": inv.ifname,
        "interfaceName": host_if,
        "mac": mac,
        "ipNetworks": cidrs,
        "profiles": [NAMESPACE_PROFILE_PREFIX + inv.namespace],
    }
    if inv.ports:
        named: list[EndpointPort] = [{"name": p.name, "protocol": p.protocol, "port": p.port}
                                     for p in inv.ports if p.name]  # fmt: skip
        spec["ports"] = named
    if inv.service_account:
        spec["serviceAccountName"] = inv.service_account
    return {
        "apiVersion": "projectcalico.org/v3",
        "kind": "WorkloadEndpoint",
        "metadata": {
            "name": endpoint_name(inv.node, inv.orchestrator, inv.workload, inv.ifname),
            "namespace": inv.namespace,
            "labels": dict(inv.labels),
            "annotations": {NETWORK_ANNOTATION: inv.network},
        },
        "spec": spec,
    }


@dataclass(frozen=True, slots=True)
class StoredEndpoint:
    """What DEL and GC read of a stored WorkloadEndpoint ("" where a field is absent)."""

    namespace: str
    network: str  # the NETWORK_ANNOTATION, "" when not made by this plugin
    node: str
    container_id: str | None  # None: absent
    endpoint: str  # the container-side interface name
    workload: str
    interface: str  # the host-side veth
    ip_networks: tuple[str, ...]


_SPEC_STRINGS = ("orchestrator", "workload", "node", "containerID", "pod", "endpoint",
                 "interfaceName")  # fmt: skip


def _strings(value: object) -> dict[str, str] | None:
    if not isinstance(value, dict):
        return None
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            return None
        out[k] = v
    return out


def read_endpoint(value: Mapping[str, object]) -> StoredEndpoint | str:
    """The stored endpoint as DEL and GC use it, or why it cannot be trusted.

    Structural only: the fields those commands use have the types ADD writes.
    """
    if isinstance(value, Undecodable):
        return f"not decodable: {value.reason}"
    if not isinstance(value, dict):
        return "not a JSON object"
    if value.get("kind") != "WorkloadEndpoint":
        return f"kind is {value.get('kind')!r}, not 'WorkloadEndpoint'"
    meta, spec = value.get("metadata"), value.get("spec")
    if not isinstance(meta, dict):
        return "metadata is not an object"
    if not isinstance(spec, dict):
        return "spec is not an object"
    for name in ("name", "namespace"):
        if not isinstance(meta.get(name), str) or not meta[name]:
            return f"metadata.{name} is not a non-empty string"
    annotations = _strings(meta.get("annotations", {}))
    for name, field in (("labels", _strings(meta.get("labels", {}))),
                        ("annotations", annotations)):  # fmt: skip
        if field is None:
            return f"metadata.{name} is not an object of strings"
    fields: dict[str, str] = {}
    for name in _SPEC_STRINGS:
        if name in spec and not isinstance(spec[name], str):
            return f"spec.{name} is not a string"
        fields[name] = spec.get(name) or ""
    nets = spec.get("ipNetworks", [])
    if not isinstance(nets, list) or not all(isinstance(n, str) for n in nets):
        return "spec.ipNetworks is not a list of strings"
    return StoredEndpoint(
        namespace=meta["namespace"],
        network=(annotations or {}).get(NETWORK_ANNOTATION, ""),
        node=fields["node"],
        container_id=spec.get("containerID"),
        endpoint=fields["endpoint"],
        workload=fields["workload"],
        interface=fields["interfaceName"],
        ip_networks=tuple(str(n) for n in nets),
    )


def endpoint_problem(value: Mapping[str, object]) -> str | None:
    """Why a stored WorkloadEndpoint cannot be trusted where DEL and GC read it, or None."""
    got = read_endpoint(value)
    return got if isinstance(got, str) else None
