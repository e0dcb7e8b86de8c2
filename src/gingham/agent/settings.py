"""The agent's own settings from FelixConfiguration: log level, health and metrics servers.

``ConfigUpdate`` (the graph merges ``default`` and ``node.<host>``) ->
:class:`AgentSettings`, a plane like the dataplane's, first in the agent's list
(it never fails, so it always sees every batch):

- ``logSeverityScreen`` sets the root logger's level at once;
- ``healthEnabled``/``healthHost``/``healthPort`` start, stop or move the health
  server (``/healthz``, ``/readyz``) while the agent runs;
- ``prometheusMetricsEnabled`` moves ``/metrics`` from the health server to a
  server of its own (``prometheusMetricsHost``/``Port``), as Calico splits
  them; disabled (the default), the health server serves ``/metrics`` too.

Moving binds the new server before closing the old one, so a probe never
finds neither; only a move to the same port on another address closes first
(the kernel would refuse the second bind). A server that cannot bind (the
port is taken) is reported (``/readyz``, node status) and tried again every
:data:`RETRY_INTERVAL` seconds; the old one keeps serving meanwhile.

Command-line flags of ``gingham node run`` (``--log-level``, ``--health-host``,
``--health-port``), when given, win over the datastore, as Calico's
environment variables win over its FelixConfiguration; until the first
``ConfigUpdate`` the health server listens where they (or the defaults) say.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from gingham.calc.messages import ConfigUpdate, Listener, LogSeverity, Message

log = logging.getLogger(__name__)

RETRY_INTERVAL = 5.0
DEFAULT_HEALTH = Listener("127.0.0.1", 9099)

LOG_LEVELS: dict[str, int] = {
    "Trace": logging.DEBUG,  # Python has nothing finer that libraries use
    "Debug": logging.DEBUG,
    "Info": logging.INFO,
    "Warning": logging.WARNING,
    "Error": logging.ERROR,
    "Fatal": logging.CRITICAL,
}


class Server(Protocol):
    serve_metrics: bool

    def start(self) -> None: ...
    def stop(self) -> None: ...


# (listener, serves the probes) -> a server bound there, not started; raises OSError.
ServerFactory = Callable[[Listener, bool], Server]


@dataclass(frozen=True, slots=True)
class LocalOverrides:
    """Settings given on the agent's command line (None: not given; the datastore decides)."""

    log_level: str | None = None  # a Python level name: debug, info, ...
    health_host: str | None = None
    health_port: int | None = None


def same_address(a: Listener | None, b: Listener | None) -> bool:
    """Whether two listeners bind the same socket address ("localhost" is 127.0.0.1)."""
    if a is None or b is None:
        return a is b
    return (_host(a.host), a.port) == (_host(b.host), b.port)


def _host(host: str) -> str:
    return "127.0.0.1" if host == "localhost" else host


