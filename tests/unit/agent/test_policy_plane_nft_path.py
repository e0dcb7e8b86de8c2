"""The policy plane counts the path each nft transaction took."""

from __future__ import annotations

from gingham.agent.metrics import AgentMetrics
from gingham.agent.policy_plane import PolicyPlane
from gingham.calc.messages import InSync, ParsedRule, ProfileUpdate
from gingham.dataplane.apply import Applier
from gingham.dataplane.managers import PolicyDataplane
from gingham.dataplane.nft_fake import FakeNFT


def test_transactions_are_counted_by_path() -> None:
    metrics = AgentMetrics()
    plane = PolicyPlane(metrics, Applier(FakeNFT(), PolicyDataplane()))
    plane.apply([ProfileUpdate("kns.a", (ParsedRule("profile:kns.a:i0", "allow"),), ()),
                 InSync()])
    plane.apply([ProfileUpdate("kns.a", (ParsedRule("profile:kns.a:i0", "deny"),), ())])
    got = metrics.registry.get_sample_value(
        "gingham_nft_transactions_total", {"via": "nft", "fallback": "no"})
    assert got == 2  # the fake driver has no netlink path: both through its nft model
    assert metrics.registry.get_sample_value(
        "gingham_nft_transactions_total", {"via": "netlink", "fallback": "no"}) is None
