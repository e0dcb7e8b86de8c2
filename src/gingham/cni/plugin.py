"""What ``gingham-cni`` and ``gingham-ipam`` do for each CNI command.

One implementation, run by the direct path and by the node agent alike: the
surroundings (datastore connection, IPAM, veth plumbing, where log lines
go, who hears of the writes) come in as a ``Host`` (``host.py``).

ADD: address from IPAM (handle ``<network>.<containerID>``), veth plumbing,
then the WorkloadEndpoint, which records the network in the annotation
``NETWORK_ANNOTATION``; a failure at any step undoes the earlier ones, so a
failed ADD leaks no address, veth or endpoint. ADD may run again for the same
attachment -- the runtime retries after an error, the thin client reruns a
command whose agent died under it -- and leaks nothing then either: the
addresses the handle holds that no other interface of the container uses
are an earlier attempt's, reused when they are what this ADD wants and
given back otherwise; a left-over veth of the same name is replaced; the
endpoint write is compare-and-swap. (Two ADDs of one container on one
network at the same time are not expected: runtimes serialise a container's
operations.) DEL is idempotent and undoes all three in reverse.

GC removes only what this plugin made for *this* network on *this* node:
endpoints that carry the network annotation, plus their veth and their
handle. Endpoints written by anyone else (``gingham apply``, other
orchestrators, another network) have no such record and are never touched.

A stored endpoint that is malformed is never trusted and never deleted: it
is skipped with a log line (``endpoints.read_endpoint``). DEL still removes
its own interface and releases its own addresses, which it derives from the
invocation, not from the record.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping

from gingham.cni import netconf
from gingham.cni.documents import EndpointDoc, IpamResult, Output, Result, ResultIP, ResultRoute
from gingham.cni.endpoints import (
    NETWORK_ANNOTATION,
    StoredEndpoint,
    endpoint_doc,
    endpoint_key,
    endpoint_problem,
    namespace_doc,
    namespace_key,
    read_endpoint,
)
from gingham.cni.host import DirectHost, Host, IPAddress, Session, Store
from gingham.cni.netconf import Invocation
from gingham.cni.plumbing import GATEWAY_V4, Macs, veth_name
from gingham.cni.protocol import (
    ERR_INVALID_CONFIG,
    ERR_IO,
    ERR_PLUGIN_NOT_AVAILABLE,
    ERR_TRY_AGAIN,
    ERR_UNKNOWN_CONTAINER,
    PluginError,
)
from gingham.datastore import keys
from gingham.datastore.retry import Backoff
from gingham.errors import (
    AlreadyExists,
    CNIError,
    GinghamError,
    IPAMError,
    NoDatastore,
    NotFound,
    RevisionConflict,
    Unavailable,
)

DEFAULT_MTU = 1500
VALID_ATTACHMENTS = "cni.dev/valid-attachments"
# The runtime waits for ADD: a few lost races, then ERR_TRY_AGAIN (it will retry).
ENDPOINT_WRITE_ATTEMPTS = 10

__all__ = ["NETWORK_ANNOTATION", "dispatch", "endpoint_problem", "valid_attachments"]


def dispatch(command: str, conf: Mapping[str, object], env: Mapping[str, str], *,
             ipam_only: bool, host: Host | None = None) -> Output | None:
    """Run ``command``; its result for the runtime (None: nothing to print).

    Every failure is a PluginError with the CNI error code to report.
    """
    inv = netconf.parse(command, conf, env)
    where: Host = host if host is not None else DirectHost()
    try:
        if command == "STATUS":
            _status(where, inv)
            return None
        if command == "GC":
            valid = valid_attachments(conf)  # before anything is opened or touched
            # As another plugin's IPAM, ADD leaves only a handle, and `<network>.<id>` cannot
            # be told apart from network `<network>.<x>`'s: nothing is released on a guess
            # (`gingham ipam check` finds what is left).
            if not ipam_only:
                _gc(where, inv, valid)
            return None
        if ipam_only:
            return _ipam_command(where, inv)
        if inv.ipam_type != "gingham-ipam":
            raise PluginError(
                ERR_INVALID_CONFIG,
                f"ipam type {inv.ipam_type!r} is not supported; use gingham-ipam",
            )
        if command == "ADD":
            return _add(where, inv)
        if command == "DEL":
            _delete(where, inv)
            return None
        _check(where, inv, conf)
        return None
    except Unavailable as exc:
        raise PluginError(ERR_TRY_AGAIN, "datastore unavailable, try again", str(exc)) from None
    except NoDatastore as exc:
        # a mistyped path in the configuration: never an empty datastore made on the spot
        raise PluginError(ERR_INVALID_CONFIG, f"'datastore': {exc}") from None
    except CNIError as exc:
        raise PluginError(exc.code, str(exc), exc.details) from None
    except IPAMError as exc:
        raise PluginError(ERR_IO, f"IPAM: {exc}") from None
    except GinghamError as exc:
        raise PluginError(ERR_IO, str(exc)) from None


# -- ADD -------------------------------------------------------------------------------


def _host_if(inv: Invocation) -> str:
    return veth_name(inv.namespace, inv.workload, inv.ifname)


def _ensure_namespace(host: Host, store: Store, namespace: str) -> None:
    """Workloads fall through to their namespace's profile; make sure it exists."""
    key = namespace_key(namespace)
    if store.get(key) is not None:
        return
    doc = namespace_doc(namespace)
    with contextlib.suppress(AlreadyExists):
        host.written(key, doc, store.create(key, dict(doc)))


