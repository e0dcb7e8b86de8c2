"""Live denied-packet flows from nftables tracing: every drop, with its rule.

A Log rule writes a kernel log line, but the drops gingham's renderer makes
itself (a tier's default Deny, no profile allowed) carry no log statement.
nftables tracing sees them anyway: a chain of our own (table ``inet
ghtrace``, forward hook, priority -5, just before gingham's) marks the first
packet of every new connection with ``meta nftrace set 1``, and ``nft
monitor trace`` then reports each rule that packet meets, ending with the
one whose verdict is ``drop`` and whose comment is its rule id.

Tracing costs per traced packet, so it is on only while someone follows
(:class:`TraceSession`, ``gingham flows --follow``) and only for new
connections; the table is removed again when the session ends.

``TraceParser`` is pure: monitor lines in, :class:`~gingham.policy.flows.Flow`
for each dropped packet out.
"""

from __future__ import annotations

import contextlib
import queue
import re
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

from gingham.errors import DataplaneError
from gingham.names import NFT_TABLE
from gingham.policy.flows import Flow
from gingham.policy.ruleids import parse_rule_id

TRACE_TABLE: Final = "ghtrace"
TRACE_SCRIPT: Final = (
    # add-then-delete makes the script idempotent (a killed session leaves the table behind)
    f"add table inet {TRACE_TABLE}\ndelete table inet {TRACE_TABLE}\n"
    f"table inet {TRACE_TABLE} {{\n"
    "  chain trace {\n"
    "    type filter hook forward priority -5; policy accept;\n"
    "    ct state new meta nftrace set 1\n"
    "  }\n"
    "}\n"
)
_LINE_RE: Final = re.compile(
    r"^trace id (?P<id>[0-9a-f]+) (?P<family>\w+) (?P<table>\S+) (?P<chain>\S+) (?P<rest>.*)$")
_COMMENT_RE: Final = re.compile(r'comment "(?P<comment>[^"]*)"')
_VERDICT_RE: Final = re.compile(r"\(verdict (?P<verdict>\w+)")
_PACKET_FIELDS: Final = {
    "iif": "iif", "oif": "oif", "ip saddr": "src", "ip daddr": "dst", "ip6 saddr": "src",
    "ip6 daddr": "dst", "ip protocol": "proto", "ip6 nexthdr": "proto", "tcp sport": "sport",
    "tcp dport": "dport", "udp sport": "sport", "udp dport": "dport", "sctp sport": "sport",
    "sctp dport": "dport",
}  # fmt: skip


@dataclass
class _Packet:
    fields: dict[str, str] = field(default_factory=dict)
    chains: list[str] = field(default_factory=list)


def parse_packet(text: str) -> dict[str, str]:
    """``iif "gh1" oif "gh2" … ip saddr 198.18.0.2 … tcp dport 80`` -> named fields."""
    out: dict[str, str] = {}
    words = text.split()
    i = 0
    while i < len(words) - 1:
        two = f"{words[i]} {words[i + 1]}"
        if two in _PACKET_FIELDS and i + 2 < len(words):
            out.setdefault(_PACKET_FIELDS[two], words[i + 2].strip('"'))
            i += 3
        elif words[i] in _PACKET_FIELDS:
            out.setdefault(_PACKET_FIELDS[words[i]], words[i + 1].strip('"'))
            i += 2
        else:
            i += 1
    return out


