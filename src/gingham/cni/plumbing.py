"""Workload veth plumbing for the CNI plugin. STANDARD LIBRARY ONLY.

The plugin imports this on every ADD, so it uses the ``ip`` program (argument
lists, no shell) and /proc/sys rather than pyroute2. A whole setup is two
``ip -batch`` processes plus a few /proc/sys writes.

Layout (DESIGN.md section 4, as Calico does it):
- the veth is created *inside* the workload namespace (``nsenter --net=PATH``)
  with its peer sent straight to our own namespace (``netns <our pid>``), so
  any netns path works (/run/netns/…, /proc/PID/ns/net), not only named ones;
- inside: ``eth0`` with the workload's /32 and /128, a link route to
  169.254.1.1 and a default route via it; for IPv6 a default route via
  fe80::ecee:eeff:feee:eeee, the link-local address the host side derives from
  its fixed MAC ee:ee:ee:ee:ee:ee;
- host side: proxy ARP (answers for 169.254.1.1 with the host veth's MAC),
  proxy delay 0, forwarding, and a route per workload address over the veth
  with protocol 201, so the agent recognises and sweeps it.

Interface existence is checked under /proc/sys/net, which, unlike /sys/class/net,
always shows the namespace of the calling process (a lab host entered with
``nsenter --net`` still sees the root namespace's sysfs).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import subprocess
from typing import TypedDict

from gingham.cni.protocol import ERR_INVALID_CONFIG, ERR_INVALID_ENV, ERR_IO
from gingham.errors import CNIError
from gingham.names import RTPROT_GINGHAM, WORKLOAD_INTERFACE_PREFIX

GATEWAY_V4 = "169.254.1.1"
HOST_MAC = "ee:ee:ee:ee:ee:ee"
GATEWAY_V6 = "fe80::ecee:eeff:feee:eeee"  # EUI-64 link-local of HOST_MAC

_IFNAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$")
_NETNS_PATH_RE = re.compile(r"^/[A-Za-z0-9_./:-]+$")


class Macs(TypedDict):
    host_mac: str
    container_mac: str


def veth_name(namespace: str, name: str, ifname: str = "eth0") -> str:
    """Host-side veth name: ``gh`` + 11 hex chars of sha1("<namespace>.<name>").

    A second interface of the same workload (another network, CNI_IFNAME
    ``net1``) hashes its container-side name in too: otherwise its ADD would
    take the first one's veth for a left-over and delete it, and its GC or DEL
    would remove the other network's interface.
    """
    text = f"{namespace}.{name}" if ifname == "eth0" else f"{namespace}.{name}.{ifname}"
    return WORKLOAD_INTERFACE_PREFIX + hashlib.sha1(text.encode()).hexdigest()[:11]


def _env() -> dict[str, str]:
    # Children get no more than they need: the plugin's environment may hold
    # GINGHAM_DATASTORE, and a URL there may hold a password.
    return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LC_ALL": "C"}


def check_ifname(name: str, what: str = "interface name") -> str:
    if not isinstance(name, str) or not _IFNAME_RE.fullmatch(name) or name in (".", ".."):
        raise CNIError(ERR_INVALID_ENV, f"invalid {what} {name!r}",
                       "1-15 characters of A-Z a-z 0-9 _ . -")
    return name


def check_netns_path(path: str) -> str:
    if not isinstance(path, str) or not _NETNS_PATH_RE.fullmatch(path) or ".." in path.split("/"):
        raise CNIError(ERR_INVALID_ENV, f"invalid network namespace path {path!r}")
    if not os.path.exists(path):
        raise CNIError(ERR_INVALID_ENV, f"network namespace {path} does not exist")
    return path


def interface_exists(name: str) -> bool:
    """Whether ``name`` exists in the caller's network namespace."""
    return os.path.isdir(f"/proc/sys/net/ipv4/conf/{check_ifname(name)}")


def parse_ips(ips: list[str]) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    """Workload addresses as host routes (/32 or /128); other prefixes are refused."""
    if not ips:
        raise CNIError(ERR_INVALID_CONFIG, "no addresses for the workload")
    out = []
    for i, text in enumerate(ips):
        try:
            iface = ipaddress.ip_interface(text)
        except ValueError:
            raise CNIError(ERR_INVALID_CONFIG, f"ips[{i}]: {text!r} is not an address") from None
        if iface.network.prefixlen != iface.max_prefixlen:
            raise CNIError(
                ERR_INVALID_CONFIG,
                f"ips[{i}]: {text} must be a /32 (IPv4) or /128 (IPv6) workload address",
            )
        out.append(iface)
    return out


def _run(argv: list[str], stdin: str | None = None) -> str:
    try:
        proc = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=30, check=False,
            env=_env(),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CNIError(ERR_IO, f"cannot run {argv[0]}", str(exc)) from None
    if proc.returncode != 0:
        err = proc.stderr.strip()
        raise CNIError(ERR_IO, f"{' '.join(argv[:4])}… failed: {err[-300:]}", err)
    return proc.stdout


