"""The systemd units gingham ships, and the environment file they read.

One text per unit, with two blanks: ``@GINGHAM@`` (the ``gingham`` program) and
``@NODE@`` (this host's Node name). ``packaging/systemd/`` holds them rendered
with ``gingham`` (systemd looks a bare name up in /usr/local/bin, /usr/bin, ...)
and ``%H`` (the host name), for installing by hand; ``gingham node install``
renders them with the absolute path of the running installation's ``gingham``
and the Node name it was given. tests/unit/packaging checks that the two agree.

Why each setting is what it is: docs/OPERATIONS.md, "Running the agent under
systemd", and docs/INSTALL.md.
"""

from __future__ import annotations

import re

from gingham.errors import ValidationError
from gingham.hostfiles import DEFAULT_RUN_DIR_TEXT
from gingham.names import DATASTORE_ENV, FANOUT_ENV

ENV_FILE = "/etc/gingham/gingham.env"
FANOUT_SOCKET = f"{DEFAULT_RUN_DIR_TEXT}/fanout.sock"
AGENT_UNIT = "gingham-node.service"
FANOUT_UNIT = "gingham-fanout.service"
DOCKER_UNIT = "gingham-docker.service"

# What every unit shares. Type=notify: "active" means ready (sdnotify.py), so units
# and scripts ordered after one wait for that, not for a process that merely exists.
# etcd.service in After=: ordering only, for a host that runs an etcd member itself;
# without one it means nothing. No WatchdogSec=: a loop waiting on an unreachable
# datastore is not a fault that a restart mends.
_COMMON_SERVICE = f"""\
Type=notify
# GINGHAM_DATASTORE=<url> (and its password, if any). Root's and 0600, so the URL
# never shows on a command line (ps) or in `systemctl show`. No "-" prefix: without
# the file the service must not start against a default datastore.
EnvironmentFile={ENV_FILE}
Restart=always
RestartSec=2s
TimeoutStopSec=15s
"""

_UNITS: dict[str, str] = {
    AGENT_UNIT: f"""\
# {AGENT_UNIT}: the gingham agent of a real host, brought back whatever ends it.
# Written by `gingham node install`, or installed by hand: docs/INSTALL.md.

[Unit]
Description=gingham node agent (network policy, routes, VXLAN and BGP of this host)
Wants=network-online.target
After=network-online.target etcd.service {FANOUT_UNIT}
# A crash loop is a fault an operator must see, not one to hide: ten starts
# within five minutes and the unit gives up (state failed, start-limit-hit)
# until `systemctl reset-failed gingham-node` or a start by hand. Meanwhile
# the dataplane stays as the agent last programmed it. An agent that crashes
# now and then is restarted for ever.
StartLimitIntervalSec=5min
StartLimitBurst=10

[Service]
{_COMMON_SERVICE}\
# Ready (READY=1) when the first full sync is programmed, as /readyz turns 200.
# An agent that cannot get there in 5 minutes (datastore unreachable, another
# cluster's datastore) fails its start, visibly, and is started again.
TimeoutStartSec=5min
ExecStart=@GINGHAM@ node run --name @NODE@
# The agent starts BIRD, which must outlive the agent: stopping it with the
# agent would drop every BGP session, and the routes its peers learned, at each
# restart, where established traffic must not notice one. A new agent finds
# the running BIRD by its pid file. So a stop signals the agent alone.
KillMode=process
# Watches, the local API's clients, netlink and nft sockets, the datastore.
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
""",
    FANOUT_UNIT: f"""\
# {FANOUT_UNIT}: a fan-out server, one datastore watch served to many agents.
# Written by `gingham node install`, or installed by hand: docs/INSTALL.md.
# Agents read through it with GINGHAM_FANOUT={FANOUT_SOCKET} in {ENV_FILE};
# for agents on other machines add --listen and the TLS files in a drop-in
# (docs/OPERATIONS.md, "A fan-out server").

[Unit]
Description=gingham fan-out server (one datastore watch served to many agents)
Wants=network-online.target
After=network-online.target etcd.service
# The agents of this host that read through it start once it holds a snapshot.
Before={AGENT_UNIT}
StartLimitIntervalSec=5min
StartLimitBurst=10

[Service]
{_COMMON_SERVICE}\
# Ready when it listens and holds a whole snapshot of the datastore.
TimeoutStartSec=5min
ExecStart=@GINGHAM@ fanout serve --socket {FANOUT_SOCKET}
# Its socket's directory, which the agent shares; kept when the server stops.
RuntimeDirectory=gingham
RuntimeDirectoryPreserve=yes
# One descriptor per agent served (--max-clients 4096 by default).
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
""",
    DOCKER_UNIT: f"""\
# {DOCKER_UNIT}: the `gingham` network and IPAM driver of Docker on this host.
# Written by `gingham node install`, or installed by hand: docs/INSTALL.md.

[Unit]
Description=gingham Docker network and IPAM plugin
Wants=network-online.target
# After the agent: containers on gingham networks start once policy is programmed.
After=network-online.target etcd.service {AGENT_UNIT}
# Before Docker: at its start Docker restarts containers on gingham networks and
# looks the driver up by its socket, which must be there by then.
Before=docker.service
StartLimitIntervalSec=5min
StartLimitBurst=10

[Service]
{_COMMON_SERVICE}\
# Ready as soon as its socket listens (/run/docker/plugins/gingham.sock).
ExecStart=@GINGHAM@ docker serve --node @NODE@

[Install]
WantedBy=multi-user.target
""",
}

