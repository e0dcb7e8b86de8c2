"""BGP for one host: :class:`~gingham.calc.messages.BgpUpdate` in, BIRD configured.

The graph sends BIRD's typed inputs (``BgpConfig``), never text; this manager
reads the session passwords from their files (``secrets.read_passwords``: the
graph never reads files), renders the inputs (``bird_config.render_bird_config``)
and hands the text to the process driver, which starts BIRD, reloads it only
when the text changed, or stops it when BGP is off. It runs after the kernel
routes (BIRD exports what the agent programmed). A failure keeps the update
pending: the agent's retry applies it again.

A session whose password file is missing or unsafe, or of a family this host
has no address of, is left out; :meth:`BgpManager.notices` says which and why
(node status, /readyz). Password files are read on every render and, while the
configuration names any, again every ``recheck`` seconds (:meth:`BgpManager.due`),
so a changed or repaired file takes effect without a datastore change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from gingham.calc.messages import BgpConfig, BgpUpdate
from gingham.routing.bird_config import LeftOut, plan_sessions, render_bird_config
from gingham.routing.secrets import Passwords, read_passwords

log = logging.getLogger(__name__)

PASSWORD_RECHECK = 10.0  # seconds between two reads of unchanged password files


class BirdControl(Protocol):
    """What :class:`~gingham.routing.bird.BirdProcess` offers."""

    log: Path

    def running(self) -> bool: ...
    def apply(self, text: str) -> str: ...
    def stop(self) -> None: ...


class BgpManager:
    def __init__(self, bird: BirdControl,
                 read: Callable[[Iterable[str]], Passwords] = read_passwords,
                 recheck: float = PASSWORD_RECHECK) -> None:
        self.bird = bird
        self._read = read
        self._recheck = recheck
        self._pending: BgpUpdate | None = None
        self._config: BgpConfig | None = None  # what BIRD runs with now
        self._files: tuple[str, ...] = ()  # password files that config names
        self._next_check = 0.0
        self._notices: tuple[str, ...] = ()

    def due(self, now: float) -> bool:
        """Whether the agent should call :meth:`apply` although nothing changed: the
        password files are read again every ``recheck`` seconds."""
        if not self._files or now < self._next_check:
            return False
        self._next_check = now + self._recheck
        if self._pending is None:
            self._pending = BgpUpdate(self._config)
        return True

    def notices(self) -> list[str]:
        """Sessions left out of BIRD's configuration, and why."""
        return list(self._notices)

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
            self._files, self._notices = (), ()
        else:
            files = tuple(sorted({s.password_file for s in plan_sessions(
                config.settings, config.me, config.hosts) if s.password_file is not None}))
            passwords = self._read(files)
            notes: list[LeftOut] = []
            text = render_bird_config(config, log_file=str(self.bird.log),
                                      secrets=passwords.secrets, notes=notes)
            result = self.bird.apply(text)
            if result != "unchanged":
                log.info("BIRD %s", result)
            notices = tuple(
                f"BGP session {n.session} left out: "
                + passwords.problems.get(n.password_file or "", n.reason)
                for n in notes)
            if notices != self._notices:
                for line in notices:
                    log.warning("%s", line)
            self._files, self._notices = files, notices
        self._config = config
        self._pending = None
