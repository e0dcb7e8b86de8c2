"""The denied-packet log, with workload names: ``gingham flows``.

Source: the kernel log. The renderer turns a ``Log`` rule into nft
``log prefix "gingham <rule id>: "``; the kernel writes one line per packet
with interfaces, addresses, protocol and ports. Lines are read from
``/dev/kmsg`` (the ring buffer, so the last N survive the command), the rule
id is mapped back to tier/policy/rule and the addresses to workloads or
network sets, and, where both ends are workloads, the verdict the model
gives for that connection is attached (a Log rule does not decide).

The drops the renderer makes itself (a tier's default Deny, no profile
allowed, anti-spoofing) log too, rate-limited, with a prefix of the same form
(``gingham tier-end:<tier>: ``, ``gingham no-profile-allowed: ``); such a
marker does not say which end's chain dropped the packet, so the direction
comes from the model. Their counts are in ``gingham policy stats``, and
``gingham flows --follow`` (:mod:`gingham.policy.trace`) sees every drop.

Only gingham's lines, of the hosts asked about (:class:`Scope`): a record
must come from the kernel itself (facility 0: ``/dev/kmsg`` also takes lines
any root process writes), start with :data:`~gingham.names.PACKET_LOG_PREFIX`
and one rule id, and continue in the packet logger's layout (``IN=… OUT=…``);
and one of its interfaces must be a workload interface of one of the hosts
(a lab's hosts, or those whose interfaces exist on this machine), which also
gives the line its HOST. The kernel log does not say which network namespace
wrote a line: two labs up at once with the same workloads on the same
addresses cannot be told apart; a lab shows no line from before it was started.

Network namespaces: the kernel suppresses ``log`` from every namespace but
the initial one unless ``net.netfilter.nf_log_all_netns`` is 1 (a lab's hosts
are namespaces). :func:`netns_logging_enabled` tells, and
:func:`enable_netns_logging` sets it (machine-wide, root).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from gingham.errors import DataplaneError, GinghamError
from gingham.names import KNP_PREFIX, PACKET_LOG_PREFIX
from gingham.policy.ruleids import RuleRef, parse_rule_id
from gingham.policy.world import World
from gingham.timestamps import epoch, rfc3339

KMSG: Final = Path("/dev/kmsg")
NF_LOG_ALL_NETNS: Final = Path("/proc/sys/net/netfilter/nf_log_all_netns")
# The prefix, one rule id, then what nf_log writes for an inet packet: IN= and OUT= first.
_PREFIX_RE: Final = re.compile(
    "^" + re.escape(PACKET_LOG_PREFIX) + r"(?P<id>\S+): (?P<rest>IN=\S* OUT=\S* .*)$")
KERNEL_FACILITY: Final = 0  # syslog facility of the kernel's own records
_DIRECTED_RE: Final = re.compile(r"^(?P<base>(tier-end:[^:]+|no-profile-allowed)):(?P<dir>[ie])$")
_PROTOCOLS: Final = {"TCP": 6, "UDP": 17, "ICMP": 1, "ICMPv6": 58, "SCTP": 132}


@dataclass(frozen=True, slots=True)
class Flow:
    """One logged packet."""

    seq: int
    time: float | None  # seconds since the epoch, if known
    rule_id: str
    kind: str
    owner: str | None
    direction: str | None
    index: int | None
    action: str | None
    src: str
    dst: str
    protocol: str
    src_port: int | None
    dst_port: int | None
    in_iface: str
    out_iface: str
    src_name: str | None = None
    dst_name: str | None = None
    verdict: str | None = None  # "allowed" | "denied" | None (not known)
    reason: str | None = None
    host: str | None = None  # where it was logged or traced

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Flow:
        return cls(
            seq=int(d.get("seq") or 0), time=epoch(d.get("time")), rule_id=d["ruleId"],
            kind=d.get("kind") or "other", owner=d.get("policy"), direction=d.get("direction"),
            index=d.get("rule"), action=d.get("action"), src=d["source"], dst=d["destination"],
            protocol=d.get("protocol") or "", src_port=d.get("sourcePort"),
            dst_port=d.get("destinationPort"), in_iface=d.get("in") or "",
            out_iface=d.get("out") or "", src_name=d.get("sourceName"),
            dst_name=d.get("destinationName"), verdict=d.get("verdict"), reason=d.get("reason"),
            host=d.get("host"),
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "time": None if self.time is None else rfc3339(self.time),
            "host": self.host, "ruleId": self.rule_id, "kind": self.kind,
            "policy": self.owner, "direction": self.direction, "rule": self.index,
            "action": self.action, "source": self.src, "destination": self.dst,
            "sourceName": self.src_name, "destinationName": self.dst_name,
            "protocol": self.protocol, "sourcePort": self.src_port,
            "destinationPort": self.dst_port, "in": self.in_iface, "out": self.out_iface,
            "verdict": self.verdict, "reason": self.reason,
        }  # fmt: skip


# ----------------------------------------------------------------- parsing (pure)


def parse_kmsg_record(record: str) -> tuple[int, int, str] | None:
    """``(sequence, microseconds since boot, message)`` of one /dev/kmsg record."""
    head, sep, body = record.partition(";")
    if not sep:
        return None
    fields = head.split(",")
    if len(fields) < 3 or not fields[1].isdigit() or not fields[2].isdigit():
        return None
    return int(fields[1]), int(fields[2]), body.split("\n", 1)[0]


def kmsg_facility(record: str) -> int | None:
    """The syslog facility of a /dev/kmsg record (0: the kernel; what root writes there: 1)."""
    prio = record.partition(",")[0]
    return int(prio) >> 3 if prio.isdigit() else None


def parse_kernel_record(record: str) -> tuple[int, int, str] | None:
    """As :func:`parse_kmsg_record`, None for a record the kernel did not write itself."""
    if kmsg_facility(record) != KERNEL_FACILITY:
        return None
    return parse_kmsg_record(record)


def parse_fields(text: str) -> dict[str, str]:
    """``IN=gh1 OUT= SRC=… DF SYN`` -> {"IN": "gh1", "OUT": "", "SRC": …, "DF": "", "SYN": ""}."""
    out: dict[str, str] = {}
    for token in text.split():
        key, _, value = token.partition("=")
        out.setdefault(key, value)
    return out


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _ref(rule_id: str) -> RuleRef:
    m = _DIRECTED_RE.match(rule_id)
    if m:
        base = parse_rule_id(m.group("base"))
        return replace(base, direction="ingress" if m.group("dir") == "i" else "egress")
    return parse_rule_id(rule_id)


def parse_log_line(message: str, seq: int = 0, when: float | None = None,
                   resolve: Callable[[str], str] = lambda c: c) -> Flow | None:
    """A Flow for a ``gingham …:`` kernel log line; None for any other line."""
    m = _PREFIX_RE.match(message.strip())
    if not m:
        return None
    rule_id = resolve(m.group("id"))
    ref = _ref(rule_id)
    f = parse_fields(m.group("rest"))
    if "SRC" not in f or "DST" not in f:
        return None
    proto = f.get("PROTO", "")
    return Flow(
        seq=seq, time=when, rule_id=rule_id, kind=ref.kind, owner=ref.owner or ref.tier,
        direction=ref.direction, index=ref.index, action="Log" if ref.kind in (
            "policy", "profile") else ("Deny" if ref.is_drop else None),
        src=f["SRC"], dst=f["DST"], protocol=proto.lower(), src_port=_int(f.get("SPT")),
        dst_port=_int(f.get("DPT")), in_iface=f.get("IN", ""), out_iface=f.get("OUT", ""),
        verdict="denied" if ref.is_drop else None,
    )  # fmt: skip


def _name(world: World, address: str) -> str | None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    owners = world.owners(ip)
    workloads = [o for o in owners if o.kind == "WorkloadEndpoint"]
    chosen = workloads or owners
    return chosen[0].ref if chosen else None


def annotate(flow: Flow, world: World) -> Flow:
    """Names for the addresses, and the model's verdict for the connection and why.

    A drop the dataplane reported keeps its verdict; if the model disagrees
    the reason says so.
    """
    src_name, dst_name = _name(world, flow.src), _name(world, flow.dst)
    verdict, reason, direction = flow.verdict, flow.reason, flow.direction
    a = world.workload(src_name) if src_name else None
    b = world.workload(dst_name) if dst_name else None
    if a is not None and b is not None and flow.protocol in ("tcp", "udp", "sctp"):
        from gingham.policy.explain import explain

        try:
            v = explain(world, a.ref, b.ref, flow.dst_port, flow.protocol)
        except GinghamError:  # the log line stays useful without a verdict
            v = None
        if v is not None:
            model = "allowed" if v.allowed else "denied"
            if v.allowed:
                decided = v.ingress if v.ingress.decided_by != "loopback" else v.egress
                why = "allowed by " + decided.reason
            else:
                why = (v.egress if not v.egress.allowed else v.ingress).reason
            if verdict is None or verdict == model:
                verdict, reason = model, why
            else:
                reason = f"the model says {model} ({why})"
            if direction is None and not v.allowed:
                # A drop marker does not say which end's chain dropped; the model does.
                direction = "egress" if not v.egress.allowed else "ingress"
    return replace(flow, src_name=src_name, dst_name=dst_name, verdict=verdict, reason=reason,
                   direction=direction)


def select(flows: Iterable[Flow], workload: str | None = None, policy: str | None = None,
           last: int | None = None, denied_only: bool = False,
           namespaces: Collection[str] = (), hosts: Collection[str] = ()) -> list[Flow]:
    """Filter: a workload at either end, a policy by name or ``tier/ns/name``, a namespace
    at either end, the hosts it was seen on; the last N."""
    out = []
    for f in flows:
        if workload and workload not in (f.src_name, f.dst_name):
            continue
        if namespaces and not {_namespace(f.src_name), _namespace(f.dst_name)} & set(namespaces):
            continue
        if hosts and f.host not in hosts:
            continue
        if policy and not _policy_matches(policy, f.owner):
            continue
        if denied_only and f.verdict == "allowed":
            continue
        out.append(f)
    return out[-last:] if last else out


def _namespace(ref: str | None) -> str | None:
    return ref.split("/", 1)[0] if ref and "/" in ref else None


def _policy_matches(wanted: str, owner: str | None) -> bool:
    if owner is None:
        return False
    if wanted == owner:
        return True
    name = owner.rsplit("/", 1)[-1]
    return wanted in (name, name.removeprefix(KNP_PREFIX))


# ----------------------------------------------------------------- reading (I/O)


def read_kmsg(path: Path = KMSG) -> Iterator[tuple[int, int, str]]:
    """Every record the kernel itself wrote still in its ring buffer, oldest first (root);
    lines that processes wrote into /dev/kmsg are left out."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise DataplaneError(f"cannot read the kernel log {path}: {exc.strerror}") from None
    try:
        while True:
            try:
                data = os.read(fd, 8192)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    continue  # overwritten while we read: skip to the next record
                raise DataplaneError(f"reading {path}: {exc.strerror}") from None
            if not data:
                return
            parsed = parse_kernel_record(data.decode("utf-8", "replace"))
            if parsed is not None:
                yield parsed
    finally:
        os.close(fd)


