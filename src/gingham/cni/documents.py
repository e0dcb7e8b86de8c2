"""The JSON documents the CNI plugin reads and writes, typed.

What the runtime gets (a CNI result, an IPAM result, an error) and what the
datastore gets (a WorkloadEndpoint, a v1 Namespace) as TypedDicts; what the
runtime sends as ``JSONObject`` (any JSON, narrowed where it is read).
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

JSONValue = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]
JSONObject = dict[str, JSONValue]


class ResultInterface(TypedDict):
    name: str
    mac: str
    sandbox: NotRequired[str]


class ResultIP(TypedDict):
    address: str
    interface: NotRequired[int]
    gateway: NotRequired[str]
    version: NotRequired[str]  # CNI 0.x only


class ResultRoute(TypedDict):
    dst: str


class Result(TypedDict):
    """What ADD prints for the runtime."""

    cniVersion: str
    interfaces: list[ResultInterface]
    ips: list[ResultIP]
    routes: list[ResultRoute]
    dns: dict[str, JSONValue]


class IpamResult(TypedDict):
    """What ADD prints as another plugin's IPAM."""

    cniVersion: str
    ips: list[ResultIP]
    routes: list[ResultRoute]


Output = Result | IpamResult


class ErrorDoc(TypedDict):
    cniVersion: str
    code: int
    msg: str
    details: NotRequired[str]


class VersionDoc(TypedDict):
    cniVersion: str
    supportedVersions: list[str]


class EndpointPort(TypedDict):
    name: str
    protocol: str
    port: int


class EndpointSpec(TypedDict):
    orchestrator: str
    workload: str
    node: str
    containerID: str
    pod: str
    endpoint: str
    interfaceName: str
    mac: str
    ipNetworks: list[str]
    profiles: list[str]
    ports: NotRequired[list[EndpointPort]]
    serviceAccountName: NotRequired[str]


class EndpointMeta(TypedDict):
    name: str
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]


class EndpointDoc(TypedDict):
    """The WorkloadEndpoint ADD writes."""

    apiVersion: str
    kind: str
    metadata: EndpointMeta
    spec: EndpointSpec


class NamespaceMeta(TypedDict):
    name: str
    labels: dict[str, str]


class NamespaceDoc(TypedDict):
    apiVersion: str
    kind: str
    metadata: NamespaceMeta
