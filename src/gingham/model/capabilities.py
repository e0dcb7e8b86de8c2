"""Host capabilities: what some settings need of a host beyond gingham itself.

The agent probes each one on its host (``gingham.agent.capabilities``) and
reports it there: ``gingham node status --agent``, the metric
``gingham_host_capability{name}`` (1 present, 0 missing) and, for a missing
one, a line in the ``/readyz`` detail naming the settings not in effect. The
support tables name them in the ``needs`` of ``reported`` fields, so
docs/CONFIGURATION.md and the agent use the same names. Standard library only.
"""

from __future__ import annotations

from typing import Final

NFTABLES: Final = "nftables"
VXLAN: Final = "vxlan"
NAT: Final = "nat"
BIRD: Final = "bird"

CAPABILITIES: Final[dict[str, str]] = {
    NFTABLES: "the `nft` program and nf_tables in the kernel",
    VXLAN: "the `vxlan` kernel module",
    NAT: "nftables NAT in the kernel (`nf_nat`: masquerade, snat)",
    BIRD: "BIRD 2 (`bird`, `birdc`) installed on the host",
}


def needs(name: str) -> str:
    """How the support tables say a field needs capability ``name``."""
    return f"{CAPABILITIES[name]} (host capability `{name}`)"


__all__ = ["BIRD", "CAPABILITIES", "NAT", "NFTABLES", "VXLAN", "needs"]
