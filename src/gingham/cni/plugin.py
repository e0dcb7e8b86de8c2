"""What ``gingham-cni`` and ``gingham-ipam`` do for each CNI command.

ADD: address from IPAM (handle ``<network>.<containerID>``), veth plumbing,
then the WorkloadEndpoint, which records the network in the annotation
``NETWORK_ANNOTATION``; a failure at any step undoes the earlier ones, so a
failed ADD leaks no address, veth or endpoint. DEL is idempotent and undoes
all three in reverse.

GC removes only what this plugin made for *this* network on *this* node:
endpoints that carry the network annotation, plus their veth and their
handle. Endpoints written by anyone else (``gingham apply``, other
orchestrators, another network) have no such record and are never touched.

A stored endpoint that is malformed (undecodable, or the wrong shape where
DEL/GC look) is never trusted and never deleted: it is skipped with a line
on stderr. DEL still removes its own interface and releases its own
addresses, which it derives from the invocation, not from the record. The
shape check is plain Python: DEL and GC stay clear of pydantic.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from gingham.cni import netconf
from gingham.cni.netconf import Invocation
from gingham.cni.plumbing import GATEWAY_V4
from gingham.cni.protocol import (
    ERR_INVALID_CONFIG,
    ERR_IO,
    ERR_PLUGIN_NOT_AVAILABLE,
    ERR_TRY_AGAIN,
    ERR_UNKNOWN_CONTAINER,
    PluginError,
    log,
)
from gingham.datastore import keys
from gingham.datastore.base import Undecodable
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
from gingham.names import K8S_NAMESPACE_NAME_LABEL, NAMESPACE_PROFILE_PREFIX

DEFAULT_MTU = 1500
# Which CNI network an endpoint was attached for: GC's scope.
NETWORK_ANNOTATION = "cni.gingham.dev/network"
VALID_ATTACHMENTS = "cni.dev/valid-attachments"
# The runtime waits for ADD: a few lost races, then ERR_TRY_AGAIN (it will retry).
ENDPOINT_WRITE_ATTEMPTS = 10


def dispatch(
    command: str, conf: dict[str, Any], env: dict[str, str], *, ipam_only: bool
) -> dict[str, Any] | None:
    inv = netconf.parse(command, conf, env)
    try:
        if command == "STATUS":
            _status(inv)
            return None
        if command == "GC":
            valid = valid_attachments(conf)  # before anything is opened or touched
            # As another plugin's IPAM, ADD leaves only a handle, and `<network>.<id>` cannot
            # be told apart from network `<network>.<x>`'s: nothing is released on a guess
            # (`gingham ipam check` finds what is left).
            if not ipam_only:
                _gc(inv, valid)
            return None
        if ipam_only:
            return _ipam_command(inv)
        if inv.ipam_type != "gingham-ipam":
            raise PluginError(
                ERR_INVALID_CONFIG,
                f"ipam type {inv.ipam_type!r} is not supported; use gingham-ipam",
            )
        if command == "ADD":
            return _add(inv)
        if command == "DEL":
            _delete(inv)
            return None
        _check(inv, conf)
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


# -- the pieces ---------------------------------------------------------------


def _open(inv: Invocation) -> Any:
    from gingham.datastore import open_datastore

    return open_datastore(inv.datastore)


def _ipam(ds: Any, inv: Invocation) -> Any:
    from gingham.ipam import IPAM

    return IPAM(ds, host=inv.node)


def _allocate(ds: Any, inv: Invocation) -> list[str]:
    attrs = {"namespace": inv.namespace, "workload": inv.workload, "host": inv.node}
    ips = _ipam(ds, inv).auto_assign(
        inv.handle, attrs, num_v4=1 if inv.ipv4 else 0, num_v6=1 if inv.ipv6 else 0
    )
    return [f"{ip.ip}/{ip.ip.max_prefixlen}" for ip in ips]


def _release(ds: Any, inv: Invocation) -> None:
    _ipam(ds, inv).release_by_handle(inv.handle)


def endpoint_name(node: str, orchestrator: str, workload: str, endpoint: str) -> str:
    """Calico's composite WorkloadEndpoint name: parts joined by '-', their own '-' doubled."""
    return "-".join(part.replace("-", "--") for part in (node, orchestrator, workload, endpoint))


