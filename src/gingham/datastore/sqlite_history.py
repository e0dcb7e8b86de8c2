"""What the sqlite backend writes and its watches read: the ``history`` table's
event types and the key range of a prefix.

Its own module so that ``sqlite.py`` and ``sqlite_watch.py`` share these words
without importing each other at run time.
"""

from __future__ import annotations

from typing import Final

# history.type
HISTORY_PUT: Final = 0
HISTORY_DELETE: Final = 1


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``.

    UTF-8 keeps code-point order, so bumping the last character bounds the
    range for sqlite's byte-wise BINARY collation too. None: no upper bound.
    """
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None
