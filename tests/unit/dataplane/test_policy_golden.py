"""Golden files: the full-sync nft script of each representative scenario.

Regenerate after an intended change with ``GINGHAM_UPDATE_GOLDEN=1`` and
review the diff: every line is what the kernel will be told.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gingham.dataplane.apply import Applier
from gingham.dataplane.managers import PolicyDataplane
from gingham.dataplane.nft_fake import FakeNFT
from tests.unit.dataplane.test_policy_scenarios import SCENARIOS

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "nft"


def render_scenario(name: str) -> str:
    dp = PolicyDataplane()
    dp.on_messages(SCENARIOS[name]())
    applier = Applier(FakeNFT(strict=True), dp)
    applier.apply()
    assert applier.last_tx is not None
    return applier.last_tx.render()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden(name: str) -> None:
    text = render_scenario(name)
    path = GOLDEN / f"{name}.nft"
    if os.environ.get("GINGHAM_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; run with GINGHAM_UPDATE_GOLDEN=1"
    assert text == path.read_text()
