"""The parts of a CNI invocation gingham uses, checked once and named.

Standard library only (the direct path and the agent both parse with it, so
they refuse the same configurations with the same codes). The thin client
reads ``nodename``, ``runDir`` and ``agent`` on its own (``client.py``) to
find its agent; they are checked here too.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gingham.cni.client import AGENT_KEY, NODENAME_KEY, RUN_DIR_KEY
from gingham.cni.protocol import (
    ERR_INVALID_CONFIG,
    ERR_INVALID_ENV,
    PluginError,
    keep_secret,
)
from gingham.hostfiles import run_dir_text
from gingham.names import DATASTORE_ENV, NODENAME_ENV

if TYPE_CHECKING:
    from gingham.datastore.url import DatastoreURL

# Kubernetes-style names: what we accept for namespaces, workloads and hosts.
_NAME = re.compile(r"^[a-z0-9]([a-z0-9.\-]{0,251}[a-z0-9])?$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([a-z0-9.\-]*[a-z0-9])?/)?[A-Za-z0-9]([A-Za-z0-9._\-]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9._\-]{0,61}[A-Za-z0-9])?)?$")
_CONTAINER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.\-]{1,15}$")
# The CNI specification's network name; it also names files (10-<name>.conflist)
# and prefixes IPAM handles, so nothing else may pass.
NETWORK_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
ORCHESTRATOR_ARGS_KEY = "org.gingham"
CREDENTIALS_KEY = "datastoreCredentials"
CREDENTIAL_FIELDS = ("user", "password")


@dataclass(frozen=True)
class Port:
    name: str
    protocol: str
    port: int


@dataclass(frozen=True)
class Invocation:
    command: str
    network: str
    cni_version: str
    container_id: str
    netns: str
    ifname: str
    namespace: str
    workload: str
    orchestrator: str
    node: str
    datastore: str = field(repr=False)  # may carry the password
    mtu: int
    ipam_type: str
    ipv4: bool
    ipv6: bool
    labels: dict[str, str] = field(default_factory=dict)
    ports: tuple[Port, ...] = ()
    service_account: str = ""
    run_dir: str = ""  # the agent's run directory (its MTU file, its socket)
    use_agent: bool = True
    raw: Mapping[str, object] = field(default_factory=dict)

    @property
    def handle(self) -> str:
        return f"{self.network}.{self.container_id}"


def network_name_problem(name: object) -> str | None:
    """Why ``name`` is not a CNI network name, or None if it is one."""
    if not isinstance(name, str) or not name:
        return "a network name is required"
    if not NETWORK_NAME.fullmatch(name):
        return (
            f"invalid network name {name!r}: letters, digits, '_', '.' and '-',"
            " starting with a letter or digit"
        )
    return None


def check_name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value):
        raise PluginError(
            ERR_INVALID_CONFIG,
            f"invalid {what} {value!r}: lower-case letters, digits, '-' and '.' only",
        )
    return value


def check_labels(labels: object, where: str) -> dict[str, str]:
    if not isinstance(labels, dict):
        raise PluginError(ERR_INVALID_CONFIG, f"{where} must be an object of string labels")
    out: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not _LABEL_KEY.fullmatch(key):
            raise PluginError(ERR_INVALID_CONFIG, f"{where}: invalid label key {key!r}")
        if not isinstance(value, str) or not _LABEL_VALUE.fullmatch(value):
            raise PluginError(ERR_INVALID_CONFIG, f"{where}.{key}: invalid label value {value!r}")
        out[key] = value
    return out


def _parse_cni_args(text: str) -> dict[str, str]:
    args: dict[str, str] = {}
    for part in text.split(";"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise PluginError(ERR_INVALID_ENV, f"CNI_ARGS: {part!r} is not KEY=VALUE")
        args[key] = value
    return args


def _ports(raw: object) -> tuple[Port, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise PluginError(ERR_INVALID_CONFIG, "args.org.gingham.ports must be a list")
    ports = []
    for i, item in enumerate(raw):
        where = f"args.org.gingham.ports[{i}]"
        if not isinstance(item, dict):
            raise PluginError(ERR_INVALID_CONFIG, f"{where} must be an object")
        proto = str(item.get("protocol", "TCP")).upper()
        number = item.get("port")
        if proto not in ("TCP", "UDP", "SCTP"):
            raise PluginError(
                ERR_INVALID_CONFIG, f"{where}.protocol: {proto!r} is not TCP, UDP or SCTP"
            )
        if not isinstance(number, int) or not 1 <= number <= 65535:
            raise PluginError(ERR_INVALID_CONFIG, f"{where}.port: {number!r} is not 1-65535")
        name = item.get("name", "")
        if name and (not isinstance(name, str) or not _NAME.fullmatch(name) or len(name) > 15):
            raise PluginError(ERR_INVALID_CONFIG, f"{where}.name: invalid port name {name!r}")
        ports.append(Port(str(name), proto, number))
    return tuple(ports)


# -- datastore credentials -------------------------------------------------
#
# An etcd URL may carry a user and password (``?user=U&password=P`` or
# ``U:P@host``). They never belong in a network configuration, which runtimes
# keep world-readable: ``gingham cni install`` moves them into a 0600 JSON file
# named by ``datastoreCredentials`` and the plugin puts them back here. Where a
# password sits in a URL is for ``gingham.datastore.url`` alone to say: the
# backend reads URLs with the same parser.


def _parsed(url: str) -> DatastoreURL:
    from gingham.datastore.url import parse_url
    from gingham.errors import ValidationError

    try:
        return parse_url(url)
    except ValidationError as exc:  # its messages never quote a password
        raise PluginError(ERR_INVALID_CONFIG, f"'datastore': {exc}") from None


def split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without its user and password, and those two (whichever it had)."""
    parsed = _parsed(url)
    creds = {k: v for k, v in (("user", parsed.user), ("password", parsed.password)) if v}
    return (parsed.public(), creds) if creds else (url, {})


