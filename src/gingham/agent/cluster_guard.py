"""Which datastore this host's dataplane belongs to.

An agent pointed at the wrong datastore (a mistyped URL, a wiped etcd, a
fresh one) would see "no policies, no endpoints" and remove everything it had
programmed. The guard prevents that: the agent programs the kernel only for a
datastore that carries a cluster ID (``gingham.datastore.cluster``) and, once
it has programmed a host, only for that same ID, remembered in a file beside
the host's other run-time state. ``/run`` is emptied on reboot together with
the kernel state the ID describes, so the two stay in step.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class ClusterGuard:
    path: Path | None  # where the remembered ID lives; None remembers in memory only
    datastore_url: str = "the datastore"
    _remembered: str | None = None
    _loaded: bool = False

    def remembered(self) -> str | None:
        if not self._loaded:
            self._loaded = True
            if self.path is not None:
                with contextlib.suppress(FileNotFoundError):
                    self._remembered = self.path.read_text().strip() or None
        return self._remembered

    def check(self, seen: str | None) -> str:
        """Why the dataplane must be left alone for cluster ``seen``; "" if it need not."""
        if seen is None:
            return (
                f"{self.datastore_url} has no cluster ID: it is empty, was never initialised or"
                " is not the datastore this host should use. If it is the right one, run"
                " `gingham datastore init` against it; until then this host's dataplane is left"
                " as it is."
            )
        remembered = self.remembered()
        if remembered is not None and remembered != seen:
            where = f" (remembered in {self.path})" if self.path else ""
            return (
                f"{self.datastore_url} belongs to cluster {seen}, but this host's dataplane was"
                f" programmed for cluster {remembered}{where}. If this host now belongs to"
                f" cluster {seen}, delete that file and the agent reprograms the host; until"
                " then its dataplane is left as it is."
            )
        return ""

    def remember(self, seen: str) -> None:
        """Record ``seen`` before the first change to the kernel for it."""
        if self.remembered() == seen:
            return
        self._remembered = seen
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(seen + "\n")
        os.replace(tmp, self.path)  # a reader never sees a half-written ID
        log.info("this host's dataplane now belongs to cluster %s", seen)