def boot_time() -> float:
    """Epoch seconds at which the kernel log's clock read zero."""
    return time.time() - time.clock_gettime(time.CLOCK_MONOTONIC)


@dataclass(frozen=True)
class Scope:
    """Which kernel log lines are ours: logged through a workload interface of one of these
    hosts (interface -> host), not before ``since`` (a Unix time)."""

    interfaces: Mapping[str, str] = field(default_factory=dict)
    since: float | None = None

    @classmethod
    def of_hosts(cls, world: World, hosts: Collection[str], since: float | None = None) -> Scope:
        """The workload interfaces the model puts on ``hosts`` (a lab's)."""
        return cls({i.interface: i.host for i in world.workloads()
                    if i.interface and i.host is not None and i.host in hosts},
                   since)  # fmt: skip

    @classmethod
    def of_machine(cls, world: World, present: Collection[str]) -> Scope:
        """The workload interfaces of the model that exist here (``present``), whatever host
        the model says they are on."""
        return cls({i.interface: i.host or "" for i in world.workloads()
                    if i.interface and i.interface in present})  # fmt: skip

    def host_of(self, flow: Flow) -> str | None:
        """The host that logged ``flow``; None when it is not one of ours."""
        if self.since is not None and (flow.time is None or flow.time < self.since):
            return None
        return self.interfaces.get(flow.in_iface) or self.interfaces.get(flow.out_iface)


