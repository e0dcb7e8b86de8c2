"""Compare-and-swap retries with jittered exponential backoff (no locks anywhere).

Every write gingham makes is compare-and-swap on a revision; a writer that
loses a race reads again and retries. This is the one loop that does it, for
the datastore's resource store, IPAM, the agent's Node writes, the CNI
plugin, the lab and the CLI alike. A step signals a lost race by raising
:class:`~gingham.errors.RevisionConflict` (a step turns the create that met an
existing key, or the update of a key deleted since its read, into one); any
other error ends the loop at once.

Losers spread out: the first retries at once (the winner is usually done),
later ones wait a random time below ``base * 2**n``, capped, so two writers
that collided once are unlikely to collide again. Time and randomness are
passed in, so tests run without sleeping.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from gingham.errors import RevisionConflict

T = TypeVar("T")

MAX_ATTEMPTS = 100  # as Calico's IPAM does


@dataclass(slots=True)
class Backoff:
    """How a CAS loop waits between lost races, and what it raises when it gives up.

    ``gives_up`` makes the error from a message naming what was written and how
    many attempts were made; callers whose users expect another error (the CNI
    error JSON, a lab error) pass their own.
    """

    sleep: Callable[[float], None]
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = MAX_ATTEMPTS
    base: float = 0.0005
    cap: float = 0.05
    gives_up: Callable[[str], BaseException] = RevisionConflict

    def pause(self, attempt: int) -> None:
        """Wait after losing race number ``attempt`` (counted from 0)."""
        if attempt == 0:
            return  # the first loser retries at once: the winner is usually done
        self.sleep(self.rng.uniform(0, min(self.cap, self.base * (2 ** attempt))))

    def run(self, what: str, step: Callable[[], T]) -> T:
        """Call ``step`` until it stops raising RevisionConflict, at most ``attempts`` times."""
        for attempt in range(self.attempts):
            if attempt:
                self.pause(attempt - 1)
            try:
                return step()
            except RevisionConflict:
                continue
        raise self.gives_up(f"{what}: gave up after {self.attempts} compare-and-swap conflicts")
