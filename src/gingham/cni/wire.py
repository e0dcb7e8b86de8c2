"""What ``gingham-cni`` and its node agent say to each other over the agent's CNI socket.

Imports nothing but two vocabulary modules that import nothing themselves:
the thin client (``client.py``) loads this on every CNI call, before it
knows whether an agent answers.

One connection carries one CNI command, in three steps:

    client                                   agent (agent/cni_server.py)
      REQUEST  ------------------------------>   is it mine? (node, network namespace,
                                                 datastore, not shutting down)
               <------------------------------  ACCEPT, or DECLINE + why (then close)
      GO       ------------------------------>   only now does the agent act
               <------------------------------  REPLY: exit status, stdout, stderr

The GO step is what makes the fallback safe: a client that has not had
ACCEPT in time gives up and closes, and an agent that reads no GO does
nothing, so the two never run one command at the same time. After GO the
client waits for the REPLY and falls back to the direct path only when the
connection ends without one (the agent died: nobody else is working on the
command, and every step of ADD is safe to run again).

REQUEST: ``MAGIC``, then a header and the runtime's stdin, each as a 4-byte
big-endian length and its bytes. The header is ``name=value`` items
separated by NUL (environment values cannot hold NUL). REPLY: ``REPLY``, the
exit status (one byte), then stdout and stderr as length and bytes.
"""

from __future__ import annotations

from gingham.hostfiles import RUN_DIR_ENV
from gingham.names import DATASTORE_ENV, NODENAME_ENV

MAGIC = b"GCNI1"
ACCEPT = b"A"
DECLINE = b"D"
GO = b"G"
REPLY = b"R"

MAX_HEADER = 64 * 1024
MAX_STDIN = 4 * 1024 * 1024  # GC's list of valid attachments can be long
MAX_OUTPUT = 16 * 1024 * 1024

# Header names besides the environment (those are "env:NAME").
COMMAND = "command"
IPAM_ONLY = "ipam"  # "1": gingham-ipam, "0": gingham-cni
NODE = "node"  # the node whose socket the client chose
CLIENT_NETNS = "netns"  # "dev:inode" of the client's network namespace
SANDBOX = "sandbox"  # "dev:inode" of CNI_NETNS as the client sees it ("" if none)
ENV_PREFIX = "env:"

# The environment the plugin reads (netconf.py); nothing else is sent.
ENV_NAMES = ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS",
             "CNI_PATH", NODENAME_ENV, DATASTORE_ENV, RUN_DIR_ENV)  # fmt: skip


class WireError(Exception):
    """A malformed or oversized frame."""


def _length(n: int) -> bytes:
    return n.to_bytes(4, "big")


def encode_request(header: dict[str, str], stdin: bytes) -> bytes:
    items = []
    for name, value in header.items():
        item = f"{name}={value}"
        if "\0" in item:
            raise WireError(f"header item {name!r} holds a NUL")
        items.append(item)
    head = "\0".join(items).encode("utf-8", "surrogateescape")
    if len(head) > MAX_HEADER or len(stdin) > MAX_STDIN:
        raise WireError("request too large")
    return MAGIC + _length(len(head)) + head + _length(len(stdin)) + stdin


def decode_header(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    if not data:
        return out
    for item in data.decode("utf-8", "surrogateescape").split("\0"):
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise WireError(f"header item {item[:40]!r} is not name=value")
        out[name] = value
    return out


def encode_reply(code: int, stdout: bytes, stderr: bytes) -> bytes:
    if not 0 <= code <= 255:
        raise WireError(f"exit status {code} out of range")
    return REPLY + bytes([code]) + _length(len(stdout)) + stdout + _length(len(stderr)) + stderr


def decode_reply(data: bytes) -> tuple[int, bytes, bytes]:
    """(exit status, stdout, stderr) of a whole REPLY frame."""
    if len(data) < 10 or data[:1] != REPLY:
        raise WireError("not a reply")
    code = data[1]
    n = int.from_bytes(data[2:6], "big")
    stdout = data[6:6 + n]
    rest = data[6 + n:]
    if len(stdout) != n or len(rest) < 4:
        raise WireError("reply cut short")
    m = int.from_bytes(rest[:4], "big")
    stderr = rest[4:4 + m]
    if len(stderr) != m or len(rest) != 4 + m:
        raise WireError("reply cut short or too long")
    return code, stdout, stderr