UNIT_NAMES = tuple(_UNITS)

# Characters a path may have and go into ExecStart= unquoted: systemd gives
# whitespace, quotes, backslashes, "%" (specifiers) and "$" (variables) meanings.
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9/._+@-]*")
_NODE = re.compile(r"[A-Za-z0-9._-]+")  # unit syntax only: what a Node name is, the caller checks


def render(gingham: str, node: str) -> dict[str, str]:
    """Unit file name -> text, for the ``gingham`` program at ``gingham`` on Node ``node``.

    ``gingham`` is an absolute path or the bare name; ``node`` a Node name or ``%H``."""
    if gingham != "gingham" and not _PLAIN_PATH.fullmatch(gingham):
        raise ValidationError(
            f"{gingham!r}: a unit's ExecStart needs an absolute path without spaces, quotes, "
            "backslashes, '%' or '$'; install gingham under such a path", "gingham executable")
    if node != "%H" and not _NODE.fullmatch(node):
        raise ValidationError(f"{node!r} cannot go into a unit's ExecStart= as it is",
                              "node name")  # fmt: skip
    return {name: text.replace("@GINGHAM@", gingham).replace("@NODE@", node)
            for name, text in _UNITS.items()}  # fmt: skip


def render_env(datastore: str) -> str:
    """The environment file every unit reads, naming ``datastore``.

    The value goes in single quotes, where systemd takes every character as it is
    ("$", "%", "\\", "&" and "?" of a URL included); a quote or a line break cannot
    be said there and is refused (percent-encode it in the URL)."""
    bad = [c for c in ("'", "\n", "\r", "\0") if c in datastore]
    if bad:
        raise ValidationError(f"contains {bad[0]!r}, which an environment file cannot hold: "
                              "percent-encode it", DATASTORE_ENV)  # fmt: skip
    return (
        f"# {ENV_FILE}: the environment of gingham's systemd units ({', '.join(UNIT_NAMES)}).\n"
        "# Root's, mode 0600: it may hold the datastore's password.\n"
        "# Written by `gingham node install`; `gingham node uninstall` leaves it if you edit it.\n"
        f"{DATASTORE_ENV}='{datastore}'\n"
        "# To read the datastore through this host's fan-out server (enable\n"
        f"# {FANOUT_UNIT}), or another's over TLS (docs/OPERATIONS.md):\n"
        f"#{FANOUT_ENV}={FANOUT_SOCKET}\n"
    )


ENV_EXAMPLE = (
    "# An example: install it as root, then put your datastore's URL in it\n"
    f"#   install -D -m 0600 -o root -g root gingham.env.example {ENV_FILE}\n"
    "# (`gingham node install --datastore URL` writes it for you). URLs:\n"
    "#   sqlite:///var/lib/gingham/gingham.db (one host)\n"
    "#   etcds://10.0.0.1:2379,10.0.0.2:2379?cacert=/etc/gingham/etcd-ca.pem"
    "&cert=/etc/gingham/etcd.pem&key=/etc/gingham/etcd-key.pem\n"
    "# (docs/OPERATIONS.md, \"The datastore\").\n"
    + render_env("etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379?user=gingham&password=CHANGE-ME")
)


def write_packaging(directory: str) -> list[str]:
    """Write the units as shipped (bare ``gingham``, ``%H``) and the example environment
    file into ``directory`` (packaging/systemd); the names written."""
    from pathlib import Path

    out = Path(directory)
    files = {**render("gingham", "%H"), "gingham.env.example": ENV_EXAMPLE}
    for name, text in files.items():
        (out / name).write_text(text)
    return sorted(files)


if __name__ == "__main__":
    import sys

    # python -m gingham.systemd_units packaging/systemd: after changing a unit above.
    print("\n".join(write_packaging(sys.argv[1] if len(sys.argv) > 1 else "packaging/systemd")))
