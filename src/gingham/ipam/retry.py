"""IPAM's compare-and-swap retries: the datastore's :class:`~gingham.datastore.retry.Backoff`,
giving up with :class:`~gingham.errors.IPAMError` (what IPAM's callers handle)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gingham.datastore.retry import MAX_ATTEMPTS
from gingham.datastore.retry import Backoff as _Backoff
from gingham.errors import IPAMError


@dataclass(slots=True)
class Backoff(_Backoff):
    gives_up: Callable[[str], BaseException] = IPAMError


__all__ = ["MAX_ATTEMPTS", "Backoff"]
