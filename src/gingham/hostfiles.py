"""Files the agent keeps for other programs on its host: one definition of each contract.

    $GINGHAM_RUN_DIR/<host>/mtu       the MTU workload interfaces get: one decimal
                                      number and a newline; written by the agent
                                      (``dataplane.mtu_file``), read by the CNI
                                      plugin at every ADD (absent or unreadable:
                                      the plugin's default)
    $GINGHAM_RUN_DIR/<host>/cni.sock  the agent's CNI socket (``agent/cni_server.py``):
                                      mode 0600, root only; ``gingham-cni`` hands
                                      its commands to it (``cni/client.py``)

``GINGHAM_RUN_DIR`` defaults to ``/run/gingham``. Standard library only, and
nothing but ``os`` at import: the CNI plugin's thin client imports this before
anything else, and ``pathlib`` alone costs it several milliseconds, so the
``Path`` forms are built on first use.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from pathlib import Path

RUN_DIR_ENV = "GINGHAM_RUN_DIR"  # what the agent and the CNI plugin of one host share
# Where labs keep their state and the current lab's name (default: DEFAULT_RUN_DIR).
LAB_RUN_DIR_ENV = "GINGHAM_LAB_RUN_DIR"
DEFAULT_RUN_DIR_TEXT = "/run/gingham"  # also where the lab keeps its state
DEFAULT_RUN_DIR: Path  # Path(DEFAULT_RUN_DIR_TEXT), made on first use (module __getattr__)
MTU_FILE = "mtu"
CNI_SOCKET = "cni.sock"


def __getattr__(name: str) -> object:
    # ``DEFAULT_RUN_DIR`` (a Path) for everyone but the CNI client: see the docstring.
    if name == "DEFAULT_RUN_DIR":
        from pathlib import Path

        value = Path(DEFAULT_RUN_DIR_TEXT)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run_dir_text(environ: dict[str, str] | None = None) -> str:
    """The run directory as a string: ``GINGHAM_RUN_DIR`` or the default."""
    env = os.environ if environ is None else environ
    return env.get(RUN_DIR_ENV) or DEFAULT_RUN_DIR_TEXT


def lab_run_dir(environ: dict[str, str] | None = None) -> Path:
    """The labs' directory: ``GINGHAM_LAB_RUN_DIR`` or the default run directory."""
    from pathlib import Path

    env = os.environ if environ is None else environ
    return Path(env.get(LAB_RUN_DIR_ENV) or DEFAULT_RUN_DIR_TEXT)


def run_dir() -> Path:
    from pathlib import Path

    return Path(run_dir_text())


def mtu_path(host: str, base: Path | None = None) -> Path:
    return (base if base is not None else run_dir()) / host / MTU_FILE


def cni_socket_text(host: str, base: str) -> str:
    """Where the agent of ``host`` listens for CNI commands, under run directory ``base``."""
    return f"{base.rstrip('/')}/{host}/{CNI_SOCKET}"


def cni_socket_path(host: str, base: Path | None = None) -> Path:
    return (base if base is not None else run_dir()) / host / CNI_SOCKET


def read_mtu(path: Path) -> int | None:
    """The MTU in ``path``; None when absent or not a number."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def write_mtu(path: Path, mtu: int) -> None:
    """Write ``mtu`` whole: a reader never sees an empty or half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(f"{mtu}\n")
    os.replace(tmp, path)