def _write_endpoint(store: Store, key: str, doc: EndpointDoc,
                    sleep: Callable[[float], None] = time.sleep) -> int:
    """Create or replace the endpoint, compare-and-swap; its new revision."""
    value = dict(doc)

    def step() -> int:
        current = store.get(key)
        try:
            if current is None:
                return store.create(key, value)
            return store.update(key, value, revision=current.mod_revision)
        except (AlreadyExists, NotFound):
            raise RevisionConflict(key) from None  # written or deleted since the read

    def gives_up(_: str) -> PluginError:
        return PluginError(ERR_TRY_AGAIN, f"could not write endpoint {key}: too much contention")

    revision: int = Backoff(sleep, attempts=ENDPOINT_WRITE_ATTEMPTS, gives_up=gives_up).run(
        key, step)
    return revision


def _used_by_other_interfaces(store: Store, inv: Invocation) -> set[str]:
    """Addresses (no prefix) of this container's other interfaces on this network."""
    items, _ = store.list(keys.resource_prefix("WorkloadEndpoint", inv.namespace))
    used: set[str] = set()
    for kv in items:
        ep = read_endpoint(kv.value)
        if (isinstance(ep, StoredEndpoint) and ep.container_id == inv.container_id
                and ep.network == inv.network and ep.endpoint != inv.ifname):
            used |= {net.split("/")[0] for net in ep.ip_networks}
    return used


def _earlier_attempt(s: Session, inv: Invocation) -> list[IPAddress]:
    """What an earlier ADD of this very attachment left under its handle."""
    held = s.addresses.held_by(inv.handle)  # one read when the handle is new: the usual case
    if not held:
        return []
    others = _used_by_other_interfaces(s.store, inv)
    return [ip for ip in held if str(ip) not in others]


def _addresses(s: Session, inv: Invocation, undo: list[Callable[[], object]]) -> list[str]:
    earlier = _earlier_attempt(s, inv)
    wanted = sorted([4] * inv.ipv4 + [6] * inv.ipv6)
    if earlier and sorted(ip.version for ip in earlier) == wanted:
        ips = earlier
    else:
        if earlier:
            s.addresses.release_ips(earlier, handle=inv.handle)
        attrs = {"namespace": inv.namespace, "workload": inv.workload, "host": inv.node}
        got = s.addresses.auto_assign(inv.handle, attrs, num_v4=int(inv.ipv4),
                                      num_v6=int(inv.ipv6))  # fmt: skip
        ips = [i.ip for i in got]
    # only this ADD's addresses: another interface of the container shares the handle
    undo.append(lambda: s.addresses.release_ips(ips, handle=inv.handle))
    return [f"{ip}/{ip.max_prefixlen}" for ip in ips]


def _mtu(host: Host, inv: Invocation) -> int:
    if inv.mtu:
        return inv.mtu
    # the agent writes the MTU it computed for this host's workloads
    return host.mtu(inv) or DEFAULT_MTU


