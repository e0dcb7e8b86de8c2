"""CNI entry points for ``gingham-cni`` and ``gingham-ipam``.

A runtime executes these once per container operation, so this module
imports only the standard library; the code that does real work (IPAM,
datastore, veth plumbing) is imported only after the command is known.
Every failure is reported as CNI error JSON on stdout (the runtime reads
stdout, not stderr) with a non-zero exit status.

Secrets: whatever part of the plugin learns a datastore password registers
it with ``keep_secret``; every error and log line goes through ``scrub``
before it leaves the process, so a message built from a URL (or from an
exception that quotes one) cannot carry the password out, whatever the
redaction further down did with it.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

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


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _version_of(conf: dict[str, Any] | None) -> str:
    if conf and isinstance(conf.get("cniVersion"), str):
        return str(conf["cniVersion"])
    return DEFAULT_VERSION


def read_config(stdin_text: str) -> dict[str, Any]:
    if not stdin_text.strip():
        raise PluginError(ERR_DECODE, "no network configuration on stdin")
    try:
        conf = json.loads(stdin_text)
    except ValueError as exc:
        raise PluginError(ERR_DECODE, "network configuration is not JSON", str(exc)) from None
    if not isinstance(conf, dict):
        raise PluginError(ERR_DECODE, "network configuration must be a JSON object")
    version = conf.get("cniVersion", DEFAULT_VERSION)
    if version not in SUPPORTED_VERSIONS:
        raise PluginError(
            ERR_INCOMPATIBLE_VERSION,
            f"unsupported cniVersion {version!r}",
            f"supported: {', '.join(SUPPORTED_VERSIONS)}",
        )
    return conf


def _run(ipam_only: bool) -> int:
    command = os.environ.get("CNI_COMMAND", "")
    conf: dict[str, Any] | None = None
    try:
        if command == "VERSION":
            _emit(
                {
                    "cniVersion": SUPPORTED_VERSIONS[-1],
                    "supportedVersions": list(SUPPORTED_VERSIONS),
                }
            )
            return 0
        if command not in ("ADD", "DEL", "CHECK", "STATUS", "GC"):
            raise PluginError(ERR_INVALID_ENV, f"unknown or missing CNI_COMMAND {command!r}")
        conf = read_config(sys.stdin.read())
        from gingham.cni import plugin  # deferred: the heavy part

        result = plugin.dispatch(command, conf, dict(os.environ), ipam_only=ipam_only)
        if result is not None:
            _emit(result)
        return 0
    except PluginError as exc:
        err: dict[str, Any] = {
            "cniVersion": _version_of(conf),
            "code": exc.code,
            "msg": scrub(exc.msg),
        }
        if exc.details:
            err["details"] = scrub(exc.details)
        _emit(err)
        return 1
    except Exception as exc:
        _emit(
            {
                "cniVersion": _version_of(conf),
                "code": ERR_IO,
                "msg": f"internal error: {type(exc).__name__}",
                "details": scrub(str(exc)),
            }
        )
        return 1


def main() -> int:
    return _run(ipam_only=False)


def ipam_main() -> int:
    return _run(ipam_only=True)


if __name__ == "__main__":
    # Run as `python -m`, this file is `__main__`: use the real module, so its
    # PluginError is the class the plugin raises.
    from gingham.cni.entry import main as _main

    sys.exit(_main())
