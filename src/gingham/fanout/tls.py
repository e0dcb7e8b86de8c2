"""TLS for the fan-out over TCP: both ends show a certificate signed by the one CA.

Over a unix socket the kernel tells the server who connected (``SO_PEERCRED``);
over TCP nothing does, so TCP is served only with mutual TLS: the server asks
every client for a certificate and refuses one its CA did not sign (and,
given ``allowed_names``, one whose common name is not listed), and the client
checks the server's certificate against the same CA and the name it dialled,
as etcd's ``--client-cert-auth`` and Calico's Typha do. Plain TCP is refused
by name (``address.py``).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from gingham.errors import ValidationError

# Long enough for a loaded machine, short enough that a peer that never
# completes a handshake does not hold a client slot for long.
HANDSHAKE_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """PEM files: the CA that signs both ends, this end's certificate and its key."""

    ca: str
    cert: str
    key: str


def _context(purpose: int, files: TLSFiles, where: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED  # the server too: a client without a certificate is refused
    try:
        ctx.load_verify_locations(cafile=files.ca)
    except (OSError, ssl.SSLError) as exc:
        raise ValidationError(f"cannot load the CA {files.ca}: {exc}", where) from None
    try:
        ctx.load_cert_chain(files.cert, files.key)
    except (OSError, ssl.SSLError) as exc:
        raise ValidationError(
            f"cannot load the certificate {files.cert} with key {files.key}: {exc}", where
        ) from None
    return ctx


def server_context(files: TLSFiles) -> ssl.SSLContext:
    return _context(ssl.PROTOCOL_TLS_SERVER, files, "fan-out server TLS")


def client_context(files: TLSFiles) -> ssl.SSLContext:
    ctx = _context(ssl.PROTOCOL_TLS_CLIENT, files, "fan-out client TLS")
    ctx.check_hostname = True  # the server's certificate must name the address dialled
    return ctx


def peer_name(sock: ssl.SSLSocket) -> str:
    """The common name of the verified peer certificate ("" if it has none)."""
    cert = sock.getpeercert() or {}
    for rdn in cert.get("subject", ()):
        for attr in rdn:
            if attr[0] == "commonName":
                return str(attr[1])
    return ""
