"""Drives the ML2 driver under Debian's Python with the real neutron_lib (run by
test_under_neutron.py in a venv made from /usr/bin/python3 --system-site-packages).

``python under_neutron.py SQLITE_URL MISSING_URL`` prints one JSON object of what
it saw. Neutron's server is not started: the port contexts are a stand-in that
subclasses neutron_lib's own abstract PortContext (so every method ML2 offers
exists with its real name), the core plugin a stand-in answering the getters
the driver calls, and provisioning blocks are recorded instead of written to a
database. The callback registry, the exceptions and the entry point are Neutron's.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import entry_points
from typing import Any

from neutron_lib import context as n_context
from neutron_lib import exceptions as n_exc
from neutron_lib.callbacks import events, registry, resources
from neutron_lib.plugins import constants as plugin_constants
from neutron_lib.plugins import directory
from neutron_lib.plugins.ml2 import api
from oslo_config import cfg

from gingham.datastore import keys, open_datastore
from gingham.ipam import who_holds

URL, MISSING = sys.argv[1], sys.argv[2]
PROJECT = "5f1e8d2c3b4a49e0a1b2c3d4e5f60718"
NET, SUBNET = "11111111-2222-4333-8444-555555555555", "22222222-3333-4444-8555-666666666666"
WEB, CLIENT = "aaaaaaaa-0000-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-000000000002"
PORT = "bbbbbbbb-1111-4111-8111-000000000001"
SEG_LOCAL = {api.ID: "seg-1", api.NETWORK_TYPE: "local", api.PHYSICAL_NETWORK: None,
             api.SEGMENTATION_ID: None}
SEG_VLAN = {api.ID: "seg-2", api.NETWORK_TYPE: "vlan", api.PHYSICAL_NETWORK: "phys",
            api.SEGMENTATION_ID: 7}
out: dict[str, Any] = {}


def port(**kw: Any) -> dict[str, Any]:
    p = {"id": PORT, "project_id": PROJECT, "tenant_id": PROJECT, "network_id": NET,
         "device_id": "cccccccc-2222-4222-8222-000000000001", "device_owner": "compute:nova",
         "mac_address": "fa:16:3e:12:34:56", "admin_state_up": True, "status": "DOWN",
         "fixed_ips": [{"subnet_id": SUBNET, "ip_address": "198.19.5.10"}],
         "allowed_address_pairs": [], "security_groups": [WEB], "port_security_enabled": True,
         "binding:host_id": "host-a", "binding:vif_type": "unbound",
         "binding:vnic_type": "normal", "binding:vif_details": {}, "binding:profile": {}}
    p.update(kw)
    return p


class Plugin:
    """The core plugin's getters the driver calls, over dicts."""

    def __init__(self) -> None:
        self.ports: dict[str, dict[str, Any]] = {}
        self.subnets = {SUBNET: {"id": SUBNET, "network_id": NET, "cidr": "198.19.5.0/24",
                                 "ip_version": 4, "project_id": PROJECT}}
        self.groups = {g: {"id": g, "name": n, "project_id": PROJECT, "stateful": True,
                           "security_group_rules": []} for g, n in ((WEB, "web"),
                                                                    (CLIENT, "client"))}

    def get_port(self, ctx: Any, port_id: str) -> dict[str, Any]:
        if port_id not in self.ports:
            raise n_exc.PortNotFound(port_id=port_id)
        return dict(self.ports[port_id])

    def get_ports(self, ctx: Any, filters: Any = None) -> list[dict[str, Any]]:
        return [dict(p) for p in self.ports.values()]

    def get_subnets(self, ctx: Any, filters: Any = None) -> list[dict[str, Any]]:
        ids = (filters or {}).get("id")
        return [dict(s) for i, s in self.subnets.items() if ids is None or i in ids]

    def get_security_group(self, ctx: Any, sg_id: str) -> dict[str, Any]:
        if sg_id not in self.groups:
            raise n_exc.NotFound()
        return dict(self.groups[sg_id])

    def get_security_groups(self, ctx: Any, filters: Any = None) -> list[dict[str, Any]]:
        return [dict(g) for g in self.groups.values()]


class Network:
    def __init__(self) -> None:
        self.current = {"id": NET}


