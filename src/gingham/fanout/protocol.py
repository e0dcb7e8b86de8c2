"""Frames between the fan-out server and its clients: one JSON object a line.

    {"t": "snapshot", "rev": R, "items": [[key, value], ...]}   first frame of a connection
    {"t": "deltas", "rev": R, "updates": [[key, value | null], ...]}
    {"t": "ping", "rev": R}                                       keeps idle connections honest

A value of ``null`` means the key is absent now (deleted, expired or gone
during a resync), as in the syncer. Pure: no I/O here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gingham.errors import ValidationError

KINDS = ("snapshot", "deltas", "ping")


@dataclass(frozen=True, slots=True)
class Frame:
    kind: str
    revision: int
    updates: tuple[tuple[str, Any], ...] = ()


def encode_frame(frame: Frame) -> bytes:
    body: dict[str, Any] = {"t": frame.kind, "rev": frame.revision}
    if frame.kind == "snapshot":
        body["items"] = [list(u) for u in frame.updates]
    elif frame.kind == "deltas":
        body["updates"] = [list(u) for u in frame.updates]
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def _frame(line: bytes, position: int) -> Frame:
    try:
        body = json.loads(line)
    except ValueError as exc:
        raise ValidationError(f"not JSON: {exc}", f"fan-out frame {position}") from None
    if not isinstance(body, dict) or body.get("t") not in KINDS:
        raise ValidationError("no valid 't' (snapshot|deltas|ping)", f"fan-out frame {position}")
    rev = body.get("rev")
    if not isinstance(rev, int):
        raise ValidationError("'rev' must be an integer", f"fan-out frame {position}")
    field = {"snapshot": "items", "deltas": "updates"}.get(body["t"])
    updates: list[tuple[str, Any]] = []
    if field is not None:
        raw = body.get(field)
        if not isinstance(raw, list):
            raise ValidationError(f"'{field}' must be a list", f"fan-out frame {position}")
        for i, item in enumerate(raw):
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
                raise ValidationError(
                    "must be [key, value]", f"fan-out frame {position}: {field}[{i}]"
                )
            updates.append((item[0], item[1]))
    return Frame(body["t"], rev, tuple(updates))


def decode_frames(buffer: bytes, first_position: int = 0) -> tuple[list[Frame], bytes]:
    """Complete frames in ``buffer`` and the incomplete rest (to prepend to the next read)."""
    frames: list[Frame] = []
    *lines, rest = buffer.split(b"\n")
    for i, line in enumerate(lines):
        if line:
            frames.append(_frame(line, first_position + i))
    return frames, rest
