"""One way to write a point in time: RFC 3339 in UTC with a ``Z``.

Everything gingham prints or stores for people and scripts (CLI columns, JSON
output, logs, status files) uses it, so times from different hosts and commands
sort and compare as text.
"""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(epoch: float | None = None, *, precision: str = "milliseconds") -> str:
    """``2026-12-02T14:03:05.123Z`` for a Unix time (now if None); ``precision``
    as ``datetime.isoformat``'s ``timespec`` (``seconds`` for stored metadata)."""
    moment = datetime.now(UTC) if epoch is None else datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec=precision).replace("+00:00", "Z")


def epoch(value: object) -> float | None:
    """A Unix time from what :func:`rfc3339` wrote (any ISO 8601 text with a zone) or from a
    number (files written before times were text); None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        return moment.timestamp() if moment.tzinfo is not None else None
    return None
