"""The chaos test's parts: a scenario, a seeded document fuzzer, a prober, a dataplane snapshot.

Scenario (``setup_scenario``): six workloads on three hosts, and four different
mechanisms that each deny some pairs, chosen because treating a corrupted
document as absent would open them:

    host h1: web/api (role=api)       client/c1 (role=client)
    host h2: web/db (role=db)         client/c2 (role=client, zone=b)
    host h3: ops/admin (role=admin)   ops/blocked (role=blocked)

- Kubernetes NetworkPolicy ``web/allow-list``: namespace web accepts only
  web/api and ops/admin (an allow-list: gone, web is open to everyone);
- Calico NetworkPolicy ``client/deny-admin``: Deny to the NetworkSet
  ``client/admin-nets`` (ops/admin's address), then Allow (the set emptied,
  the Allow lets clients reach admin);
- GlobalNetworkPolicy ``security.guard`` in tier ``security``: Deny from the
  GlobalNetworkSet ``blocked-sources`` (ops/blocked), then Pass;
- GlobalNetworkPolicy ``admin-not-zone-b`` (default tier): admin may not reach
  zone b (client/c2), then Allow.

Plus one valid document of every other kind the agents read (Profile,
HostEndpoint on an interface no host has, FelixConfiguration, BGPPeer and a
BGPConfiguration that do not switch BGP on, IPReservation), the lab's IPPool,
the agents' Nodes, the IPAM blocks and the cluster key.

Fuzzer (``Fuzzer``): one seeded ``random.Random``; every choice comes from it,
so a seed and an operation count name one sequence of operations on the same
keys (up to which block is whose: IPAM picks block CIDRs at random, and keys
are taken in sorted order). It writes through the datastore API (``put_raw``,
``update``, ``create``, ``delete``):

- in place, on the scenario's keys: only documents the agent must refuse
  (checked with the agent's own decoders before writing, so no write is a
  legitimate change of policy), or the original bytes again;
- on keys of its own in every family: corrupted copies of scenario documents
  and garbage, created, overwritten, deleted and created again;
- on the cluster key: garbage, another shape, another cluster's ID, deleted;
  always restored a few operations later (agents stop programming meanwhile).

Nothing here deletes a scenario key other than the cluster key: a valid delete
of a policy legitimately opens traffic. ``restore()`` puts every touched key
back byte for byte and deletes the fuzzer's own keys.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import random
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from gingham.agent.decode import decode, decode_key, decode_resource
from gingham.agent.decode import decode_value as typed_value
from gingham.calc import CalcGraph
from gingham.datastore import keys
from gingham.datastore.base import Datastore, KeyValue, Undecodable, decode_value, encode_value
from gingham.datastore.resources import ResourceStore
from gingham.errors import (
    DatastoreError,
    LabError,
    NotFound,
    RevisionConflict,
    ValidationError,
)
from gingham.ipam.block import Block
from gingham.ipam.keys import block_key
from gingham.lab import lab as labmod
from gingham.lab import state as labstate
from gingham.lab import workloads
from gingham.lab.prober import Target
from gingham.lab.prober import measure as probe_all
from gingham.lab.state import LabState
from gingham.model import InvalidResource, load_manifests
from tests.integration.faults import tools

PORT = 80
BLOCKS = keys.IPAM + "blocks/"
# Agents ignore these: their own chatter, rewritten all the time.
CHATTER = (keys.LIVENESS, keys.STATUS)

# --- the scenario ------------------------------------------------------------------------

WORKLOADS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("web/api", "h1", {"role": "api"}),
    ("client/c1", "h1", {"role": "client"}),
    ("web/db", "h2", {"role": "db"}),
    ("client/c2", "h2", {"role": "client", "zone": "b"}),
    ("ops/admin", "h3", {"role": "admin"}),
    ("ops/blocked", "h3", {"role": "blocked"}),
)

# Before the workloads, so the CNI plugin finds the namespaces (with their labels) there.
NAMESPACES = """
apiVersion: v1
kind: Namespace
metadata: {name: web, labels: {team: web}}
---
apiVersion: v1
kind: Namespace
metadata: {name: client, labels: {team: client}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ops, labels: {team: ops}}
"""

POLICIES = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-list, namespace: web}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  ingress:
  - from:
    - podSelector: {matchLabels: {role: api}}
    - namespaceSelector: {matchLabels: {team: ops}}
      podSelector: {matchLabels: {role: admin}}
---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {name: admin-nets, namespace: client, labels: {set: admin}}
spec: {nets: ["{admin}/32"]}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: deny-admin, namespace: client}
spec:
  selector: all()
  types: [Egress]
  egress:
  - action: Deny
    destination: {selector: "set == 'admin'"}
  - action: Allow
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: blocked-sources, labels: {gset: blocked}}
spec: {nets: ["{blocked}/32"]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.guard}
spec:
  tier: security
  order: 10
  selector: all()
  types: [Ingress, Egress]
  ingress:
  - action: Deny
    source: {selector: "gset == 'blocked'"}
  - action: Pass
  egress:
  - action: Pass
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: admin-not-zone-b}
spec:
  order: 10
  selector: role == 'admin'
  types: [Egress]
  egress:
  - action: Deny
    destination: {selector: "zone == 'b'"}
  - action: Allow
---
apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: chaos-shared}
spec:
  labelsToApply: {shared: "yes"}
  ingress: [{action: Allow}]
  egress: [{action: Allow}]
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: h1-absent, labels: {hep: absent}}
spec: {node: h1, interfaceName: hep0, expectedIPs: [192.0.2.250]}
---
apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata: {name: default}
spec:
  failsafeInboundHostPorts: [{protocol: TCP, port: 22}, {protocol: TCP, port: 2222}]
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: chaos-peer}
spec: {peerIP: 203.0.113.250, asNumber: 64999}
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: node.h1}
spec: {logSeverityScreen: Info}
---
apiVersion: projectcalico.org/v3
kind: IPReservation
metadata: {name: chaos-reserved}
spec: {reservedCIDRs: [198.18.255.0/24]}
"""

