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
from ipaddress import IPv4Address, IPv6Address

from gingham.routing.types import PoolInfo

NAT_CHAIN = "gingham-nat"


def _set(cidrs: Iterable[str]) -> str:
    return "{ " + ", ".join(cidrs) + " }"


def nat_outgoing_rules(
    pools: Iterable[PoolInfo],
    snat_v4: IPv4Address | None = None,
    snat_v6: IPv6Address | None = None,
) -> list[str]:
    """nft rule bodies (one per address family that needs one), in a stable order.

    ``snat_v4``/``snat_v6`` (FelixConfiguration ``natOutgoingAddress``) give a fixed
    source address instead of masquerading to the outgoing interface's address.
    """
    pool_list = sorted(set(pools), key=lambda p: (p.cidr.version, int(p.cidr.network_address)))
    rules: list[str] = []
    for version, keyword in ((4, "ip"), (6, "ip6")):
        fam = [p for p in pool_list if p.cidr.version == version]
        masq = [str(p.cidr) for p in fam if p.nat_outgoing]
        if not masq:
            continue
        every = [str(p.cidr) for p in fam]
        snat = snat_v4 if version == 4 else snat_v6
        action = f"snat {keyword} to {snat}" if snat is not None else "masquerade"
        rules.append(f"{keyword} saddr {_set(masq)} {keyword} daddr != {_set(every)} {action}")
    return rules


def nat_outgoing_script(
    pools: Iterable[PoolInfo],
    table: str = "gingham-nat",
    chain: str = NAT_CHAIN,
    snat_v4: IPv4Address | None = None,
    snat_v6: IPv6Address | None = None,
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
    lines += [f"    {rule}" for rule in nat_outgoing_rules(pools, snat_v4, snat_v6)]
    lines += ["  }", "}", ""]
    return "\n".join(lines)
