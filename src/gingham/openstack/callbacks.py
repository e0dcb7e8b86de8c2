"""Security group events: Neutron publishes them only to its callback registry.

``BEFORE_CREATE`` of a rule or a group (and ``BEFORE_UPDATE`` of a group)
refuses what gingham cannot express: an exception there makes Neutron
answer the API call with SecurityGroupConflict (409) quoting our reason, and
nothing is stored. ``AFTER_*`` events rewrite (or delete) the group's
Profile from the database's current state; their errors cannot fail the
call any more (Neutron only logs them), so they are logged here and the
resync repairs the profile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from neutron_lib.callbacks import events, registry, resources
from oslo_log import log as logging

from gingham.openstack import secgroups

if TYPE_CHECKING:
    from gingham.openstack.mech_driver import GinghamMechanismDriver

LOG = logging.getLogger(__name__)


def _rule_view(args: Any) -> dict[str, Any]:
    """A rule as BEFORE_CREATE carries it (remote_ip_prefix as a netaddr object)."""
    rule = dict(args or {})
    if rule.get("remote_ip_prefix") is not None:
        rule["remote_ip_prefix"] = str(rule["remote_ip_prefix"])
    return rule


class Callbacks:
    """The driver's subscriptions (kept on an object: the registry holds references)."""

    def __init__(self, driver: GinghamMechanismDriver) -> None:
        self.driver = driver

    def rule_before_create(self, resource: str, event: str, trigger: Any,
                           payload: Any = None) -> None:
        secgroups.check_rule(_rule_view(payload.latest_state if payload else None))

    def group_before_write(self, resource: str, event: str, trigger: Any,
                           payload: Any = None) -> None:
        group = (payload.desired_state or payload.latest_state) if payload else None
        secgroups.check_group(dict(group or {}))

    def group_written(self, resource: str, event: str, trigger: Any,
                      payload: Any = None) -> None:
        self._quietly("write", payload.resource_id, self.driver.write_group)

    def group_deleted(self, resource: str, event: str, trigger: Any,
                      payload: Any = None) -> None:
        self._quietly("delete", payload.resource_id, self.driver.delete_group)

    def rule_changed(self, resource: str, event: str, trigger: Any,
                     payload: Any = None) -> None:
        sg_id = (payload.metadata or {}).get("security_group_id")
        if sg_id is None:
            sg_id = (payload.latest_state or {}).get("security_group_id")
        if sg_id:
            self._quietly("write", sg_id, self.driver.write_group)

    def _quietly(self, verb: str, sg_id: str, action: Any) -> None:
        try:
            action(sg_id)
        except Exception:
            LOG.exception("gingham: could not %s the profile of security group %s; the "
                          "resync will", verb, sg_id)


def subscribe(driver: GinghamMechanismDriver) -> Callbacks:
    cbs = Callbacks(driver)
    sg, rule = resources.SECURITY_GROUP, resources.SECURITY_GROUP_RULE
    registry.subscribe(cbs.rule_before_create, rule, events.BEFORE_CREATE)
    registry.subscribe(cbs.group_before_write, sg, events.BEFORE_CREATE)
    registry.subscribe(cbs.group_before_write, sg, events.BEFORE_UPDATE)
    registry.subscribe(cbs.group_written, sg, events.AFTER_CREATE)
    registry.subscribe(cbs.group_written, sg, events.AFTER_UPDATE)
    registry.subscribe(cbs.group_deleted, sg, events.AFTER_DELETE)
    for event in (events.AFTER_CREATE, events.AFTER_UPDATE, events.AFTER_DELETE):
        registry.subscribe(cbs.rule_changed, rule, event)
    driver._callbacks = cbs  # kept with the driver it serves
    return cbs
