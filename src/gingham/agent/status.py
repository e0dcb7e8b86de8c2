"""What ``gingham node status --agent`` reads: ``$GINGHAM_RUN_DIR/<host>/status.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path

from gingham.agent.daemon import AgentState
from gingham.timestamps import rfc3339

STATUS_FILE = "status.json"


def write_status(path: Path, hostname: str, state: AgentState) -> None:
    """The agent's state, written whole (never half-read)."""
    doc = {
        "host": hostname,
        "ready": state.ready,
        "blocked": state.blocked,
        "invalidResources": [
            {
                "key": r.key,
                "kind": r.kind,
                "namespace": r.namespace,
                "name": r.name,
                "outcome": r.outcome,
                "reason": r.reason,
            }
            for r in state.invalid
        ],
        "notices": list(state.notices),
        "capabilities": [
            {"name": c.name, "present": c.present, "detail": c.detail}
            for c in (state.capabilities.items if state.capabilities is not None else ())
        ],
        "updated": rfc3339(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)
