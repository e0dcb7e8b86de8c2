"""NAT outgoing: masquerade traffic from ``natOutgoing`` pools to destinations outside all pools.

The manager turns :class:`~gingham.calc.messages.NatOutgoingUpdate` into the
rules of one base chain in its own table, ``inet gingham-nat`` (nat,
postrouting, srcnat), the way Calico masquerades with its "masq pools" and
"all pools" IP sets; the same nft driver as policy (:class:`~gingham.dataplane.nft.NFT`,
or ``FakeNFT`` in tests) applies it, one transaction per change.

Unchanged rules are never rewritten, also not after a restart
(:mod:`~gingham.dataplane.chain_table`). Traffic between pools keeps its
workload addresses; traffic leaving the pools from a NAT pool leaves with the
host's address (or ``snat_v4``/``snat_v6``, FelixConfiguration
``natOutgoingAddress``).
"""

from __future__ import annotations

from collections.abc import Iterable

from gingham.calc.messages import NatOutgoingUpdate
from gingham.dataplane import nft
from gingham.dataplane.chain_table import ChainTable

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


class NatOutgoing:
    """NAT rules in table ``inet gingham-nat`` through ``driver`` (an nft driver for it);
    the chain stays, empty, when no pool masquerades."""

    def __init__(self, driver: nft.NFTInterface) -> None:
        self.driver = driver
        self._chain = ChainTable(driver, NAT_CHAIN, type="nat", hook="postrouting",
                                 priority="srcnat", comment_prefix="nat")

    def on_update(self, msg: NatOutgoingUpdate) -> None:
        self._chain.want(nat_rules(msg))

    def apply(self) -> bool:
        """Program what changed; True when a transaction ran (see ``ChainTable``)."""
        return self._chain.apply()
