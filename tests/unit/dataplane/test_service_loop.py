"""Service loop prevention on the faithful nft fake: rules per family, Drop or Reject or none,
nothing rewritten that is right (also after a restart), the table gone with the CIDRs.
(The kernel and a looping packet: tests/integration/routing/test_service_loop.py.)"""

from __future__ import annotations

from ipaddress import ip_network

from gingham.calc.messages import ServiceLoopUpdate
from gingham.dataplane.nft_fake import FakeNFT
from gingham.dataplane.service_loop import (
    SERVICE_CHAIN,
    SERVICE_TABLE,
    ServiceLoop,
    service_loop_rules,
)

CIDRS = (ip_network("203.0.113.64/26"), ip_network("198.19.128.0/20"),
         ip_network("2001:db8:5e::/112"))


def test_rules_per_family_and_action() -> None:
    assert service_loop_rules(ServiceLoopUpdate(CIDRS)) == [
        "ip daddr { 198.19.128.0/20, 203.0.113.64/26 } drop",
        "ip6 daddr { 2001:db8:5e::/112 } drop",
    ]
    assert service_loop_rules(ServiceLoopUpdate(CIDRS[:1], "Reject")) == [
        "ip daddr { 203.0.113.64/26 } reject"]
    assert service_loop_rules(ServiceLoopUpdate(CIDRS, "Disabled")) == []
    assert service_loop_rules(ServiceLoopUpdate(())) == []


def test_programmed_once_kept_across_a_restart_and_removed_with_the_cidrs() -> None:
    driver = FakeNFT(table=SERVICE_TABLE, strict=True)
    mgr = ServiceLoop(driver)
    assert not mgr.apply()  # nothing asked for yet: the kernel is not touched
    mgr.on_update(ServiceLoopUpdate(()))
    assert not mgr.apply() and not driver.table_exists()  # none wanted, none there
    mgr.on_update(ServiceLoopUpdate(CIDRS))
    assert mgr.apply()
    [chain] = driver.list_chains()
    assert (chain.name, chain.hook, chain.type) == (SERVICE_CHAIN, "forward", "filter")
    assert [r.rule for r in driver.list_rules(SERVICE_CHAIN)] == service_loop_rules(
        ServiceLoopUpdate(CIDRS))
    assert not mgr.apply()
    writes = len(driver.transactions)
    restarted = ServiceLoop(driver)
    restarted.on_update(ServiceLoopUpdate(CIDRS))
    assert not restarted.apply() and len(driver.transactions) == writes
    restarted.on_update(ServiceLoopUpdate(CIDRS, "Reject"))
    assert restarted.apply()
    assert all(r.rule.endswith(" reject") for r in driver.list_rules(SERVICE_CHAIN))
    restarted.on_update(ServiceLoopUpdate(()))
    assert restarted.apply() and not driver.table_exists()