# (from, to) pairs the scenario denies; every other ordered pair is allowed.
DENIED: frozenset[tuple[str, str]] = frozenset(
    {
        # the Kubernetes allow-list of namespace web
        ("client/c1", "web/api"), ("client/c1", "web/db"), ("client/c2", "web/api"),
        ("client/c2", "web/db"), ("web/db", "web/api"),
        # client/deny-admin and its NetworkSet
        ("client/c1", "ops/admin"), ("client/c2", "ops/admin"),
        # admin-not-zone-b, a GlobalNetworkPolicy Deny rule in the default tier
        ("ops/admin", "client/c2"),
        # security.guard and its GlobalNetworkSet (and for web, the allow-list too)
        ("ops/blocked", "web/api"), ("ops/blocked", "web/db"), ("ops/blocked", "client/c1"),
        ("ops/blocked", "client/c2"), ("ops/blocked", "ops/admin"),
    }
)  # fmt: skip
REFS = tuple(ref for ref, _, _ in WORKLOADS)
PAIRS = tuple((a, b) for a in REFS for b in REFS if a != b)
ALLOWED = frozenset(p for p in PAIRS if p not in DENIED)


def _apply(ds: Datastore, text: str) -> None:
    store = ResourceStore(ds)
    for res in load_manifests(text):
        store.apply(res)


def setup_scenario(name: str) -> LabState:
    """Workloads and policies of the scenario; returns the lab once the matrix is as designed."""
    st = labstate.load(name)
    ds = tools.datastore(st)
    try:
        _apply(ds, NAMESPACES)
    finally:
        ds.close()
    for ref, host, labels in WORKLOADS:
        workloads.add(name, ref, host, labels, [(PORT, "tcp", "")])
    st = labstate.load(name)
    text = POLICIES.replace("{admin}", st.workload("ops/admin").ips[0])
    text = text.replace("{blocked}", st.workload("ops/blocked").ips[0])
    ds = tools.datastore(st)
    try:
        _apply(ds, text)
    finally:
        ds.close()
    last: dict[tuple[str, str], bool] = {}

    def as_designed() -> bool:
        last.clear()
        last.update(probe_pairs(st, PAIRS, timeout=0.5))
        return all(last[p] == (p in ALLOWED) for p in PAIRS)

    try:
        tools.wait_until(as_designed, 30, "the scenario's reachability", interval=0.2)
    except AssertionError:
        wrong = sorted(p for p in PAIRS if last.get(p) != (p in ALLOWED))
        raise AssertionError(f"scenario not as designed, wrong cells (from, to): {wrong}") from None
    return st


def targets(st: LabState) -> list[Target]:
    return [Target(ref, st.workload(ref).netns, st.workload(ref).ips[0]) for ref in REFS]


def probe_pairs(
    st: LabState, pairs: tuple[tuple[str, str], ...] | frozenset[tuple[str, str]],
    timeout: float = 0.5,
) -> dict[tuple[str, str], bool]:  # fmt: skip
    """Whether each (from, to) pair connects on tcp/PORT, all probed at once."""
    cells = probe_all(targets(st), PORT, "tcp", timeout)
    return {p: cells[p[0]][p[1]] for p in pairs}


# --- continuous probing --------------------------------------------------------------------


@dataclass
class Violation:
    at: float  # monotonic
    src: str
    dst: str
    round: int


class Prober:
    """Every ordered pair, probed over and over from a thread until ``stop``.

    A denied pair that connects, even once, is a violation. For allowed pairs
    only the last time each was seen closed is kept (they legitimately close
    while a quarantine or a blocked agent is in force).
    """

    def __init__(self, st: LabState, timeout: float = 0.5) -> None:
        self._targets = targets(st)
        self._timeout = timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-prober", daemon=True)
        self.rounds = 0
        self.violations: list[Violation] = []
        self.last_closed: dict[tuple[str, str], float] = {}
        self.errors: list[str] = []

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                cells = probe_all(self._targets, PORT, "tcp", self._timeout)
            except Exception as exc:  # keep probing; the test reports it
                self.errors.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.2)
                continue
            now = time.monotonic()
            self.rounds += 1
            for src, dst in PAIRS:
                is_open = cells[src][dst]
                if (src, dst) in DENIED and is_open:
                    self.violations.append(Violation(now, src, dst, self.rounds))
                elif (src, dst) in ALLOWED and not is_open:
                    self.last_closed[(src, dst)] = started


