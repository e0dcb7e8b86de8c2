"""The container's Docker labels onto its WorkloadEndpoint, once the container runs.

Docker sends a driver no labels, and asking the daemon about a container while
it is being started would wait on the start that is waiting on the driver. So
after Join a worker asks the daemon which container holds the endpoint and
reads its labels, then writes them (compare-and-swap; a deleted endpoint is
never written again). Labels that cannot be label keys or values are left off
by name in the log and listed in an annotation, never silently.
Until they land, the endpoint has only its namespace's profile: policies that
select by Docker labels apply from that moment (≈ tens of milliseconds).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from gingham.datastore.base import Datastore
from gingham.docker.engine import Engine
from gingham.errors import GinghamError, NotFound, RevisionConflict
from gingham.model.meta import label_key_problem, label_value_problem

log = logging.getLogger(__name__)

SKIPPED_ANNOTATION = "libnetwork.gingham.dev/labels-not-used"
POLL = 0.02
GIVE_UP_AFTER = 120.0


def usable_labels(labels: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """(labels a selector can use, "key: why" for the others)."""
    good: dict[str, str] = {}
    bad: list[str] = []
    for key, value in sorted(labels.items()):
        why = label_key_problem(key) or label_value_problem(value)
        if why:
            bad.append(why)
        else:
            good[key] = value
    return good, bad


def labelled(doc: dict[str, Any], container_id: str, labels: dict[str, str]) -> dict[str, Any]:
    """``doc`` with the container's id and usable labels."""
    good, bad = usable_labels(labels)
    meta = dict(doc.get("metadata") or {})
    meta["labels"] = good
    annotations = dict(meta.get("annotations") or {})
    if bad:
        annotations[SKIPPED_ANNOTATION] = "; ".join(bad)
    meta["annotations"] = annotations
    spec = dict(doc.get("spec") or {})
    spec["containerID"] = container_id
    return {**doc, "metadata": meta, "spec": spec}


class LabelFollower:
    """Starts one short-lived worker per joined endpoint."""

    def __init__(self, ds: Datastore, engine: Engine, lock: AbstractContextManager[Any],
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.ds = ds
        self.engine = engine
        self.lock = lock  # the plugin's: the datastore is used by one call at a time
        self.clock = clock
        self.sleep = sleep
        self._stopping = threading.Event()

    def follow(self, network_id: str, endpoint_id: str, key: str) -> None:
        threading.Thread(target=self._run, args=(network_id, endpoint_id, key),
                         name=f"labels-{endpoint_id[:12]}", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()

    def _container(self, network_id: str, endpoint_id: str) -> str | None:
        net = self.engine.network(network_id)
        for cid, ep in ((net or {}).get("Containers") or {}).items():
            # "ep-<endpoint id>": joined, not yet tied to its container
            if ep.get("EndpointID") == endpoint_id and not cid.startswith("ep-"):
                return str(cid)
        return None

    def _run(self, network_id: str, endpoint_id: str, key: str) -> None:
        deadline = self.clock() + GIVE_UP_AFTER
        try:
            while not self._stopping.is_set() and self.clock() < deadline:
                cid = self._container(network_id, endpoint_id)
                if cid is not None:
                    labels = self.engine.container_labels(cid)
                    if labels is None:
                        log.info("container %s is gone before its labels were read", cid[:12])
                    else:
                        self._write(key, cid, labels)
                    return
                with self.lock:
                    if self.ds.get(key) is None:
                        return  # left before it ever ran
                self.sleep(POLL)
            log.warning("endpoint %s: no container took it within %.0f s; its labels are "
                        "not known", endpoint_id[:12], GIVE_UP_AFTER)
        except GinghamError as exc:
            log.warning("endpoint %s: container labels not applied: %s", endpoint_id[:12], exc)

    def _write(self, key: str, container_id: str, labels: dict[str, str]) -> None:
        for _ in range(20):
            with self.lock:
                kv = self.ds.get(key)
                if kv is None or not isinstance(kv.value, dict):
                    return
                doc = labelled(kv.value, container_id, labels)
                skipped = doc["metadata"]["annotations"].get(SKIPPED_ANNOTATION)
                try:
                    self.ds.update(key, doc, revision=kv.mod_revision)
                except NotFound:
                    return
                except RevisionConflict:
                    continue
            if skipped:
                log.warning("container %s: labels not used for policy: %s",
                            container_id[:12], skipped)
            return
        log.warning("container %s: its endpoint %s kept changing; labels not written",
                    container_id[:12], key)
