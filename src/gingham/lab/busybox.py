"""A busybox image for a lab's Docker daemons, which reach no registry.

A root filesystem holding the machine's static busybox (Debian
busybox-static) and its applet links, as a tar for ``docker import``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from gingham.errors import LabError


def build_image(directory: Path) -> Path:
    """A tar of a busybox root filesystem, made once in ``directory``; its path.

    ``busybox --install -s`` runs inside a chroot of the new root: from the
    machine it would link to where busybox is on the machine.
    """
    tar = directory / "busybox-rootfs.tar"
    if tar.exists():
        return tar
    busybox = shutil.which("busybox") or "/bin/busybox"
    root = directory / "busybox-rootfs"
    shutil.rmtree(root, ignore_errors=True)
    for sub in ("bin", "etc", "dev", "proc", "sys", "root"):
        (root / sub).mkdir(parents=True)
    (root / "tmp").mkdir(mode=0o1777)
    os.chmod(root / "tmp", 0o1777)
    shutil.copy2(busybox, root / "bin" / "busybox")
    proc = subprocess.run(["chroot", str(root), "/bin/busybox", "--install", "-s", "/bin"],
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    if proc.returncode != 0:
        raise LabError(f"cannot install busybox in {root} ({busybox} must be static, Debian "
                       f"busybox-static): {proc.stderr.strip()}")  # fmt: skip
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    tmp = tar.with_suffix(".tar.new")
    with tarfile.open(tmp, "w") as t:
        t.add(root, arcname=".")
    tmp.replace(tar)
    shutil.rmtree(root, ignore_errors=True)
    return tar