# --- the dataplane, normalised ---------------------------------------------------------------


def _run_json(argv: list[str]) -> Any:
    out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    if out.returncode != 0:
        return {"error": out.stderr.strip()}
    return json.loads(out.stdout or "null")


def _normalise(value: Any) -> Any:
    """Handles and counters vary with history, not meaning; set elements have no order."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k in ("handle", "expires"):
                continue
            if k == "counter" and isinstance(v, dict):
                out[k] = "counter"
            elif k == "elem" and isinstance(v, list):
                out[k] = sorted((_normalise(e) for e in v), key=lambda e: json.dumps(e, sort_keys=True))
            else:
                out[k] = _normalise(v)
        return out
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def nft_table(netns: str, table: str) -> dict[str, Any]:
    """``inet <table>`` as {"chains": {name: {attrs, rules}}, "sets": {...}, "maps": {...}}."""
    doc = _run_json(tools.nsenter(netns, "nft", "-j", "list", "table", "inet", table))
    if not isinstance(doc, dict) or "nftables" not in doc:
        return {"missing": doc}
    chains: dict[str, Any] = {}
    out: dict[str, Any] = {"chains": chains, "sets": {}, "maps": {}, "other": []}
    for obj in doc["nftables"]:
        (kind, body), = obj.items()
        body = _normalise(body)
        if kind == "chain":
            chains.setdefault(body["name"], {"rules": []})["chain"] = body
        elif kind == "rule":
            rule = {k: v for k, v in body.items() if k in ("expr", "comment")}
            chains.setdefault(body["chain"], {"rules": []})["rules"].append(rule)
        elif kind in ("set", "map"):
            out[kind + "s"][body["name"]] = body
        elif kind not in ("metainfo", "table"):
            out["other"].append(obj)
    return out


def _routes(netns: str) -> list[dict[str, Any]]:
    """The agent's routes (protocol 201, any table) and main-table routes over its devices
    (workload veths, VXLAN); ``ip route show table all`` lists IPv4 and IPv6."""
    routes = _run_json(["ip", "-n", netns, "-j", "route", "show", "table", "all"])
    ours = [
        _normalise(r) for r in routes
        if str(r.get("protocol")) == "201"
        or (str(r.get("dev", "")).startswith(("gh", "vxlan.gingham"))
            and r.get("table", "main") == "main")
    ]  # fmt: skip
    return sorted(ours, key=lambda r: json.dumps(r, sort_keys=True))


def _vxlan(netns: str) -> dict[str, Any]:
    links = _run_json(["ip", "-n", netns, "-j", "-d", "addr", "show", "dev", "vxlan.gingham"])
    if not isinstance(links, list) or not links:
        return {"device": None}
    link = links[0]
    info = (link.get("linkinfo") or {}).get("info_data") or {}
    fdb = _run_json(["bridge", "-n", netns, "-j", "fdb", "show", "dev", "vxlan.gingham"])
    neigh = _run_json(["ip", "-n", netns, "-j", "neigh", "show", "dev", "vxlan.gingham"])
    return {
        "address": link.get("address"),
        "mtu": link.get("mtu"),
        "vxlan": {k: info.get(k) for k in ("id", "local", "port")},
        "addrs": sorted(
            f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])
            if a.get("scope") == "global"
        ),
        "fdb": sorted(json.dumps(_normalise(e), sort_keys=True) for e in fdb or []),
        "neigh": sorted(
            json.dumps(_normalise(n), sort_keys=True) for n in neigh or []
            if "PERMANENT" in n.get("state", [])
        ),
    }


def dataplane(st: LabState) -> dict[str, Any]:
    """Per host: the agent's nft tables, its routes (protocol 201, workload and VXLAN routes)
    and its VXLAN device, normalised so that equal meaning compares equal."""
    return {
        h.name: {
            "nft": nft_table(h.netns, "gingham"),
            "nat": nft_table(h.netns, "gingham-nat"),
            "routes": _routes(h.netns),
            "vxlan": _vxlan(h.netns),
        }
        for h in st.hosts
    }


def diff(before: Any, after: Any, limit: int = 80) -> str:
    a = json.dumps(before, indent=1, sort_keys=True).splitlines()
    b = json.dumps(after, indent=1, sort_keys=True).splitlines()
    lines = list(difflib.unified_diff(a, b, "before", "after", n=2, lineterm=""))
    more = f"\n... {len(lines) - limit} more lines" if len(lines) > limit else ""
    return "\n".join(lines[:limit]) + more


# --- the datastore ---------------------------------------------------------------------------


def read_keys(ds: Datastore) -> dict[str, KeyValue]:
    """Every key the agents read (resources, IPAM blocks, the cluster key)."""
    items, _ = ds.list(keys.ROOT)
    return {
        kv.key: kv for kv in items
        if kv.key.startswith((keys.RESOURCES, BLOCKS)) or kv.key == keys.CLUSTER
    }  # fmt: skip


def stored(ds: Datastore) -> dict[str, Any]:
    """Everything in the datastore but the agents' chatter: key -> value (raw text if bad)."""
    items, _ = ds.list(keys.ROOT)
    return {
        kv.key: (f"<undecodable {kv.value.raw[:60]!r}>" if isinstance(kv.value, Undecodable)
                 else kv.value)
        for kv in items if not kv.key.startswith(CHATTER)
    }  # fmt: skip