def _host_if(inv: Invocation) -> str:
    from gingham.cni import plumbing

    return plumbing.veth_name(inv.namespace, inv.workload, inv.ifname)


def _endpoint_key(inv: Invocation) -> str:
    name = endpoint_name(inv.node, inv.orchestrator, inv.workload, inv.ifname)
    return keys.resource_key("WorkloadEndpoint", name, inv.namespace)


def _endpoint_doc(inv: Invocation, host_if: str, mac: str, cidrs: list[str]) -> dict[str, Any]:
    labels = dict(inv.labels)
    spec: dict[str, Any] = {
        "orchestrator": inv.orchestrator,
        "workload": inv.workload,
        "node": inv.node,
        "containerID": inv.container_id,
        "pod": inv.workload,
        "endpoint": inv.ifname,
        "interfaceName": host_if,
        "mac": mac,
        "ipNetworks": cidrs,
        "profiles": [NAMESPACE_PROFILE_PREFIX + inv.namespace],
    }
    if inv.ports:
        spec["ports"] = [
            {"name": p.name, "protocol": p.protocol, "port": p.port} for p in inv.ports if p.name
        ]
    if inv.service_account:
        spec["serviceAccountName"] = inv.service_account
    return {
        "apiVersion": "projectcalico.org/v3",
        "kind": "WorkloadEndpoint",
        "metadata": {
            "name": endpoint_name(inv.node, inv.orchestrator, inv.workload, inv.ifname),
            "namespace": inv.namespace,
            "labels": labels,
            "annotations": {NETWORK_ANNOTATION: inv.network},
        },
        "spec": spec,
    }


def _ensure_namespace(ds: Any, namespace: str) -> None:
    """Workloads fall through to their namespace's profile; make sure it exists."""
    key = keys.resource_key("Namespace", namespace)
    if ds.get(key) is not None:
        return
    doc = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {K8S_NAMESPACE_NAME_LABEL: namespace}},
    }
    with contextlib.suppress(AlreadyExists):
        ds.create(key, doc)


def _write_endpoint(ds: Any, key: str, doc: dict[str, Any],
                    sleep: Callable[[float], None] = time.sleep) -> None:
    def step() -> None:
        current = ds.get(key)
        try:
            if current is None:
                ds.create(key, doc)
            else:
                ds.update(key, doc, revision=current.mod_revision)
        except (AlreadyExists, NotFound):
            raise RevisionConflict(key) from None  # written or deleted since the read

    def gives_up(_: str) -> PluginError:
        return PluginError(ERR_TRY_AGAIN, f"could not write endpoint {key}: too much contention")

    Backoff(sleep, attempts=ENDPOINT_WRITE_ATTEMPTS, gives_up=gives_up).run(key, step)


def _mtu(inv: Invocation) -> int:
    if inv.mtu:
        return inv.mtu
    from gingham.hostfiles import mtu_path, read_mtu

    # the agent writes the MTU it computed for this host's workloads
    return read_mtu(mtu_path(inv.node)) or DEFAULT_MTU


def _add(inv: Invocation) -> dict[str, Any]:
    from gingham.cni import plumbing

    host_if = _host_if(inv)
    ds = _open(inv)
    undo: list[Any] = []
    try:
        _ensure_namespace(ds, inv.namespace)
        cidrs = _allocate(ds, inv)
        undo.append(lambda: _release(ds, inv))
        macs = plumbing.setup_workload_interface(
            inv.netns, host_if, cidrs, _mtu(inv), container_ifname=inv.ifname
        )
        undo.append(lambda: plumbing.teardown_workload_interface(host_if))
        key = _endpoint_key(inv)
        _write_endpoint(ds, key, _endpoint_doc(inv, host_if, macs["container_mac"], cidrs))
        undo.clear()
        return _result(inv, host_if, macs, cidrs)
    finally:
        for step in reversed(undo):
            with contextlib.suppress(Exception):
                step()
        ds.close()


