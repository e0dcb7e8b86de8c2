"""The ``gingham`` ML2 mechanism driver: Neutron's hooks onto the driver's store.

Loaded by neutron-server through entry point ``gingham`` of group
``neutron.ml2.mechanism_drivers`` (``[ml2] mechanism_drivers = gingham``);
the contract is in ``gingham.openstack``'s docstring and docs/OPENSTACK.md.

Which hook fails what (neutron/plugins/ml2/plugin.py, Zed):

- ``*_precommit`` runs inside Neutron's transaction: an exception rolls the
  change back and the API call fails with it. Checks that need no write go
  here (a subnet overlapping a pool, a bound port losing port security).
- ``create_port_postcommit`` / ``create_subnet_postcommit``: an exception
  makes ML2 delete the new port or subnet and the call fails with it.
- ``update_port_postcommit`` after binding (``_commit_port_binding``): an
  exception fails the create or update that bound the port (a new port is
  deleted). The plain ``update_port_postcommit`` of an update is only logged
  by ML2; the resync repairs what it left undone.
- ``bind_port``: exceptions are logged and the binding fails; the driver
  simply does not bind what it cannot serve.

Errors reach Neutron's API as: :class:`GinghamRefused` (400, gingham cannot
express the request), :class:`GinghamUnavailable` (503, the datastore cannot
be reached or is none), :class:`GinghamConflict` (409, anything else gingham
raised). Neutron unwraps ML2's MechanismDriverError and shows our message.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from neutron_lib import constants as n_const
from neutron_lib import context as n_context
from neutron_lib import exceptions as n_exc
from neutron_lib.api.definitions import portbindings
from neutron_lib.callbacks import resources
from neutron_lib.plugins import directory
from neutron_lib.plugins.ml2 import api
from oslo_config import cfg
from oslo_log import log as logging

from gingham.datastore import open_datastore, redact_url
from gingham.errors import DatastoreError, GinghamError
from gingham.names import DATASTORE_ENV, DEFAULT_DATASTORE_URL
from gingham.openstack import callbacks, names, ports, resync
from gingham.openstack.names import Refused
from gingham.openstack.store import Store

LOG = logging.getLogger(__name__)

GROUP = "gingham"
OPTS = [
    cfg.StrOpt("datastore",
               help="The gingham datastore URL (sqlite:///path, etcd://host:port, ...). "
                    f"Default: the {DATASTORE_ENV} environment variable, else "
                    f"{DEFAULT_DATASTORE_URL}."),
    cfg.IntOpt("resync_interval", default=60, min=0,
               help="Seconds between resyncs of Neutron's database into the gingham "
                    "datastore; 0 resyncs only when the driver starts."),
]
SEGMENT_TYPES = ("local", "flat")
VIF_DETAILS = {portbindings.CAP_PORT_FILTER: True}
# Until a resync succeeds, how long to wait before the next try.
RETRY_SECONDS = 5.0
PLUGIN_WAIT = 0.5


class GinghamRefused(n_exc.BadRequest):
    message = "gingham cannot serve this request: %(reason)s"


class GinghamUnavailable(n_exc.ServiceUnavailable):
    message = "gingham datastore %(url)s cannot be used: %(reason)s"


class GinghamConflict(n_exc.Conflict):
    message = "gingham: %(reason)s"


def register_options(conf: Any = cfg.CONF) -> None:
    conf.register_opts(OPTS, GROUP)


def datastore_url(conf: Any = cfg.CONF) -> str:
    return conf.gingham.datastore or os.environ.get(DATASTORE_ENV) or DEFAULT_DATASTORE_URL


def _sleep(seconds: float) -> None:
    # Neutron runs monkey-patched by eventlet: time.sleep yields to other greenthreads.
    time.sleep(seconds)


def _spawn(target: Any, *args: Any) -> None:
    try:
        import eventlet
    except ImportError:  # outside neutron-server (tests): a plain thread
        threading.Thread(target=target, args=args, daemon=True, name="gingham-resync").start()
        return
    eventlet.spawn(target, *args)


class GinghamMechanismDriver(api.MechanismDriver):
    """Binds VM ports on gingham hosts as tap VIFs and keeps their endpoints,
    their groups' profiles and their subnets' pools in the gingham datastore."""

    def initialize(self) -> None:
        register_options(cfg.CONF)
        self._url = datastore_url()
        self._store: Store | None = None
        self._pid: int | None = None
        self._loop_pid: int | None = None
        self._state_lock = threading.Lock()
        callbacks.subscribe(self)
        LOG.info("gingham mechanism driver: datastore %s, resync every %ss",
                 redact_url(self._url), cfg.CONF.gingham.resync_interval)
        self.start_resync()

    # -- the datastore, one connection per process ------------------------------

    def store(self) -> Store:
        """This process's store (neutron-server forks API workers: a connection
        never crosses a fork). DatastoreError if it cannot be opened."""
        pid = os.getpid()
        with self._state_lock:
            if self._store is None or self._pid != pid:
                self._store = Store(open_datastore(self._url), sleep=_sleep)
                self._pid = pid
        self.start_resync()
        return self._store

    @contextlib.contextmanager
    def neutron_errors(self) -> Iterator[None]:
        """gingham's errors as the Neutron exceptions the API shows."""
        try:
            yield
        except Refused as exc:
            raise GinghamRefused(reason=str(exc)) from exc
        except DatastoreError as exc:
            raise GinghamUnavailable(url=redact_url(self._url), reason=str(exc)) from exc
        except GinghamError as exc:
            raise GinghamConflict(reason=str(exc)) from exc

    # -- resync -----------------------------------------------------------------

    def start_resync(self) -> None:
        """Start this process's resync loop if it has none (once per process)."""
        pid = os.getpid()
        with self._state_lock:
            if self._loop_pid == pid:
                return
            self._loop_pid = pid
        _spawn(self._resync_loop, pid)

    def _resync_loop(self, pid: int) -> None:
        done_once = False
        while os.getpid() == pid:
            if directory.get_plugin() is None:  # initialize() runs while ML2 is being built
                _sleep(PLUGIN_WAIT)
                continue
            try:
                report = self.resync_now()
                done_once = True
                LOG.info("gingham resync: %s", report)
            except Exception:  # the loop must outlive any one pass
                LOG.exception("gingham resync failed; retrying in %ss", RETRY_SECONDS)
            interval = cfg.CONF.gingham.resync_interval
            if done_once and interval <= 0:
                return
            _sleep(interval if done_once and interval > 0 else RETRY_SECONDS)

    def resync_now(self) -> resync.Report:
        """One resync pass; waits for nothing (raises if Neutron's plugin is not up yet)."""
        plugin = directory.get_plugin()
        if plugin is None:
            raise RuntimeError("Neutron's core plugin is not loaded yet")
        ctx = n_context.get_admin_context()

        def read() -> resync.NeutronState:
            return resync.NeutronState(
                subnets=plugin.get_subnets(ctx),
                groups=plugin.get_security_groups(ctx),
                ports=plugin.get_ports(ctx))

        report = resync.resync(self.store(), read)
        for port_id in report.activate:
            self._activate(ctx, port_id)
        return report

    def _activate(self, plugin_context: Any, port_id: str) -> None:
        """Mark the port provisioned (no L2 agent will): ML2 sets it ACTIVE."""
        from neutron.db import provisioning_blocks

        try:
            provisioning_blocks.provisioning_complete(
                plugin_context, port_id, resources.PORT, provisioning_blocks.L2_AGENT_ENTITY)
        except Exception:
            LOG.exception("port %s: could not be marked ACTIVE", port_id)

    # -- binding ----------------------------------------------------------------

    def bind_port(self, context: Any) -> None:
        port = dict(context.current)
        host = context.host
        port[ports.HOST] = host
        problem = ports.port_problem(port)
        if problem:
            LOG.info("gingham does not bind port %s on %s: %s", port.get("id"), host, problem)
            return
        try:
            known = self.store().node_exists(host)
        except GinghamError as exc:
            LOG.error("gingham does not bind port %s on %s: datastore %s: %s",
                      port.get("id"), host, redact_url(self._url), exc)
            return
        if not known:
            LOG.info("gingham does not bind port %s: host %s runs no gingham agent (no "
                     "Node %s in the datastore)", port.get("id"), host, host)
            return
        for segment in context.segments_to_bind:
            if segment[api.NETWORK_TYPE] in SEGMENT_TYPES:
                context.set_binding(segment[api.ID], names.VIF_TYPE, dict(VIF_DETAILS))
                LOG.info("gingham bound port %s on %s (segment %s)", port.get("id"), host,
                         segment[api.ID])
                return
        LOG.info("gingham does not bind port %s: no segment of type %s among %s",
                 port.get("id"), " or ".join(SEGMENT_TYPES),
                 [s[api.NETWORK_TYPE] for s in context.segments_to_bind])

    # -- ports ------------------------------------------------------------------

    def create_port_postcommit(self, context: Any) -> None:
        port = context.current
        if ports.bound_here(port):
            self._write_port(context, port, None)
        elif port.get(ports.HOST) and ports.is_vm_port(port):
            self._probe()  # it is about to be bound: fail now if that cannot work

    def update_port_precommit(self, context: Any) -> None:
        port = context.current
        if not ports.bound_here(port):
            return
        problem = ports.port_problem(port)
        if problem:
            raise GinghamRefused(reason=f"port {port.get('id')}: {problem}")
        if port.get("status") != n_const.PORT_STATUS_ACTIVE:
            from neutron.db import provisioning_blocks

            # as ML2's agent drivers do: ACTIVE waits for the driver's own completion
            provisioning_blocks.add_provisioning_component(
                context._plugin_context, port["id"], resources.PORT,
                provisioning_blocks.L2_AGENT_ENTITY)

    def update_port_postcommit(self, context: Any) -> None:
        port, original = context.current, context.original or {}
        if _only_status_changed(port, original):
            return
        if ports.bound_here(port):
            self._write_port(context, port, original)
        elif ports.bound_here(original):
            self._delete_port(original)
        elif (port.get(ports.VIF_TYPE) == ports.VIF_BINDING_FAILED and port.get(ports.HOST)
              and ports.is_vm_port(port)):
            self._probe()  # a failed binding for want of the datastore fails the call

    def delete_port_postcommit(self, context: Any) -> None:
        port = context.current
        if ports.bound_here(port):
            self._delete_port(port)

    def _probe(self) -> None:
        with self.neutron_errors():
            self.store().check_reachable()

    def _write_port(self, context: Any, port: Mapping[str, Any],
                    original: Mapping[str, Any] | None) -> None:
        plugin = context._plugin
        admin = n_context.get_admin_context()
        try:
            port = plugin.get_port(admin, port["id"])  # the newest state, not the hook's copy
        except n_exc.PortNotFound:
            return
        if not ports.bound_here(port):
            return
        with self.neutron_errors():
            store = self.store()
            subnet_ids = sorted({str(f["subnet_id"]) for f in port.get("fixed_ips") or ()})
            if subnet_ids:
                for subnet in plugin.get_subnets(admin, filters={"id": subnet_ids}):
                    store.put_subnet(subnet)
            for sg_id in port.get("security_groups") or ():
                if not store.has_group(sg_id):
                    store.put_group(plugin.get_security_group(admin, sg_id))
            store.put_port(port, previous=original if original else None)
        if port.get("status") != n_const.PORT_STATUS_ACTIVE:
            self._activate(context._plugin_context, port["id"])

    def _delete_port(self, port: Mapping[str, Any]) -> None:
        with self.neutron_errors():
            self.store().delete_port(port)

    # -- subnets ----------------------------------------------------------------

    def create_subnet_precommit(self, context: Any) -> None:
        with self.neutron_errors():
            self.store().check_subnet(context.current)

    def create_subnet_postcommit(self, context: Any) -> None:
        with self.neutron_errors():
            self.store().put_subnet(context.current)

    def delete_subnet_postcommit(self, context: Any) -> None:
        with self.neutron_errors():
            self.store().delete_subnet(context.current["id"])

    # -- security groups (through the callback registry: callbacks.py) -----------

    def write_group(self, sg_id: str) -> None:
        plugin = directory.get_plugin()
        admin = n_context.get_admin_context()
        try:
            group = plugin.get_security_group(admin, sg_id)
        except n_exc.NotFound:
            return  # deleted meanwhile: its AFTER_DELETE removes the profile
        with self.neutron_errors():
            self.store().put_group(group)

    def delete_group(self, sg_id: str) -> None:
        with self.neutron_errors():
            self.store().delete_group(sg_id)


_VOLATILE = ("status", "revision_number", "updated_at")


def _only_status_changed(port: Mapping[str, Any], original: Mapping[str, Any]) -> bool:
    """An update that changed nothing but the port's status (ML2 setting it ACTIVE)."""
    if not original or port.get("status") == original.get("status"):
        return False
    keys = (set(port) | set(original)) - set(_VOLATILE)
    return all(port.get(k) == original.get(k) for k in keys)
