"""Key layout of IPAM state under ``/gingham/v1/ipam/`` (a watcher may follow these).

    blocks/<cidr, "/" as "-">            one block document (see ``block.py``)
    affinity/<host>/<cidr, "/" as "-">   {"state": "pending"|"confirmed", "since": unix time}
    handles/<handle>                     {"handle", "blocks": {cidr: count}, "releasing"}
    config/global                        {"strictAffinity", "maxBlocksPerHost"}
    config/hosts/<host>                  the same fields, overriding global for one host
    leakcheck                            leak candidates seen by the previous check

A block key exists exactly when the block exists; its ``affinity`` field
(``host:<name>`` or null) says which host routes it. Routing follows
``blocks/``; the affinity keys are the claim protocol's bookkeeping.
"""

from __future__ import annotations

from gingham.datastore import keys as _root

IPAM = _root.IPAM
BLOCKS = IPAM + "blocks/"
AFFINITY = IPAM + "affinity/"
HANDLES = IPAM + "handles/"
CONFIG = IPAM + "config/"
CONFIG_GLOBAL = CONFIG + "global"
CONFIG_HOSTS = CONFIG + "hosts/"
LEAKCHECK = IPAM + "leakcheck"

POOLS = _root.resource_prefix("IPPool")
RESERVATIONS = _root.resource_prefix("IPReservation")
NODES = _root.resource_prefix("Node")
WORKLOADS = _root.resource_prefix("WorkloadEndpoint")
LIVENESS = _root.LIVENESS


def cidr_token(cidr: object) -> str:
    return str(cidr).replace("/", "-")


def token_cidr(token: str) -> str:
    head, _, length = token.rpartition("-")
    return f"{head}/{length}"


def block_key(cidr: object) -> str:
    return BLOCKS + cidr_token(cidr)


def affinity_prefix(host: str) -> str:
    return f"{AFFINITY}{host}/"


def affinity_key(host: str, cidr: object) -> str:
    return affinity_prefix(host) + cidr_token(cidr)


def parse_affinity_key(key: str) -> tuple[str, str]:
    """(host, cidr) of an affinity key."""
    rest = key[len(AFFINITY):]
    host, _, token = rest.partition("/")
    return host, token_cidr(token)


def handle_key(handle: str) -> str:
    return HANDLES + handle


def host_config_key(host: str) -> str:
    return CONFIG_HOSTS + host
