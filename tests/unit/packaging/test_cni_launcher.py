"""The CNI plugin ``gingham cni install`` writes depends on its Python, never on where gingham's
source was: a checkout moved (and installed again into the same Python) keeps it working.

Each test builds a throwaway virtual environment of its own (no pip: the dependencies come
from this one's site-packages through a .pth line) with gingham installed into it as pip
would: a copy of the package in site-packages (a wheel), or a .pth file naming a checkout
(an editable install).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "src" / "gingham"


def make_venv(where: Path) -> tuple[Path, Path]:
    """A new venv's python and site-packages; this venv's packages (click, ...) visible."""
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    python = where / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print("
                                "sysconfig.get_path('purelib'))"], capture_output=True,
                               text=True, check=True, timeout=60).stdout.strip())  # fmt: skip
    # this venv's site-packages as a plain path: its own .pth files (gingham's editable
    # install of this checkout) are not read from there
    (site / "_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return python, site


def copy_package(to: Path) -> None:
    shutil.copytree(PACKAGE, to / "gingham", ignore=shutil.ignore_patterns("__pycache__"))


def cni_install(python: Path, tmp: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "gingham.cli.main", "--datastore", "sqlite:///nonexistent/x.db",
         "cni", "install", "--bin-dir", str(tmp / "bin"), "--conf-dir", str(tmp / "conf"),
         "--host", "h1"],
        capture_output=True, text=True, timeout=120, cwd=tmp, check=False,
        env={"PATH": "/usr/bin:/bin", **env})  # fmt: skip


def run_plugin(plugin: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(plugin)], env={"CNI_COMMAND": "VERSION"}, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip


def direct_del(plugin: Path) -> dict[str, object]:
    """A DEL the plugin runs itself (no agent): it needs httpx, from full site-packages."""
    conf = json.dumps({"cniVersion": "1.0.0", "name": "n", "nodename": "h1", "agent": False,
                       "datastore": "etcd://127.0.0.1:1"})
    proc = subprocess.run([str(plugin)], input=conf, env={"CNI_COMMAND": "DEL",
                          "CNI_CONTAINERID": "c1"}, capture_output=True, text=True, timeout=60)
    out: dict[str, object] = json.loads(proc.stdout)
    return out


def test_an_editable_checkout_moved_and_reinstalled_keeps_the_plugin_working(
        tmp_path: Path) -> None:
    python, site = make_venv(tmp_path / "venv")
    checkout = tmp_path / "checkout"
    copy_package(checkout / "src")
    (site / "_gingham.pth").write_text(f"{checkout / 'src'}\n")  # as `pip install -e` leaves
    proc = cni_install(python, tmp_path)
    assert proc.returncode == 0, proc.stderr
    plugin = tmp_path / "bin" / "gingham"
    text = plugin.read_text()
    assert str(checkout) not in text and str(ROOT / "src") not in text
    assert not plugin.is_symlink()
    assert text.splitlines()[0] == f"#!{python} -IS"
    assert run_plugin(plugin).returncode == 0

    moved = tmp_path / "moved-checkout"
    checkout.rename(moved)
    assert run_plugin(plugin).returncode != 0  # the install now names a checkout that is gone
    (site / "_gingham.pth").write_text(f"{moved / 'src'}\n")  # `pip install -e` again
    after = run_plugin(plugin)
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["supportedVersions"] == ["0.4.0", "1.0.0", "1.1.0"]
    assert direct_del(plugin)["code"] == 11  # httpx found, the etcd refused the connection


def test_a_wheel_install_needs_no_checkout_at_all(tmp_path: Path) -> None:
    python, site = make_venv(tmp_path / "venv")
    copy_package(site)  # where a wheel puts it
    proc = cni_install(python, tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in ("gingham", "gingham-ipam"):
        plugin = tmp_path / "bin" / name
        assert f"SITE = {str(site)!r}" in plugin.read_text()
        assert str(ROOT) not in plugin.read_text()
        got = run_plugin(plugin)
        assert got.returncode == 0, got.stderr
    assert direct_del(tmp_path / "bin" / "gingham")["code"] == 11


def test_refused_when_the_python_finds_gingham_only_through_pythonpath(tmp_path: Path) -> None:
    python, _site = make_venv(tmp_path / "venv")
    source = tmp_path / "source"
    copy_package(source)
    proc = cni_install(python, tmp_path, PYTHONPATH=str(source))
    assert proc.returncode == 1
    assert "does not find by itself" in proc.stderr
    assert not (tmp_path / "bin").exists() and not (tmp_path / "conf").exists()
