"""The pure, synchronous calculation graph of one host.

    graph = CalcGraph("host-a")
    graph.on_update(key, value)              # typed key and value (calc.inputs), in order
    graph.set_underlay_mtu(1500)             # what the agent measured
    graph.on_in_sync()                       # after the initial snapshot
    messages = graph.flush()                 # typed, frozen, in safe order

The wiring, its diagram and invariants are in :mod:`gingham.calc.graph`; the
messages (the contract with the dataplane) in :mod:`gingham.calc.messages`.
"""

from gingham.calc.graph import CalcGraph
from gingham.calc.messages import (
    ConfigUpdate,
    HostEndpointRemove,
    HostEndpointUpdate,
    InSync,
    IPSetDeltaUpdate,
    IPSetRemove,
    IPSetUpdate,
    Message,
    ParsedRule,
    PolicyID,
    PolicyRemove,
    PolicyUpdate,
    ProfileRemove,
    ProfileUpdate,
    TierInfo,
    WorkloadEndpointID,
    WorkloadEndpointRemove,
    WorkloadEndpointUpdate,
)

__all__ = [
    "CalcGraph",
    "ConfigUpdate",
    "HostEndpointRemove",
    "HostEndpointUpdate",
    "IPSetDeltaUpdate",
    "IPSetRemove",
    "IPSetUpdate",
    "InSync",
    "Message",
    "ParsedRule",
    "PolicyID",
    "PolicyRemove",
    "PolicyUpdate",
    "ProfileRemove",
    "ProfileUpdate",
    "TierInfo",
    "WorkloadEndpointID",
    "WorkloadEndpointRemove",
    "WorkloadEndpointUpdate",
]