def _write_sysctl(path: str, value: str) -> None:
    try:
        with open(f"/proc/sys/{path}", "w") as f:
            f.write(value)
    except OSError as exc:
        raise CNIError(ERR_IO, f"cannot set {path.replace('/', '.')}", str(exc)) from None


def host_sysctls(host_ifname: str, ipv6: bool) -> None:
    conf = f"net/ipv4/conf/{host_ifname}"
    _write_sysctl(f"{conf}/proxy_arp", "1")
    _write_sysctl(f"{conf}/forwarding", "1")
    _write_sysctl(f"net/ipv4/neigh/{host_ifname}/proxy_delay", "0")
    if ipv6:
        conf6 = f"net/ipv6/conf/{host_ifname}"
        _write_sysctl(f"{conf6}/disable_ipv6", "0")
        _write_sysctl(f"{conf6}/accept_ra", "0")
        # the gateway link-local must answer at once, not after duplicate detection
        _write_sysctl(f"{conf6}/accept_dad", "0")
        _write_sysctl(f"{conf6}/forwarding", "1")


def setup_workload_interface(
    netns_path: str,
    host_ifname: str,
    ips: list[str],
    mtu: int = 1500,
    container_ifname: str = "eth0",
) -> Macs:
    """Create and configure the workload's veth; returns ``host_mac`` and ``container_mac``.

    On failure nothing is left behind (the pair is deleted) and a CNIError is
    raised whose message says what failed.
    """
    check_netns_path(netns_path)
    check_ifname(host_ifname, "host interface name")
    check_ifname(container_ifname, "container interface name")
    if not isinstance(mtu, int) or not 68 <= mtu <= 65535:
        raise CNIError(ERR_INVALID_CONFIG, f"invalid mtu {mtu!r} (68-65535)")
    addrs = parse_ips(ips)
    v4 = [a for a in addrs if a.version == 4]
    v6 = [a for a in addrs if a.version == 6]

    if interface_exists(host_ifname):
        # left over from a container of the same name whose DEL never came
        _run(["ip", "link", "del", host_ifname])

    inside = [
        f"link add {container_ifname} mtu {mtu} type veth peer name {host_ifname} "
        f"mtu {mtu} address {HOST_MAC} netns {os.getpid()}",
    ]
    inside += [f"addr add {a.ip}/32 dev {container_ifname}" for a in v4]
    inside += [f"addr add {a.ip}/128 dev {container_ifname} nodad" for a in v6]
    inside.append(f"link set {container_ifname} up")
    if v4:
        inside.append(f"route add {GATEWAY_V4} dev {container_ifname} scope link")
        inside.append(f"route add default via {GATEWAY_V4} dev {container_ifname}")
    if v6:
        inside.append(f"route add default via {GATEWAY_V6} dev {container_ifname}")
    inside.append(f"link show dev {container_ifname}")

    created = False
    try:
        out = _run(["nsenter", f"--net={netns_path}", "--", "ip", "-j", "-batch", "-"],
                   "".join(c + "\n" for c in inside))
        created = True
        container_mac = _mac_from_json(out, container_ifname)
        host_sysctls(host_ifname, bool(v6))
        host = [f"link set {host_ifname} up"]
        host += [
            f"route replace {a.ip}/32 dev {host_ifname} proto {RTPROT_GINGHAM} scope link"
            for a in v4
        ]
        host += [
            f"route replace {a.ip}/128 dev {host_ifname} proto {RTPROT_GINGHAM}" for a in v6
        ]
        _run(["ip", "-batch", "-"], "".join(c + "\n" for c in host))
    except BaseException:
        # a batch that failed midway may have created the pair anyway
        if created or interface_exists(host_ifname):
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):  # the first error wins
                subprocess.run(["ip", "link", "del", host_ifname], capture_output=True,
                               check=False, env=_env(), timeout=30)
        raise
    return {"host_mac": HOST_MAC, "container_mac": container_mac}


def _mac_from_json(out: str, ifname: str) -> str:
    # `ip -j -batch` prints one JSON array per show command; ours is the last line
    for line in reversed(out.strip().splitlines()):
        try:
            links = json.loads(line)
        except json.JSONDecodeError:
            continue
        for link in links if isinstance(links, list) else []:
            if link.get("ifname") == ifname and "address" in link:
                return str(link["address"])
    raise CNIError(ERR_IO, f"could not read the MAC address of {ifname}", out[-200:])


def teardown_workload_interface(host_ifname: str) -> bool:
    """Delete the workload's veth (its routes go with it). Idempotent: False if absent."""
    if not host_ifname:
        return False  # an endpoint record without an interface: nothing to remove
    check_ifname(host_ifname, "host interface name")
    if not interface_exists(host_ifname):
        return False
    try:
        proc = subprocess.run(["ip", "link", "del", host_ifname], capture_output=True, text=True,
                              check=False, env=_env(), timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CNIError(ERR_IO, f"cannot delete {host_ifname}", str(exc)) from None
    if proc.returncode != 0 and interface_exists(host_ifname):
        raise CNIError(ERR_IO, f"cannot delete {host_ifname}", proc.stderr.strip())
    return True