class TraceParser:
    """Feed ``nft monitor trace`` lines; get a Flow for each packet gingham dropped."""

    def __init__(self, table: str = NFT_TABLE, max_pending: int = 4096) -> None:
        self.table = table
        self._pending: dict[str, _Packet] = {}
        self._max = max_pending
        self._seq = 0

    def feed(self, line: str, now: float | None = None) -> Flow | None:
        m = _LINE_RE.match(line.strip())
        if not m:
            return None
        tid, table, chain, rest = m.group("id"), m.group("table"), m.group("chain"), m.group(
            "rest")
        pkt = self._pending.get(tid)
        if pkt is None:
            if len(self._pending) >= self._max:
                self._pending.pop(next(iter(self._pending)))  # forget the oldest
            pkt = self._pending[tid] = _Packet()
        if rest.startswith("packet:"):
            for key, value in parse_packet(rest[len("packet:"):]).items():
                pkt.fields.setdefault(key, value)
            return None
        if table != self.table:
            return None
        pkt.chains.append(chain)
        verdict = _VERDICT_RE.search(rest)
        if verdict is None or verdict.group("verdict") != "drop":
            return None
        del self._pending[tid]
        comment = _COMMENT_RE.search(rest)
        rule_id = comment.group("comment") if comment else f"{chain}: {rest}"
        return self._flow(pkt, rule_id, chain, now)

    def _flow(self, pkt: _Packet, rule_id: str, chain: str, now: float | None) -> Flow:
        ref = parse_rule_id(rule_id)
        direction = ref.direction
        if direction is None:
            # Endpoint chains are entered from fwd-from-wl (egress of the
            # sender) or fwd-to-wl (ingress of the receiver).
            if "fwd-to-wl" in pkt.chains or "in-host" in pkt.chains:
                direction = "ingress"
            elif "fwd-from-wl" in pkt.chains or "in-from-wl" in pkt.chains:
                direction = "egress"
        self._seq += 1
        f = pkt.fields
        return Flow(
            seq=self._seq, time=now, rule_id=rule_id, kind=ref.kind,
            owner=ref.owner or ref.tier, direction=direction, index=ref.index, action="Deny",
            src=f.get("src", ""), dst=f.get("dst", ""), protocol=f.get("proto", ""),
            src_port=int(f["sport"]) if f.get("sport", "").isdigit() else None,
            dst_port=int(f["dport"]) if f.get("dport", "").isdigit() else None,
            in_iface=f.get("iif", ""), out_iface=f.get("oif", ""), verdict="denied",
        )  # fmt: skip


class TraceSession:
    """Trace every ``(host, netns)`` while in the ``with`` block; ``flows()`` yields drops."""

    def __init__(self, hosts: Sequence[tuple[str, str | None]]) -> None:
        self.hosts = list(hosts)
        self._procs: list[subprocess.Popen[str]] = []
        self._installed: list[str | None] = []
        self._queue: queue.Queue[tuple[str, Flow]] = queue.Queue()
        self._threads: list[threading.Thread] = []

    @staticmethod
    def _nft(netns: str | None) -> list[str]:
        from gingham.dataplane.nft import netns_argv

        return [*netns_argv(netns), "nft"]

    def __enter__(self) -> TraceSession:
        try:
            for host, netns in self.hosts:
                proc = subprocess.Popen([*self._nft(netns), "monitor", "trace"],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True)
                self._procs.append(proc)
                t = threading.Thread(target=self._read, args=(host, proc), daemon=True)
                t.start()
                self._threads.append(t)
            time.sleep(0.2)  # let the monitors subscribe before packets are marked
            for _host, netns in self.hosts:
                self._run(netns, ["-f", "-"], TRACE_SCRIPT)
                self._installed.append(netns)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _run(self, netns: str | None, args: list[str], stdin: str | None = None) -> None:
        proc = subprocess.run([*self._nft(netns), *args], input=stdin, capture_output=True,
                              text=True, timeout=30, check=False)
        if proc.returncode != 0:
            raise DataplaneError(f"nft {' '.join(args)} failed in {netns or 'this host'}: "
                                 f"{proc.stderr.strip()}")

    def _read(self, host: str, proc: subprocess.Popen[str]) -> None:
        parser = TraceParser()
        assert proc.stdout is not None
        for line in proc.stdout:
            flow = parser.feed(line, time.time())
            if flow is not None:
                self._queue.put((host, flow))

    def flows(self, timeout: float | None = None) -> Iterator[tuple[str, Flow]]:
        """(host, flow) for each drop; stops after ``timeout`` seconds (None: never)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 0.5 if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                return
            try:
                yield self._queue.get(timeout=min(wait, 0.5))
            except queue.Empty:
                continue

    def __exit__(self, *exc: object) -> None:
        for netns in self._installed:
            with contextlib.suppress(DataplaneError, subprocess.TimeoutExpired):
                self._run(netns, ["delete", "table", "inet", TRACE_TABLE])
        self._installed.clear()
        for proc in self._procs:
            proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()