class PortContext(api.PortContext):
    """ML2's PortContext interface (neutron_lib's ABC) over a port dict."""

    def __init__(self, plugin: Plugin, current: dict[str, Any],
                 original: dict[str, Any] | None = None,
                 segments: list[dict[str, Any]] | None = None) -> None:
        self._plugin = plugin
        self._plugin_context = n_context.get_admin_context()
        self._current, self._original = current, original
        self._segments = segments if segments is not None else [SEG_LOCAL]
        self.bound: tuple[Any, ...] | None = None

    current = property(lambda self: self._current)
    original = property(lambda self: self._original)
    status = property(lambda self: self._current["status"])
    original_status = property(lambda self: (self._original or {}).get("status"))
    network = property(lambda self: Network())
    binding_levels = property(lambda self: [])
    original_binding_levels = property(lambda self: [])
    top_bound_segment = property(lambda self: None)
    original_top_bound_segment = property(lambda self: None)
    bottom_bound_segment = property(lambda self: None)
    original_bottom_bound_segment = property(lambda self: None)
    host = property(lambda self: self._current["binding:host_id"])
    original_host = property(lambda self: (self._original or {}).get("binding:host_id"))
    vif_type = property(lambda self: self._current["binding:vif_type"])
    original_vif_type = property(lambda self: (self._original or {}).get("binding:vif_type"))
    vif_details = property(lambda self: self._current["binding:vif_details"])
    original_vif_details = property(lambda self: None)
    segments_to_bind = property(lambda self: self._segments)

    def host_agents(self, agent_type: str) -> list[Any]:
        return []

    def set_binding(self, segment_id: str, vif_type: str, vif_details: dict[str, Any],
                    status: str | None = None) -> None:
        self.bound = (segment_id, vif_type, vif_details, status)

    def continue_binding(self, segment_id: str, next_segments_to_bind: Any) -> None:
        raise AssertionError("the driver binds at one level")

    def allocate_dynamic_segment(self, segment: Any) -> None:
        raise AssertionError("no dynamic segments")

    def release_dynamic_segment(self, segment_id: str) -> None:
        raise AssertionError("no dynamic segments")


def record(name: str, fn: Any) -> Any:
    try:
        return fn()
    except Exception as exc:
        out[name] = {"error": type(exc).__name__, "message": str(exc),
                     "code": getattr(exc, "code", None),
                     "bases": [c.__name__ for c in type(exc).__mro__]}
        return None