def read_credentials(path: str) -> dict[str, str]:
    """The user and password in ``path``, a JSON object readable by its owner only."""
    where = f"{CREDENTIALS_KEY} {path!r}"
    if not os.path.isabs(path):
        raise PluginError(ERR_INVALID_CONFIG, f"{where}: must be an absolute path")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise PluginError(ERR_INVALID_CONFIG, f"{where}: cannot open it: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if mode & 0o077:
            raise PluginError(
                ERR_INVALID_CONFIG,
                f"{where}: readable by others (mode {mode & 0o777:04o}); chmod 600 it",
            )
        text = f.read(65536)
    import json

    try:
        doc = json.loads(text)
    except ValueError:
        raise PluginError(ERR_INVALID_CONFIG, f"{where}: not JSON") from None
    if not isinstance(doc, dict):
        raise PluginError(ERR_INVALID_CONFIG, f"{where}: must be a JSON object")
    creds: dict[str, str] = {}
    for key, value in doc.items():
        if key not in CREDENTIAL_FIELDS:
            raise PluginError(
                ERR_INVALID_CONFIG,
                f"{where}: unknown field {key!r} (want {', '.join(CREDENTIAL_FIELDS)})",
            )
        if not isinstance(value, str) or not value:
            raise PluginError(ERR_INVALID_CONFIG, f"{where}.{key}: must be a non-empty string")
        creds[key] = value
    if "password" in creds:
        keep_secret(creds["password"])
    return creds


def join_credentials(url: str, creds: dict[str, str], where: str) -> str:
    """``url`` with ``creds`` added as query parameters, which every etcd URL form reads."""
    if not creds:
        return url
    parsed = _parsed(url)
    if not parsed.is_etcd:
        raise PluginError(
            ERR_INVALID_CONFIG, f"{where}: credentials are for etcd; this datastore takes none"
        )
    both = [k for k in CREDENTIAL_FIELDS if k in creds and getattr(parsed, k)]
    if both:
        raise PluginError(
            ERR_INVALID_CONFIG,
            f"{where}: {' and '.join(both)} given both here and in the datastore URL",
        )
    from urllib.parse import quote

    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in sorted(creds.items()))
    return url + ("&" if "?" in url else "?") + query


def _datastore_url(conf: Mapping[str, object], env: Mapping[str, str]) -> str:
    datastore = conf.get("datastore") or env.get(DATASTORE_ENV, "")
    if not isinstance(datastore, str) or not datastore:
        raise PluginError(ERR_INVALID_CONFIG, "no 'datastore' in the network configuration")
    if "@" in datastore or "password" in datastore.lower():  # else nothing to hide: no parse
        for secret in _parsed(datastore).secrets():
            keep_secret(secret)
    path = conf.get(CREDENTIALS_KEY)
    if path is None:
        return datastore
    if not isinstance(path, str) or not path:
        raise PluginError(ERR_INVALID_CONFIG, f"'{CREDENTIALS_KEY}' must be a file path")
    return join_credentials(datastore, read_credentials(path), f"{CREDENTIALS_KEY} {path!r}")


