"""``gingham node install`` / ``uninstall``: the files that make a host a gingham node.

What is written (under a prefix, ``/`` by default):

    /etc/systemd/system/gingham-{node,fanout,docker}.service   0644
    /etc/gingham/gingham.env                                   0600 (the datastore URL)
    /opt/cni/bin/gingham, /opt/cni/bin/gingham-ipam            0755 (cni/launcher.py)
    /etc/cni/net.d/10-gingham.conflist                         0644
    /etc/cni/net.d/10-gingham.credentials                      0600, when the URL has them
    /var/lib/gingham/node-install.json                         what was written, and its digest

The last file is how ``uninstall`` knows what is its own: it removes what the
install wrote and leaves a file someone changed since (naming it), as a
package manager keeps an edited configuration file. Installing again writes
only what differs, and removes what an earlier install wrote and this one
does not (the credentials of a URL that no longer has any).

Everything is planned, and every input checked, before the first file is
written. Paths in the units and launchers are those of the running Python
and its ``gingham`` program: ``--prefix`` stages the files for a root that
has them at the same place (an image being built, a test).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from gingham.errors import GinghamError
from gingham.files import write_atomic
from gingham.systemd_units import ENV_FILE, UNIT_NAMES, render, render_env

__all__ = ["MANIFEST", "UNIT_NAMES", "Change", "File", "install", "plan", "read_manifest",
           "systemctl", "systemd_running", "uninstall", "unit_paths"]

UNIT_DIR = "/etc/systemd/system"
CNI_BIN_DIR = "/opt/cni/bin"
CNI_CONF_DIR = "/etc/cni/net.d"
CNI_NETWORK = "gingham"
MANIFEST = "/var/lib/gingham/node-install.json"
_PRIVATE_DIRS = {str(Path(ENV_FILE).parent)}  # made 0700 when they do not exist yet
_OWN_DIRS = (str(Path(ENV_FILE).parent), str(Path(MANIFEST).parent))


@dataclass(frozen=True)
class File:
    path: str  # absolute, as on the installed host (the prefix not included)
    text: str
    mode: int


@dataclass(frozen=True)
class Change:
    action: str  # create, update, unchanged, remove, keep (changed since install), absent
    path: str


def digest(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def gingham_program() -> str:
    """The absolute path of this installation's ``gingham`` (its console script)."""
    for directory in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        candidate = os.path.join(directory, "gingham")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    raise GinghamError(
        f"no `gingham` program beside {sys.executable}: install gingham into that Python "
        "(pip install) so that the units can run it")


def plan(datastore: str, node: str) -> list[File]:
    """Every file an install writes, in the order it writes them. Raises before any is."""
    from gingham.cli.cni import cni_files

    units = render(gingham_program(), node)
    env = render_env(datastore)  # refuses a URL the file cannot hold
    out = [File(str(f.path), f.text, f.mode)
           for f in cni_files(CNI_NETWORK, node, None, True, Path(CNI_BIN_DIR),
                              Path(CNI_CONF_DIR), datastore)]  # fmt: skip
    out.append(File(ENV_FILE, env, 0o600))
    out.extend(File(f"{UNIT_DIR}/{name}", text, 0o644) for name, text in units.items())
    return out


def _under(prefix: Path, path: str) -> Path:
    return prefix / path.lstrip("/")


def _current(path: Path) -> str | None:
    """The digest of what is at ``path`` now; None when there is no regular file."""
    try:
        if path.is_symlink() or not path.is_file():
            return "not-a-file" if path.is_symlink() else None
        return digest(path.read_bytes())
    except OSError:
        return None


def read_manifest(prefix: Path) -> dict[str, str]:
    """Path -> digest of what the last install wrote; {} when none did."""
    where = _under(prefix, MANIFEST)
    try:
        doc = json.loads(where.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise GinghamError(f"{where}: unreadable ({exc}): remove it to start afresh") from None
    files = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(files, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise GinghamError(f"{where}: not a node-install manifest: remove it to start afresh")
    return dict(files)


def install(prefix: Path, files: list[File], dry_run: bool) -> list[Change]:
    before = read_manifest(prefix)
    wanted = {f.path for f in files}
    changes: list[Change] = []
    for f in files:
        target = _under(prefix, f.path)
        now = _current(target)
        if now == digest(f.text) and (target.stat().st_mode & 0o7777) == f.mode:
            changes.append(Change("unchanged", f.path))
            continue
        changes.append(Change("create" if now is None else "update", f.path))
        if not dry_run:
            _make_parent(target, prefix)
            write_atomic(target, f.text, f.mode)
    for path, was in sorted(before.items()):
        if path not in wanted:
            changes.append(_remove(prefix, path, was, dry_run))
    manifest = json.dumps({"files": {f.path: digest(f.text) for f in files}}, indent=2) + "\n"
    if not dry_run:
        target = _under(prefix, MANIFEST)
        _make_parent(target, prefix)
        write_atomic(target, manifest, 0o644)
    return changes


def uninstall(prefix: Path, dry_run: bool) -> list[Change]:
    before = read_manifest(prefix)
    changes = [_remove(prefix, path, was, dry_run) for path, was in sorted(before.items())]
    if not dry_run:
        with contextlib.suppress(FileNotFoundError):
            _under(prefix, MANIFEST).unlink()
        for c in changes:
            if c.action == "remove":
                _prune_wants(prefix, c.path)
        for directory in _OWN_DIRS:  # gingham's own, once empty; never /etc/cni or /opt
            with contextlib.suppress(OSError):
                _under(prefix, directory).rmdir()
    return changes


def _remove(prefix: Path, path: str, was: str, dry_run: bool) -> Change:
    target = _under(prefix, path)
    now = _current(target)
    if now is None:
        return Change("absent", path)
    if now != was:
        return Change("keep", path)
    if not dry_run:
        target.unlink()
    return Change("remove", path)


def _prune_wants(prefix: Path, path: str) -> None:
    """Links ``systemctl enable`` left to a unit file just removed (a prefix: no systemctl).
    Their targets are absolute paths of the installed root, so they are looked at under
    ``prefix``."""
    if not path.startswith(UNIT_DIR + "/"):
        return
    for wants in _under(prefix, UNIT_DIR).glob("*.wants"):
        link = wants / Path(path).name  # not glob()'s: it skips a link whose target is gone
        if not link.is_symlink():
            continue
        target = os.readlink(link)
        resolved = _under(prefix, target) if target.startswith("/") else link.parent / target
        if not resolved.exists():
            link.unlink()


def _make_parent(target: Path, prefix: Path) -> None:
    parent = target.parent
    if parent.is_dir():
        return  # an operator's directory keeps its mode
    parent.mkdir(parents=True, exist_ok=True)
    private = "/" + parent.relative_to(prefix).as_posix() in _PRIVATE_DIRS
    os.chmod(parent, 0o700 if private else 0o755)  # whatever the umask


def systemd_running() -> bool:
    """As sd_booted(3): systemd is this machine's init."""
    return os.path.isdir("/run/systemd/system") and shutil.which("systemctl") is not None


def systemctl(*args: str) -> str | None:
    """Run ``systemctl args``; None when it worked, else what it said."""
    proc = subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    return None if proc.returncode == 0 else (proc.stderr or proc.stdout).strip()


def unit_paths(changes: list[Change]) -> list[str]:
    return [c.path for c in changes if c.path.startswith(UNIT_DIR + "/")
            and Path(c.path).name in UNIT_NAMES]  # fmt: skip
