"""The thin client: hand one CNI command to the node agent over its unix socket.

A runtime starts ``gingham-cni`` for every container operation and waits, so
this module is what nearly every call runs, and its imports are counted in
milliseconds: the interpreter alone takes 12-20 ms here, ``json`` (through
``re``) another ~10, ``typing`` or ``pathlib`` ~10 each, ``socket`` ~5. So it
uses ``_socket`` and ``_json`` (the C halves of ``socket`` and ``json``, always
built with CPython) and modules that import nothing at run time; the heavy
direct path (``plugin.py``) is imported only when no agent takes the command.

What the agent is told: the command, the runtime's stdin as read (the agent
parses and checks it exactly as the direct path would), the environment the
plugin reads (``wire.ENV_NAMES``), and which network namespaces the client
sees, so that an agent in another namespace than the runtime's (or that
sees another sandbox under the same path) declines rather than plumbing the
wrong host.

When the agent does not take the command -- no socket, nobody listening, a
peer that is not root, no ACCEPT within ``ACCEPT_TIMEOUT``, a DECLINE -- the
caller runs the direct path: nothing was done on the agent's side (see
``wire.py`` for why). After GO, a connection that ends without a reply means
the agent died mid-command: the direct path runs it again (every step of ADD
can be repeated: IPAM reuses what a previous attempt of this attachment took,
a left-over veth is replaced, the endpoint write is compare-and-swap). No
reply within ``REPLY_TIMEOUT`` is reported as "try again" and never run
twice at the same time.
"""

from __future__ import annotations

import os
import sys

from gingham.cni import wire
from gingham.hostfiles import cni_socket_text, run_dir_text
from gingham.names import NODENAME_ENV

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from _socket import socket as Socket
    from collections.abc import Mapping

ACCEPT_TIMEOUT = 3.0
REPLY_TIMEOUT = 110.0  # under the kubelet's CNI timeout: the runtime hears "try again"
ERR_TRY_AGAIN = 11  # protocol.ERR_TRY_AGAIN, without importing protocol's log and secrets

# Keys of the network configuration the client reads (netconf.py checks them too).
AGENT_KEY = "agent"  # false: never ask the agent
RUN_DIR_KEY = "runDir"
NODENAME_KEY = "nodename"

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")


class _Context:
    """What ``_json.make_scanner`` reads of ``json.JSONDecoder``: plain JSON, no hooks."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, object] = {}

    @staticmethod
    def parse_constant(name: str) -> object:
        raise ValueError(f"{name} is not JSON")


def parse_object(data: bytes) -> dict[str, object] | None:
    """``data`` as a JSON object, or None for anything else (the direct path then
    reports exactly what is wrong with it)."""
    try:
        text = data.decode("utf-8")
        import _json

        # typeshed asks for a JSONDecoder-like object with these attributes, as _Context is
        scan = _json.make_scanner(_Context())  # type: ignore[arg-type]
        start = len(text) - len(text.lstrip(" \t\n\r"))
        value, end = scan(text, start)
    except (ImportError, UnicodeDecodeError, ValueError, StopIteration, RecursionError):
        return None
    except SystemError:
        # CPython 3.11's scanner reports a syntax error through json.decoder's exception
        # class, which it only looks up in sys.modules: without json imported, the
        # error surfaces as this. Either way the text is not JSON.
        return None
    if text[end:].strip(" \t\n\r") or not isinstance(value, dict):
        return None
    return value


def _node_name(conf: Mapping[str, object], environ: Mapping[str, str]) -> str | None:
    node = conf.get(NODENAME_KEY) or environ.get(NODENAME_ENV) or os.uname().nodename
    if not isinstance(node, str) or not 0 < len(node) <= 253 or not set(node) <= _NAME_CHARS:
        return None
    if node[0] in ".-" or node[-1] in ".-" or ".." in node:
        return None
    return node


def socket_for(conf: Mapping[str, object], environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(node, path of its agent's socket) for this configuration; None when the
    configuration turns the agent off or names nothing usable."""
    if conf.get(AGENT_KEY, True) is False:
        return None
    node = _node_name(conf, environ)
    base = conf.get(RUN_DIR_KEY) or run_dir_text(dict(environ))
    if node is None or not isinstance(base, str) or not base.startswith("/") or "\0" in base:
        return None
    return node, cni_socket_text(node, base)


def _namespace_id(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return ""
    return f"{st.st_dev}:{st.st_ino}"


def _peer_uid(sock: Socket) -> int:
    import _socket

    raw = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    return int.from_bytes(raw[4:8], sys.byteorder)  # struct ucred: pid, uid, gid


def _recv_all(sock: Socket, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise wire.WireError("reply too large")
        chunks.append(chunk)


def _note(message: str) -> None:
    sys.stderr.write(f"gingham-cni: {message}\n")


def _try_again(conf: Mapping[str, object], message: str) -> tuple[int, bytes, bytes]:
    version = conf.get("cniVersion")
    if not isinstance(version, str) or not set(version) <= set("0123456789."):
        version = "1.0.0"
    out = f'{{"cniVersion":"{version}","code":{ERR_TRY_AGAIN},"msg":"{message}"}}\n'
    return 1, out.encode(), b""


def hand_to_agent(
    command: str, stdin: bytes, environ: Mapping[str, str], *, ipam_only: bool
) -> tuple[int, bytes, bytes] | None:
    """(exit status, stdout, stderr) as the agent answered; None when no agent took
    the command and the caller must run it itself."""
    conf = parse_object(stdin)
    where = socket_for(conf, environ) if conf is not None else None
    if conf is None or where is None:
        return None
    node, path = where
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(ACCEPT_TIMEOUT)
        try:
            sock.connect(path)
        except OSError:
            return None  # no agent here (no socket, nobody listening): the usual fallback
        try:
            uid = _peer_uid(sock)
        except OSError:
            return None
        if uid not in (0, os.geteuid()):
            _note(f"{path} is served by uid {uid}, not root: not used")
            return None
        header = {wire.COMMAND: command, wire.IPAM_ONLY: "1" if ipam_only else "0",
                  wire.NODE: node, wire.CLIENT_NETNS: _namespace_id("/proc/thread-self/ns/net"),
                  wire.SANDBOX: _namespace_id(environ.get("CNI_NETNS", "") or "/nonexistent")}
        for name in wire.ENV_NAMES:
            if name in environ:
                header[wire.ENV_PREFIX + name] = environ[name]
        try:
            sock.sendall(wire.encode_request(header, stdin))
            answer = sock.recv(1)
        except (OSError, wire.WireError):
            return None  # nothing was accepted: the agent does nothing without GO
        if answer != wire.ACCEPT:
            if answer == wire.DECLINE:
                try:
                    why = _recv_all(sock, 4096).decode("utf-8", "replace")
                except (OSError, wire.WireError):
                    why = "?"
                _note(f"the agent of {node} declined ({why}); running the command here")
            return None
        try:
            sock.sendall(wire.GO)
        except OSError:
            return None  # the agent is gone and read no GO: it did nothing
        sock.settimeout(REPLY_TIMEOUT)
        try:
            data = _recv_all(sock, wire.MAX_OUTPUT)
        except TimeoutError:
            return _try_again(conf, f"the agent of {node} did not answer in time; try again")
        except (OSError, wire.WireError):
            data = b""
        if not data:
            _note(f"the agent of {node} ended without an answer; running the command here")
            return None
        try:
            return wire.decode_reply(data)
        except wire.WireError:
            _note(f"the agent of {node} sent a broken answer; running the command here")
            return None
    finally:
        sock.close()

