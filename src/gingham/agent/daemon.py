"""The node agent's main loop, wired in one place.

                         +-----------+
     datastore --------> |  Syncer   |  (key, value | None)
                         +-----------+
                               |
              +----------------+-----------------+
              v                                  v
      +---------------+                  +----------------+
      |  decode       |  model resource  |  RoutingInputs |  Node, IPPool, BGP*, IPAM blocks
      +---------------+                  +----------------+
              |                                  |
              v                                  v
      +---------------+                   plan_routes() (pure)
      |  CalcGraph    |  pure, per host          |
      +---------------+                          |
              | messages (flush order)           |
              v                                  v
      +---------------+                  +----------------+
      | PolicyPlane   |  nft, one tx     | KernelRoutes   |  VXLAN peers, then routes
      +---------------+                  +----------------+

Invariants:
- Nothing in the kernel changes before the first complete snapshot has been
  fed to the calculation graph (``InSync``); a restarted agent then
  reconciles, removing only what is stale.
- The loop is single-threaded; the health server only reads two flags.
- A datastore outage leaves the dataplane as it is (fail static) and turns
  readiness off until the next successful snapshot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gingham.agent.metrics import AgentMetrics
from gingham.agent.node import HostAddresses, Liveness, register_node
from gingham.agent.syncer import Syncer
from gingham.datastore import keys
from gingham.datastore.base import Datastore
from gingham.errors import GinghamError, Unavailable

log = logging.getLogger(__name__)


class Calc(Protocol):
    def on_update(self, key: str, value: Any) -> None: ...
    def on_in_sync(self) -> None: ...
    def flush(self) -> list[Any]: ...


class Plane(Protocol):
    """Something that turns calculation messages into kernel state."""

    def apply(self, messages: Sequence[Any]) -> None: ...


class Router(Protocol):
    """Follows routing inputs and programs routes; ``local_endpoints`` from the calc messages."""

    def on_update(self, key: str, value: Any) -> None: ...
    def apply(self, messages: Sequence[Any]) -> None: ...


@dataclass
class AgentState:
    ready: bool = False
    live: bool = True
    programmed_once: bool = False


@dataclass
class Agent:
    hostname: str
    datastore: Datastore
    addresses: HostAddresses
    calc: Calc
    decode: Callable[[str, Any], Any]
    planes: list[Plane]
    # Raw (key, document | None) listeners, e.g. routing inputs that read the wire format.
    observers: list[Callable[[str, Any], None]] = field(default_factory=list)
    metrics: AgentMetrics = field(default_factory=AgentMetrics)
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    poll_timeout: float = 0.1
    liveness_ttl: int = 10
    state: AgentState = field(default_factory=AgentState)

    def __post_init__(self) -> None:
        self.syncer = Syncer(self.datastore, keys.ROOT, ignore=_not_for_agents)
        self.liveness = Liveness(self.datastore, self.hostname, ttl=self.liveness_ttl)
        self._registered = False
        self._retry = False
        self._next_refresh = 0.0

    def step(self) -> None:
        """One turn of the loop: read what changed, compute, program."""
        now = self.clock()
        self._housekeeping(now)
        was_in_sync = self.syncer.status.in_sync
        updates = self.syncer.poll(self.poll_timeout)
        received = self.clock()
        if not self.syncer.status.in_sync:
            if was_in_sync:
                self.metrics.resyncs.inc()
            self.state.ready = False
            self.metrics.in_sync.set(0)
            if not updates:
                time.sleep(min(1.0, self.poll_timeout * 5))
            return
        for key, value in updates:
            self.calc.on_update(key, self.decode(key, value))
            for observe in self.observers:
                observe(key, value)
        snapshot_done = not was_in_sync
        if snapshot_done:
            self.calc.on_in_sync()
        messages = self.calc.flush()
        # Observers may have changed state no calc message reflects (routing inputs).
        if messages or updates or snapshot_done or self._retry:
            self._retry = False
            for plane in self.planes:
                try:
                    plane.apply(messages)
                except GinghamError as exc:
                    self._plane_failed(plane, exc)
                    return
                except Exception as exc:  # a bug must not take the dataplane down: fail static
                    log.exception("unexpected error in %s", type(plane).__name__)
                    self._plane_failed(plane, exc)
                    return
            self.metrics.applies.inc()
            if updates:
                self.metrics.apply_latency.observe(self.clock() - received)
        self.state.programmed_once = True
        self.state.ready = True
        self.metrics.in_sync.set(1)

    def _plane_failed(self, plane: Plane, exc: Exception) -> None:
        self.metrics.errors.labels(where=type(plane).__name__).inc()
        log.error("dataplane %s failed: %s", type(plane).__name__, exc)
        self.state.ready = False
        # Planes keep their desired state and re-read the kernel after a failure,
        # so retrying them with no new messages is enough; pause to avoid a hot loop.
        self._retry = True
        time.sleep(0.5)

    def run(self, should_stop: Callable[[], bool]) -> None:
        while not should_stop():
            self.step()
        self.syncer.close()

    def _housekeeping(self, now: float) -> None:
        if now < self._next_refresh:
            return
        try:
            if not self._registered:
                register_node(self.datastore, self.hostname, self.addresses)
                self._registered = True
            self.liveness.refresh(self.wall_clock())
            self._next_refresh = now + max(1.0, self.liveness_ttl / 3)
        except Unavailable as exc:
            # A datastore that hangs can leave a watch silent for ever: the failed
            # refresh is the signal. Not ready, and re-list until it answers again.
            self.metrics.errors.labels(where="liveness").inc()
            log.warning("datastore unavailable: %s", exc)
            self.state.ready = False
            self.syncer.close()
            self.syncer.status.in_sync = False
            self._next_refresh = now + 1.0
        except GinghamError as exc:
            self.metrics.errors.labels(where="liveness").inc()
            log.warning("cannot refresh liveness: %s", exc)
            self._next_refresh = now + 1.0


def _not_for_agents(key: str) -> bool:
    """Keys whose changes no agent acts on: other agents' chatter would wake everyone."""
    if key.startswith(keys.IPAM):
        return not key.startswith(keys.IPAM + "blocks/")
    return key.startswith((keys.STATUS, keys.LIVENESS))