def local_interfaces() -> set[str]:
    """Interface names of this network namespace."""
    import socket

    return {name for _index, name in socket.if_nameindex()}


def read_flows(world: World | None = None,
               records: Iterable[tuple[int, int, str]] | None = None,
               scope: Scope | None = None) -> list[Flow]:
    """Flows from the kernel log (or from ``records``), annotated with ``world``; given a
    ``scope``, only its lines, each with its host."""
    from gingham.policy.ruleids import known_rule_ids, resolver

    resolve = resolver(known_rule_ids(world)) if world is not None else (lambda c: c)
    base = boot_time()
    out = []
    for seq, usec, message in (read_kmsg() if records is None else records):
        flow = parse_log_line(message, seq, base + usec / 1e6, resolve)
        if flow is None:
            continue
        if scope is not None:
            host = scope.host_of(flow)
            if host is None:
                continue
            flow = replace(flow, host=host)
        out.append(annotate(flow, world) if world is not None else flow)
    return out


def record(path: Path, flow: Flow, host: str | None = None) -> None:
    """Append a flow (say, a traced drop) to a JSON-lines file that ``read_recorded`` reads."""
    import json

    if host is not None:
        flow = replace(flow, host=host)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(flow.to_json()) + "\n")


def read_recorded(path: Path) -> list[Flow]:
    """Flows recorded by ``record``; unreadable lines are skipped."""
    import json

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(Flow.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            continue
    return out


def merge(*sources: Iterable[Flow]) -> list[Flow]:
    """Flows of several sources in time order (those without a time first)."""
    flows = [f for src in sources for f in src]
    return sorted(flows, key=lambda f: (f.time is not None, f.time or 0.0))


def netns_logging_enabled(path: Path = NF_LOG_ALL_NETNS) -> bool:
    try:
        return path.read_text().strip() == "1"
    except OSError:
        return False


def enable_netns_logging(path: Path = NF_LOG_ALL_NETNS) -> None:
    try:
        path.write_text("1\n")
    except OSError as exc:
        raise DataplaneError(f"cannot enable logging from network namespaces ({path}): "
                             f"{exc.strerror}") from None
