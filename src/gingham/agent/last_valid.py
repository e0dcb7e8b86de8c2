"""The last valid versions of invalid keys, in files that outlive the agent.

One file per key, named by a digest of the key (keys are anyone's bytes), in
``$GINGHAM_RUN_DIR/<host>/last-valid/``. ``/run`` is emptied on reboot with
the kernel state these versions were enforced in, so the two stay in step.
Only keys that are invalid now are kept (``retain`` drops the rest after
each snapshot), so the directory stays small. A file that cannot be read is
as good as none: the caller then treats the key as never seen valid.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class FileMemory:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
        return self.directory / f"{digest[:40]}.json"

    def save(self, key: str, document: Mapping[str, Any]) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self._path(key)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"key": key, "document": document}, f)
        os.replace(tmp, path)  # never half a file

    def recall(self, key: str) -> Mapping[str, Any] | None:
        entry = self._read(self._path(key))
        if entry is None or entry.get("key") != key:
            return None
        document = entry.get("document")
        return document if isinstance(document, dict) else None

    def forget(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def retain(self, keys: Collection[str]) -> None:
        """Drop every remembered version but those of ``keys``."""
        if not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            entry = self._read(path) if path.suffix == ".json" else None
            if entry is None or entry.get("key") not in keys:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        try:
            entry = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as exc:
            log.warning("ignoring an unreadable remembered version %s: %s", path, exc)
            return None
        return entry if isinstance(entry, dict) else None
