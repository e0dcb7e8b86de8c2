"""The plugin programs a runtime executes: this interpreter with ``-I -S``, written to a file.

A runtime starts the plugin for every container and waits for it, and ``site``
(the scan of site-packages and its .pth files) costs a plugin start about
20 ms here, more than the rest of the path to the agent: the launcher skips
it and puts the interpreter's own site-packages directory on the path
instead. Only the direct path needs the rest of ``site``, and ``entry.py``
loads it then. ``-I`` also keeps the runtime's PYTHON* variables and working
directory out of a root process.

What a launcher depends on is the interpreter (``sys.executable``, not resolved:
a venv's ``bin/python`` link is what makes it that venv) and that
interpreter's site-packages, both named by absolute path when it is written;
never the directory gingham's source was in. A wheel install (``pip install
gingham``, ``pip install .``) puts gingham in site-packages itself; an
editable one (``pip install -e``) leaves a .pth file there naming the
checkout, which the launcher reads (its path lines, as ``site`` would) when
gingham is not in site-packages. So a checkout moved and installed again
into the same interpreter keeps its launchers working, and a launcher stops
working only with its interpreter: rerun ``gingham cni install`` after
recreating or moving the venv (docs/INSTALL.md).

``gingham cni install`` writes these into the runtime's plugin directory; the
lab writes its own, so that it runs the plugin as an installed runtime would.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from gingham.errors import GinghamError

ENTRIES = {"gingham": "main", "gingham-ipam": "ipam_main"}  # plugin type -> entry function

# The launcher's body after its first lines; {entry} is the entry function.
_BODY = """\
try:
    from gingham.cni.entry import {entry}
except ModuleNotFoundError as exc:
    if exc.name != "gingham":
        raise
    # An editable install: gingham's directory is in a .pth file here, which only
    # site reads; the path lines alone, without site's cost.
    import os
    for _pth in sorted(os.listdir(SITE)):
        if _pth.endswith(".pth"):
            with open(os.path.join(SITE, _pth)) as _f:
                sys.path.extend(line.rstrip("\\n") for line in _f
                                if line.strip() and not line.startswith(("#", "import")))
    try:
        from gingham.cni.entry import {entry}
    except ModuleNotFoundError:
        import site  # a .pth that runs code (an import hook): all of site, then
        site.main()
        from gingham.cni.entry import {entry}
sys.exit({entry}())
"""


def site_dir() -> str:
    """The site-packages directory of this interpreter that gingham is reached from.

    GinghamError when this interpreter does not find gingham by itself (run from
    a source tree through PYTHONPATH, say): a launcher could not either."""
    import site
    import sysconfig

    import gingham

    home = os.path.realpath(Path(gingham.__file__).parent.parent)
    candidates = [sysconfig.get_path("purelib"), sysconfig.get_path("platlib"),
                  *site.getsitepackages()]
    for directory in candidates:
        if os.path.realpath(directory) == home:
            return directory  # installed from a wheel
    for directory in candidates:
        with contextlib.suppress(OSError):
            for name in sorted(os.listdir(directory)):
                if name.endswith(".pth") and _names(Path(directory) / name, home):
                    return directory  # an editable install
    raise GinghamError(
        f"gingham is imported from {home}, which {sys.executable} does not find by itself "
        "(PYTHONPATH?): install gingham into that Python (pip install) first")


def _names(pth: Path, home: str) -> bool:
    try:
        lines = pth.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return False
    return any(os.path.realpath(line.strip()) == home for line in lines
               if line.strip() and not line.startswith(("#", "import")))


def launcher(entry: str, site: str | None = None) -> str:
    site = site or site_dir()
    return (f"#!{sys.executable} -IS\n"
            "# gingham's CNI plugin, written by `gingham cni install`: the Python above, with\n"
            "# gingham from its site-packages (gingham/cni/launcher.py says why).\n"
            "import sys\n"
            f"SITE = {site!r}\n"
            "sys.path.insert(0, SITE)\n"
            + _BODY.format(entry=entry))


def write_launcher(path: Path, entry: str) -> None:
    """``path`` becomes the launcher of ``entry`` (0755), whole or not at all."""
    text = launcher(entry)
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o755)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o755)  # whatever the umask
        if path.is_symlink():
            path.unlink()  # an older install linked the console scripts
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