# --- agents ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentInfo:
    pid: int
    restarts: int
    state: str


def agents(name: str) -> dict[str, AgentInfo]:
    st = labstate.load(name)
    out = {}
    for h in st.hosts:
        status = labmod.agent_status(name, h)
        out[h.name] = AgentInfo(h.agent_pid, status.restarts if status else -1,
                                status.state if status else "no status")  # fmt: skip
    return out


def agent_log_findings(name: str, since: dict[str, int]) -> dict[str, Counter[str]]:
    """Lines worth a look in each agent's log after byte offset ``since[host]``: what the
    per-update guard caught, plane failures, tracebacks (counted by their text)."""
    marks = ("cannot process", "unexpected error", "cannot use ", "failed:")
    out: dict[str, Counter[str]] = {}
    for host, offset in since.items():
        path = labstate.agent_log_path(name, host)
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
        found: Counter[str] = Counter()
        for line in text.splitlines():
            if line.startswith("Traceback"):
                found["Traceback"] += 1
            elif any(mark in line for mark in marks):
                # "<date> <time> LEVEL logger: message": the message, without the time.
                found[line.split(" ", 3)[-1][:200]] += 1
        out[host] = found
    return out


def log_offsets(name: str) -> dict[str, int]:
    st = labstate.load(name)
    return {h.name: labstate.agent_log_path(name, h.name).stat().st_size for h in st.hosts}


# --- the fuzzer ----------------------------------------------------------------------------------

RESOURCE_KINDS = (
    "NetworkPolicy", "GlobalNetworkPolicy", "KubernetesNetworkPolicy", "Tier", "Profile",
    "Namespace", "NetworkSet", "GlobalNetworkSet", "WorkloadEndpoint", "HostEndpoint",
    "FelixConfiguration", "Node", "IPPool", "BGPConfiguration", "BGPPeer", "IPReservation",
)  # fmt: skip
NAMESPACED = {"NetworkPolicy", "KubernetesNetworkPolicy", "NetworkSet", "WorkloadEndpoint"}
FAMILIES = (*RESOURCE_KINDS, "IPAMBlock")
MiB = 1 << 20


def family_of(key: str) -> str:
    if key.startswith(BLOCKS):
        return "IPAMBlock"
    return key.removeprefix(keys.RESOURCES).split("/", 1)[0]


@dataclass
class Write:
    """What one operation stores: bytes (put_raw), a document (update/create), or a delete."""

    raw: bytes | None = None
    doc: dict[str, Any] | None = None
    delete: bool = False


@dataclass
class Op:
    index: int
    what: str
    key: str
    outcome: str = ""

    def __str__(self) -> str:
        return f"#{self.index} {self.what} {self.key} -> {self.outcome}"


ROUTING_KINDS = frozenset({"Node", "IPPool", "BGPConfiguration", "BGPPeer", "IPAMBlock"})


def _routing_key(key: str) -> bool:
    typed = decode_key(key)
    return typed is not None and typed.kind in ROUTING_KINDS


def _routing_view(key: str, doc: dict[str, Any]) -> tuple[bool, Any]:
    """(refused, what routing makes of it) for ``doc`` under ``key``, asked of the agent's
    own reader (its decoder and the graph's routing): a newer writer's Node, pool or BGP
    resource is read without the fields this version does not know, so only it can say
    which documents it refuses."""
    graph = CalcGraph("chaos-oracle", decode=typed_value)
    reader = logging.getLogger("gingham.calc.validity")
    was, reader.disabled = reader.disabled, True  # its warnings are the agents' to log
    try:
        typed = decode(key, doc)
        assert typed is not None, key
        graph.on_update(*typed)
        view = graph.routing_view()
    finally:
        reader.disabled = was
    return typed[0] in graph.invalid_resources(), (dict(view.hosts), dict(view.pools),
                                                   dict(view.blocks), view.bgp)


def agents_refuse(key: str, doc: Any) -> bool:
    """Whether the agents' own readers refuse ``doc`` (bytes or a document) under ``key``."""
    if isinstance(doc, bytes):
        doc = decode_value(doc)
    if isinstance(doc, Undecodable):
        return True
    if _routing_key(key):
        return _routing_view(key, doc)[0]
    return isinstance(decode_resource(key, doc), InvalidResource)


def invalid(key: str, doc: Any) -> bool:
    """Whether ``doc`` (bytes or a document) is invalid under ``key`` by the project's own
    definitions, however leniently some reader reads it: the model for resources, IPAM's
    block decoder (and the block's own key) for blocks."""
    if isinstance(doc, bytes):
        doc = decode_value(doc)
    if isinstance(doc, Undecodable):
        return True
    if key.startswith(BLOCKS):
        try:
            block = Block.from_json(doc)
        except Exception:  # IPAM refuses it, whatever the reason
            return True
        return bool(block_key(block.cidr) != key)
    return isinstance(decode_resource(key, doc), InvalidResource)