def _result(
    inv: Invocation, host_if: str, macs: dict[str, str], cidrs: list[str]
) -> dict[str, Any]:
    legacy = inv.cni_version.startswith("0.")
    ips = []
    for cidr in cidrs:
        v6 = ":" in cidr
        entry: dict[str, Any] = {"address": cidr, "interface": 1}
        if not v6:
            entry["gateway"] = GATEWAY_V4
        if legacy:
            entry["version"] = "6" if v6 else "4"
        ips.append(entry)
    routes = [{"dst": "0.0.0.0/0"}] if any(":" not in c for c in cidrs) else []
    if any(":" in c for c in cidrs):
        routes.append({"dst": "::/0"})
    return {
        "cniVersion": inv.cni_version,
        "interfaces": [
            {"name": host_if, "mac": macs["host_mac"]},
            {"name": inv.ifname, "mac": macs["container_mac"], "sandbox": inv.netns},
        ],
        "ips": ips,
        "routes": routes,
        "dns": {},
    }


def _delete(inv: Invocation) -> None:
    from gingham.cni import plumbing

    ds = _open(inv)
    try:
        key = _endpoint_key(inv)
        current = ds.get(key)
        spec: dict[str, Any] | None = None
        if current is not None:
            problem = endpoint_problem(current.value)
            if problem:
                log(
                    f"DEL {inv.container_id}: endpoint {key} is malformed ({problem}); left in"
                    " place, this container's interface and addresses are removed all the same"
                )
            else:
                spec = current.value["spec"]
        # A DEL for an older container of the same name must not tear down the new one.
        if spec is not None and spec.get("containerID") not in (inv.container_id, None):
            _release(ds, inv)
            return
        plumbing.teardown_workload_interface(_host_if(inv))
        if current is not None and spec is not None:
            with contextlib.suppress(NotFound, RevisionConflict):
                ds.delete(key, revision=current.mod_revision)
        _release(ds, inv)
    finally:
        ds.close()


def _check(inv: Invocation, conf: dict[str, Any]) -> None:
    from gingham.cni import plumbing

    host_if = _host_if(inv)
    if not plumbing.interface_exists(host_if):
        raise PluginError(ERR_UNKNOWN_CONTAINER, f"host interface {host_if} is missing")
    ds = _open(inv)
    try:
        key = _endpoint_key(inv)
        current = ds.get(key)
    finally:
        ds.close()
    if current is None:
        raise PluginError(ERR_UNKNOWN_CONTAINER, "no workload endpoint for this container")
    problem = endpoint_problem(current.value)
    if problem:
        raise PluginError(ERR_IO, f"workload endpoint {key} is malformed: {problem}")
    want = {ip.get("address") for ip in (conf.get("prevResult") or {}).get("ips", [])}
    have = set(current.value["spec"].get("ipNetworks", []))
    if want and want != have:
        raise PluginError(
            ERR_UNKNOWN_CONTAINER, f"addresses differ: expected {sorted(want)}, have {sorted(have)}"
        )


def _ipam_command(inv: Invocation) -> dict[str, Any] | None:
    ds = _open(inv)
    try:
        if inv.command == "ADD":
            cidrs = _allocate(ds, inv)
            return {
                "cniVersion": inv.cni_version,
                "ips": [
                    {"address": c, **({} if ":" in c else {"gateway": GATEWAY_V4})} for c in cidrs
                ],
                "routes": [{"dst": "0.0.0.0/0"}],
            }
        if inv.command == "DEL":
            _release(ds, inv)
        return None
    finally:
        ds.close()


def _status(inv: Invocation) -> None:
    try:
        ds = _open(inv)
        try:
            ds.revision()
        finally:
            ds.close()
    except GinghamError as exc:
        raise PluginError(ERR_PLUGIN_NOT_AVAILABLE, "datastore not reachable", str(exc)) from None


