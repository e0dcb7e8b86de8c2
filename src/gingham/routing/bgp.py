"""BGP for one host: :class:`~gingham.calc.messages.BgpUpdate` in, BIRD configured.

The graph sends BIRD's typed inputs (``BgpConfig``), never text; this manager
renders them (``bird_config.render_bird_config``) and hands the text to the
process driver, which starts BIRD, reloads it only when the text changed, or
stops it when BGP is off. It runs after the kernel routes (BIRD exports what
the agent programmed). A failure keeps the update pending: the agent's retry
applies it again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from gingham.calc.messages import BgpUpdate
from gingham.routing.bird_config import render_bird_config

log = logging.getLogger(__name__)


class BirdControl(Protocol):
    """What :class:`~gingham.routing.bird.BirdProcess` offers."""

    log: Path

    def running(self) -> bool: ...
    def apply(self, text: str) -> str: ...
    def stop(self) -> None: ...


class BgpManager:
    def __init__(self, bird: BirdControl) -> None:
        self.bird = bird
        self._pending: BgpUpdate | None = None

    def apply(self, messages: Iterable[object]) -> None:
        for msg in messages:
            if isinstance(msg, BgpUpdate):
                self._pending = msg
        if self._pending is None:
            return
        config = self._pending.config
        if config is None:
            if self.bird.running():
                self.bird.stop()
                log.info("BIRD stopped: BGP is off")
        else:
            result = self.bird.apply(render_bird_config(config, log_file=str(self.bird.log)))
            if result != "unchanged":
                log.info("BIRD %s", result)
        self._pending = None