class AgentSettings:
    """Applies the agent's settings from ``ConfigUpdate`` (see the module docstring)."""

    def __init__(self, make_server: ServerFactory, overrides: LocalOverrides = LocalOverrides(),
                 set_level: Callable[[int], None] | None = None) -> None:
        self._make = make_server
        self.overrides = overrides
        self._set_level = set_level or logging.getLogger().setLevel
        self._config: ConfigUpdate | None = None
        self.health: Server | None = None
        self.health_at: Listener | None = None
        self.metrics: Server | None = None
        self.metrics_at: Listener | None = None
        self.level: int | None = None
        self._problems: dict[str, str] = {}
        self._next_retry = 0.0

    # --- the plane ------------------------------------------------------------

    def start(self) -> None:
        """The health server where the command line (or the default) says, before the
        datastore has been read. Raises OSError when it cannot bind: at start-up an
        operator should hear of it at once."""
        if self.overrides.log_level is not None:
            self._level(getattr(logging, self.overrides.log_level.upper(), logging.INFO))
        o = self.overrides
        at = Listener(o.health_host if o.health_host is not None else DEFAULT_HEALTH.host,
                      o.health_port if o.health_port is not None else DEFAULT_HEALTH.port)
        self.health = self._bind(at, probes=True)
        self.health_at = at

    def apply(self, messages: Sequence[Message]) -> None:
        for msg in messages:
            if isinstance(msg, ConfigUpdate):
                self._config = msg
                self._reconcile()

    def tick(self, now: float) -> None:
        """Try again what could not bind, at most every :data:`RETRY_INTERVAL` seconds."""
        if self._problems and now >= self._next_retry:
            self._next_retry = now + RETRY_INTERVAL
            self._reconcile()

    def notices(self) -> list[str]:
        return [self._problems[k] for k in sorted(self._problems)]

    def close(self) -> None:
        for server in (self.metrics, self.health):
            if server is not None:
                server.stop()
        self.health = self.metrics = None
        self.health_at = self.metrics_at = None

    # --- what is wanted ----------------------------------------------------------

    def _health_listener(self, configured: Listener | None) -> Listener | None:
        if configured is None:
            return None  # healthEnabled: false stops it, flags or not
        o = self.overrides
        return Listener(o.health_host if o.health_host is not None else configured.host,
                        o.health_port if o.health_port is not None else configured.port)

    def _reconcile(self) -> None:
        config = self._config
        if config is None:
            return
        if self.overrides.log_level is None:
            self._level(LOG_LEVELS[_severity(config.log_severity)])
        self._problems.clear()
        self.health, self.health_at = self._move("health", self.health, self.health_at,
                                                 self._health_listener(config.health),
                                                 probes=True)
        self.metrics, self.metrics_at = self._move("metrics", self.metrics, self.metrics_at,
                                                   config.metrics, probes=False)
        if self.health is not None:
            # /metrics stays on the health port unless it has a server of its own.
            self.health.serve_metrics = config.metrics is None or self.metrics is None

    def _level(self, level: int) -> None:
        if level != self.level:
            self._set_level(level)
            if self.level is not None:
                log.warning("log level now %s", logging.getLevelName(level))
            self.level = level

    # --- moving a server -------------------------------------------------------------

    def _move(self, what: str, server: Server | None, at: Listener | None,
              want: Listener | None, probes: bool) -> tuple[Server | None, Listener | None]:
        if want is None:
            if server is not None:
                server.stop()
                log.info("%s server on %s stopped", what, at)
            return None, None
        if server is not None and same_address(at, want):
            return server, want  # "localhost" for "127.0.0.1": the same socket
        try:
            new = self._bind(want, probes)
        except OSError as exc:
            if server is None or at is None or at.port != want.port:
                return self._failed(what, server, at, want, exc)
            # The same port on another address: the kernel refuses the second bind
            # while the first listens, so free it first (a moment with no server).
            server.stop()
            try:
                new = self._bind(want, probes)
            except OSError as again:
                restored = self._rebind(at, probes)
                return self._failed(what, restored, at if restored else None, want, again)
            server = None
        if server is not None:
            server.stop()
        log.info("%s server now on %s%s", what, want, f" (was {at})" if at else "")
        return new, want

    def _failed(self, what: str, server: Server | None, at: Listener | None, want: Listener,
                exc: OSError) -> tuple[Server | None, Listener | None]:
        still = f"; still on {at}" if server is not None and at is not None else ""
        self._problems[what] = f"{what} server cannot listen on {want}: {exc.strerror or exc}{still}"
        log.error("%s", self._problems[what])
        return server, at

    def _rebind(self, at: Listener | None, probes: bool) -> Server | None:
        if at is None:
            return None
        try:
            return self._bind(at, probes)
        except OSError:
            return None

    def _bind(self, at: Listener, probes: bool) -> Server:
        server = self._make(at, probes)
        server.start()
        return server


def _severity(value: LogSeverity) -> str:
    return value if value in LOG_LEVELS else "Info"


__all__ = [
    "DEFAULT_HEALTH",
    "LOG_LEVELS",
    "RETRY_INTERVAL",
    "AgentSettings",
    "LocalOverrides",
    "same_address",
]
