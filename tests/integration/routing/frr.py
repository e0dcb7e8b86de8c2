"""FRR (zebra + bgpd) as a top-of-rack router inside one network namespace.

Every file of the instance lives in a private directory: both configurations,
the vty sockets, the zserv socket between bgpd and zebra, pid files and logs.
Nothing under /etc/frr or /var/run/frr is read or written, so several
instances (and a system FRR) can coexist.

The daemons run in the foreground as children of the test (their own process
group each), so :meth:`FrrRouter.stop` reaps them; deleting the namespace
(``ip netns pids``) is the backstop if the test process itself dies.

FRR drops privileges to the ``frr`` user (member of ``frrvty``) and refuses to
run as root unless root is in ``frrvty``; the directory is therefore owned by
``frr``.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gingham.lab.netns import spawn_in_netns, stop_process, wait_for

FRR_LIBEXEC = Path("/usr/lib/frr")


def frr_available() -> str | None:
    """None when zebra, bgpd and vtysh are installed and the ``frr`` user exists, else why not."""
    for daemon in ("zebra", "bgpd"):
        if not (FRR_LIBEXEC / daemon).exists():
            return f"{FRR_LIBEXEC / daemon} missing (Debian package frr)"
    if shutil.which("vtysh") is None:
        return "vtysh missing (Debian package frr)"
    try:
        pwd.getpwnam("frr")
    except KeyError:
        return "no user 'frr' (Debian package frr creates it)"
    return None


@dataclass(frozen=True)
class Neighbor:
    """One session. ``port``: where bgpd connects to the neighbour (its listen port);
    ``passive``: bgpd never connects, so only the neighbour's connection can bring
    the session up; ``password``: TCP MD5, as BIRD's ``password``."""

    address: str
    remote_as: int
    port: int | None = None
    passive: bool = False
    password: str | None = None

    @property
    def family(self) -> str:
        return "ipv6" if ":" in self.address else "ipv4"


def bgpd_config(
    asn: int,
    router_id: str,
    neighbors: Sequence[Neighbor],
    *,
    hold: int = 6,
    keepalive: int = 2,
    connect_retry: int = 1,
    as_override: bool = False,
    networks: Sequence[str] = (),
) -> str:
    """A bgpd configuration: one eBGP/iBGP session per neighbour, short timers.

    ``as_override`` makes the router replace its neighbours' AS in paths it
    sends them: the usual ToR answer when every host shares one private AS,
    whose BGP loop check would otherwise drop the other hosts' routes.
    ``networks`` are originated by the router (no route for them is needed in
    its RIB). An IPv6 neighbour is activated for IPv6 unicast only.
    """
    lines = [
        "frr defaults datacenter",
        "hostname tor",
        "!",
        f"router bgp {asn}",
        f" bgp router-id {router_id}",
        " no bgp ebgp-requires-policy",
        " no bgp network import-check",
        f" timers bgp {keepalive} {hold}",
    ]
    for n in neighbors:
        lines += [
            f" neighbor {n.address} remote-as {n.remote_as}",
            f" neighbor {n.address} timers connect {connect_retry}",
        ]
        if n.port is not None:
            lines.append(f" neighbor {n.address} port {n.port}")
        if n.passive:
            lines.append(f" neighbor {n.address} passive")
        if n.password is not None:
            lines.append(f" neighbor {n.address} password {n.password}")
    for family in ("ipv4", "ipv6"):
        nets = [net for net in networks if (":" in net) == (family == "ipv6")]
        body = [f"  network {net}" for net in nets]
        for n in neighbors:
            if n.family != family:
                if family == "ipv4":  # FRR activates every neighbour for IPv4 by default
                    body.append(f"  no neighbor {n.address} activate")
                continue
            if family == "ipv6":
                body.append(f"  neighbor {n.address} activate")
            if as_override:
                body.append(f"  neighbor {n.address} as-override")
        if body:
            lines += [f" address-family {family} unicast", *body, " exit-address-family"]
    lines += ["exit", "!", ""]
    return "\n".join(lines)


