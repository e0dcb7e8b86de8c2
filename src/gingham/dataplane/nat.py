"""NAT outgoing: masquerade traffic from ``natOutgoing`` pools to destinations outside all pools.

The manager turns :class:`~gingham.calc.messages.NatOutgoingUpdate` into the
rules of one base chain in its own table, ``inet gingham-nat`` (nat,
postrouting, srcnat), the way Calico masquerades with its "masq pools" and
"all pools" IP sets; the same nft driver as policy (:class:`~gingham.dataplane.nft.NFT`,
or ``FakeNFT`` in tests) applies it, one transaction per change.

Each rule carries a comment naming its content, so the chain is compared
with what is wanted by reading its comments back: unchanged rules are never
rewritten, also not after a restart. Traffic between pools keeps its
workload addresses; traffic leaving the pools from a NAT pool leaves with the
host's address (or ``snat_v4``/``snat_v6``, FelixConfiguration
``natOutgoingAddress``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from gingham.calc.messages import NatOutgoingUpdate
from gingham.dataplane import nft
from gingham.dataplane.nft_objects import NFTError

NAT_TABLE = "gingham-nat"
NAT_CHAIN = "gingham-nat"


def _set(cidrs: Iterable[object]) -> str:
    return "{ " + ", ".join(str(c) for c in cidrs) + " }"


def nat_rules(msg: NatOutgoingUpdate) -> list[str]:
    """nft rule bodies, one per address family that has a NAT pool, in a stable order."""
    rules: list[str] = []
    for version, keyword, snat in ((4, "ip", msg.snat_v4), (6, "ip6", msg.snat_v6)):
        masq = [c for c in msg.masquerade if c.version == version]
        if not masq:
            continue
        every = [c for c in msg.pools if c.version == version]
        action = f"snat {keyword} to {snat}" if snat is not None else "masquerade"
        rules.append(f"{keyword} saddr {_set(masq)} {keyword} daddr != {_set(every)} {action}")
    return rules


def _comment(rule: str) -> str:
    return "nat:" + hashlib.sha256(rule.encode()).hexdigest()[:16]


class NatOutgoing:
    """Desired NAT rules and the transaction that programs them through ``driver``
    (an nft driver for table ``inet gingham-nat``)."""

    def __init__(self, driver: nft.NFTInterface) -> None:
        self.driver = driver
        self._desired: tuple[str, ...] | None = None  # None: nothing asked for yet
        self._programmed: tuple[str, ...] | None = None  # None: unknown, read the kernel

    def on_update(self, msg: NatOutgoingUpdate) -> None:
        self._desired = tuple(nat_rules(msg))

    def apply(self) -> bool:
        """Program what changed; True when a transaction ran. Raises on failure, after
        which the next call reads the kernel again."""
        if self._desired is None:
            return False
        if self._programmed is None:
            self._programmed = self._read()
        if self._programmed == self._desired:
            return False
        tx = nft.Transaction()
        tx.add(nft.Table())
        tx.add(nft.Chain(NAT_CHAIN, type="nat", hook="postrouting", priority="srcnat",
                         policy="accept"))
        tx.flush(nft.Chain(NAT_CHAIN))
        for rule in self._desired:
            tx.add(nft.Rule(NAT_CHAIN, rule, comment=_comment(rule)))
        try:
            self.driver.run(tx)
        except Exception:
            self._programmed = None
            raise
        self._programmed = self._desired
        return True

    def _read(self) -> tuple[str, ...] | None:
        """The rules in the kernel, as far as their comments tell (None: no chain)."""
        try:
            rules = self.driver.list_rules(NAT_CHAIN)
        except NFTError as exc:
            if exc.kind == "not-found":
                return None
            raise
        by_comment = {_comment(r): r for r in self._desired or ()}
        found = tuple(by_comment.get(r.comment or "", f"?{r.handle}") for r in rules)
        return found
