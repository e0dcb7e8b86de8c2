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

from gingham.calc.messages import ServiceLoopUpdate
from gingham.dataplane import nft
from gingham.dataplane.chain_table import ChainTable

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


class ServiceLoop:
    """Service loop rules in table ``inet gingham-svc`` through ``driver`` (an nft driver
    for it); no rules, no table."""

    def __init__(self, driver: nft.NFTInterface) -> None:
        self.driver = driver
        self._chain = ChainTable(driver, SERVICE_CHAIN, type="filter", hook="forward",
                                 priority="filter", comment_prefix="svc", drop_when_empty=True)

    def on_update(self, msg: ServiceLoopUpdate) -> None:
        self._chain.want(service_loop_rules(msg))

    def apply(self) -> bool:
        """Program what changed; True when the kernel was changed (see ``ChainTable``)."""
        return self._chain.apply()
