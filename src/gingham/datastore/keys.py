"""Key layout in the datastore. The one place that spells key paths.

    /gingham/v1/resources/<Kind>/<name>                  cluster-scoped resource
    /gingham/v1/resources/<Kind>/<namespace>/<name>      namespaced resource
    /gingham/v1/ipam/...                                 owned by gingham.ipam
    /gingham/v1/liveness/<host>                          agent liveness, under a lease
    /gingham/v1/status/<host>                            agent status reports
    /gingham/v1/cluster                                  cluster identity (datastore/cluster.py)
    /gingham/v1/docker/pending/<node>/<endpoint id>      a Docker endpoint whose container's
                                                         labels are not known yet (gingham.docker)
"""

from __future__ import annotations

ROOT = "/gingham/v1/"
RESOURCES = ROOT + "resources/"
IPAM = ROOT + "ipam/"
LIVENESS = ROOT + "liveness/"
STATUS = ROOT + "status/"
CLUSTER = ROOT + "cluster"
DOCKER_PENDING = ROOT + "docker/pending/"


def resource_prefix(kind: str, namespace: str | None = None) -> str:
    if namespace:
        return f"{RESOURCES}{kind}/{namespace}/"
    return f"{RESOURCES}{kind}/"


def resource_key(kind: str, name: str, namespace: str | None = None) -> str:
    return resource_prefix(kind, namespace) + name


def liveness_key(host: str) -> str:
    return LIVENESS + host


def docker_pending_prefix(node: str) -> str:
    return f"{DOCKER_PENDING}{node}/"


def docker_pending_key(node: str, endpoint_id: str) -> str:
    return docker_pending_prefix(node) + endpoint_id