def _add(host: Host, inv: Invocation) -> Result:
    host_if = _host_if(inv)
    undo: list[Callable[[], object]] = []
    with host.session(inv) as s:
        try:
            _ensure_namespace(host, s.store, inv.namespace)
            cidrs = _addresses(s, inv, undo)
            macs = host.plumbing.setup(inv.netns, host_if, cidrs, _mtu(host, inv), inv.ifname)
            undo.append(lambda: host.plumbing.teardown(host_if))
            key = endpoint_key(inv)
            doc = endpoint_doc(inv, host_if, macs["container_mac"], cidrs)
            revision = _write_endpoint(s.store, key, doc)
            undo.clear()
        finally:
            for step in reversed(undo):
                with contextlib.suppress(Exception):
                    step()
    host.written(key, doc, revision)
    return _result(inv, host_if, macs, cidrs)


def _ips(cidrs: list[str], legacy: bool, interface: int | None) -> list[ResultIP]:
    ips: list[ResultIP] = []
    for cidr in cidrs:
        v6 = ":" in cidr
        entry: ResultIP = {"address": cidr}
        if interface is not None:
            entry["interface"] = interface
        if not v6:
            entry["gateway"] = GATEWAY_V4
        if legacy:
            entry["version"] = "6" if v6 else "4"
        ips.append(entry)
    return ips


def _result(inv: Invocation, host_if: str, macs: Macs, cidrs: list[str]) -> Result:
    routes: list[ResultRoute] = [{"dst": "0.0.0.0/0"}] if any(":" not in c for c in cidrs) else []
    if any(":" in c for c in cidrs):
        routes.append({"dst": "::/0"})
    return {
        "cniVersion": inv.cni_version,
        "interfaces": [
            {"name": host_if, "mac": macs["host_mac"]},
            {"name": inv.ifname, "mac": macs["container_mac"], "sandbox": inv.netns},
        ],
        "ips": _ips(cidrs, inv.cni_version.startswith("0."), 1),
        "routes": routes,
        "dns": {},
    }


# -- DEL, CHECK, STATUS, gingham-ipam ---------------------------------------------------------


def _delete(host: Host, inv: Invocation) -> None:
    with host.session(inv) as s:
        key = endpoint_key(inv)
        current = s.store.get(key)
        ep: StoredEndpoint | None = None
        if current is not None:
            got = read_endpoint(current.value)
            if isinstance(got, str):
                host.log(
                    f"DEL {inv.container_id}: endpoint {key} is malformed ({got}); left in"
                    " place, this container's interface and addresses are removed all the same"
                )
            else:
                ep = got
        # A DEL for an older container of the same name must not tear down the new one.
        if ep is not None and ep.container_id not in (inv.container_id, None):
            s.addresses.release_by_handle(inv.handle)
            return
        host.plumbing.teardown(_host_if(inv), wait=False)
        if current is not None and ep is not None:
            with contextlib.suppress(NotFound, RevisionConflict):
                host.written(key, None, s.store.delete(key, revision=current.mod_revision))
        s.addresses.release_by_handle(inv.handle)


def _previous_addresses(conf: Mapping[str, object]) -> set[object]:
    prev = conf.get("prevResult")
    ips = prev.get("ips", []) if isinstance(prev, dict) else []
    if not isinstance(ips, list):
        return set()
    return {ip.get("address") for ip in ips if isinstance(ip, dict)}


def _check(host: Host, inv: Invocation, conf: Mapping[str, object]) -> None:
    host_if = _host_if(inv)
    if not host.plumbing.exists(host_if):
        raise PluginError(ERR_UNKNOWN_CONTAINER, f"host interface {host_if} is missing")
    key = endpoint_key(inv)
    with host.session(inv) as s:
        current = s.store.get(key)
    if current is None:
        raise PluginError(ERR_UNKNOWN_CONTAINER, "no workload endpoint for this container")
    ep = read_endpoint(current.value)
    if isinstance(ep, str):
        raise PluginError(ERR_IO, f"workload endpoint {key} is malformed: {ep}")
    want = _previous_addresses(conf)
    have = set(ep.ip_networks)
    if want and want != have:
        raise PluginError(
            ERR_UNKNOWN_CONTAINER,
            f"addresses differ: expected {sorted(map(str, want))}, have {sorted(have)}",
        )


