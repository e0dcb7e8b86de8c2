"""The workload MTU the CNI plugin reads: ``$GINGHAM_RUN_DIR/<host>/mtu`` (``gingham.hostfiles``)."""

from __future__ import annotations

from pathlib import Path

from gingham.calc.messages import MtuUpdate
from gingham.errors import DataplaneError
from gingham.hostfiles import read_mtu, write_mtu


class MtuFile:
    """Writes the MTU from :class:`MtuUpdate` when the file says otherwise."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._desired: int | None = None
        self._written: int | None = None  # None: not known, read the file

    def on_update(self, msg: MtuUpdate) -> None:
        self._desired = msg.mtu

    def apply(self) -> bool:
        if self._desired is None:
            return False
        if self._written is None:
            self._written = read_mtu(self.path)
        if self._written == self._desired:
            return False
        try:
            write_mtu(self.path, self._desired)
        except OSError as exc:
            self._written = None
            raise DataplaneError(f"cannot write the workload MTU to {self.path}: {exc}") from exc
        self._written = self._desired
        return True
