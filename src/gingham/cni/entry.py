"""CNI entry points (placeholder until the CNI plugin lands): stdlib only."""

from __future__ import annotations

import json
import sys


def _not_ready() -> int:
    json.dump({"cniVersion": "1.0.0", "code": 4, "msg": "gingham CNI plugin not built yet"}, sys.stdout)
    return 1


def main() -> int:
    return _not_ready()


def ipam_main() -> int:
    return _not_ready()
