"""BGP session status from BIRD, the way ``calicoctl node status`` shows it.

:func:`parse_protocols` is pure (unit-tested on captured ``birdc show protocols``
text); :func:`bgp_status` asks a running BIRD through its control socket.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import datetime
from ipaddress import ip_address
from pathlib import Path

from gingham.errors import RoutingError
from gingham.timestamps import rfc3339

# How the rendered BIRD configuration has BIRD print a protocol's "since" (its local time
# with the zone, no space): strftime's, as BIRD hands it to strftime.
PROTOCOL_TIME_FORMAT = "%FT%T%z"
_PARSE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"

PEER_TYPES = {
    "Mesh": "node-to-node mesh",
    "Global": "global",
    "Node": "node specific",
    "RR": "route reflector",
    "RRClient": "route reflector client",
}


@dataclass(frozen=True)
class PeerStatus:
    peer: str  # the peer's address
    type: str  # one of PEER_TYPES' values
    state: str  # BIRD's protocol state: up, start, down, ...
    since: str  # RFC 3339 UTC (BIRD's own text from a configuration rendered before)
    info: str  # BGP state (Established, Active, Connect, ...) and last error
    name: str  # BIRD protocol name

    @property
    def established(self) -> bool:
        return self.state == "up" and self.info.startswith("Established")


def peer_from_name(name: str) -> tuple[str, str] | None:
    """``Mesh_192_0_2_12`` -> ("node-to-node mesh", "192.0.2.12"); None for other protocols."""
    prefix, _, rest = name.partition("_")
    if prefix not in PEER_TYPES or not rest:
        return None
    parts = rest.split("_")
    text = (
        ".".join(parts) if len(parts) == 4 and all(p.isdigit() for p in parts) else ":".join(parts)
    )
    try:
        return PEER_TYPES[prefix], str(ip_address(text))
    except ValueError:
        return None


def parse_protocols(text: str) -> list[PeerStatus]:
    """Parse ``birdc show protocols``; only BGP protocols named by gingham are returned."""
    out: list[PeerStatus] = []
    for line in text.splitlines():
        fields = line.split(None, 5)
        if len(fields) < 5 or fields[1] != "BGP":
            continue
        known = peer_from_name(fields[0])
        if known is None:
            continue
        peer_type, peer = known
        info = fields[5].strip() if len(fields) > 5 else ""
        out.append(PeerStatus(peer, peer_type, fields[3], since_text(fields[4]), info, fields[0]))
    return out


def since_text(bird: str) -> str:
    """BIRD's ``since`` as RFC 3339 UTC; text in another format is returned as it is."""
    try:
        moment = datetime.strptime(bird, _PARSE_FORMAT)
    except ValueError:
        return bird
    return rfc3339(moment.timestamp(), precision="seconds")


def birdc(sock: str | Path, *command: str, timeout: float = 10.0) -> str:
    argv = ["birdc", "-s", str(sock), *command]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise RoutingError(f"{' '.join(argv)}: {exc}") from exc
    # birdc prints connection errors on stdout/stderr and may still exit 0
    if proc.returncode != 0 or "Unable to connect" in proc.stdout + proc.stderr:
        raise RoutingError(f"{' '.join(argv)} failed: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def bgp_status(sock: str | Path) -> list[PeerStatus]:
    """Sessions of the BIRD listening on control socket ``sock``."""
    return parse_protocols(birdc(sock, "show", "protocols"))
