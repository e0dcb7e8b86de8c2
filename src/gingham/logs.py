"""How every gingham process writes its log: text (the default) or one JSON object a line.

Long-running processes (``node run``, ``fanout serve``, ``docker serve``) call
:func:`setup_logging` once at start; every other command calls
:func:`setup_cli_logging`, which leaves Python's default (warnings and errors,
the bare message, on stderr) alone for text and only changes its shape for
JSON.

A JSON line holds ``time`` (RFC 3339, UTC), ``level`` (lower case), ``logger``
and ``message``; then whatever the call passed as ``extra={...}`` (values JSON
cannot hold are written as their ``str``); then ``exception`` and ``stack``
(the formatted traceback) when there are any. An extra named like one of
those keys is written as ``extra_<name>`` so it never hides them.

The format comes from ``--log-format`` (the command's own, else the global
one) or ``GINGHAM_LOG_FORMAT``; text when neither says.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from typing import IO, Any

from gingham.timestamps import rfc3339

FORMATS = ("text", "json")

# Every attribute a LogRecord has of its own: what is left in its __dict__ is an extra.
_RECORD_FIELDS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}
_OWN_KEYS = frozenset({"time", "level", "logger", "message", "exception", "stack"})
# Set on the handlers this module installs, so a second call replaces them
# (and never a handler somebody else put on the root logger).
_MARK = "_gingham_handler"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": rfc3339(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key in _RECORD_FIELDS or key.startswith("_"):
                continue
            doc[f"extra_{key}" if key in _OWN_KEYS else key] = _jsonable(value)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        # One line whatever the message holds: json.dumps escapes newlines.
        return json.dumps(doc, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``<RFC 3339 time> LEVEL logger: message``, as the processes always wrote it
    but with the one time format gingham prints everywhere."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return rfc3339(record.created)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (as Python's last resort does),
    so a command run inside a test runner's captured stderr logs there."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> IO[str]:
        return sys.stderr


def _jsonable(value: object) -> object:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


def formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    if log_format == "text":
        return TextFormatter()
    raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {log_format!r}")


def setup_logging(
    level: int | str,
    log_format: str | None,
    *,
    stream: IO[str] | None = None,
    quiet: Iterable[str] = (),
) -> logging.Handler:
    """The root logger of a long-running process: ``level``, one handler on ``stream``
    (stderr) in ``log_format`` (None: text); loggers in ``quiet`` at WARNING."""
    handler: logging.Handler = (
        logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    )
    handler.setFormatter(formatter(log_format or "text"))
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else getattr(logging, level.upper()))
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler


def setup_cli_logging(log_format: str | None) -> None:
    """A short-lived command: JSON only changes the shape of what Python's last-resort
    handler prints (warnings and errors nobody else handles, on stderr)."""
    if log_format != "json":
        return
    handler = _StderrHandler()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(JsonFormatter())
    logging.lastResort = handler
