"""CNI entry points for ``gingham-cni`` and ``gingham-ipam``.

A runtime executes these once per container operation, so this module
imports only the standard library; the code that does real work (IPAM,
datastore, veth plumbing) is imported only after the command is known.
Every failure is reported as CNI error JSON on stdout (the runtime reads
stdout, not stderr) with a non-zero exit status.

Every error goes through ``protocol.scrub`` before it leaves the process
(see ``protocol.py`` for why).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from gingham.cni.protocol import (
    DEFAULT_VERSION,
    ERR_DECODE,
    ERR_INCOMPATIBLE_VERSION,
    ERR_INVALID_ENV,
    ERR_IO,
    SUPPORTED_VERSIONS,
    PluginError,
    scrub,
)


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
    # Run as `python -m`, this file is `__main__`, a second copy of the module;
    # everything the plugin shares with it (PluginError, secrets) is in protocol.
    sys.exit(main())
