"""NAT outgoing: masquerade traffic from ``natOutgoing`` pools to destinations outside all pools.

Pure: returns nft rule text for the dataplane to place in a ``nat`` postrouting
chain (family inet), the way Calico masquerades with its "masq pools" and "all
pools" IP sets. Traffic between pools keeps its workload addresses; traffic
leaving the pools from a NAT pool leaves with the host's address.

Disabled pools still count: disabling a pool stops new allocations, while its
existing workloads keep talking.
"""

from __future__ import annotations

from collections.abc import Iterable

from gingham.routing.types import PoolInfo

NAT_CHAIN = "gingham-nat"


def _set(cidrs: Iterable[str]) -> str:
    return "{ " + ", ".join(cidrs) + " }"


def nat_outgoing_rules(pools: Iterable[PoolInfo]) -> list[str]:
    """nft rule bodies (one per address family that needs one), in a stable order."""
    pool_list = sorted(set(pools), key=lambda p: (p.cidr.version, int(p.cidr.network_address)))
    rules: list[str] = []
    for version, keyword in ((4, "ip"), (6, "ip6")):
        fam = [p for p in pool_list if p.cidr.version == version]
        masq = [str(p.cidr) for p in fam if p.nat_outgoing]
        if not masq:
            continue
        every = [str(p.cidr) for p in fam]
        rules.append(f"{keyword} saddr {_set(masq)} {keyword} daddr != {_set(every)} masquerade")
    return rules


def nat_outgoing_script(
    pools: Iterable[PoolInfo], table: str = "gingham-nat", chain: str = NAT_CHAIN
) -> str:
    """A complete ``nft -f -`` script owning a separate inet table (tests, standalone use).

    Re-applying replaces the table's previous content in the same transaction.
    """
    lines = [
        f"table inet {table}",
        f"delete table inet {table}",
        f"table inet {table} {{",
        f"  chain {chain} {{",
        "    type nat hook postrouting priority srcnat; policy accept;",
    ]
    lines += [f"    {rule}" for rule in nat_outgoing_rules(pools)]
    lines += ["  }", "}", ""]
    return "\n".join(lines)
