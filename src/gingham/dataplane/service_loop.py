"""Service loop prevention: forwarded traffic to an advertised service CIDR that no DNAT
rewrote is dropped (or rejected), as Calico's ``cali-cidr-block`` chain does.

Every host advertises the service CIDRs (BGPConfiguration serviceClusterIPs and
serviceExternalIPs) and no host routes them: a packet for an address no
service uses would go back out of the default route to the router, which sends
it to a host again, until its TTL runs out. Traffic that a service proxy
(kube-proxy) handles has had its destination rewritten before the forward hook
and is not matched. Locally sent traffic is left alone (kube-proxy rewrites it
in the output hook, and a blackhole route would fail the connect before that).

The manager turns :class:`~gingham.calc.messages.ServiceLoopUpdate` into one
base chain (filter, forward) of its own table ``inet gingham-svc``, applied by
the same nft driver as policy and NAT, one transaction per change; rules carry
comments naming their content, so a restarted agent rewrites nothing that is
right. With no CIDRs (or ``Disabled``) the table is removed.
"""

from __future__ import annotations

import hashlib

from gingham.calc.messages import ServiceLoopUpdate
from gingham.dataplane import nft
from gingham.dataplane.nft_objects import NFTError

SERVICE_TABLE = "gingham-svc"
SERVICE_CHAIN = "service-loop"


def service_loop_rules(msg: ServiceLoopUpdate) -> list[str]:
    """nft rule bodies, one per address family with a service CIDR."""
    if msg.action == "Disabled":
        return []
    verdict = "drop" if msg.action == "Drop" else "reject"
    rules = []
    for version, keyword in ((4, "ip"), (6, "ip6")):
        cidrs = sorted((c for c in msg.cidrs if c.version == version),
                       key=lambda c: (int(c.network_address), c.prefixlen))
        if cidrs:
            rules.append(f"{keyword} daddr {{ {', '.join(map(str, cidrs))} }} {verdict}")
    return rules


def _comment(rule: str) -> str:
    return "svc:" + hashlib.sha256(rule.encode()).hexdigest()[:16]


class ServiceLoop:
    """Desired rules and the transaction that programs them through ``driver`` (an nft
    driver for table ``inet gingham-svc``)."""

    def __init__(self, driver: nft.NFTInterface) -> None:
        self.driver = driver
        self._desired: tuple[str, ...] | None = None  # None: nothing asked for yet
        self._programmed: tuple[str, ...] | None = None  # None: unknown, read the kernel

    def on_update(self, msg: ServiceLoopUpdate) -> None:
        self._desired = tuple(service_loop_rules(msg))

    def apply(self) -> bool:
        """Program what changed; True when the kernel was changed. Raises on failure,
        after which the next call reads the kernel again."""
        if self._desired is None:
            return False
        if self._programmed is None:
            self._programmed = self._read()
        if self._programmed == self._desired:
            return False
        try:
            if not self._desired:
                self.driver.delete_table()
            else:
                tx = nft.Transaction()
                tx.add(nft.Table())
                tx.add(nft.Chain(SERVICE_CHAIN, type="filter", hook="forward", priority="filter",
                                 policy="accept"))
                tx.flush(nft.Chain(SERVICE_CHAIN))
                for rule in self._desired:
                    tx.add(nft.Rule(SERVICE_CHAIN, rule, comment=_comment(rule)))
                self.driver.run(tx)
        except Exception:
            self._programmed = None
            raise
        self._programmed = self._desired
        return True

    def _read(self) -> tuple[str, ...]:
        """The rules in the kernel, as far as their comments tell (no table: none)."""
        try:
            rules = self.driver.list_rules(SERVICE_CHAIN)
        except NFTError as exc:
            if exc.kind == "not-found":
                return ()
            raise
        by_comment = {_comment(r): r for r in self._desired or ()}
        found = tuple(by_comment.get(r.comment or "", f"?{r.handle}") for r in rules)
        # A table without the chain (or an empty chain) is something to put right.
        return found if found else ("?",)
