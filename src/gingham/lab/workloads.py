"""Workloads in a lab: a network namespace attached through the CNI plugin.

``add`` runs ``gingham-cni`` exactly as a runtime would (environment plus
network configuration on stdin, inside the host's network namespace), so
the lab exercises the same code path as podman or a kubelet: the plugin
hands the command to the host's agent (the configuration names the lab's
run directory, where the agent's socket is), or does the work itself when
``via_agent`` is False or no agent answers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gingham.errors import LabError
from gingham.hostfiles import RUN_DIR_ENV
from gingham.lab import state as labstate
from gingham.lab.netns import add_netns, delete_netns, netns_exists, netns_path, spawn_in_netns
from gingham.lab.state import LabState, WorkloadState

NETWORK = "gingham"
_REF = re.compile(r"^([a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?)/([a-z0-9]([a-z0-9.\-]{0,61}[a-z0-9])?)$")
_SERVE = re.compile(r"^(\d{1,5})/(tcp|udp)(?::([a-z0-9]([a-z0-9\-]{0,13}[a-z0-9])?))?$")
SERVE_SCRIPT = Path(__file__).with_name("serve.py")


def parse_ref(ref: str) -> tuple[str, str]:
    m = _REF.match(ref)
    if not m:
        raise LabError(f"workload {ref!r} is not NAMESPACE/NAME (lower-case letters, digits, '-')")
    return m.group(1), m.group(3)


def parse_serve(text: str) -> list[tuple[int, str, str]]:
    """``80/tcp:http,53/udp`` -> [(80, "tcp", "http"), (53, "udp", "")]."""
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        m = _SERVE.match(item)
        if not m or not 1 <= int(m.group(1)) <= 65535:
            raise LabError(f"--serve {item!r} is not PORT/tcp|udp[:NAME] with a port 1-65535")
        out.append((int(m.group(1)), m.group(2), m.group(3) or ""))
    return out


def parse_labels(items: list[str] | str) -> tuple[dict[str, str], list[str]]:
    """``k=v`` sets, ``k-`` removes; a comma-separated string works too."""
    if isinstance(items, str):
        items = [i for i in items.split(",") if i]
    sets: dict[str, str] = {}
    removes: list[str] = []
    for item in items:
        if "=" in item:
            k, _, v = item.partition("=")
            sets[k.strip()] = v.strip()
        elif item.endswith("-"):
            removes.append(item[:-1])
        else:
            raise LabError(f"label {item!r} is neither KEY=VALUE nor KEY-")
    return sets, removes


def workload_netns(lab: str, namespace: str, name: str) -> str:
    digest = hashlib.sha1(f"{namespace}/{name}".encode()).hexdigest()[:10]
    return f"gw-{lab}-{digest}"


def cni_binary(lab: LabState | None = None) -> str:
    """The plugin as a runtime would run it: the lab's own launcher (written on first use,
    as `gingham cni install` writes one), or this installation's console script."""
    if lab is None:
        return str(Path(sys.executable).with_name("gingham-cni"))
    from gingham.cni.launcher import write_launcher

    path = labstate.lab_dir(lab.name) / "bin" / "gingham"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_launcher(path, "main")
    return str(path)


def network_config(
    datastore: str, host: str, extra_args: dict[str, Any] | None = None,
    run_dir: str | None = None, via_agent: bool = True,
) -> dict[str, Any]:
    from gingham.cni.client import AGENT_KEY, NODENAME_KEY, RUN_DIR_KEY

    conf: dict[str, Any] = {
        "cniVersion": "1.0.0",
        "name": NETWORK,
        "type": "gingham",
        "datastore": datastore,
        NODENAME_KEY: host,
        "mtu": 0,
        "ipam": {"type": "gingham-ipam"},
    }
    if run_dir:
        conf[RUN_DIR_KEY] = run_dir
    if not via_agent:
        conf[AGENT_KEY] = False
    if extra_args:
        conf["args"] = {"org.gingham": extra_args}
    return conf


