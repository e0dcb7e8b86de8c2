"""Per-rule packet counters, read from each host's nft table and named after the model.

Every nft rule gingham renders carries a ``counter`` and its rule id as the
comment; a rule rendered several times (per address family, per named-port
alternative) has one comment, so a rule's count is the sum over them. The
renderer's own drops (``tier-end:<tier>``, ``no-profile-allowed``, …) sit in
endpoint chains, which the dispatch maps (``to-wl``, ``from-wl``, …) name
per interface; those are counted per chain and named after the endpoints
that jump to it (several when endpoints with equal policy share a chain).

``rule_stats`` is pure (an ``nft -j list table`` document in, rows out);
``read_table`` and ``collect`` do the I/O.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gingham.errors import DataplaneError
from gingham.policy.ruleids import parse_rule_id, rule_action
from gingham.policy.world import World

TABLE = ("inet", "gingham")


@dataclass(frozen=True, slots=True)
class RuleStat:
    host: str
    rule_id: str
    kind: str
    owner: str | None
    direction: str | None
    index: int | None
    action: str | None
    endpoint: str | None
    packets: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host, "ruleId": self.rule_id, "kind": self.kind, "owner": self.owner,
            "direction": self.direction, "index": self.index, "action": self.action,
            "endpoint": self.endpoint, "packets": self.packets, "bytes": self.bytes,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Counter:
    chain: str
    comment: str
    packets: int
    bytes: int


def counters(doc: Mapping[str, Any]) -> list[Counter]:
    """Rules with a counter and a comment, from ``nft -j list table`` output."""
    out = []
    for entry in doc.get("nftables", []):
        rule = entry.get("rule") if isinstance(entry, dict) else None
        if not rule or not rule.get("comment"):
            continue
        for expr in rule.get("expr", []):
            if isinstance(expr, dict) and isinstance(expr.get("counter"), dict):
                c = expr["counter"]
                out.append(Counter(rule["chain"], rule["comment"], int(c.get("packets", 0)),
                                   int(c.get("bytes", 0))))
                break
    return out


_MAP_DIRECTIONS = {"to-wl": "ingress", "from-wl": "egress", "to-hep": "ingress",
                   "from-hep": "egress"}


def dispatch(doc: Mapping[str, Any]) -> dict[str, tuple[str, list[str]]]:
    """chain -> (direction, interfaces whose packets jump to it), from the dispatch maps.

    Endpoints with equal policies may share one chain, so a chain can stand
    for several interfaces.
    """
    out: dict[str, tuple[str, list[str]]] = {}
    for entry in doc.get("nftables", []):
        m = entry.get("map") if isinstance(entry, dict) else None
        if not m or m.get("name") not in _MAP_DIRECTIONS:
            continue
        direction = _MAP_DIRECTIONS[m["name"]]
        for elem in m.get("elem", []):
            if not (isinstance(elem, list) and len(elem) == 2 and isinstance(elem[1], dict)):
                continue
            target = (elem[1].get("jump") or elem[1].get("goto") or {}).get("target")
            if isinstance(target, str) and isinstance(elem[0], str):
                out.setdefault(target, (direction, []))[1].append(elem[0])
    return out


def endpoint_of_chain(
    chain: str, world: World | None, chains: Mapping[str, tuple[str, list[str]]] | None = None
) -> tuple[str | None, str | None]:
    """(endpoints, direction) a per-endpoint chain stands for, else (None, None).

    Endpoints are named after the model where it knows the interface, and
    comma-separated when several share the chain.
    """
    found = (chains or {}).get(chain)
    if found is None:
        for prefix, direction in (("tw-", "ingress"), ("fw-", "egress"),
                                  ("th-", "ingress"), ("fh-", "egress")):
            if chain.startswith(prefix):
                found = (direction, [chain[len(prefix):]])
                break
    if found is None:
        return None, None
    direction, ifaces = found

    def name(iface: str) -> str:
        item = world.by_interface(iface) if world is not None else None
        return item.ref if item is not None else iface

    return ",".join(sorted(name(i) for i in ifaces)), direction


def rule_stats(
    host: str,
    doc: Mapping[str, Any],
    world: World | None = None,
    resolve: Callable[[str], str] = lambda c: c,
) -> list[RuleStat]:
    """Sum counters by rule id (and by endpoint for the renderer's own drops)."""
    sums: dict[tuple[str, str | None, str | None], list[int]] = {}
    chains = dispatch(doc)
    for c in counters(doc):
        if c.comment.startswith("v:"):
            continue  # chain markers
        rid = resolve(c.comment)
        ref = parse_rule_id(rid)
        endpoint: str | None = None
        direction = ref.direction
        if ref.kind not in ("policy", "profile"):
            endpoint, chain_dir = endpoint_of_chain(c.chain, world, chains)
            direction = direction or chain_dir
        key = (rid, endpoint, direction)
        acc = sums.setdefault(key, [0, 0])
        acc[0] += c.packets
        acc[1] += c.bytes
    out = []
    for (rid, endpoint, direction), (packets, nbytes) in sums.items():
        ref = parse_rule_id(rid)
        out.append(RuleStat(
            host=host, rule_id=rid, kind=ref.kind, owner=ref.owner or ref.tier,
            direction=direction, index=ref.index,
            action=rule_action(world, ref) if world is not None else None,
            endpoint=endpoint, packets=packets, bytes=nbytes,
        ))  # fmt: skip
    out.sort(key=lambda s: (s.host, s.kind != "policy", s.owner or "", s.direction or "",
                            s.index if s.index is not None else -1, s.endpoint or ""))
    return out


def read_table(netns: str | None) -> dict[str, Any]:
    """``nft -j list table inet gingham`` in a network namespace (None: this one)."""
    from gingham.dataplane.nft import netns_argv

    argv = [*netns_argv(netns), "nft", "-j", "list", "table", *TABLE]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DataplaneError(f"cannot run nft: {exc}") from None
    if proc.returncode != 0:
        if "No such file or directory" in proc.stderr:
            return {"nftables": []}  # no agent has programmed this host yet
        where = f" in {netns}" if netns else ""
        raise DataplaneError(f"nft list table{where} failed: {proc.stderr.strip()}")
    try:
        doc: dict[str, Any] = json.loads(proc.stdout)
    except ValueError as exc:
        raise DataplaneError(f"nft -j output is not JSON: {exc}") from None
    return doc


def collect(hosts: Sequence[tuple[str, str | None]], world: World | None = None
            ) -> list[RuleStat]:
    """Counters of every ``(host name, netns)``, named after ``world``'s rules."""
    from gingham.policy.ruleids import known_rule_ids, resolver

    resolve = resolver(known_rule_ids(world)) if world is not None else (lambda c: c)
    out: list[RuleStat] = []
    for host, netns in hosts:
        out += rule_stats(host, read_table(netns), world, resolve)
    return out