def _run_dir(conf: Mapping[str, object], env: Mapping[str, str]) -> str:
    value = conf.get(RUN_DIR_KEY)
    if value is None:
        return run_dir_text(dict(env))
    if not isinstance(value, str) or not os.path.isabs(value) or "\0" in value:
        raise PluginError(ERR_INVALID_CONFIG, f"'{RUN_DIR_KEY}' must be an absolute path")
    return value


def parse(command: str, conf: Mapping[str, object], env: Mapping[str, str]) -> Invocation:
    network = conf.get("name")
    problem = network_name_problem(network)
    if problem or not isinstance(network, str):
        raise PluginError(ERR_INVALID_CONFIG, f"network configuration 'name': {problem}")
    ipam = conf.get("ipam") or {}
    if not isinstance(ipam, dict):
        raise PluginError(ERR_INVALID_CONFIG, "'ipam' must be an object")
    datastore = _datastore_url(conf, env)
    mtu = conf.get("mtu", 0)
    if not isinstance(mtu, int) or not (mtu == 0 or 576 <= mtu <= 9000):
        raise PluginError(ERR_INVALID_CONFIG, f"'mtu' {mtu!r} is not 0 (auto) or 576-9000")

    container_id = env.get("CNI_CONTAINERID", "")
    if command in ("ADD", "DEL", "CHECK") and not _CONTAINER_ID.fullmatch(container_id):
        raise PluginError(
            ERR_INVALID_ENV, f"CNI_CONTAINERID {container_id!r} is missing or invalid"
        )
    ifname = env.get("CNI_IFNAME", "eth0") or "eth0"
    if not _IFNAME.fullmatch(ifname):
        raise PluginError(ERR_INVALID_ENV, f"CNI_IFNAME {ifname!r} is not a valid interface name")
    netns = env.get("CNI_NETNS", "")
    if command in ("ADD", "CHECK"):
        if not netns:
            raise PluginError(ERR_INVALID_ENV, "CNI_NETNS is required for " + command)
        if not os.path.isabs(netns) or not os.path.exists(netns):
            raise PluginError(ERR_INVALID_ENV, f"CNI_NETNS {netns!r} does not exist")

    cni_args = _parse_cni_args(env.get("CNI_ARGS", ""))
    args = conf.get("args") or {}
    if not isinstance(args, dict):
        raise PluginError(ERR_INVALID_CONFIG, "'args' must be an object")
    ours = args.get(ORCHESTRATOR_ARGS_KEY) or {}
    if not isinstance(ours, dict):
        raise PluginError(ERR_INVALID_CONFIG, f"args.{ORCHESTRATOR_ARGS_KEY} must be an object")
    namespace = cni_args.get("K8S_POD_NAMESPACE") or ours.get("namespace") or "default"
    workload = cni_args.get("K8S_POD_NAME") or ours.get("name") or container_id[:12]
    orchestrator = (
        "k8s" if "K8S_POD_NAMESPACE" in cni_args else str(ours.get("orchestrator", "cni"))
    )
    node = conf.get(NODENAME_KEY) or env.get(NODENAME_ENV) or socket.gethostname()
    use_agent = conf.get(AGENT_KEY, True)
    if not isinstance(use_agent, bool):
        raise PluginError(ERR_INVALID_CONFIG, f"'{AGENT_KEY}' must be true or false")
    labels = check_labels(ours.get("labels", {}), f"args.{ORCHESTRATOR_ARGS_KEY}.labels")
    sa = str(ours.get("serviceAccount", "") or cni_args.get("K8S_POD_SERVICEACCOUNT", ""))

    return Invocation(
        command=command,
        network=network,
        cni_version=str(conf.get("cniVersion", "1.0.0")),
        container_id=container_id,
        netns=netns,
        ifname=ifname,
        namespace=check_name(str(namespace), "namespace"),
        workload=check_name(str(workload).lower(), "workload name") if container_id else "",
        orchestrator=check_name(orchestrator, "orchestrator"),
        node=check_name(str(node), "node name"),
        datastore=datastore,
        mtu=mtu,
        ipam_type=str(ipam.get("type", "gingham-ipam")),
        ipv4=bool(ipam.get("assign_ipv4", True)),
        ipv6=bool(ipam.get("assign_ipv6", False)),
        labels=labels,
        ports=_ports(ours.get("ports")),
        service_account=check_name(sa, "service account") if sa else "",
        run_dir=_run_dir(conf, env),
        use_agent=use_agent,
        raw=conf,
    )
