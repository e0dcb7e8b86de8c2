"""The plugin's HTTP server on a unix socket: Docker POSTs JSON to ``/<Api>.<Method>``.

Every reply is JSON. A refused or failed call is a non-200 reply
``{"Err": "..."}``, which Docker shows to the user; an unexpected exception
becomes the same kind of reply (naming the call) and a logged traceback, never
a dropped connection, which Docker would retry for 15 s.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socketserver
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from gingham.errors import DockerError, GinghamError

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
MAX_BODY = 1 << 20

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    routes: Mapping[str, Handler]


class _Request(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        # the base class formats the client address, which is '' on a unix socket
        log.debug("%s", format % args)

    def do_POST(self) -> None:
        path = self.path.lstrip("/")
        handler = self.server.routes.get(path)
        status, reply = 200, {}
        try:
            body = self._body()
            if handler is None:
                status, reply = 404, {"Err": f"gingham does not implement {path}"}
            else:
                reply = handler(body)
        except GinghamError as exc:
            status, reply = 500, {"Err": str(exc)}
            log.warning("%s refused: %s", path, exc)
        except Exception as exc:  # a bug: say which call, keep serving
            log.exception("%s failed", path)
            status, reply = 500, {"Err": f"{path} failed: {type(exc).__name__}: {exc}"}
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise DockerError(f"request body of {length} bytes is larger than {MAX_BODY}")
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise DockerError(f"request body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise DockerError("request body is not a JSON object")
        return body


class PluginServer:
    """Serves ``routes`` (``"NetworkDriver.Join"`` -> handler) on ``socket_path``."""

    def __init__(self, socket_path: Path, routes: Mapping[str, Handler]) -> None:
        self.socket_path = socket_path
        socket_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()  # left by a plugin that died: Docker finds the name only
        tmp = socket_path.with_name(f".{socket_path.name}.{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        self._server = _Server(str(tmp), _Request)
        self._server.routes = routes
        os.chmod(tmp, 0o600)
        # renamed into place only once it accepts: Docker never finds a dead socket
        os.rename(tmp, socket_path)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.2,),
                                        name="plugin-http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