class FrrRouter:
    """zebra + bgpd in ``netns`` with all their files under ``directory``."""

    def __init__(self, netns: str, directory: Path, bgpd_conf: str, port: int = 179) -> None:
        self.netns = netns
        self.dir = directory
        self.bgpd_conf = bgpd_conf
        self.port = port  # bgpd listens here (IPv4 and IPv6)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def zserv(self) -> Path:
        return self.dir / "zserv.api"

    def start(self, timeout: float = 10.0) -> None:
        frr = pwd.getpwnam("frr")
        os.chown(self.dir, frr.pw_uid, frr.pw_gid)
        (self.dir / "zebra.conf").write_text("hostname tor\n")
        (self.dir / "bgpd.conf").write_text(self.bgpd_conf)
        # zebra first: bgpd hands it the routes to program over the zserv socket
        self._spawn("zebra", [])
        if not wait_for(lambda: self.zserv.exists(), timeout, 0.05):
            raise RuntimeError(f"zebra did not come up: {self.log('zebra')}")
        self._spawn("bgpd", ["-p", str(self.port)])
        if not wait_for(lambda: (self.dir / "bgpd.vty").exists(), timeout, 0.05):
            raise RuntimeError(f"bgpd did not come up: {self.log('bgpd')}")

    def _spawn(self, daemon: str, extra: list[str]) -> None:
        argv = [
            str(FRR_LIBEXEC / daemon),
            "-f", str(self.dir / f"{daemon}.conf"),
            "-i", str(self.dir / f"{daemon}.pid"),
            "-z", str(self.zserv),
            "--vty_socket", str(self.dir),
            "-A", "127.0.0.1",
            "-P", "0",  # no TCP vty; vtysh uses the unix socket
            "--log", f"file:{self.dir / daemon}.log",
            *extra,
        ]  # fmt: skip
        out = open(self.dir / f"{daemon}.out", "wb")  # noqa: SIM115
        try:
            self.procs[daemon] = spawn_in_netns(self.netns, argv, stdout=out, stderr=out)
        finally:
            out.close()

    def log(self, daemon: str) -> str:
        text = []
        for suffix in ("out", "log"):
            with contextlib.suppress(OSError):
                text.append((self.dir / f"{daemon}.{suffix}").read_text(errors="replace"))
        return "\n".join(text)[-4000:]

    def vtysh(self, *commands: str) -> str:
        argv = ["vtysh", "--vty_socket", str(self.dir)]
        for c in commands:
            argv += ["-c", c]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"vtysh {commands}: {proc.stdout.strip()} {proc.stderr.strip()}")
        return proc.stdout

    def json(self, command: str) -> Any:
        out = self.vtysh(command + " json")
        return json.loads(out) if out.strip() else {}

    def peers(self, family: str = "ipv4") -> dict[str, dict[str, Any]]:
        """``show bgp <family> unicast summary``: neighbour address -> its JSON record."""
        return dict(self.json(f"show bgp {family} unicast summary").get("peers") or {})

    def established(self, family: str = "ipv4") -> set[str]:
        return {ip for ip, p in self.peers(family).items() if p.get("state") == "Established"}

    def stop(self) -> None:
        # bgpd before zebra, as FRR's own scripts do; each in its process group
        for daemon in ("bgpd", "zebra"):
            proc = self.procs.pop(daemon, None)
            if proc is not None:
                stop_process(proc, timeout=3.0)


@contextlib.contextmanager
def frr_router(netns: str, bgpd_conf: str, port: int = 179) -> Iterator[FrrRouter]:
    """Run FRR in ``netns`` for the ``with`` block; daemons and files go at exit, also on error.

    The directory is a fresh one under the system temp dir: pytest's tmp_path
    is mode 0700 below root-owned parents, which the ``frr`` user cannot enter.
    """
    directory = Path(tempfile.mkdtemp(prefix="gingham-frr-"))
    router = FrrRouter(netns, directory, bgpd_conf, port)
    try:
        router.start()
        yield router
    finally:
        router.stop()
        shutil.rmtree(directory, ignore_errors=True)
