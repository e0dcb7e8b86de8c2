"""Why the agent is not ready, for ``/readyz``: one check per condition the loop keeps.

Readiness itself is ``AgentState.ready``, which the loop sets (daemon.py): in
sync with the datastore, allowed to program this host (cluster guard), and
the last batch applied. These checks only *explain* it from what the loop
recorded, so they never change when the agent is ready; a scrape that lands
mid-turn may see ``ready`` false and every check passing, and then says
plain ``not ready``.

The body follows Kubernetes' ``/readyz``: ``ok``, or ``not ready: <the first
failing check>``; with ``?verbose`` one line per check, ``[+]name ok`` or
``[-]name failed: reason``, then ``readyz check passed`` or ``failed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gingham.timestamps import rfc3339

if TYPE_CHECKING:
    from gingham.agent.daemon import AgentState
    from gingham.datastore.syncer import SyncStatus

# How the syncer says a watch fell behind compaction (it re-lists on its next poll).
_COMPACTED = "watch compacted"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    failure: str = ""  # "": passes

    @property
    def ok(self) -> bool:
        return not self.failure


def checks(state: AgentState, sync: SyncStatus, now: float, fanout: str | None = None
           ) -> list[Check]:  # fmt: skip
    """The checks, in the order the loop meets them; ``now`` on the loop's clock,
    ``fanout``: the fan-out server the agent reads through (None: the datastore)."""
    return [
        Check("datastore-sync", _sync_failure(state, sync, now, fanout)),
        Check("datastore-cluster", state.blocked),
        Check("dataplane", _dataplane_failure(state)),
    ]


def _sync_failure(state: AgentState, sync: SyncStatus, now: float, fanout: str | None) -> str:
    if sync.in_sync:
        return ""
    since = f" since {rfc3339(state.sync_lost_at)}" if state.sync_lost_at is not None else ""
    error = sync.last_error
    if not error:
        if sync.snapshots == 0:
            return f"waiting for the first datastore sync ({max(0.0, now - state.started):.1f} s)"
        return f"resyncing with the datastore{since}"
    if fanout is not None:
        return f"not in sync through fan-out server {fanout}{since}: {error}"
    if error.startswith(_COMPACTED):
        return f"resyncing with the datastore{since}: {error}"
    return f"datastore unreachable{since}: {error}"


def _dataplane_failure(state: AgentState) -> str:
    if state.apply_error:
        return f"dataplane apply failing: {state.apply_error}"
    if not state.programmed_once:
        return "dataplane not programmed yet"
    return ""


def body(ready: bool, found: Sequence[Check], detail: Sequence[str], verbose: bool) -> str:
    """The text of ``/readyz``; ``detail``: what else an operator should know (notices,
    invalid resources), one line each, after the verdict."""
    failing = [c for c in found if not c.ok]
    # A notice that repeats a failing check (the cluster guard's) is said once.
    extra = [line for line in detail if line.strip() and line not in {c.failure for c in failing}]
    if verbose:
        lines = [f"[+]{c.name} ok" if c.ok else f"[-]{c.name} failed: {c.failure}"
                 for c in found]  # fmt: skip
        lines += extra
        lines.append("readyz check passed" if ready else "readyz check failed")
    elif ready:
        lines = ["ok", *extra]
    else:
        lines = [f"not ready: {failing[0].failure}" if failing else "not ready", *extra]
    return "".join(f"{line}\n" for line in lines)
