"""CNI entry points for ``gingham-cni`` and ``gingham-ipam``.

A runtime executes these once per container operation and waits for them,
so the path most calls take imports next to nothing: VERSION is answered
here, and every other command goes first to the node agent through the thin
client (``client.py``: ``_socket``, ``_json`` and modules that import nothing
at run time). Only when no agent takes it does the plugin do the work itself
(``execute``, the direct path), importing what that needs (json, IPAM, the
datastore, ``plumbing.py``) then. The agent runs ``execute`` too, so both
paths answer alike.

Every failure is reported as CNI error JSON on stdout (the runtime reads
stdout, not stderr) with a non-zero exit status, and every error goes
through ``protocol.scrub`` before it leaves the process (see
``protocol.py`` for why).
"""

from __future__ import annotations

import os
import sys

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

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Mapping

    from gingham.cni.documents import ErrorDoc, JSONObject
    from gingham.cni.host import Host

COMMANDS = ("ADD", "DEL", "CHECK", "STATUS", "GC")


def version_text() -> str:
    """VERSION's answer, as ``json.dumps`` would print it (json is not imported for it)."""
    versions = ",".join(f'"{v}"' for v in SUPPORTED_VERSIONS)
    return f'{{"cniVersion":"{SUPPORTED_VERSIONS[-1]}","supportedVersions":[{versions}]}}\n'


def _version_of(conf: Mapping[str, object] | None) -> str:
    version = conf.get("cniVersion") if conf else None
    return version if isinstance(version, str) else DEFAULT_VERSION


def read_config(stdin_text: str) -> JSONObject:
    import json

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


def execute(command: str, stdin: bytes, env: Mapping[str, str], *, ipam_only: bool,
            host: Host | None = None) -> tuple[int, str]:
    """Run one CNI command on ``host`` (None: here, the direct path); its exit status and
    what to print on stdout."""
    import json

    conf: JSONObject | None = None
    try:
        if command not in COMMANDS:
            raise PluginError(ERR_INVALID_ENV, f"unknown or missing CNI_COMMAND {command!r}")
        conf = read_config(stdin.decode("utf-8", "surrogateescape"))
        from gingham.cni import plugin  # deferred: the heavy part

        result = plugin.dispatch(command, conf, env, ipam_only=ipam_only, host=host)
        out = "" if result is None else json.dumps(result, separators=(",", ":")) + "\n"
        return 0, out
    except PluginError as exc:
        err: ErrorDoc = {"cniVersion": _version_of(conf), "code": exc.code, "msg": scrub(exc.msg)}
        if exc.details:
            err["details"] = scrub(exc.details)
        return 1, json.dumps(err, separators=(",", ":")) + "\n"
    except Exception as exc:
        internal: ErrorDoc = {"cniVersion": _version_of(conf), "code": ERR_IO,
                              "msg": f"internal error: {type(exc).__name__}",
                              "details": scrub(str(exc))}  # fmt: skip
        return 1, json.dumps(internal, separators=(",", ":")) + "\n"


def _run(ipam_only: bool, exit_at_once: bool = False) -> int:
    """Run the command the environment names; its exit status. ``exit_at_once``: end the
    process as soon as the agent's answer is out (the interpreter's orderly shutdown
    costs a millisecond or two the runtime would wait for, and has nothing to do)."""
    command = os.environ.get("CNI_COMMAND", "")
    if command == "VERSION":
        sys.stdout.write(version_text())
        sys.stdout.flush()
        return 0
    stdin = b""
    if command in COMMANDS:
        stdin = sys.stdin.buffer.read()
        from gingham.cni.client import hand_to_agent

        answer = hand_to_agent(command, stdin, os.environ, ipam_only=ipam_only)
        if answer is not None:
            code, out, err = answer
            sys.stderr.buffer.write(err)
            sys.stderr.flush()
            sys.stdout.buffer.write(out)
            sys.stdout.flush()
            if exit_at_once:
                os._exit(code)
            return code
    if sys.flags.no_site:
        import site  # a launcher that skipped it for speed: the direct path needs site-packages

        site.main()
    code, text = execute(command, stdin, dict(os.environ), ipam_only=ipam_only)
    sys.stdout.write(text)
    sys.stdout.flush()
    return code


def main() -> int:
    """``gingham-cni``: for the plugin's own process only (it may end it at once)."""
    return _run(ipam_only=False, exit_at_once=True)


def ipam_main() -> int:
    return _run(ipam_only=True, exit_at_once=True)


if __name__ == "__main__":
    # Run as `python -m`, this file is `__main__`, a second copy of the module;
    # everything the plugin shares with it (PluginError, secrets) is in protocol.
    sys.exit(main())