# -- stored endpoints, as DEL and GC read them ----------------------------------

_SPEC_STRINGS = ("orchestrator", "workload", "node", "containerID", "pod", "endpoint",
                 "interfaceName")  # fmt: skip


def endpoint_problem(value: object) -> str | None:
    """Why a stored WorkloadEndpoint cannot be trusted where DEL and GC read it, or None.

    Structural only (no pydantic on the DEL path): the fields those commands
    use have the types ADD writes.
    """
    if isinstance(value, Undecodable):
        return f"not decodable: {value.reason}"
    if not isinstance(value, dict):
        return "not a JSON object"
    if value.get("kind") != "WorkloadEndpoint":
        return f"kind is {value.get('kind')!r}, not 'WorkloadEndpoint'"
    meta, spec = value.get("metadata"), value.get("spec")
    if not isinstance(meta, dict):
        return "metadata is not an object"
    if not isinstance(spec, dict):
        return "spec is not an object"
    for name in ("name", "namespace"):
        if not isinstance(meta.get(name), str) or not meta[name]:
            return f"metadata.{name} is not a non-empty string"
    for name in ("labels", "annotations"):
        field = meta.get(name, {})
        if not isinstance(field, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in field.items()
        ):
            return f"metadata.{name} is not an object of strings"
    for name in _SPEC_STRINGS:
        if name in spec and not isinstance(spec[name], str):
            return f"spec.{name} is not a string"
    nets = spec.get("ipNetworks", [])
    if not isinstance(nets, list) or not all(isinstance(n, str) for n in nets):
        return "spec.ipNetworks is not a list of strings"
    return None


def valid_attachments(conf: dict[str, Any]) -> set[tuple[str, str]]:
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


def _gc(inv: Invocation, valid: set[tuple[str, str]]) -> None:
    """Remove every attachment of this network on this node that the runtime no longer knows."""
    from gingham.cni import plumbing

    valid_containers = {cid for cid, _ in valid}
    failed: list[str] = []
    ds = _open(inv)
    try:
        ipam = _ipam(ds, inv)
        items, _ = ds.list(keys.resource_prefix("WorkloadEndpoint"))
        for kv in items:
            problem = endpoint_problem(kv.value)
            if problem:
                log(f"GC {inv.network}: skipping endpoint {kv.key}: malformed ({problem})")
                continue
            meta, spec = kv.value["metadata"], kv.value["spec"]
            if (
                spec.get("node") != inv.node
                or meta.get("annotations", {}).get(NETWORK_ANNOTATION) != inv.network
            ):
                continue  # another node's, another network's, or not made by this plugin
            cid, ifname = spec.get("containerID", ""), spec.get("endpoint", "")
            if (cid, ifname) in valid:
                continue
            if not cid or not ifname or not spec.get("workload"):
                log(f"GC {inv.network}: skipping endpoint {kv.key}: no containerID, endpoint"
                    " or workload to say which attachment it is")  # fmt: skip
                continue
            host_if = spec.get("interfaceName", "")
            made = plumbing.veth_name(meta["namespace"], spec["workload"], ifname)
            if host_if and host_if != made:
                log(f"GC {inv.network}: skipping endpoint {kv.key}: interfaceName {host_if!r}"
                    f" is not the interface this plugin made for it ({made})")  # fmt: skip
                continue
            try:
                if host_if:
                    plumbing.teardown_workload_interface(host_if)
                with contextlib.suppress(NotFound, RevisionConflict):
                    ds.delete(kv.key, revision=kv.mod_revision)
                # The handle is per container and network: another interface of the same
                # container that is still valid shares it.
                if cid not in valid_containers:
                    ipam.release_by_handle(f"{inv.network}.{cid}")
            except (CNIError, IPAMError) as exc:
                log(f"GC {inv.network}: endpoint {kv.key}: {exc}")
                failed.append(kv.key)
    finally:
        ds.close()
    if failed:
        raise PluginError(ERR_IO, f"GC could not remove {len(failed)} attachment(s)",
                          ", ".join(failed))  # fmt: skip
