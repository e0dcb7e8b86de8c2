"""The plugin programs a runtime executes: this interpreter with ``-I -S``, written to a file.

A runtime starts the plugin for every container and waits for it, and ``site``
(the scan of site-packages and its .pth files) is about a tenth of a bare
interpreter's start here: the launcher skips it and puts gingham's own
directory on the path instead. Only the direct path needs site-packages, and
``entry.py`` loads them then. ``-I`` also keeps the runtime's PYTHON*
variables and working directory out of a root process.

``gingham cni install`` writes these into the runtime's plugin directory; the
lab writes its own, so that it runs the plugin as an installed runtime would.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

ENTRIES = {"gingham": "main", "gingham-ipam": "ipam_main"}  # plugin type -> entry function


def launcher(entry: str) -> str:
    import gingham

    home = str(Path(gingham.__file__).resolve().parent.parent)
    return (f"#!{sys.executable} -IS\n"
            "# gingham's CNI plugin, written by `gingham cni install`.\n"
            "import sys\n"
            f"sys.path.insert(0, {home!r})\n"
            f"from gingham.cni.entry import {entry}\n"
            f"sys.exit({entry}())\n")


def write_launcher(path: Path, entry: str) -> None:
    """``path`` becomes the launcher of ``entry`` (0755), whole or not at all."""
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o755)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(launcher(entry))
        os.chmod(tmp, 0o755)  # whatever the umask
        if path.is_symlink():
            path.unlink()  # an older install linked the console scripts
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