def run_cni(
    command: str, lab: LabState, host_netns: str, wl: WorkloadState, conf: dict[str, Any]
) -> dict[str, Any] | None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": wl.container_id,
        "CNI_NETNS": netns_path(wl.netns) if netns_exists(wl.netns) else "",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(Path(sys.executable).parent),
        RUN_DIR_ENV: lab.run_dir,
    }
    proc = subprocess.run(
        ["nsenter", f"--net={netns_path(host_netns)}", "--", cni_binary(lab)],
        input=json.dumps(conf),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    out = proc.stdout.strip()
    try:
        result = json.loads(out) if out else None
    except ValueError:
        raise LabError(f"CNI {command} printed no JSON: {out!r} {proc.stderr.strip()}") from None
    if proc.returncode != 0:
        msg = result.get("msg") if isinstance(result, dict) else out
        details = result.get("details", "") if isinstance(result, dict) else ""
        raise LabError(f"CNI {command} failed: {msg}" + (f" ({details})" if details else ""))
    return result


def add(
    lab_name: str,
    ref: str,
    host: str,
    labels: dict[str, str] | None = None,
    serve: list[tuple[int, str, str]] | None = None,
    via_agent: bool = True,
) -> WorkloadState:
    namespace, name = parse_ref(ref)
    lab = labstate.load(lab_name)
    h = lab.host(host)
    if ref in lab.workloads:
        raise LabError(f"workload {ref} already exists on {lab.workloads[ref].host}")
    serve = serve or []
    wl = WorkloadState(
        namespace=namespace,
        name=name,
        host=host,
        netns=workload_netns(lab.name, namespace, name),
        container_id=f"{lab.name}-{namespace}-{name}",
        labels=dict(labels or {}),
        serve=[f"{p}/{proto}" + (f":{n}" if n else "") for p, proto, n in serve],
    )
    args: dict[str, Any] = {"namespace": namespace, "name": name, "labels": wl.labels}
    named = [{"name": n, "protocol": proto.upper(), "port": p} for p, proto, n in serve if n]
    if named:
        args["ports"] = named
    add_netns(wl.netns)
    try:
        conf = network_config(lab.datastore, host, args, lab.run_dir, via_agent)
        result = run_cni("ADD", lab, h.netns, wl, conf)
        assert result is not None
        wl.ips = [ip["address"].split("/")[0] for ip in result.get("ips", [])]
        wl.interface = result["interfaces"][0]["name"]
        if serve:
            specs = [f"{proto}:{p}" for p, proto, _ in serve]
            log = open(labstate.lab_dir(lab.name) / f"serve-{namespace}-{name}.log", "ab")  # noqa: SIM115
            proc = spawn_in_netns(
                wl.netns, [sys.executable, "-I", "-S", str(SERVE_SCRIPT), *specs], stderr=log
            )
            log.close()
            wl.listener_pid = proc.pid
        with labstate.modify(lab.name) as st:
            if ref in st.workloads:
                raise LabError(f"workload {ref} was added meanwhile")
            st.workloads[ref] = wl
    except BaseException:
        _teardown(lab, wl)
        raise
    return wl


def _kill(pid: int) -> None:
    import signal

    if pid <= 0:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:
        pass


def _teardown(lab: LabState, wl: WorkloadState) -> None:
    _kill(wl.listener_pid)
    try:
        run_cni(
            "DEL",
            lab,
            lab.host(wl.host).netns,
            wl,
            network_config(lab.datastore, wl.host, {"namespace": wl.namespace, "name": wl.name},
                           lab.run_dir),
        )
    finally:
        delete_netns(wl.netns)


def delete(lab_name: str, ref: str) -> WorkloadState:
    lab = labstate.load(lab_name)
    wl = lab.workload(ref)
    if wl.port_id:  # plugged into a Neutron port by lab/vms.py: no CNI DEL for it
        raise LabError(f"{ref} is a VM on a Neutron port: gingham lab vm del {wl.name}")
    _teardown(lab, wl)
    with labstate.modify(lab.name) as st:
        st.workloads.pop(ref, None)
    return wl


def set_labels(
    datastore: Any, ref: str, sets: dict[str, str], removes: list[str],
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, str]:
    """Change a workload's labels in its WorkloadEndpoint (compare-and-swap)."""
    from gingham.cni.netconf import check_labels
    from gingham.cni.protocol import PluginError
    from gingham.datastore import keys
    from gingham.datastore.retry import Backoff
    from gingham.errors import NotFound, RevisionConflict

    namespace, name = parse_ref(ref)
    try:
        check_labels(sets, "labels")
    except PluginError as exc:
        raise LabError(exc.msg) from None

    def step() -> dict[str, str]:
        items, _rev = datastore.list(keys.resource_prefix("WorkloadEndpoint", namespace))
        match = [kv for kv in items if (kv.value.get("spec") or {}).get("workload") == name]
        if not match:
            raise LabError(f"no workload endpoint for {ref}")
        kv = match[0]
        doc = json.loads(json.dumps(kv.value))
        labels = dict((doc.get("metadata") or {}).get("labels") or {})
        labels.update(sets)
        for k in removes:
            labels.pop(k, None)
        doc.setdefault("metadata", {})["labels"] = labels
        try:
            datastore.update(kv.key, doc, revision=kv.mod_revision)
        except NotFound:
            raise RevisionConflict(kv.key) from None  # deleted since the read: look again
        return labels

    def gives_up(_: str) -> LabError:
        return LabError(f"could not update labels of {ref}: too much contention")

    return Backoff(sleep, attempts=20, gives_up=gives_up).run(ref, step)


def list_endpoints(datastore: Any) -> list[dict[str, Any]]:
    from gingham.datastore import keys

    items, _ = datastore.list(keys.resource_prefix("WorkloadEndpoint"))
    out = []
    for kv in items:
        meta = kv.value.get("metadata") or {}
        spec = kv.value.get("spec") or {}
        out.append(
            {
                "namespace": meta.get("namespace", ""),
                "name": spec.get("workload", meta.get("name", "")),
                "host": spec.get("node", ""),
                "ips": [n.split("/")[0] for n in spec.get("ipNetworks", [])],
                "labels": dict(meta.get("labels") or {}),
                "interface": spec.get("interfaceName", ""),
            }
        )
    return sorted(out, key=lambda w: (w["namespace"], w["name"]))