def _ipam_command(host: Host, inv: Invocation) -> IpamResult | None:
    with host.session(inv) as s:
        if inv.command == "ADD":
            attrs = {"namespace": inv.namespace, "workload": inv.workload, "host": inv.node}
            got = s.addresses.auto_assign(inv.handle, attrs, num_v4=int(inv.ipv4),
                                          num_v6=int(inv.ipv6))  # fmt: skip
            cidrs = [f"{i.ip}/{i.ip.max_prefixlen}" for i in got]
            return {"cniVersion": inv.cni_version, "ips": _ips(cidrs, False, None),
                    "routes": [{"dst": "0.0.0.0/0"}]}  # fmt: skip
        if inv.command == "DEL":
            s.addresses.release_by_handle(inv.handle)
        return None


def _status(host: Host, inv: Invocation) -> None:
    try:
        with host.session(inv) as s:
            s.store.revision()
    except GinghamError as exc:
        raise PluginError(ERR_PLUGIN_NOT_AVAILABLE, "datastore not reachable", str(exc)) from None


# -- GC ------------------------------------------------------------------------------------


def valid_attachments(conf: Mapping[str, object]) -> set[tuple[str, str]]:
    """The runtime's ``cni.dev/valid-attachments``: (containerID, ifname) pairs.

    GC deletes whatever is *not* listed, so anything short of a well-formed
    list is refused rather than read as "nothing is valid".
    """
    if VALID_ATTACHMENTS not in conf:
        raise PluginError(ERR_INVALID_CONFIG, f"GC needs '{VALID_ATTACHMENTS}' (a list)")
    items = conf[VALID_ATTACHMENTS]
    if not isinstance(items, list):
        raise PluginError(
            ERR_INVALID_CONFIG,
            f"'{VALID_ATTACHMENTS}' must be a list of {{containerID, ifname}} objects,"
            f" not {type(items).__name__}",
        )
    valid = set()
    for i, item in enumerate(items):
        where = f"{VALID_ATTACHMENTS}[{i}]"
        if not isinstance(item, dict):
            raise PluginError(ERR_INVALID_CONFIG, f"'{where}' must be an object")
        for field in ("containerID", "ifname"):
            if not isinstance(item.get(field), str) or not item[field]:
                raise PluginError(
                    ERR_INVALID_CONFIG, f"'{where}.{field}' must be a non-empty string"
                )
        valid.add((item["containerID"], item["ifname"]))
    return valid


def _gc(host: Host, inv: Invocation, valid: set[tuple[str, str]]) -> None:
    """Remove every attachment of this network on this node that the runtime no longer knows."""
    valid_containers = {cid for cid, _ in valid}
    failed: list[str] = []
    with host.session(inv) as s:
        items, _ = s.store.list(keys.resource_prefix("WorkloadEndpoint"))
        for kv in items:
            ep = read_endpoint(kv.value)
            if isinstance(ep, str):
                host.log(f"GC {inv.network}: skipping endpoint {kv.key}: malformed ({ep})")
                continue
            if ep.node != inv.node or ep.network != inv.network:
                continue  # another node's, another network's, or not made by this plugin
            cid = ep.container_id or ""
            if (cid, ep.endpoint) in valid:
                continue
            if not cid or not ep.endpoint or not ep.workload:
                host.log(f"GC {inv.network}: skipping endpoint {kv.key}: no containerID, endpoint"
                         " or workload to say which attachment it is")  # fmt: skip
                continue
            made = veth_name(ep.namespace, ep.workload, ep.endpoint)
            if ep.interface and ep.interface != made:
                host.log(f"GC {inv.network}: skipping endpoint {kv.key}: interfaceName"
                         f" {ep.interface!r} is not the interface this plugin made for it"
                         f" ({made})")  # fmt: skip
                continue
            try:
                if ep.interface:
                    host.plumbing.teardown(ep.interface)
                with contextlib.suppress(NotFound, RevisionConflict):
                    host.written(kv.key, None, s.store.delete(kv.key, revision=kv.mod_revision))
                # The handle is per container and network: another interface of the same
                # container that is still valid shares it.
                if cid not in valid_containers:
                    s.addresses.release_by_handle(f"{inv.network}.{cid}")
            except (CNIError, IPAMError) as exc:
                host.log(f"GC {inv.network}: endpoint {kv.key}: {exc}")
                failed.append(kv.key)
    if failed:
        raise PluginError(ERR_IO, f"GC could not remove {len(failed)} attachment(s)",
                          ", ".join(failed))  # fmt: skip
