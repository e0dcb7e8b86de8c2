"""The node agent's main loop, wired in one place.

     datastore
         |  (key, stored value | None): snapshot, then watch  (datastore.syncer)
         v
    +-----------+
    |  decode   |  the only reader of keys and documents: typed key, typed value
    +-----------+  (model resource, IPAM block, InvalidResource, None)
         |
         v
    +-----------+  policy and routing, pure; validity filter first
    | CalcGraph |  (the agent adds the underlay MTU it measured)
    +-----------+
         | typed, frozen messages in flush order
         +-------------------+--------------------+----------------------+
         v                   v                    v                      v
    +-------------+  +------------------+  +--------------+  +------------------+
    | PolicyPlane |  | RoutingDataplane |  | BgpManager   |  | Housekeeping     |
    | nft, one tx |  | MTU file, VXLAN, |  | BIRD, after  |  | Node, liveness,  |
    | per batch   |  | routes, NAT      |  | the routes   |  | tunnel address,  |
    +-------------+  +------------------+  +--------------+  | spare block      |
                                                             +------------------+

Invariants:
- Nothing in the kernel changes before the first complete snapshot has been
  fed to the calculation graph (``InSync``); a restarted agent then
  reconciles, removing only what is stale.
- Nothing in the kernel changes, and nothing is written to the datastore, for
  a datastore without a cluster ID or with another one than the host's
  dataplane was programmed for (``cluster_guard.py``).
- No input from the datastore ends the loop: a value that cannot be processed
  costs its key only (``_feed``); what does not validate is reported
  (``gingham_invalid_resources``, /readyz, node status), never dropped silently.
- The loop is single-threaded; the health server only reads what it recorded
  (``AgentState``, the sync status, metrics).
- Every plane sees every batch, in order: when one fails, the planes after it
  get the batch with the next (its retry), never lose it.
- What the host cannot do is reported, never skipped silently: the agent
  probes its capabilities (``capabilities.py``) at start and every minute,
  tells the graph (routing plans nothing the host lacks) and reports each
  missing one, and the settings not in effect for it, in ``/readyz``, node
  status and ``gingham_host_capability{name}``.
- A datastore outage leaves the dataplane as it is (fail static) and turns
  readiness off until the next successful snapshot.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from gingham.agent.capabilities import PROBE_INTERVAL, HostCapabilities, report_lines
from gingham.agent.cluster_guard import ClusterGuard
from gingham.agent.cni_handover import Handover
from gingham.agent.datastore_metrics import InstrumentedDatastore
from gingham.agent.decode import datastore_key
from gingham.agent.housekeeping import Housekeeping
from gingham.agent.metrics import AgentMetrics
from gingham.agent.node import HostAddresses
from gingham.calc.felix import HostSupport
from gingham.calc.inputs import InputKey, ResourceKey
from gingham.calc.messages import Message
from gingham.calc.validity import InputValue, InvalidReport, Value
from gingham.datastore import keys
from gingham.datastore.base import Datastore
from gingham.datastore.cluster import cluster_id_of
from gingham.datastore.syncer import Syncer, SyncStatus
from gingham.errors import GinghamError, Unavailable
from gingham.ipam import keys as ipam_keys
from gingham.model import Resource, to_dict

log = logging.getLogger(__name__)


# How often the underlay MTU is measured again (an operator may change it).
MTU_PROBE_INTERVAL = 30.0


class Calc(Protocol):
    def on_update(self, key: InputKey, value: InputValue | None) -> None: ...
    def on_in_sync(self) -> None: ...
    def set_underlay_mtu(self, mtu: int | None) -> None: ...
    def set_host_support(self, support: HostSupport) -> None: ...
    def wanted_capabilities(self) -> frozenset[str]: ...
    def flush(self) -> list[Message]: ...
    def invalid_resources(self) -> Mapping[InputKey, InvalidReport]: ...
    def last_valid(self, key: InputKey) -> Value | None: ...


class UpdateSource(Protocol):
    """Where the loop reads the datastore from: its own ``Syncer``, or a fan-out
    server's ``FanoutClient``. Either delivers a whole snapshot (every key
    present, and keys gone since as None) whenever it comes back in sync."""

    status: SyncStatus

    def poll(self, timeout: float) -> Sequence[tuple[str, Any]]: ...
    def close(self) -> None: ...


class Retaining(Protocol):
    def retain(self, keys: Collection[str]) -> None: ...


class Plane(Protocol):
    """Something that turns calculation messages into kernel state."""

    def apply(self, messages: Sequence[Message]) -> None: ...


@runtime_checkable
class Rechecking(Protocol):
    """A plane that also reads something of its own (the BGP manager: password files)
    and asks, now and then, to be applied although nothing changed."""

    def due(self, now: float) -> bool: ...


@dataclass(frozen=True, slots=True)
class Invalid:
    """One stored document that does not validate, as operators see it (by datastore key)."""

    key: str
    kind: str
    name: str
    namespace: str | None
    reason: str
    outcome: str

    @classmethod
    def of(cls, report: InvalidReport) -> Invalid:
        return cls(datastore_key(report.key), report.kind, report.name, report.namespace,
                   report.reason, report.outcome)


@dataclass
class AgentState:
    """What the health server and ``gingham node status`` read (written by the loop only)."""

    ready: bool = False
    live: bool = True
    programmed_once: bool = False
    blocked: str = ""  # why the dataplane is left alone; "" when it is not
    invalid: tuple[Invalid, ...] = ()
    notices: tuple[str, ...] = ()  # e.g. endpoints the dataplane refused
    capabilities: HostCapabilities | None = None  # None: not probed
    # Why not ready, for /readyz (agent/readiness.py); readiness itself is ``ready``.
    started: float = 0.0  # the loop's clock when the agent was made
    sync_lost_at: float | None = None  # wall clock: out of sync since; None: in sync
    apply_error: str = ""  # the last plane that failed and why; "" once a batch applied

    def reasons(self) -> list[str]:
        """One line per thing an operator should know, for /readyz and node status."""
        lines = [self.blocked] if self.blocked else []
        for report in self.invalid:
            lines.append(f"invalid {report.key} ({report.outcome}): {report.reason}")
        lines.extend(self.notices)
        return lines


@dataclass
class Agent:
    hostname: str
    datastore: Datastore
    addresses: HostAddresses
    calc: Calc
    # (datastore key, stored value) -> (typed key, typed value), or None: not for the graph.
    decode: Callable[[str, object], tuple[InputKey, InputValue | None] | None]
    # Each gets every batch of messages, in this order (policy, routing, BGP).
    planes: list[Plane]
    notice_sources: list[Callable[[], Sequence[str]]] = field(default_factory=list)
    guard: ClusterGuard = field(default_factory=lambda: ClusterGuard(None))
    # Last valid versions of invalid keys, kept past restarts (the graph writes them).
    last_valid: Retaining | None = None
    # The MTU of the interface holding this host's address (None: unknown).
    underlay_mtu: Callable[[], int | None] = lambda: None
    # What the host can do (None: not probed; routing assumes everything).
    capabilities: Callable[[], HostCapabilities] | None = None
    # Called with the loop's clock every turn (retries that wait for no message).
    tickers: list[Callable[[float], None]] = field(default_factory=list)
    # Called with the state whenever what it reports changes (status file).
    on_status: Callable[[AgentState], None] | None = None
    # Writes the agent's CNI server made, fed ahead of the watch (cni_handover.py).
    handover: Handover | None = None
    # None: the agent follows the datastore itself (a Syncer of its own).
    source: UpdateSource | None = None
    metrics: AgentMetrics = field(default_factory=AgentMetrics)
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    poll_timeout: float = 0.1
    liveness_ttl: int = 10
    state: AgentState = field(default_factory=AgentState)

    def __post_init__(self) -> None:
        # Every datastore call the agent makes (its syncer's too) is counted.
        if not isinstance(self.datastore, InstrumentedDatastore):
            self.datastore = InstrumentedDatastore(self.datastore, self.metrics.datastore)
        self.metrics.watch.direct = self.source is None
        self.state.started = self.clock()
        self.syncer: UpdateSource = (
            self.source if self.source is not None
            else Syncer(self.datastore, keys.ROOT, ignore=_not_for_agents)
        )  # fmt: skip
        self.housekeeping = Housekeeping(
            self.datastore, self.hostname, self.addresses, self._known_node,
            liveness_ttl=self.liveness_ttl, sleep=self.sleep,
        )
        self._retry = False
        self._cluster_id: str | None = None
        self._cluster_checked = False
        self._reported: tuple[Any, ...] | None = None
        self._invalid_kinds: set[str] = set()
        self._next_mtu_probe = 0.0
        self._next_capability_probe = 0.0
        # Batches a plane has not seen because one before it failed, by plane index.
        self._backlog: dict[int, list[Message]] = {}
        # Checked once: isinstance against a runtime Protocol is slow for every turn.
        self._rechecking = [p for p in self.planes if isinstance(p, Rechecking)]

    def step(self) -> None:
        """One turn of the loop: read what changed, compute, program."""
        now = self.clock()
        if self._cluster_checked:
            self._refresh(now)
        was_in_sync = self.syncer.status.in_sync
        timeout = self.poll_timeout
        if self.handover is not None:
            self.handover.settle()  # CNI commands in flight first (cni_handover.py)
            timeout = self.handover.poll_timeout(timeout)
        updates = self.syncer.poll(timeout)
        received = self.clock()
        self.metrics.watch.observe(self.syncer.status)
        if not self.syncer.status.in_sync:
            if was_in_sync:
                self.metrics.resyncs.inc()
            if self.state.sync_lost_at is None:
                self.state.sync_lost_at = self.wall_clock()
            self.state.ready = False
            self.metrics.in_sync.set(0)
            self._report()
            if not updates:
                self.sleep(min(1.0, self.poll_timeout * 5))
            return
        self.state.sync_lost_at = None
        for key, value in updates:
            self._feed(key, value)
        snapshot_done = not was_in_sync
        changed = bool(updates)
        if self.handover is not None:
            for handed, doc in self.handover.take(updates, self.syncer.status.revision,
                                                  snapshot_done):
                self._feed(handed, doc)
                changed = True
        if snapshot_done:
            self.calc.on_in_sync()
            if self.last_valid is not None:  # what went valid or away meanwhile
                self.last_valid.retain(set(self._all_invalid()))
        if self._blocked():
            # The calc graph keeps its pending changes; nothing in the kernel moves.
            self._report()
            return
        if not self.housekeeping.registered:  # the first time: this host's Node before its routes
            self._refresh(now)
        if now >= self._next_mtu_probe:
            self._next_mtu_probe = now + MTU_PROBE_INTERVAL
            self.calc.set_underlay_mtu(self.underlay_mtu())
        if self.capabilities is not None and now >= self._next_capability_probe:
            self._next_capability_probe = now + PROBE_INTERVAL
            self._probe_capabilities()
        messages = self.calc.flush()
        self.housekeeping.note(messages)
        # Updates that change no message still retry what a plane could not do yet
        # (an interface that was missing, say).
        rechecks = [p.due(now) for p in self._rechecking]
        if messages or changed or snapshot_done or self._retry or any(rechecks):
            self._retry = False
            if not self._apply(messages):
                return
            self.state.apply_error = ""
            self.metrics.applies.inc()
            if changed:
                self.metrics.apply_latency.observe(self.clock() - received)
        for tick in self.tickers:
            tick(self.clock())
        self.housekeeping.claims(self.clock())
        self.state.programmed_once = True
        self.state.ready = True
        self.metrics.in_sync.set(1)
        self._report()

    def _apply(self, messages: list[Message]) -> bool:
        """Every plane in order; False when one failed (the later ones keep the batch)."""
        for i, plane in enumerate(self.planes):
            batch = self._backlog.pop(i, []) + messages
            try:
                plane.apply(batch)
            except Exception as exc:
                if not isinstance(exc, GinghamError):  # a bug must not take the dataplane down
                    log.exception("unexpected error in %s", type(plane).__name__)
                for later in range(i + 1, len(self.planes)):
                    self._backlog[later] = self._backlog.get(later, []) + messages
                self._plane_failed(plane, exc)
                return False
        return True

    def _probe_capabilities(self) -> None:
        assert self.capabilities is not None
        caps = self.capabilities()
        if caps == self.state.capabilities:
            return
        for cap in caps.items:
            before = self.state.capabilities.get(cap.name) if self.state.capabilities else None
            if before != cap:
                level = logging.INFO if cap.present else logging.WARNING
                log.log(level, "host capability %s: %s (%s)", cap.name,
                        "present" if cap.present else "MISSING", cap.detail)
            self.metrics.host_capability.labels(name=cap.name).set(1 if cap.present else 0)
        self.state.capabilities = caps
        self.calc.set_host_support(caps.support())

    def _feed(self, key: str, value: object) -> None:
        """One update into the graph; a bad one costs that key only."""
        if key == keys.CLUSTER:
            self._cluster_id = cluster_id_of(value)
        try:
            typed = self.decode(key, value)
            if typed is not None:
                self.calc.on_update(*typed)
        except Exception:  # no input from the datastore may end the agent
            self.metrics.errors.labels(where="update").inc()
            log.exception("cannot process %s: ignored until it changes", key)

    def _known_node(self) -> dict[str, Any] | None:
        """This host's Node as last read valid, should the stored one be unreadable."""
        node = self.calc.last_valid(ResourceKey("Node", self.hostname))
        return to_dict(node) if isinstance(node, Resource) else None

    def _blocked(self) -> bool:
        reason = self.guard.check(self._cluster_id)
        if reason != self.state.blocked:
            if reason:
                log.error("not programming this host: %s", reason)
            else:
                log.info("datastore cluster %s: programming this host", self._cluster_id)
        self.state.blocked = reason
        if reason:
            self.state.ready = False
            return True
        assert self._cluster_id is not None
        self.guard.remember(self._cluster_id)
        self._cluster_checked = True
        return False

    def _report(self) -> None:
        """Refresh what the agent tells operators (gauge, /readyz, status file) if it changed."""
        reports = self._all_invalid()
        notices = tuple(line for source in self.notice_sources for line in source())
        notices += tuple(report_lines(self.state.capabilities, self.calc.wanted_capabilities()))
        invalid = tuple(reports[k] for k in sorted(reports))
        snapshot = (self.state.ready, self.state.blocked, invalid, notices,
                    self.state.capabilities)
        if snapshot == self._reported:
            return
        self._reported = snapshot
        self.state.invalid = invalid
        self.state.notices = notices
        counts = Counter(r.kind for r in invalid)
        for kind in self._invalid_kinds | set(counts):
            self.metrics.invalid_resources.labels(kind=kind).set(counts.get(kind, 0))
        self._invalid_kinds |= set(counts)
        if self.on_status is not None:
            try:
                self.on_status(self.state)
            except OSError as exc:
                log.warning("cannot write the agent's status: %s", exc)

    def _probe_revision(self) -> None:
        """Read the store revision (the lag gauges' measure) when no answer told it lately.

        Right after a liveness refresh that worked, so that a hung datastore
        stalls the loop on the refresh (which decides readiness), not on this
        read first. A failure is only counted (gingham_datastore_request_errors).
        """
        try:
            self.datastore.revision()
        except GinghamError as exc:
            log.debug("cannot read the store revision: %s", exc)

    def _all_invalid(self) -> dict[str, Invalid]:
        return {datastore_key(k): Invalid.of(r) for k, r in self.calc.invalid_resources().items()}

    def _plane_failed(self, plane: Plane, exc: Exception) -> None:
        self.metrics.errors.labels(where=type(plane).__name__).inc()
        log.error("dataplane %s failed: %s", type(plane).__name__, exc)
        self.state.apply_error = f"{type(plane).__name__}: {exc}"
        self.state.ready = False
        self._report()
        # Planes keep their desired state and re-read the kernel after a failure,
        # so retrying them with no new messages is enough; pause to avoid a hot loop.
        self._retry = True
        self.sleep(0.5)

    def run(self, should_stop: Callable[[], bool]) -> None:
        while not should_stop():
            self.step()
        self.syncer.close()

    def _refresh(self, now: float) -> None:
        """Node registration and liveness (housekeeping), when due."""
        if not self.housekeeping.due(now):
            return
        try:
            self.housekeeping.refresh(now, self.wall_clock())
        except Unavailable as exc:
            # A datastore that hangs can leave a watch silent for ever: the failed
            # refresh is the signal. Not ready, and re-list until it answers again.
            self.metrics.errors.labels(where="liveness").inc()
            log.warning("datastore unavailable: %s", exc)
            self.state.ready = False
            self.syncer.close()
            self.syncer.status.in_sync = False
            self.syncer.status.last_error = str(exc)  # for /readyz
        except GinghamError as exc:
            self.metrics.errors.labels(where="liveness").inc()
            log.warning("cannot refresh liveness: %s", exc)
        else:
            if self.metrics.watch.probe_due():
                self._probe_revision()


def _not_for_agents(key: str) -> bool:
    """Keys whose changes no agent acts on: other agents' chatter would wake everyone."""
    if key.startswith(keys.IPAM):
        return not key.startswith(ipam_keys.BLOCKS)
    return key.startswith((keys.STATUS, keys.LIVENESS, keys.DOCKER_PENDING))
