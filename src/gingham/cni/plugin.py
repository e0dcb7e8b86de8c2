"""What ``gingham-cni`` and ``gingham-ipam`` do for each CNI command.

ADD: address from IPAM (handle ``<network>.<containerID>``), veth plumbing,
then the WorkloadEndpoint; a failure at any step undoes the earlier ones,
so a failed ADD leaks no address, veth or endpoint. DEL is idempotent and
undoes all three in reverse.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from gingham.cni import netconf
from gingham.cni.entry import (
    ERR_INVALID_CONFIG,
    ERR_IO,
    ERR_PLUGIN_NOT_AVAILABLE,
    ERR_TRY_AGAIN,
    ERR_UNKNOWN_CONTAINER,
    PluginError,
)
from gingham.cni.netconf import Invocation
from gingham.datastore import keys
from gingham.errors import (
    AlreadyExists,
    CNIError,
    GinghamError,
    IPAMError,
    NotFound,
    RevisionConflict,
    Unavailable,
)

GATEWAY_V4 = "169.254.1.1"
DEFAULT_MTU = 1500


def dispatch(
    command: str, conf: dict[str, Any], env: dict[str, str], *, ipam_only: bool
) -> dict[str, Any] | None:
    inv = netconf.parse(command, conf, env)
    try:
        if command == "STATUS":
            _status(inv)
            return None
        if command == "GC":
            _gc(inv, conf)
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
        "profiles": [f"kns.{inv.namespace}"],
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
        "metadata": {"name": namespace, "labels": {"kubernetes.io/metadata.name": namespace}},
    }
    with contextlib.suppress(AlreadyExists):
        ds.create(key, doc)


def _write_endpoint(ds: Any, key: str, doc: dict[str, Any]) -> None:
    for _ in range(10):
        current = ds.get(key)
        try:
            if current is None:
                ds.create(key, doc)
            else:
                ds.update(key, doc, revision=current.mod_revision)
            return
        except (AlreadyExists, RevisionConflict, NotFound):
            continue
    raise PluginError(ERR_TRY_AGAIN, f"could not write endpoint {key}: too much contention")


def _mtu(inv: Invocation) -> int:
    if inv.mtu:
        return inv.mtu
    run_dir = os.environ.get("GINGHAM_RUN_DIR", "/run/gingham")
    try:  # the agent writes the MTU it computed for this host's workloads
        with open(f"{run_dir}/{inv.node}/mtu") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return DEFAULT_MTU


def _add(inv: Invocation) -> dict[str, Any]:
    from gingham.cni import plumbing

    host_if = plumbing.veth_name(inv.namespace, inv.workload)
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
        # A DEL for an older container of the same name must not tear down the new one.
        if current is not None and current.value.get("spec", {}).get("containerID") not in (
            inv.container_id,
            None,
        ):
            _release(ds, inv)
            return
        plumbing.teardown_workload_interface(plumbing.veth_name(inv.namespace, inv.workload))
        if current is not None:
            with contextlib.suppress(NotFound, RevisionConflict):
                ds.delete(key, revision=current.mod_revision)
        _release(ds, inv)
    finally:
        ds.close()


def _check(inv: Invocation, conf: dict[str, Any]) -> None:
    from gingham.cni import plumbing

    host_if = plumbing.veth_name(inv.namespace, inv.workload)
    if not plumbing.interface_exists(host_if):
        raise PluginError(ERR_UNKNOWN_CONTAINER, f"host interface {host_if} is missing")
    ds = _open(inv)
    try:
        current = ds.get(_endpoint_key(inv))
    finally:
        ds.close()
    if current is None:
        raise PluginError(ERR_UNKNOWN_CONTAINER, "no workload endpoint for this container")
    want = {ip.get("address") for ip in (conf.get("prevResult") or {}).get("ips", [])}
    have = set(current.value.get("spec", {}).get("ipNetworks", []))
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


def _gc(inv: Invocation, conf: dict[str, Any]) -> None:
    """Release every attachment of this network that the runtime no longer knows."""
    valid = {
        (a.get("containerID"), a.get("ifname", "eth0"))
        for a in conf.get("cni.dev/valid-attachments", [])
        if isinstance(a, dict)
    }
    from gingham.cni import plumbing

    ds = _open(inv)
    try:
        ipam = _ipam(ds, inv)
        items, _ = ds.list(keys.resource_prefix("WorkloadEndpoint"))
        for kv in items:
            spec = kv.value.get("spec", {})
            if (
                spec.get("node") != inv.node
                or (spec.get("containerID"), spec.get("endpoint")) in valid
            ):
                continue
            plumbing.teardown_workload_interface(spec.get("interfaceName", ""))
            with contextlib.suppress(NotFound, RevisionConflict):
                ds.delete(kv.key, revision=kv.mod_revision)
            ipam.release_by_handle(f"{inv.network}.{spec.get('containerID')}")
    finally:
        ds.close()
