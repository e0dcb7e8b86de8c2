"""The container's Docker labels onto its WorkloadEndpoint, once the container runs.

Docker sends a driver no labels, and asking the daemon about a container while
it is being started would wait on the start that is waiting on the driver. So
after Join a worker asks the daemon which container holds the endpoint, reads
its labels and turns the endpoint's pending record into its WorkloadEndpoint
(see ``network_driver``: until then agents drop the container's traffic).
Labels that cannot be label keys or values are left off by name in the log
and listed in an annotation, never silently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from gingham.datastore import keys
from gingham.datastore.base import Datastore, landed
from gingham.docker.engine import Engine
from gingham.errors import GinghamError
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
    """Starts one short-lived worker per joined endpoint of ``node``."""

    def __init__(self, ds: Datastore, node: str, engine: Engine,
                 lock: AbstractContextManager[Any],
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.ds = ds
        self.node = node
        self.engine = engine
        self.lock = lock  # the plugin's: the datastore is used by one call at a time
        self.clock = clock
        self.sleep = sleep
        self._stopping = threading.Event()

    def follow(self, network_id: str, endpoint_id: str) -> None:
        threading.Thread(target=self.run, args=(network_id, endpoint_id),
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

    def run(self, network_id: str, endpoint_id: str) -> None:
        """Wait for the container that holds the endpoint, then write its endpoint."""
        pending = keys.docker_pending_key(self.node, endpoint_id)
        deadline = self.clock() + GIVE_UP_AFTER
        try:
            while not self._stopping.is_set() and self.clock() < deadline:
                cid = self._container(network_id, endpoint_id)
                if cid is not None:
                    labels = self.engine.container_labels(cid)
                    if labels is None:
                        log.info("container %s is gone before its labels were read", cid[:12])
                    else:
                        self._write(pending, cid, labels)
                    return
                with self.lock:
                    if self.ds.get(pending) is None:
                        return  # left before it ever ran, or written already
                self.sleep(POLL)
            log.error("endpoint %s: no container took it within %.0f s; it stays without "
                      "traffic", endpoint_id[:12], GIVE_UP_AFTER)
        except GinghamError as exc:
            log.error("endpoint %s: container labels not read, it stays without traffic: %s",
                      endpoint_id[:12], exc)

    def _write(self, pending: str, container_id: str, labels: dict[str, str]) -> None:
        """The pending record becomes the WorkloadEndpoint, in one transaction: never
        after DeleteEndpoint removed the record, never over one written already."""
        for _ in range(20):
            with self.lock:
                kv = self.ds.get(pending)
                if kv is None or not isinstance(kv.value, dict):
                    return
                doc = labelled(kv.value, container_id, labels)
                meta = doc["metadata"]
                key = keys.resource_key("WorkloadEndpoint", meta["name"], meta["namespace"])
                puts = {key: doc}
                if not landed(self.ds.txn({pending: kv.mod_revision, key: 0}, puts, [pending]),
                              puts):
                    continue
            if SKIPPED_ANNOTATION in meta["annotations"]:
                log.warning("container %s: labels not used for policy: %s",
                            container_id[:12], meta["annotations"][SKIPPED_ANNOTATION])
            return
        log.error("container %s: its endpoint record %s kept changing; not written",
                  container_id[:12], pending)
