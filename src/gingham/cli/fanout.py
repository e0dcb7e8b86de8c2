"""``gingham fanout serve``: one datastore watch served to many agents, as Calico's Typha.

Agents read through it with ``gingham node run --fanout PATH`` (or
``GINGHAM_FANOUT``); see docs/OPERATIONS.md, "A fan-out server".
"""

from __future__ import annotations

import logging
import signal
from types import FrameType

import click

from gingham.cli.common import handle_errors
from gingham.cli.logopts import log_format_option, start_logging


@click.group("fanout")
def fanout_group() -> None:
    """A fan-out server: follows the datastore once, serves its agents over a unix socket."""


@fanout_group.command("serve")
@click.option("--socket", "socket_path", default=None, metavar="PATH",
              help="A unix socket to listen on (made 0600; agents: node run --fanout PATH).")
@click.option("--listen", default=None, metavar="HOST:PORT",
              help="Also (or instead) listen on TCP, with mutual TLS only: needs --tls-ca, "
                   "--tls-cert and --tls-key (agents: --fanout tls://HOST:PORT?ca=&cert=&key=).")
@click.option("--tls-ca", default=None, metavar="FILE",
              help="CA (PEM) that must have signed every client's certificate.")
@click.option("--tls-cert", default=None, metavar="FILE", help="This server's certificate (PEM).")
@click.option("--tls-key", default=None, metavar="FILE", help="Its private key (PEM).")
@click.option("--allow-name", "allow_names", multiple=True, metavar="CN",
              help="Serve only TLS clients whose certificate has this common name (repeatable; "
                   "default: any the CA signed).")
@click.option("--max-clients", default=4096, show_default=True, type=click.IntRange(1, 1 << 20),
              help="Clients served at once; the next is told the server is full.")
@click.option("--max-buffer", default=64 << 20, show_default=True,
              type=click.IntRange(64 << 10, 1 << 34), metavar="BYTES",
              help="How far behind a client may fall before it is dropped (it reconnects "
                   "for a snapshot).")  # fmt: skip
@click.option("--allow-uid", "allow_uids", multiple=True, type=click.IntRange(0, (1 << 32) - 2),
              help="Also serve unix-socket peers with this uid (root and the server's own "
                   "always are); the socket file stays 0600, so give them access to it too.")  # fmt: skip
@click.option("--log-level", default="info",
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))
@log_format_option
@click.pass_context
@handle_errors
def serve_cmd(ctx: click.Context, socket_path: str | None, listen: str | None,
              tls_ca: str | None, tls_cert: str | None, tls_key: str | None,
              allow_names: tuple[str, ...], max_clients: int, max_buffer: int,
              allow_uids: tuple[int, ...], log_level: str,
              log_format: str | None) -> None:  # fmt: skip
    """Serve until SIGTERM or SIGINT (the socket file is removed on the way out)."""
    from gingham.agent.daemon import _not_for_agents
    from gingham.cli.common import resolve_datastore_url
    from gingham.datastore import keys, open_datastore
    from gingham.errors import ValidationError
    from gingham.fanout.address import host_port
    from gingham.fanout.address import socket_path as parse_socket_path
    from gingham.fanout.server import FanoutServer
    from gingham.fanout.tls import TLSFiles

    start_logging(ctx, log_level, log_format, quiet=("httpx", "httpcore"))
    path = parse_socket_path(socket_path, "--socket") if socket_path else None
    address = host_port(listen, "--listen") if listen else None
    given = [f for f in (tls_ca, tls_cert, tls_key) if f]
    if address is not None and len(given) != 3:
        raise ValidationError("TCP is served with mutual TLS only: give --tls-ca, --tls-cert "
                              "and --tls-key", "--listen")  # fmt: skip
    if address is None and (given or allow_names):
        raise ValidationError("TLS options without --listen (the unix socket needs none)",
                              "--tls-*")  # fmt: skip
    if path is None and address is None:
        raise ValidationError("give --socket PATH, --listen HOST:PORT (with TLS), or both",
                              "fanout serve")  # fmt: skip
    tls = TLSFiles(str(tls_ca), str(tls_cert), str(tls_key)) if address is not None else None
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ds = open_datastore(resolve_datastore_url(ctx.obj.get("datastore") if ctx.obj else None))
    out = logging.getLogger("gingham.fanout")
    try:
        # The same keys an agent's own syncer follows (other agents' chatter left out).
        server = FanoutServer(ds, keys.ROOT, path, listen=address, tls=tls,
                              allowed_names=allow_names, ignore=_not_for_agents,
                              max_clients=max_clients, max_buffer=max_buffer,
                              allowed_uids=allow_uids)  # fmt: skip
        where = [p for p in (path, server.tcp_address and "tls://{}:{}".format(*server.tcp_address))
                 if p]  # fmt: skip
        out.info("fan-out server on %s for datastore %s", " and ".join(where),
                 getattr(ds, "url", "?"))  # fmt: skip
        server.serve(lambda: stopping)
        s = server.stats
        out.info(
            "stopped: %d clients served, %d dropped as too slow, %d frames, %d bytes sent",
            s.accepted, s.dropped, s.frames, s.bytes_sent,
        )  # fmt: skip
    finally:
        ds.close()