def main() -> None:
    import neutron.db.provisioning_blocks as pb

    blocks: list[Any] = []
    pb.add_provisioning_component = lambda ctx, oid, otype, entity: blocks.append(
        ("add", oid, otype, entity))
    pb.provisioning_complete = lambda ctx, oid, otype, entity: blocks.append(
        ("complete", oid, otype, entity))

    found = [e for e in entry_points(group="neutron.ml2.mechanism_drivers") if e.name == "gingham"]
    out["entry_point"] = found[0].value if found else None
    driver_cls = found[0].load()
    from gingham.openstack import mech_driver

    cfg.CONF([], project="neutron")
    mech_driver.register_options()
    cfg.CONF.set_override("datastore", URL, "gingham")
    cfg.CONF.set_override("resync_interval", 0, "gingham")
    driver = driver_cls()
    driver.initialize()
    plugin = Plugin()
    directory.add_plugin(plugin_constants.CORE, plugin)
    ds = open_datastore(URL)

    # bind_port: only on a host with a Node, a local/flat segment, a port it serves
    ctx = PortContext(plugin, port())
    driver.bind_port(ctx)
    out["bound_without_node"] = ctx.bound
    ds.create(keys.resource_key("Node", "host-a"), {
        "apiVersion": "projectcalico.org/v3", "kind": "Node", "metadata": {"name": "host-a"},
        "spec": {}})
    ctx = PortContext(plugin, port())
    driver.bind_port(ctx)
    out["bound"] = ctx.bound
    ctx = PortContext(plugin, port(), segments=[SEG_VLAN])
    driver.bind_port(ctx)
    out["bound_vlan"] = ctx.bound
    ctx = PortContext(plugin, port(port_security_enabled=False))
    driver.bind_port(ctx)
    out["bound_without_port_security"] = ctx.bound

    # the create (unbound), then the update ML2 makes when it commits the binding
    unbound = port()
    plugin.ports[PORT] = unbound
    driver.create_port_postcommit(PortContext(plugin, unbound))
    bound = port(**{"binding:vif_type": "tap", "binding:vif_details": {"port_filter": True}})
    plugin.ports[PORT] = bound
    driver.update_port_precommit(PortContext(plugin, bound, unbound))
    driver.update_port_postcommit(PortContext(plugin, bound, unbound))
    out["blocks"] = blocks
    weps, _ = ds.list(keys.resource_prefix("WorkloadEndpoint"))
    out["endpoints"] = [kv.value for kv in weps]
    holder = who_holds(ds, "198.19.5.10")
    out["holder"] = None if holder is None else [holder.handle, holder.host]
    out["profiles"] = sorted(kv.value["metadata"]["name"]
                             for kv in ds.list(keys.resource_prefix("Profile"))[0])
    out["pools"] = [kv.value["spec"] for kv in ds.list(keys.resource_prefix("IPPool"))[0]]

    # ML2 setting it ACTIVE changes nothing in the datastore
    rev = ds.revision()
    active = dict(bound, status="ACTIVE")
    driver.update_port_postcommit(PortContext(plugin, active, bound))
    out["status_only_wrote"] = ds.revision() != rev

    # losing port security on a bound port is refused before Neutron commits it
    record("refused_update", lambda: driver.update_port_precommit(
        PortContext(plugin, dict(active, port_security_enabled=False), active)))

    # security group rules through Neutron's callback registry
    admin = n_context.get_admin_context()
    bad = {"id": "r-bad", "security_group_id": WEB, "direction": "ingress",
           "ethertype": "IPv4", "protocol": "0", "port_range_min": None,
           "port_range_max": None, "remote_ip_prefix": None, "remote_group_id": None}
    record("refused_rule", lambda: registry.publish(
        resources.SECURITY_GROUP_RULE, events.BEFORE_CREATE, None,
        payload=events.DBEventPayload(admin, resource_id="r-bad", states=(bad,))))
    good = dict(bad, id="r-80", protocol="tcp", port_range_min=80, port_range_max=80,
                remote_group_id=CLIENT)
    registry.publish(resources.SECURITY_GROUP_RULE, events.BEFORE_CREATE, None,
                     payload=events.DBEventPayload(admin, resource_id="r-80", states=(good,)))
    plugin.groups[WEB]["security_group_rules"] = [good]
    registry.publish(resources.SECURITY_GROUP_RULE, events.AFTER_CREATE, None,
                     payload=events.DBEventPayload(admin, resource_id="r-80", states=(good,)))
    web = ds.get(keys.resource_key("Profile", f"openstack-sg-{WEB}"))
    out["web_ingress"] = web.value["spec"]["ingress"] if web else None
    record("refused_group", lambda: registry.publish(
        resources.SECURITY_GROUP, events.BEFORE_CREATE, None,
        payload=events.DBEventPayload(admin, desired_state={"name": "s", "stateful": False})))
    del plugin.groups[CLIENT]
    registry.publish(resources.SECURITY_GROUP, events.AFTER_DELETE, None,
                     payload=events.DBEventPayload(admin, resource_id=CLIENT))
    out["client_profile_after_delete"] = ds.get(
        keys.resource_key("Profile", f"openstack-sg-{CLIENT}")) is not None

    # the resync, reading the stand-in plugin
    report = driver.resync_now()
    out["resync"] = {"written": report.written, "deleted": report.deleted,
                     "failed": report.failed, "activate": report.activate}

    # deleting the port removes its endpoint and gives its address back
    del plugin.ports[PORT]
    driver.delete_port_postcommit(PortContext(plugin, active))
    out["endpoints_after_delete"] = len(ds.list(keys.resource_prefix("WorkloadEndpoint"))[0])
    out["holder_after_delete"] = who_holds(ds, "198.19.5.10") is not None

    # no datastore: a port create that names a host fails with a clear error
    cfg.CONF.set_override("datastore", MISSING, "gingham")
    lost = driver_cls()
    lost.initialize()
    record("unavailable", lambda: lost.create_port_postcommit(PortContext(plugin, port())))
    ctx = PortContext(plugin, port())
    lost.bind_port(ctx)
    out["bound_without_datastore"] = ctx.bound
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
