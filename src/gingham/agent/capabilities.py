"""What this host can do beyond gingham itself, probed and reported (never skipped silently).

    probe_capabilities()  -> HostCapabilities        (I/O: files, `nft -c`, `bird --version`)
         |                                  |
         v                                  v
    CalcGraph.set_host_support()       AgentState.capabilities -> node status, metric,
    (routing plans nothing the host    /readyz: a missing capability, and the settings
     lacks)                            that are not in effect for it

The names are the model's (``gingham.model.capabilities``), the ones the
support tables give in ``needs``:

- ``nftables``: ``nft --version`` answers (the policy dataplane needs it).
- ``vxlan``: the kernel module is loaded (``/sys/module/vxlan``), built in or
  installed (``/lib/modules/<release>/modules.builtin``/``modules.dep``).
- ``nat``: the kernel accepts a masquerade and an snat rule in a NAT chain:
  ``nft -c`` runs the transaction in the kernel and aborts it, so nothing
  is left behind (a missing module fails it).
- ``bird``: ``bird`` and ``birdc`` on the PATH, and ``bird --version`` says 2.x.

The agent probes at start and every :data:`PROBE_INTERVAL` seconds (a module
may be loaded, a package installed, later).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from gingham.calc.felix import HostSupport
from gingham.model.capabilities import BIRD, CAPABILITIES, NAT, NFTABLES, VXLAN

PROBE_INTERVAL = 60.0

# What a missing capability costs: the settings that then are not in effect.
NEEDED_BY: dict[str, str] = {
    VXLAN: "VXLAN between hosts (IPPool vxlanMode; FelixConfiguration vxlanVNI, vxlanPort, "
           "vxlanMTU)",
    NAT: "NAT outgoing (IPPool natOutgoing; FelixConfiguration natOutgoingAddress)",
    BIRD: "BGP (BGPConfiguration default, BGPPeer)",
    NFTABLES: "policy (every nftables rule gingham programs)",
}

# A NAT chain with both kinds of rule: nft_masq and nft_nat must both be there.
_NAT_PROBE = """table inet gingham-probe {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 192.0.2.1 masquerade
    ip saddr 192.0.2.2 snat ip to 192.0.2.3
  }
}
"""

# argv, stdin -> (exit code, stdout + stderr); raises OSError when the program is missing.
Runner = Callable[[Sequence[str], str | None], tuple[int, str]]


def run_program(argv: Sequence[str], stdin: str | None = None) -> tuple[int, str]:
    try:
        proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True,
                              timeout=10, check=False)
    except subprocess.TimeoutExpired as exc:
        return 124, f"timed out after {exc.timeout}s"
    return proc.returncode, (proc.stdout + proc.stderr).strip()


@dataclass(frozen=True, slots=True)
class Capability:
    name: str
    present: bool
    detail: str  # what was found (a version, "module loaded"), or why it is missing


@dataclass(frozen=True, slots=True)
class HostCapabilities:
    items: tuple[Capability, ...]

    def get(self, name: str) -> Capability | None:
        return next((c for c in self.items if c.name == name), None)

    def present(self, name: str) -> bool:
        found = self.get(name)
        return found is not None and found.present

    def missing(self) -> tuple[Capability, ...]:
        return tuple(c for c in self.items if not c.present)

    def support(self) -> HostSupport:
        """What routing may rely on (an unprobed capability counts as present)."""
        def has(name: str) -> bool:
            found = self.get(name)
            return found is None or found.present
        return HostSupport(vxlan=has(VXLAN), nat=has(NAT) and has(NFTABLES), bird=has(BIRD))


def report_lines(caps: HostCapabilities | None, wanted: Collection[str]) -> list[str]:
    """For /readyz and node status: each missing capability, and what is not in effect
    because of it (``wanted``: what the cluster's settings ask of this host)."""
    if caps is None:
        return []
    lines = []
    for cap in caps.missing():
        needed = NEEDED_BY.get(cap.name, "")
        if cap.name in wanted or cap.name == NFTABLES:
            lines.append(f"not in effect: {needed}: host capability {cap.name} missing "
                         f"({CAPABILITIES.get(cap.name, cap.name)}: {cap.detail})")
        else:
            lines.append(f"host capability {cap.name} missing ({cap.detail}); "
                         f"needed for {needed}")
    return lines


def probe_capabilities(run: Runner = run_program, root: Path = Path("/"),
                       release: str | None = None,
                       which: Callable[[str], str | None] = shutil.which) -> HostCapabilities:
    """Probe every capability (``root``, ``release`` and ``which`` let tests point at a
    made-up host)."""
    nft = _probe_nftables(run)
    return HostCapabilities((
        nft,
        _probe_vxlan(root, release if release is not None else os.uname().release),
        _probe_nat(run) if nft.present else Capability(NAT, False, "no nft to ask"),
        _probe_bird(run, which),
    ))


def _probe_nftables(run: Runner) -> Capability:
    try:
        code, out = run(["nft", "--version"], None)
    except OSError as exc:
        return Capability(NFTABLES, False, f"nft: {exc.strerror or exc}")
    if code != 0:
        return Capability(NFTABLES, False, f"nft --version failed: {out or code}")
    return Capability(NFTABLES, True, out.splitlines()[0] if out else "nft")


def _probe_vxlan(root: Path, release: str) -> Capability:
    if (root / "sys/module/vxlan").exists():
        return Capability(VXLAN, True, "module loaded")
    modules = root / "lib/modules" / release
    for name, detail in (("modules.builtin", "built into the kernel"),
                         ("modules.dep", "module installed")):
        try:
            text = (modules / name).read_text()
        except OSError:
            continue
        if re.search(r"(^|/)vxlan\.ko", text, re.MULTILINE):
            return Capability(VXLAN, True, detail)
    return Capability(VXLAN, False, f"no vxlan module loaded, built in or installed for "
                                    f"kernel {release}")


def _probe_nat(run: Runner) -> Capability:
    try:
        code, out = run(["nft", "-c", "-f", "-"], _NAT_PROBE)
    except OSError as exc:
        return Capability(NAT, False, f"nft: {exc.strerror or exc}")
    if code != 0:
        first = out.splitlines()[0] if out else f"exit code {code}"
        return Capability(NAT, False, f"the kernel refuses a NAT chain: {first}")
    return Capability(NAT, True, "masquerade and snat accepted")


def _probe_bird(run: Runner, which: Callable[[str], str | None]) -> Capability:
    missing = [p for p in ("bird", "birdc") if which(p) is None]
    if missing:
        return Capability(BIRD, False, f"{' and '.join(missing)} not on the PATH")
    try:
        code, out = run(["bird", "--version"], None)
    except OSError as exc:
        return Capability(BIRD, False, f"bird: {exc.strerror or exc}")
    found = re.search(r"BIRD version (\d+)\.\S*", out)
    if code != 0 or found is None:
        return Capability(BIRD, False, f"bird --version: {out or code}")
    if found.group(1) != "2":
        return Capability(BIRD, False, f"{found.group(0)}: gingham renders BIRD 2 "
                                       f"configuration")
    return Capability(BIRD, True, found.group(0))


__all__ = [
    "PROBE_INTERVAL",
    "Capability",
    "HostCapabilities",
    "probe_capabilities",
    "report_lines",
    "run_program",
]
