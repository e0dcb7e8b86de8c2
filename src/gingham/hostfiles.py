"""Files the agent keeps for other programs on its host: one definition of each contract.

    $GINGHAM_RUN_DIR/<host>/mtu     the MTU workload interfaces get: one decimal
                                    number and a newline; written by the agent
                                    (``dataplane.mtu_file``), read by the CNI
                                    plugin at every ADD (absent or unreadable:
                                    the plugin's default)

``GINGHAM_RUN_DIR`` defaults to ``/run/gingham``. Standard library only: the
CNI plugin imports this on its fast path.
"""

from __future__ import annotations

import os
from pathlib import Path

RUN_DIR_ENV = "GINGHAM_RUN_DIR"  # what the agent and the CNI plugin of one host share
DEFAULT_RUN_DIR = Path("/run/gingham")  # also where the lab keeps its state
MTU_FILE = "mtu"


def run_dir() -> Path:
    return Path(os.environ.get(RUN_DIR_ENV) or DEFAULT_RUN_DIR)


def mtu_path(host: str, base: Path | None = None) -> Path:
    return (base if base is not None else run_dir()) / host / MTU_FILE


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