def harmless(key: str, doc: Any, original: dict[str, Any] | None) -> bool:
    """Whether storing ``doc`` in place of ``original`` (None: under a new key) must change
    nothing: it is invalid (then every reader keeps the last valid version, or for a new
    key ignores it), or it is valid and routing reads from it what it read before (a block
    with a field IPAM ignores)."""
    if invalid(key, doc):
        return True
    if _routing_key(key) and original is not None:
        value = decode_value(doc) if isinstance(doc, bytes) else doc
        return bool(_routing_view(key, value)[1] == _routing_view(key, original)[1])
    return False


# Kinds no agent reads (so none reports them invalid).
UNREAD = {"IPReservation"}


class Fuzzer:
    """Seeded random writes; see the module docstring. Not thread-safe."""

    def __init__(self, ds: Datastore, seed: int) -> None:
        self.ds = ds
        self.seed = seed
        self.rng = random.Random(seed)
        self.original = read_keys(ds)
        # The oracle must call every original valid, or it would judge mutations wrongly.
        wrong = [k for k, kv in self.original.items() if k != keys.CLUSTER and invalid(k, kv.value)]
        assert not wrong, f"the fuzzer's oracle calls these valid documents invalid: {wrong}"
        self.scenario: dict[str, list[str]] = {f: [] for f in FAMILIES}
        for key in sorted(self.original):
            if key != keys.CLUSTER:
                self.scenario[family_of(key)].append(key)
        self.namespaces = sorted({k.split("/")[5] for k in self.original
                                  if family_of(k) in NAMESPACED})  # fmt: skip
        self.touched: set[str] = set()
        self.own: set[str] = set()  # present now
        self.own_gone: set[str] = set()  # made, then deleted: candidates to create again
        self._own_counter = 0
        self.ops: list[Op] = []
        self.counts: Counter[str] = Counter()
        self.cluster_restore_at: int | None = None
        self.last_written: dict[str, int] = {}  # key -> mod_revision of our last write
        self.foreign_writes: list[str] = []  # someone else wrote a key we were fuzzing
        self.accepted_hostile: list[str] = []
        self._restored = False

    # --- driving ------------------------------------------------------------------------

    def step(self) -> Op:
        self._restored = False
        i = len(self.ops)
        if self.cluster_restore_at is not None and i >= self.cluster_restore_at:
            op = self._restore_cluster(i)
        else:
            roll = self.rng.random()
            if roll < 0.03:
                op = self._break_cluster(i)
            elif roll < 0.10:
                op = self._restore_one(i)
            elif roll < 0.35:
                op = self._own_key(i)
            else:
                op = self._in_place(i)
        self.ops.append(op)
        self.counts[op.what.split(":")[0]] += 1
        return op

    def release(self) -> None:
        """The fuzzer's own keys deleted and the cluster key restored; the scenario's keys
        stay as the fuzzing left them (corrupted ones must keep their last valid version)."""
        for key in sorted(self.own):
            with contextlib.suppress(NotFound):
                self.ds.delete(key)
        self.own_gone |= self.own
        self.own.clear()
        self.ds.put_raw(keys.CLUSTER, self._bytes(self.original[keys.CLUSTER].value))
        self.cluster_restore_at = None

    def restore(self) -> list[str]:
        """Every touched key back byte for byte (after ``release``); problems found."""
        if self._restored:
            return []
        self._restored = True
        self.release()
        for key in sorted(self.touched):
            self.ds.put_raw(key, self._bytes(self.original[key].value))
        problems: list[str] = []
        for key in sorted(self.touched | {keys.CLUSTER}):
            kv = self.ds.get(key)
            if kv is None or kv.value != self.original[key].value:
                problems.append(f"{key} reads back as {kv.value if kv else None!r:.200}")
        for key in sorted(self.own_gone):
            if self.ds.get(key) is not None:
                problems.append(f"own key {key} still present")
        return problems

    def corrupted(self) -> set[str]:
        """Scenario keys whose stored value is not the original now (read back)."""
        out = set()
        for key in sorted(self.touched):
            kv = self.ds.get(key)
            if kv is None or isinstance(kv.value, Undecodable) or kv.value != self.original[key].value:
                out.add(key)
        return out

    def invalid_now(self) -> set[str]:
        """Keys whose stored value the agents must refuse, and so report (read back)."""
        out = set()
        for key in sorted(self.touched | self.own):
            if family_of(key) in UNREAD:
                continue
            kv = self.ds.get(key)
            if kv is not None and agents_refuse(key, kv.value):
                out.add(key)
        return out

    def summary(self) -> dict[str, Any]:
        outcomes = Counter(op.outcome.split(":")[0] for op in self.ops)
        families = Counter(family_of(op.key) if op.key != keys.CLUSTER else "cluster"
                           for op in self.ops)  # fmt: skip
        return {"seed": self.seed, "ops": len(self.ops), "kinds": dict(self.counts),
                "outcomes": dict(outcomes), "families": dict(families),
                "touched": len(self.touched), "own_keys_made": self._own_counter}  # fmt: skip

    # --- writing ------------------------------------------------------------------------

    @staticmethod
    def _bytes(value: dict[str, Any]) -> bytes:
        return encode_value(value).encode()

    def _write(self, op: Op, w: Write) -> Op:
        try:
            current = self.ds.get(op.key)
            if (current is not None and op.key in self.last_written
                    and current.mod_revision != self.last_written[op.key]):  # fmt: skip
                self.foreign_writes.append(f"{op} found {current.value!r:.200}")
            if w.delete:
                if current is None:
                    op.outcome = "absent"
                    return op
                rev = self.ds.delete(op.key, revision=current.mod_revision)
                self.last_written.pop(op.key, None)
            elif w.raw is not None:
                rev = self.ds.put_raw(op.key, w.raw)
                self.last_written[op.key] = rev
            else:
                assert w.doc is not None
                if current is None:
                    rev = self.ds.create(op.key, w.doc)
                else:
                    rev = self.ds.update(op.key, w.doc, revision=current.mod_revision)
                self.last_written[op.key] = rev
            op.outcome = f"written:{rev}"
        except RevisionConflict as exc:
            op.outcome = f"conflict: {exc}"
        except ValidationError as exc:  # the API refuses what it cannot store faithfully
            op.outcome = f"refused: {exc}"
        except DatastoreError as exc:  # etcd's size limits, among others
            op.outcome = f"refused: {exc}"
        return op

    # --- the cluster key ------------------------------------------------------------------

    def _break_cluster(self, i: int) -> Op:
        how = self.rng.choice(["garbage", "delete", "foreign", "shape", "truncated"])
        op = Op(i, f"cluster:{how}", keys.CLUSTER)
        original = self.original[keys.CLUSTER].value
        w = {
            "garbage": lambda: Write(raw=self._garbage()),
            "delete": lambda: Write(delete=True),
            "foreign": lambda: Write(doc={**original, "clusterID": str(uuid.uuid4())}),
            "shape": lambda: Write(doc={**original, "clusterID": self.rng.choice([5, None, [], ""])}),
            "truncated": lambda: Write(raw=self._bytes(original)[: self.rng.randint(1, 20)]),
        }[how]()
        self.cluster_restore_at = i + self.rng.randint(3, 40)
        return self._write(op, w)

    def _restore_cluster(self, i: int) -> Op:
        self.cluster_restore_at = None
        op = Op(i, "cluster:restore", keys.CLUSTER)
        return self._write(op, Write(raw=self._bytes(self.original[keys.CLUSTER].value)))

    # --- scenario keys, in place ----------------------------------------------------------------

    def _restore_one(self, i: int) -> Op:
        touched = sorted(self.touched - {keys.CLUSTER})
        if not touched:
            return self._in_place(i)
        key = self.rng.choice(touched)
        return self._write(Op(i, "restore", key), Write(raw=self._bytes(self.original[key].value)))

    def _in_place(self, i: int) -> Op:
        family = self.rng.choice([f for f in FAMILIES if self.scenario[f]])
        key = self.rng.choice(self.scenario[family])
        original = self.original[key].value
        what, w = self._mutation(key, original, in_place=True)
        self.touched.add(key)
        return self._write(Op(i, what, key), w)

    # --- own keys -------------------------------------------------------------------------------

    def _new_own_key(self, family: str) -> str:
        self._own_counter += 1
        tag = f"chaos-{self._own_counter}"
        if self.rng.random() < 0.15:
            # A name no valid resource can have: whatever is stored there is invalid.
            tag = self.rng.choice(["UPPER-", "ünï-", "x" * 300, "a..b-", "-lead-"]) + tag
        if family == "IPAMBlock":
            return f"{BLOCKS}198.19.{self._own_counter % 256}.{self._own_counter // 256 % 4 * 64}-26"
        if family in NAMESPACED:
            ns = self.rng.choice([*self.namespaces, "chaos"])
            return keys.resource_key(family, tag, ns)
        return keys.resource_key(family, tag)

    def _own_key(self, i: int) -> Op:
        roll = self.rng.random()
        if self.own and roll < 0.3:
            key = self.rng.choice(sorted(self.own))
            self.own.discard(key)
            self.own_gone.add(key)
            return self._write(Op(i, "own:delete", key), Write(delete=True))
        if self.own_gone and roll < 0.5:
            key = self.rng.choice(sorted(self.own_gone))
            what = "own:recreate"
        elif self.own and roll < 0.7:
            key = self.rng.choice(sorted(self.own))
            what = "own:overwrite"
        else:
            key = self._new_own_key(self.rng.choice(FAMILIES))
            what = "own:create"
        family = family_of(key)
        sources = self.scenario[family] or [k for f in FAMILIES for k in self.scenario[f]]
        source = self.original[self.rng.choice(sources)].value
        if self.rng.random() < 0.4:
            # A copy, as is: under another key it must still be refused.
            mutation, w = "copy", Write(doc=json.loads(json.dumps(source)))
            if not harmless(key, w.doc, None):
                mutation, w = self._mutation(key, source, in_place=False)
        else:
            mutation, w = self._mutation(key, source, in_place=False)
        self.own.add(key)
        self.own_gone.discard(key)
        return self._write(Op(i, f"{what}:{mutation}", key), w)

    # --- mutations ------------------------------------------------------------------------------

    def _mutation(self, key: str, doc: dict[str, Any], in_place: bool) -> tuple[str, Write]:
        """A write the agents must refuse: retried with other choices until one is."""
        kinds: list[tuple[str, Callable[[str, dict[str, Any]], Write]]] = [
            ("garbage", lambda k, d: Write(raw=self._garbage())),
            ("not-json", lambda k, d: Write(raw=self._not_json())),
            ("json-not-object", lambda k, d: Write(raw=self._json_scalar())),
            ("truncated", lambda k, d: Write(raw=self._truncated(d))),
            ("wrong-type", lambda k, d: Write(doc=self._wrong_type(d))),
            ("unknown-field", lambda k, d: Write(doc=self._unknown_field(d))),
            ("drop-field", lambda k, d: Write(doc=self._drop_field(d))),
            ("huge", self._huge),
            ("deep", self._deep),
            ("hostile", lambda k, d: Write(doc=self._hostile(k, d))),
            ("foreign-doc", lambda k, d: Write(doc=self._foreign_doc(k))),
        ]
        weights = [8, 6, 5, 8, 14, 10, 10, 1, 3, 12, 6]
        original = doc if in_place else None
        for _ in range(12):
            name, make = self.rng.choices(kinds, weights)[0]
            w = make(key, doc)
            payload: Any = w.raw if w.raw is not None else w.doc
            if payload is not None and harmless(key, payload, original):
                return name, w
            if name == "hostile" and in_place:
                # Every hostile edit is meant to be invalid: one the model takes is news.
                self.accepted_hostile.append(f"{key}: {json.dumps(payload)[:300]}")
        return "garbage", Write(raw=self._garbage())

    def _garbage(self) -> bytes:
        data = self.rng.randbytes(self.rng.randint(1, 300))
        return data if data[:1] != b"{" else b"\xff" + data

    def _not_json(self) -> bytes:
        return self.rng.choice([
            b"{", b"}", b"", b" ", b"{'single': 'quotes'}", b"spec: {oops", b"NaN", b"{\"a\": }",
            b"{\"apiVersion\": \"projectcalico.org/v3\",", b"\x00\x00\x00", b"{\"a\":1}{\"b\":2}",
            b'{"kind": "\xed\xa0\x80"}', b"1" * 5000, b"[" * 200,
        ])  # fmt: skip

    def _json_scalar(self) -> bytes:
        value = self.rng.choice([[], [1, 2], "policy", 42, None, True, 1.5e308, [{"kind": "Tier"}]])
        return json.dumps(value).encode()

    def _truncated(self, doc: dict[str, Any]) -> bytes:
        text = self._bytes(doc)
        return text[: self.rng.randint(1, max(1, len(text) - 1))]

    def _copy(self, doc: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(json.dumps(doc))
        return out

    def _paths(self, doc: Any) -> list[tuple[Any, Any]]:
        """(container, key or index) of every value in ``doc``."""
        out: list[tuple[Any, Any]] = []
        stack = [doc]
        while stack:
            node = stack.pop()
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for k, v in items:
                out.append((node, k))
                if isinstance(v, dict | list):
                    stack.append(v)
        return out

    def _value_unlike(self, old: Any) -> Any:
        choices: list[Any] = [7, -1, 2**70, 1.5, True, None, "x", "", [], [1, "a"], {}, {"a": 1}]
        choices = [c for c in choices if type(c) is not type(old)]
        return self.rng.choice(choices)

    def _wrong_type(self, doc: dict[str, Any]) -> dict[str, Any]:
        out = self._copy(doc)
        paths = self._paths(out)
        if not paths:
            return {"spec": 5}
        node, k = self.rng.choice(paths)
        node[k] = self._value_unlike(node[k])
        return out

    def _unknown_field(self, doc: dict[str, Any]) -> dict[str, Any]:
        out = self._copy(doc)
        dicts = [out] + [n[k] for n, k in self._paths(out) if isinstance(n[k], dict)]
        target = self.rng.choice(dicts)
        target[f"chaos{self.rng.randint(0, 999)}"] = self.rng.choice(["newer", 1, [1], {"x": True}])
        return out

    def _drop_field(self, doc: dict[str, Any]) -> dict[str, Any]:
        out = self._copy(doc)
        paths = [(n, k) for n, k in self._paths(out) if isinstance(n, dict)]
        if paths:
            node, k = self.rng.choice(paths)
            del node[k]
        return out

    def _huge(self, key: str, doc: dict[str, Any]) -> Write:
        size = self.rng.randint(MiB // 2, 3 * MiB)
        how = self.rng.choice(["string", "list", "raw"])
        if how == "raw":
            return Write(raw=b"{" + b"x" * size)
        out = self._copy(doc)
        paths = self._paths(out) or [(out, "spec")]
        node, k = self.rng.choice(paths)
        node[k] = "y" * size if how == "string" else list(range(size // 8))
        return Write(doc=out)

    def _deep(self, key: str, doc: dict[str, Any]) -> Write:
        if self.rng.random() < 0.5:
            depth = self.rng.randint(101, 200_000)  # beyond what any reader parses
            return Write(raw=b'{"a":' * depth + b"0" + b"}" * depth)
        depth = self.rng.randint(20, 120)  # around the API's own limit (100): some refused
        nested: Any = 0
        for _ in range(depth):
            nested = {"a": nested} if self.rng.random() < 0.7 else [nested]
        out = self._copy(doc)
        paths = self._paths(out) or [(out, "spec")]
        node, k = self.rng.choice(paths)
        node[k] = nested
        return Write(doc=out)

    def _foreign_doc(self, key: str) -> dict[str, Any]:
        """Another scenario document, valid in itself, stored under this key."""
        others = [k for k in self.original if k not in (key, keys.CLUSTER)]
        return self._copy(self.original[self.rng.choice(others)].value)

    def _hostile(self, key: str, doc: dict[str, Any]) -> dict[str, Any]:
        """Edits aimed at what each kind's readers rely on (the issue's examples among them)."""
        out = self._copy(doc)
        edits = HOSTILE.get(family_of(key), HOSTILE["*"])
        path, value = self.rng.choice(edits)
        node: Any = out
        for part in path[:-1]:
            if not isinstance(node, dict):
                return {"spec": "oops"}
            node = node.setdefault(part, {})
        if not isinstance(node, dict):
            return {"spec": "oops"}
        node[path[-1]] = json.loads(json.dumps(value))
        return out


_BIG_IN = {"matchExpressions": [{"key": "role", "operator": "In",
                                 "values": [f"v{n}" for n in range(20000)]}]}  # fmt: skip
_BIG_OR = " || ".join(f"a{n} == 'x'" for n in range(20000))
Edit = tuple[tuple[str, ...], Any]  # (path into the document, value to put there)
_POLICY: list[Edit] = [
    (("spec", "selector"), "role == "), (("spec", "types"), ["Sideways"]),
    (("spec", "tier"), "gingham-quarantine"), (("spec", "order"), "first"),
    (("spec", "egress"), [{"action": "Maybe"}]), (("spec", "ingress"), "all"),
    (("spec", "selector"), _BIG_OR),
]  # fmt: skip
HOSTILE: dict[str, list[Edit]] = {
    "IPAMBlock": [(("affinity",), 5), (("cidr",), "nonsense"), (("allocations",), "x"),
                  (("attributes",), [5]), (("cidr",), None), (("affinity",), ["h1"])],
    "Node": [(("spec",), "oops"), (("spec", "bgp"), {"ipv4Address": "not-an-address"}),
             (("spec", "ipv4VXLANTunnelAddr"), "999.0.0.1"), (("metadata", "name"), "h9")],
    # (interfaceName eth0 is valid in the model: the dataplane refuses it, which closes the
    # endpoint's traffic legitimately; not an edit the agents must ignore.)
    "WorkloadEndpoint": [(("spec", "interfaceName"), "gh" + "0" * 20),
                         (("spec", "interfaceName"), "gh/0"),
                         (("spec", "ipNetworks"), ["not-an-ip"]),
                         (("spec", "ipNetworks"), "198.18.0.1/32"), (("spec", "node"), 5)],
    "NetworkPolicy": _POLICY,
    "GlobalNetworkPolicy": _POLICY,
    "KubernetesNetworkPolicy": [(("spec", "podSelector"), _BIG_IN),
                                (("spec", "policyTypes"), ["Sideways"]), (("spec", "ingress"), "all"),
                                (("spec", "podSelector"), {"matchLabels": {"role": ["api"]}})],
    "Tier": [(("spec", "order"), "high"), (("spec", "defaultAction"), "Allow"),
             (("metadata", "name"), "gingham-quarantine")],
    "NetworkSet": [(("spec", "nets"), ["999.1.1.1/33"]), (("spec", "nets"), "198.18.0.0/16"),
                   (("spec", "nets"), [5])],
    "IPPool": [(("spec", "cidr"), "198.18.0.0/33"), (("spec", "blockSize"), 99),
               (("spec", "vxlanMode"), "Sometimes")],
    "FelixConfiguration": [(("spec", "vxlanVNI"), 99_999_999), (("spec", "healthPort"), 0),
                           (("spec", "defaultEndpointToHostAction"), "Open")],
    "*": [(("apiVersion",), "projectcalico.org/v4"), (("kind",), "Unheard"),
          (("metadata",), []), (("metadata", "name"), "Not A Name!")],
}  # fmt: skip
HOSTILE["GlobalNetworkSet"] = HOSTILE["NetworkSet"]


def lab_name(tag: int) -> str:
    return tools.lab_name(tag)


@contextlib.contextmanager
def chaos_lab(tag: int, datastore: str) -> Iterator[str]:
    """A 3-host lab on two subnets (h3 behind the router: VXLAN to it); down also on failure."""
    name = lab_name(tag)
    labmod.down(name)
    try:
        try:
            labmod.up(name, hosts=3, datastore=datastore, subnets=2, make_current=False)
        except LabError as exc:
            # As in tools.running_lab: an agent not ready in 60 s on a very busy machine.
            if "not ready" not in str(exc):
                raise
            labmod.up(name, hosts=3, datastore=datastore, subnets=2, make_current=False)
        yield name
    finally:
        labmod.down(name)


@contextlib.contextmanager
def prober_running(st: LabState) -> Iterator[Prober]:
    prober = Prober(st)
    prober.start()
    try:
        yield prober
    finally:
        prober.stop()


@dataclass
class Report:
    """Figures printed as one ``RELIABILITY {json}`` line."""

    figures: dict[str, Any] = field(default_factory=dict)

    def print(self) -> None:
        print("\nRELIABILITY " + json.dumps(self.figures, sort_keys=True, default=str), flush=True)
