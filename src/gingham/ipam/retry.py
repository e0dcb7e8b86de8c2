"""Bounded compare-and-swap retries with jittered backoff (no locks anywhere)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from gingham.errors import IPAMError, RevisionConflict

T = TypeVar("T")

MAX_ATTEMPTS = 100


@dataclass(slots=True)
class Backoff:
    """How a CAS loop waits between lost races; time and randomness are injected."""

    sleep: Callable[[float], None]
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = MAX_ATTEMPTS
    base: float = 0.0005
    cap: float = 0.05

    def pause(self, attempt: int) -> None:
        if attempt == 0:
            return  # the first loser retries at once: the winner is usually done
        self.sleep(self.rng.uniform(0, min(self.cap, self.base * (2 ** attempt))))

    def run(self, what: str, step: Callable[[], T]) -> T:
        """Call ``step`` until it stops raising RevisionConflict, at most ``attempts`` times."""
        for attempt in range(self.attempts):
            try:
                return step()
            except RevisionConflict:
                self.pause(attempt)
        raise IPAMError(f"{what}: gave up after {self.attempts} compare-and-swap conflicts")
