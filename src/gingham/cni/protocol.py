"""What passes between the plugin and a CNI runtime: the specification's versions
and error codes, :class:`PluginError` (a failure reported as CNI error JSON),
and the scrubbing of secrets from everything the plugin prints.

STANDARD LIBRARY ONLY: ``entry.py`` imports this before it knows the command.
The one place the CNI error codes are spelled; the entry point, the plugin,
the configuration parser and the veth plumbing all import them from here.

Secrets: whatever part of the plugin learns a datastore password registers
it with ``keep_secret``; every error and log line goes through ``scrub``
before it leaves the process, so a message built from a URL (or from an
exception that quotes one) cannot carry the password out, whatever the
redaction further down did with it.
"""

from __future__ import annotations

import sys

SUPPORTED_VERSIONS = ("0.4.0", "1.0.0", "1.1.0")
DEFAULT_VERSION = "1.0.0"

# Error codes from the CNI specification.
ERR_INCOMPATIBLE_VERSION = 1
ERR_UNSUPPORTED_FIELD = 2
ERR_UNKNOWN_CONTAINER = 3
ERR_INVALID_ENV = 4
ERR_IO = 5
ERR_DECODE = 6
ERR_INVALID_CONFIG = 7
ERR_TRY_AGAIN = 11
ERR_PLUGIN_NOT_AVAILABLE = 50
ERR_LIMITED_CONNECTIVITY = 51


_secrets: set[str] = set()


def keep_secret(value: str) -> None:
    """Never let ``value`` (or its URL-quoted forms) reach stdout or stderr."""
    if not value:
        return
    from urllib.parse import quote, quote_plus  # only when there is a secret at all

    _secrets.update({value, quote(value, safe=""), quote_plus(value), quote(value)})


def scrub(text: str) -> str:
    # longest first: a quoted form may contain the plain one
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def log(message: str) -> None:
    """One line on stderr: the runtime keeps it in its log, it never parses it."""
    sys.stderr.write(scrub(f"gingham-cni: {message}") + "\n")
    sys.stderr.flush()


class PluginError(Exception):
    """A failure to report to the runtime as CNI error JSON."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details
